//! Rules for the PostgreSQL settings a config may pass through (`parameters`).

use crate::error::Problem;
use std::collections::BTreeMap;

/// PostgreSQL settings pgbaton sets itself, with what to write instead.
///
/// A value of these in `parameters` would fight pgbaton (e.g. point a replica at the
/// wrong primary), so it is an error rather than silently overridden.
pub const MANAGED_PARAMETERS: &[(&str, &str)] = &[
    ("port", "set the port in postgres.listen"),
    ("listen_addresses", "set the address in postgres.listen"),
    ("unix_socket_directories", "set postgres.socket_dir"),
    ("data_directory", "set data_dir"),
    (
        "config_file",
        "pgbaton writes postgresql.conf; put settings in parameters",
    ),
    (
        "hba_file",
        "pgbaton writes pg_hba.conf; add lines with postgres.pg_hba",
    ),
    (
        "primary_conninfo",
        "pgbaton points replicas at the current primary itself; remove it",
    ),
    (
        "primary_slot_name",
        "pgbaton manages one replication slot per member; remove it",
    ),
    (
        "synchronous_standby_names",
        "set synchronous_mode (off, on, quorum) and synchronous_node_count in the cluster config",
    ),
    (
        "hot_standby",
        "pgbaton needs hot_standby = on to watch replicas; remove it",
    ),
    (
        "synchronous_standby_names",
        "pgbaton manages the synchronous standbys; remove it",
    ),
];

/// Where a `parameters` map comes from, which decides whether restricted settings
/// (see [`pgbaton_core::limits::RESTRICTED_PARAMETERS`]) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The member's own root-owned file (`postgres.parameters`): everything allowed.
    MemberFile,
    /// The cluster-wide config (`bootstrap`, the store's `config`, `PATCH /config`,
    /// `edit-config`): restricted settings refused.
    ClusterWide,
}

/// Checks a `parameters` map found at `key` (e.g. `postgres.parameters`).
pub(crate) fn check_parameters(
    key: &str,
    params: &BTreeMap<String, serde_json::Value>,
    origin: Origin,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for (name, value) in params {
        let at = format!("{key}.{name}");
        let lower = name.to_ascii_lowercase();
        if let Some((_, instead)) = MANAGED_PARAMETERS.iter().find(|(n, _)| *n == lower) {
            out.push(Problem::at(
                at,
                format!("pgbaton manages {lower} itself; {instead}"),
            ));
            continue;
        }
        if !pgbaton_core::limits::is_parameter_name(name) {
            out.push(Problem::at(
                at,
                "is not a PostgreSQL setting name (a letter or '_', then letters, digits, '_' and '.'); check the spelling",
            ));
            continue;
        }
        if origin == Origin::ClusterWide && pgbaton_core::limits::is_restricted(name) {
            out.push(Problem::at(
                at,
                pgbaton_core::limits::restricted_message(name),
            ));
            continue;
        }
        let kind = match value {
            serde_json::Value::Null => Some("nothing (null)"),
            serde_json::Value::Array(_) => Some("a list"),
            serde_json::Value::Object(_) => Some("a mapping"),
            _ => None,
        };
        if let Some(kind) = kind {
            out.push(Problem::at(
                at,
                format!("must be a string, number or boolean, not {kind}; quote it if in doubt"),
            ));
            continue;
        }
        if lower == "wal_level"
            && value
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("minimal"))
        {
            out.push(Problem::at(
                at,
                "wal_level = minimal cannot feed replicas; use replica or logical",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn managed_parameters_name_the_replacement() {
        let p = check_parameters(
            "postgres.parameters",
            &params(&[("Port", json!(5433))]),
            Origin::MemberFile,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "postgres.parameters.Port");
        assert!(p[0].message.contains("postgres.listen"), "{}", p[0].message);
    }

    #[test]
    fn values_must_be_scalars() {
        let p = check_parameters(
            "bootstrap.parameters",
            &params(&[
                ("a", json!([1])),
                ("b", json!({"x": 1})),
                ("c", json!(null)),
                ("d", json!("x")),
                ("e", json!(1.5)),
                ("f", json!(true)),
            ]),
            Origin::ClusterWide,
        );
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bootstrap.parameters.a",
                "bootstrap.parameters.b",
                "bootstrap.parameters.c"
            ]
        );
    }

    #[test]
    fn names_and_wal_level() {
        let p = check_parameters(
            "postgres.parameters",
            &params(&[
                ("max connections", json!(1)),
                ("wal_level", json!("minimal")),
            ]),
            Origin::MemberFile,
        );
        assert_eq!(p.len(), 2);
        assert!(p[1].message.contains("use replica or logical"));
    }
}

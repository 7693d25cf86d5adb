//! Where to connect upstream (a primary or a clone source) and the recovery settings for a standby.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Result;
use crate::quote::{build_conninfo, check_slot_name};

/// A remote PostgreSQL to connect to, for `primary_conninfo`, `pg_basebackup` and `pg_rewind`.
///
/// The password is never part of it: libpq reads it from `passfile` (write it with
/// [`crate::Instance::write_passfile`]; it must be readable by the OS user running PostgreSQL and
/// should live outside the data directory, which base backups and rewinds overwrite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTarget {
    /// Host name or IP address (a real address reachable from this member, not a socket dir).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to connect as (a REPLICATION role for streaming and base backups, a superuser
    /// for pg_rewind).
    pub user: String,
    /// `.pgpass`-format file holding the password.
    pub passfile: PathBuf,
    /// `application_name`: this member's name; it shows up in the upstream's
    /// `pg_stat_replication` and is what `synchronous_standby_names` matches.
    pub application_name: String,
    /// `connect_timeout` in seconds (libpq's minimum effective value is 2).
    pub connect_timeout_secs: u32,
    /// More libpq keywords (lowercase words), e.g. `("keepalives_idle", "5")`.
    pub extra: Vec<(String, String)>,
}

impl ConnTarget {
    /// The libpq conninfo string: `host port user application_name passfile connect_timeout`
    /// plus `extra`, every value single-quoted and escaped.
    pub fn conninfo(&self) -> Result<String> {
        self.conninfo_with(&[])
    }

    /// [`ConnTarget::conninfo`] followed by more pairs (e.g. `dbname` for pg_rewind).
    pub fn conninfo_with(&self, more: &[(&str, String)]) -> Result<String> {
        let mut pairs: Vec<(&str, String)> = vec![
            ("host", self.host.clone()),
            ("port", self.port.to_string()),
            ("user", self.user.clone()),
            ("application_name", self.application_name.clone()),
            ("passfile", self.passfile.to_string_lossy().into_owned()),
            ("connect_timeout", self.connect_timeout_secs.to_string()),
        ];
        for (k, v) in &self.extra {
            pairs.push((k.as_str(), v.clone()));
        }
        pairs.extend(more.iter().cloned());
        build_conninfo(&pairs)
    }
}

/// What a standby follows: the upstream connection and the slot it streams through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyTarget {
    /// The upstream (a primary, or a cascading standby).
    pub upstream: ConnTarget,
    /// Physical slot on the upstream (`primary_slot_name`); `None` streams without a slot.
    pub slot_name: Option<String>,
}

impl StandbyTarget {
    /// The settings that make a standby follow this target: `primary_conninfo`,
    /// `primary_slot_name` (empty when none) and `recovery_target_timeline = latest`.
    /// [`crate::Instance::prepare_config`] merges them into the managed config for you.
    pub fn recovery_settings(&self) -> Result<BTreeMap<String, String>> {
        if let Some(s) = &self.slot_name {
            check_slot_name(s)?;
        }
        let mut m = BTreeMap::new();
        m.insert("primary_conninfo".to_string(), self.upstream.conninfo()?);
        m.insert(
            "primary_slot_name".to_string(),
            self.slot_name.clone().unwrap_or_default(),
        );
        m.insert("recovery_target_timeline".to_string(), "latest".to_string());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ConnTarget {
        ConnTarget {
            host: "10.0.0.1".into(),
            port: 5432,
            user: "repl".into(),
            passfile: "/var/lib/pgbaton/pass file".into(),
            application_name: "node-2".into(),
            connect_timeout_secs: 3,
            extra: vec![],
        }
    }

    #[test]
    fn conninfo_has_everything_quoted() {
        assert_eq!(
            target().conninfo().unwrap(),
            "host='10.0.0.1' port='5432' user='repl' application_name='node-2' \
             passfile='/var/lib/pgbaton/pass file' connect_timeout='3'"
        );
        let ci = target()
            .conninfo_with(&[("dbname", "postgres".into())])
            .unwrap();
        assert!(ci.ends_with("dbname='postgres'"));
    }

    #[test]
    fn recovery_settings() {
        let st = StandbyTarget {
            upstream: target(),
            slot_name: Some("node_2".into()),
        };
        let m = st.recovery_settings().unwrap();
        assert_eq!(m["primary_slot_name"], "node_2");
        assert!(m["primary_conninfo"].contains("application_name='node-2'"));
        let bad = StandbyTarget {
            upstream: target(),
            slot_name: Some("Bad-Slot".into()),
        };
        assert!(bad.recovery_settings().is_err());
    }
}

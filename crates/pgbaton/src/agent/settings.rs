//! The PostgreSQL settings pgbaton enforces, and the [`Instance`] built from the config.
//!
//! pgbaton owns `pgbaton.conf` in the data directory and rewrites it before every start,
//! because base backups and pg_rewind copy the other member's config files.

use anyhow::Context;
use pgbaton_config::NodeConfig;
use pgbaton_core::model::ClusterConfig;
use pgbaton_postgres::{Credentials, Instance, OsUser};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Build the PostgreSQL control handle for this member.
pub fn instance(cfg: &NodeConfig) -> anyhow::Result<Instance> {
    let bin_dir = match &cfg.postgres.bin_dir {
        Some(d) => d.clone(),
        None => pgbaton_postgres::find_bin_dir()?,
    };
    let run_as = OsUser::run_as_policy(cfg.os_user_name())
        .with_context(|| format!("postgres.os_user {:?}", cfg.os_user_name()))?;
    let (host, port) = cfg.pg_listen();
    Ok(Instance {
        bin_dir,
        data_dir: cfg.data_dir.clone(),
        run_as,
        listen_addresses: host,
        port,
        socket_dir: cfg.socket_dir(),
        superuser: Credentials {
            user: cfg.postgres.superuser.username.clone(),
            password: cfg.postgres.superuser.password.clone(),
        },
        log_file: log_file(cfg),
    })
}

/// Where PostgreSQL's server log goes: beside the data directory, never inside it.
pub fn log_file(cfg: &NodeConfig) -> PathBuf {
    sibling(cfg, "log")
}

/// The password file for streaming replication: beside the data directory.
pub fn passfile(cfg: &NodeConfig) -> PathBuf {
    sibling(cfg, "pgpass")
}

/// A path next to the data directory: `<data_dir>.<suffix>`.
pub fn sibling(cfg: &NodeConfig, suffix: &str) -> PathBuf {
    let mut s = cfg.data_dir.clone().into_os_string();
    s.push(format!(".{suffix}"));
    PathBuf::from(s)
}

/// How soon a standby tries streaming again after it lost its upstream.
pub const WAL_RETRIEVE_RETRY_INTERVAL: &str = "250ms";

/// The settings written into `pgbaton.conf`: replication essentials, then the cluster's
/// parameters, then this member's own (which win), then `synchronous_standby_names`
/// when the synchronous replication manager set one (`sync_names`).
pub fn managed_settings(
    cfg: &NodeConfig,
    cluster: &ClusterConfig,
    sync_names: Option<&str>,
) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    for (k, v) in [
        ("wal_level", "replica"),
        ("hot_standby", "on"),
        ("wal_log_hints", "on"),
        ("max_wal_senders", "10"),
        ("max_replication_slots", "10"),
        ("wal_keep_size", "128MB"),
        ("hot_standby_feedback", "on"),
        ("wal_receiver_status_interval", "1s"),
    ] {
        s.insert(k.to_string(), v.to_string());
    }
    // A replica whose primary restarted in place retries streaming after this long
    // (PostgreSQL's default is 5 s of replicas standing still). Each retry also runs
    // `restore_command` when one is set, so with an archive PostgreSQL's default stays
    // unless the member's parameters say otherwise.
    if !cfg.postgres.parameters.contains_key("restore_command") {
        s.insert(
            "wal_retrieve_retry_interval".into(),
            WAL_RETRIEVE_RETRY_INTERVAL.into(),
        );
    }
    s.insert("cluster_name".into(), cfg.cluster.clone());
    for (k, v) in &cluster.parameters {
        // The store is untrusted: a command, library or include setting from it would
        // run code as postgres. Only this member's own file may set those.
        if pgbaton_core::limits::is_restricted(k) {
            tracing::error!(
                "not applying {k} from the cluster config in the store: {}",
                pgbaton_core::limits::restricted_message(k)
            );
            continue;
        }
        s.insert(k.clone(), scalar(v));
    }
    for (k, v) in &cfg.postgres.parameters {
        s.insert(k.clone(), scalar(v));
    }
    if let Some(names) = sync_names {
        s.insert("synchronous_standby_names".into(), names.to_string());
    }
    s
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The passfile lines for connecting to `primary`: the replication password, and the
/// pg_rewind role's (or else the superuser's), each for `primary`'s exact host and port
/// only, so no password is offered to any other server (security review F6).
pub fn upstream_passwords(
    cfg: &NodeConfig,
    primary: &pgbaton_core::model::MemberStatus,
) -> Vec<pgbaton_postgres::PassfileEntry> {
    let repl = &cfg.postgres.replication;
    let su = cfg
        .postgres
        .rewind
        .as_ref()
        .unwrap_or(&cfg.postgres.superuser);
    [repl, su]
        .into_iter()
        .map(|c| pgbaton_postgres::PassfileEntry {
            host: primary.host.clone(),
            port: Some(primary.port),
            user: c.username.clone(),
            password: c.password.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> NodeConfig {
        let text = pgbaton_config::render_example(
            "acme",
            "n1",
            std::path::Path::new("/srv/n1"),
            std::path::Path::new("/srv/store"),
            5432,
            8008,
        );
        match pgbaton_config::parse(&text, "n1.yaml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn restricted_parameters_from_the_store_are_never_applied() {
        let cfg = example();
        let mut cluster = ClusterConfig::default();
        cluster
            .parameters
            .insert("archive_command".into(), "id > /tmp/pwn-%f".into());
        cluster
            .parameters
            .insert("SHARED_PRELOAD_LIBRARIES".into(), "evil".into());
        cluster.parameters.insert("work_mem".into(), "8MB".into());
        let s = managed_settings(&cfg, &cluster, None);
        assert!(!s.contains_key("archive_command"));
        assert!(!s.contains_key("SHARED_PRELOAD_LIBRARIES"));
        assert_eq!(s.get("work_mem").map(String::as_str), Some("8MB"));
    }

    #[test]
    fn replicas_retry_streaming_quickly_unless_an_archive_is_read() {
        let mut cfg = example();
        let cluster = ClusterConfig::default();
        let s = managed_settings(&cfg, &cluster, None);
        assert_eq!(
            s.get("wal_retrieve_retry_interval").map(String::as_str),
            Some(WAL_RETRIEVE_RETRY_INTERVAL)
        );
        cfg.postgres
            .parameters
            .insert("restore_command".into(), "cp /arch/%f %p".into());
        let s = managed_settings(&cfg, &cluster, None);
        assert!(!s.contains_key("wal_retrieve_retry_interval"));
        cfg.postgres
            .parameters
            .insert("wal_retrieve_retry_interval".into(), "2s".into());
        let s = managed_settings(&cfg, &cluster, None);
        assert_eq!(
            s.get("wal_retrieve_retry_interval").map(String::as_str),
            Some("2s")
        );
    }

    #[test]
    fn passwords_go_only_to_the_primary_s_host_and_port() {
        let cfg = example();
        let primary = pgbaton_core::model::MemberStatus {
            name: "n2".into(),
            host: "10.0.0.7".into(),
            port: 5433,
            api_url: String::new(),
            role: pgbaton_core::model::Role::Primary,
            state: pgbaton_core::model::PgState::Running,
            timeline: None,
            lsn: None,
            received_lsn: None,
            replayed_lsn: None,
            lag_bytes: None,
            pg_version: None,
            system_identifier: None,
            tags: Default::default(),
            slots: Vec::new(),
            note: None,
            updated_ms: 0,
        };
        let entries = upstream_passwords(&cfg, &primary);
        assert_eq!(entries.len(), 2);
        for e in &entries {
            assert_eq!((e.host.as_str(), e.port), ("10.0.0.7", Some(5433)));
        }
        let text = pgbaton_postgres::render_passfile(&entries).expect("render");
        assert!(
            text.lines().all(|l| l.starts_with("10.0.0.7:5433:")),
            "{text}"
        );
    }
}

//! Shared setup for the integration tests: temp dirs the `postgres` user can traverse, free
//! ports, instances that are stopped when dropped, and polling with a deadline.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgbaton_postgres::{
    find_bin_dir, standard_hba, ConnTarget, Credentials, InitdbOptions, Instance, OsUser,
    PassfileEntry, StopMode,
};

/// Superuser name and a password with characters that need quoting everywhere.
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = r"su:pa'ss\word";
/// Replication role and its (also nasty) password.
pub const REPL_USER: &str = "replicator";
pub const REPL_PASSWORD: &str = r"re:pl'ic\a tor";

/// A temp dir that the `postgres` OS user can traverse (mode 0755).
pub fn test_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgbaton-pg-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A free TCP port on 127.0.0.1 (tiny race accepted).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An instance that is stopped (SIGQUIT) when dropped, so failed tests leave no servers.
pub struct Node {
    pub inst: Instance,
    pub name: String,
    pub passfile: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.inst.signal_stop(StopMode::Immediate) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.inst.status(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Describes (does not create) a node named `name` under `root`.
pub fn node(root: &Path, name: &str) -> Node {
    let base = root.join(name);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    Node {
        inst: Instance {
            bin_dir: find_bin_dir().unwrap(),
            data_dir: base.join("data"),
            run_as: OsUser::run_as_policy("postgres").unwrap(),
            listen_addresses: "127.0.0.1".into(),
            port: free_port(),
            socket_dir: base.join("run"),
            superuser: Credentials {
                user: SUPERUSER.into(),
                password: SUPERUSER_PASSWORD.into(),
            },
            log_file: base.join("postgresql.log"),
        },
        name: name.to_string(),
        passfile: base.join("pgpass"),
    }
}

/// Small, fast settings for tests.
pub fn settings() -> BTreeMap<String, String> {
    [
        ("fsync", "off"),
        ("shared_buffers", "16MB"),
        ("max_connections", "20"),
        ("max_wal_senders", "5"),
        ("max_replication_slots", "5"),
        ("wal_receiver_status_interval", "1s"),
        ("checkpoint_timeout", "30min"),
        ("log_min_messages", "info"),
        // pg_rewind needs the old primary's WAL back to the last common checkpoint.
        ("wal_keep_size", "64MB"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fast initdb options for tests.
pub fn initdb_opts() -> InitdbOptions {
    InitdbOptions {
        no_sync: true,
        ..InitdbOptions::default()
    }
}

/// Writes pg_hba.conf with the standard rules for members on 127.0.0.1.
pub fn write_standard_hba(inst: &Instance) {
    let lines = standard_hba(SUPERUSER, REPL_USER, &["127.0.0.1".to_string()], &[]).unwrap();
    inst.write_hba(&lines).unwrap();
}

/// initdb + hba + managed config + start, as a primary.
pub async fn start_primary(root: &Path, name: &str) -> Node {
    let n = node(root, name);
    n.inst.initdb(&initdb_opts()).await.unwrap();
    write_standard_hba(&n.inst);
    n.inst.prepare_config(&settings(), None).unwrap();
    assert!(n.inst.start(Duration::from_secs(30)).await.unwrap());
    n
}

/// Writes `node`'s passfile with both the replication and the superuser password for
/// `upstream`, and returns a target for the given user.
pub fn target_for(node: &Node, upstream: &Node, user: &str) -> ConnTarget {
    node.inst
        .write_passfile(
            &node.passfile,
            &[
                PassfileEntry {
                    host: "127.0.0.1".into(),
                    port: None,
                    user: REPL_USER.into(),
                    password: REPL_PASSWORD.into(),
                },
                PassfileEntry {
                    host: "127.0.0.1".into(),
                    port: None,
                    user: SUPERUSER.into(),
                    password: SUPERUSER_PASSWORD.into(),
                },
            ],
        )
        .unwrap();
    ConnTarget {
        host: "127.0.0.1".into(),
        port: upstream.inst.port,
        user: user.into(),
        passfile: node.passfile.clone(),
        application_name: node.name.clone(),
        connect_timeout_secs: 3,
        extra: vec![],
    }
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The per-member YAML config file: its typed shape, parsing and validation.
//!
//! Everything is checked before the agent touches anything: unknown keys, missing
//! required keys and bad values are errors that name the file, the key and the fix.

use pgbaton_core::model::{ClusterConfig, Tags};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One member's config file, as written by the DBA.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Cluster name; the namespace in the store.
    pub cluster: String,
    /// Unique member name.
    pub name: String,
    /// PGDATA of this member.
    pub data_dir: PathBuf,
    /// Where cluster state lives.
    pub store: StoreConfig,
    /// This member's PostgreSQL.
    pub postgres: PostgresConfig,
    /// The agent's HTTP API.
    pub api: ApiConfig,
    /// Tags that steer the HA rules for this member.
    #[serde(default)]
    pub tags: Tags,
    /// Cluster-wide settings written to the store when this member bootstraps the
    /// cluster; afterwards the store's copy rules (see `pgbaton edit-config`).
    #[serde(default)]
    pub bootstrap: ClusterConfig,
    /// Where the agent writes its log (default: standard error).
    #[serde(default)]
    pub log: LogConfig,
}

/// The store backend. Exactly one of `local` or `etcd`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Embedded single-host store: a directory shared by the members.
    #[serde(default)]
    pub local: Option<PathBuf>,
    /// etcd v3.
    #[serde(default)]
    pub etcd: Option<EtcdConfig>,
}

/// etcd v3 connection settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Optional user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional password.
    #[serde(default)]
    pub password: Option<String>,
    /// Optional TLS files.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Key prefix (default `/pgbaton`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_prefix() -> String {
    "/pgbaton".to_string()
}

/// TLS files for etcd.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
}

/// A user name and password.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Role name.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// This member's PostgreSQL.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `host:port` PostgreSQL listens on.
    pub listen: String,
    /// `host:port` other members use to reach it (default: `listen`).
    #[serde(default)]
    pub connect_address: Option<String>,
    /// Directory of the PostgreSQL programs (default: found automatically).
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// The OS user that runs PostgreSQL when the agent runs as root (default `postgres`).
    #[serde(default)]
    pub os_user: Option<String>,
    /// Directory for the Unix socket (default `/tmp`).
    #[serde(default)]
    pub socket_dir: Option<PathBuf>,
    /// The superuser the agent connects as.
    pub superuser: Credentials,
    /// The role replicas stream with.
    pub replication: Credentials,
    /// Extra `postgresql.conf` settings for this member.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Extra `pg_hba.conf` lines, added before pgbaton's own rules.
    #[serde(default)]
    pub pg_hba: Vec<String>,
}

/// The agent's HTTP API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `host:port` the API listens on.
    pub listen: String,
}

/// Agent logging.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default) or `debug`.
    #[serde(default)]
    pub level: Option<String>,
}

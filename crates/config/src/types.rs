//! The typed shape of a member's config file, exactly as the DBA writes it.

use pgbaton_core::model::{ClusterConfig, Tags};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One member's config file, as written by the DBA.
///
/// Obtain it from [`crate::load`] or [`crate::parse`], which validate it; the
/// convenience methods (see `access.rs`) assume a validated config.
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
    /// Agent logging: level and destination (default: `info` to standard error).
    #[serde(default)]
    pub log: LogConfig,
}

/// The store backend. Exactly one of `local` or `etcd`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Embedded single-host store: a directory shared by the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<PathBuf>,
    /// etcd v3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
}

/// etcd v3 connection settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Optional user name (set together with `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Optional password (set together with `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Optional TLS files; the endpoints must then be `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Key prefix (default `/pgbaton`); the cluster's keys live under `<prefix>/<cluster>/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

/// The default etcd key prefix, `/pgbaton`.
pub fn default_prefix() -> String {
    "/pgbaton".to_string()
}

/// TLS files for etcd.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM) that signed etcd's server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM); set together with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM); set together with `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_address: Option<String>,
    /// Directory of the PostgreSQL programs (default: found automatically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// The OS user that runs PostgreSQL when the agent runs as root (default `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// Directory for the Unix socket (default `/tmp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_dir: Option<PathBuf>,
    /// The superuser the agent connects as.
    pub superuser: Credentials,
    /// The role replicas stream with.
    pub replication: Credentials,
    /// Extra `postgresql.conf` settings for this member (override `bootstrap.parameters`).
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
    /// `host:port` other members and the CLI use to reach the API (default: `listen`,
    /// or the host of `postgres.connect_address` with the `listen` port when `listen`
    /// is a wildcard address). Added by the config crate; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_address: Option<String>,
}

/// Agent logging.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Absolute path of a file the agent appends its log to (default: standard error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

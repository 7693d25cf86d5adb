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
    /// Fencing of this member's PostgreSQL when its lease runs out, and the optional
    /// Linux watchdog device (see `docs/fencing.md`).
    #[serde(default)]
    pub watchdog: WatchdogConfig,
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

/// etcd v3 connection settings. Its `Debug` form hides the password.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .finish()
    }
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

/// A user name and password. Its `Debug` form hides the password, so a config printed
/// in a log or an error never shows it.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Role name.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
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
    /// A dedicated, non-superuser role for pg_rewind (given only the functions
    /// pg_rewind needs). Without it pg_rewind connects as the superuser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind: Option<Credentials>,
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
    /// HTTP basic-auth credentials every unsafe request (POST, PATCH, PUT, DELETE) must
    /// carry; `None` (the default) leaves the API open. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Credentials>,
    /// Serve HTTPS with these PEM files instead of plain HTTP; `None` (the default)
    /// serves plain HTTP. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ApiTls>,
    /// Serve a non-loopback `listen` address without `api.auth` (default `false`: the
    /// agent refuses to start, because anyone who reaches the API could take over the
    /// cluster). Logged as a warning at every start. Optional.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unauthenticated: bool,
    /// Extra names clients may use in the `Host` header (e.g. a DNS alias or a load
    /// balancer name). The listen and connect addresses and loopback names are always
    /// accepted; any other `Host` gets 421 (a defence against DNS rebinding). Optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The certificate and private key the HTTP API serves HTTPS with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    /// Server certificate chain (PEM), leaf first; absolute path.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1); absolute path.
    pub key: PathBuf,
    /// CA certificates (PEM) that sign client certificates. When set, every unsafe
    /// request (`POST`, `PATCH`, `PUT`, `DELETE`) must come with a client certificate
    /// this CA signed; reads stay open. Optional; absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// Agent logging.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `text` (default) or `json` (one JSON object per line).
    #[serde(default)]
    pub format: LogFormat,
    /// Absolute path of a file the agent and its fence process append their log to
    /// (default: standard error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, fields.message, ...), for Loki/ELK.
    Json,
}

impl LogFormat {
    /// The config spelling: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Fencing settings: when the fence fires and whether the Linux watchdog device backs it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Whether to use the watchdog device (default `off`).
    #[serde(default)]
    pub mode: WatchdogMode,
    /// The watchdog device (default `/dev/watchdog`).
    #[serde(default = "default_watchdog_device")]
    pub device: PathBuf,
    /// Seconds before the lease can expire at which PostgreSQL is fenced (default 2).
    #[serde(default = "default_safety_margin")]
    pub safety_margin: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            mode: WatchdogMode::default(),
            device: default_watchdog_device(),
            safety_margin: default_safety_margin(),
        }
    }
}

/// The default watchdog device, `/dev/watchdog`.
pub fn default_watchdog_device() -> PathBuf {
    PathBuf::from("/dev/watchdog")
}

/// The default fencing safety margin, 2 seconds.
pub fn default_safety_margin() -> u64 {
    2
}

/// Whether the fence is backed by the Linux watchdog device, which resets the host when
/// the fence process itself stops working while this member is primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogMode {
    /// Never use the device; PostgreSQL is still fenced by the fence process.
    #[default]
    Off,
    /// Use the device when it can be used, otherwise log why and go on without it.
    Automatic,
    /// Refuse to run without the device.
    Required,
}

impl WatchdogMode {
    /// The spelling used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogMode::Off => "off",
            WatchdogMode::Automatic => "automatic",
            WatchdogMode::Required => "required",
        }
    }
}

impl std::fmt::Display for WatchdogMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WatchdogMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(WatchdogMode::Off),
            "automatic" => Ok(WatchdogMode::Automatic),
            "required" => Ok(WatchdogMode::Required),
            other => Err(format!(
                "{other:?} is not a watchdog mode; use off, automatic or required"
            )),
        }
    }
}

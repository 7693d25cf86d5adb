//! The per-member YAML config file: its typed shape, parsing and validation.
//!
//! Everything is checked before the agent touches anything: unknown keys, missing
//! required keys and bad values are errors that name the file, the key and the fix,
//! all of them at once, one per line. See `docs/configuration.md` for every key.

mod access;
mod addr;
mod env;
mod error;
mod keys;
mod params;
mod parse;
mod render;
mod types;
mod validate;

pub use access::{DEFAULT_LOG_LEVEL, DEFAULT_OS_USER, DEFAULT_SOCKET_DIR, LOG_LEVELS};
pub use addr::{host_port, is_loopback, is_wildcard, url_host};
pub use env::{check_environment, REQUIRED_PROGRAMS};
pub use error::{ConfigError, Problem};
pub use params::MANAGED_PARAMETERS;
pub use parse::{load, parse};
pub use render::{effective, render_effective, render_example, render_example_etcd, REDACTED};
pub use types::{
    default_prefix, default_safety_margin, default_watchdog_device, ApiConfig, ApiTls, Credentials,
    EtcdConfig, LogConfig, LogFormat, NodeConfig, PostgresConfig, StoreConfig, TlsConfig,
    WatchdogConfig, WatchdogMode,
};
pub use validate::{
    check_cluster_config, check_cluster_config_with_margin, min_safe_ttl, MAX_NAME_LEN,
};

/// Re-exported so callers can name the `bootstrap` and `tags` types from here.
pub use pgbaton_core::model::{ClusterConfig, Tags};

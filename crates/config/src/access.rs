//! Convenience accessors on a validated [`NodeConfig`]: addresses split, defaults filled.

use crate::addr::{host_port, is_wildcard, url_host};
use crate::types::NodeConfig;
use std::path::{Path, PathBuf};

/// OS user that runs PostgreSQL when `postgres.os_user` is not set.
pub const DEFAULT_OS_USER: &str = "postgres";
/// Unix socket directory when `postgres.socket_dir` is not set.
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";
/// Log level when `log.level` is not set.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// The log levels `log.level` accepts.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Splits an address that validation has already accepted. On a config that did not
/// pass validation, a malformed address yields the raw text as host and port 0.
fn split(addr: &str) -> (String, u16) {
    host_port(addr).unwrap_or_else(|_| (addr.to_string(), 0))
}

impl NodeConfig {
    /// Host and port PostgreSQL listens on (`postgres.listen`).
    ///
    /// Call on a validated config (from [`crate::load`] / [`crate::parse`]).
    pub fn pg_listen(&self) -> (String, u16) {
        split(&self.postgres.listen)
    }

    /// Host and port other members use to reach this PostgreSQL: `postgres.connect_address`,
    /// else `postgres.listen`. Validation rejects a wildcard `listen` (0.0.0.0, ::) without
    /// a `connect_address`, so on a validated config this is always reachable.
    pub fn pg_connect(&self) -> (String, u16) {
        match &self.postgres.connect_address {
            Some(addr) => split(addr),
            None => self.pg_listen(),
        }
    }

    /// The `postgres.connect_address` text in effect (`host:port`, IPv6 in brackets).
    pub fn pg_connect_address(&self) -> String {
        let (host, port) = self.pg_connect();
        format!("{}:{port}", url_host(&host))
    }

    /// Host and port the agent's HTTP API listens on (`api.listen`).
    pub fn api_listen(&self) -> (String, u16) {
        split(&self.api.listen)
    }

    /// Host and port others use to reach the API: `api.connect_address`, else `api.listen`,
    /// else (wildcard `api.listen`) the host of [`Self::pg_connect`] with the API port.
    pub fn api_connect(&self) -> (String, u16) {
        if let Some(addr) = &self.api.connect_address {
            return split(addr);
        }
        let (host, port) = self.api_listen();
        if is_wildcard(&host) {
            (self.pg_connect().0, port)
        } else {
            (host, port)
        }
    }

    /// URL of this member's API, e.g. `http://127.0.0.1:8008`, or `https://...` when
    /// `api.tls` is set (what `MemberStatus.api_url` holds).
    pub fn api_url(&self) -> String {
        let (host, port) = self.api_connect();
        let scheme = if self.api.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{port}", url_host(&host))
    }

    /// The OS user that runs PostgreSQL (default `postgres`).
    pub fn os_user_name(&self) -> &str {
        self.postgres.os_user.as_deref().unwrap_or(DEFAULT_OS_USER)
    }

    /// Directory of PostgreSQL's Unix socket (default `/tmp`).
    pub fn socket_dir(&self) -> PathBuf {
        self.postgres
            .socket_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIR))
    }

    /// The log level (default `info`); one of [`LOG_LEVELS`] on a validated config.
    pub fn log_level(&self) -> &str {
        self.log.level.as_deref().unwrap_or(DEFAULT_LOG_LEVEL)
    }

    /// The file the agent appends its log to; `None` means standard error.
    pub fn log_file(&self) -> Option<&Path> {
        self.log.file.as_deref()
    }
}

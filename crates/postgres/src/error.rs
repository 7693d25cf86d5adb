//! The one error type of this crate: every variant says what failed and where.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while controlling a PostgreSQL instance.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed.
    #[error("could not {what} {path}: {source}")]
    Io {
        /// The operation, e.g. "create directory".
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The OS user that should run PostgreSQL could not be resolved.
    #[error("OS user {name:?}: {reason}")]
    OsUser {
        /// The user name looked up.
        name: String,
        /// Why it failed.
        reason: String,
    },

    /// No directory with PostgreSQL programs was found.
    #[error("no PostgreSQL binaries found; searched {searched}")]
    BinDirNotFound {
        /// Human-readable list of what was searched.
        searched: String,
    },

    /// A PostgreSQL program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program path.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL program ran and failed.
    #[error("{action} failed: {program} ended with {status}{}{}", fmt_section("output", .output), fmt_section("server log tail", .log_tail))]
    Command {
        /// What we were trying to do, e.g. "start PostgreSQL".
        action: String,
        /// The program name, e.g. "pg_ctl".
        program: String,
        /// Exit status as text.
        status: String,
        /// The program's stderr (and stdout when useful), trimmed.
        output: String,
        /// The last lines of the server log, when relevant.
        log_tail: String,
    },

    /// A PostgreSQL program or a wait did not finish in time.
    #[error("{action} did not finish within {timeout:?}{}", fmt_section("server log tail", .log_tail))]
    Timeout {
        /// What we were waiting for.
        action: String,
        /// The limit that passed.
        timeout: Duration,
        /// The last lines of the server log, when relevant.
        log_tail: String,
    },

    /// The data directory holds files that are not a PostgreSQL cluster; it is left untouched.
    #[error("data directory {path} is not empty ({entries} entries) and is not a PostgreSQL data directory; refusing to touch it")]
    NotAPostgresDir {
        /// The data directory.
        path: PathBuf,
        /// How many entries it has.
        entries: usize,
    },

    /// The operation needs an empty or missing data directory, but a cluster is there.
    #[error("data directory {path} already holds a PostgreSQL cluster; {action} needs it empty")]
    AlreadyInitialized {
        /// The data directory.
        path: PathBuf,
        /// The refused operation.
        action: &'static str,
    },

    /// `pg_controldata` printed something we could not understand.
    #[error("pg_controldata output for {path}: {reason}")]
    ControlData {
        /// The data directory.
        path: PathBuf,
        /// What was missing or malformed.
        reason: String,
    },

    /// A caller-supplied value cannot be written safely (e.g. a newline in a host name).
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value, e.g. "replication slot name".
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A SQL connection or statement failed.
    #[error("SQL {what} failed: {detail}")]
    Sql {
        /// What we were doing, e.g. "connect to /run/pg:5432".
        what: String,
        /// The server's message (severity, SQLSTATE, text) or the client error chain.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The server returned a value we could not interpret.
    #[error("unexpected value from {what}: {value:?}")]
    BadValue {
        /// The query or column.
        what: String,
        /// The value as text.
        value: String,
    },

    /// A replication slot is in use by a connected client and cannot be dropped.
    #[error("replication slot {name:?} is active (used by pid {pid:?}); stop its client first")]
    SlotActive {
        /// The slot name.
        name: String,
        /// The walsender pid, when known.
        pid: Option<i32>,
    },

    /// A slot with this name exists but is not a physical slot.
    #[error("replication slot {name:?} exists but is a {slot_type} slot, not physical")]
    SlotWrongType {
        /// The slot name.
        name: String,
        /// Its actual type.
        slot_type: String,
    },
}

fn fmt_section(title: &str, text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- {title} ---\n{}", text.trim_end())
    }
}

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Sql`], keeping the server's own message readable.
    pub(crate) fn sql(what: impl Into<String>, source: tokio_postgres::Error) -> Self {
        let detail = match source.as_db_error() {
            Some(db) => {
                let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
                if let Some(d) = db.detail() {
                    s.push_str(&format!(" (detail: {d})"));
                }
                s
            }
            None => {
                let mut s = source.to_string();
                let mut cur = std::error::Error::source(&source);
                while let Some(e) = cur {
                    s.push_str(&format!(": {e}"));
                    cur = e.source();
                }
                s
            }
        };
        Error::Sql {
            what: what.into(),
            detail,
            source,
        }
    }

    /// Builds an [`Error::Invalid`].
    pub(crate) fn invalid(what: &'static str, value: &str, reason: &'static str) -> Self {
        Error::Invalid {
            what,
            value: value.to_string(),
            reason,
        }
    }
}

//! The one error type of the benchmarks: every variant says what failed and where.

use std::path::PathBuf;
use std::time::Duration;

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done, e.g. "write config".
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The pgbaton binary was not found.
    #[error("pgbaton binary not found at {0}; build it with `cargo build --release -p pgbaton` or pass --pgbaton PATH")]
    NoBinary(PathBuf),
    /// A process could not be started.
    #[error("start {what}: {source}")]
    Spawn {
        /// The command.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `pgbaton` command failed or printed something unexpected.
    #[error("`pgbaton {command}` failed: {detail}")]
    Command {
        /// The subcommand and arguments.
        command: String,
        /// Exit status and output.
        detail: String,
    },
    /// Something did not happen within its deadline.
    #[error("timed out after {:.1} s waiting for {what}", .after.as_secs_f64())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// A SQL call failed.
    #[error("SQL on {target}: {source}")]
    Sql {
        /// Which server, e.g. "node1 (127.0.0.1:5432)".
        target: String,
        /// The driver error.
        source: tokio_postgres::Error,
    },
    /// The cluster is in a state the benchmark cannot go on from.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The arguments make no sense together.
    #[error("arguments: {0}")]
    Usage(String),
    /// A feature the benchmark needs does not exist in pgbaton yet.
    #[error("not implemented yet: {0}")]
    NotImplemented(String),
}

impl BenchError {
    /// An [`BenchError::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

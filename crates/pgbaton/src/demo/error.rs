//! The demo's own failures, each saying what to do about it.

use std::path::PathBuf;

/// Why the demo could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An existing config in the demo dir names another store than the one asked for.
    #[error(
        "{config} uses {found}, but this run asked for {wanted}. The demo reuses the configs \
         and data in {dir}, so it cannot switch stores: run `{resume}` to resume that \
         cluster, or pick another --dir (or delete {dir}) for a new one"
    )]
    StoreMismatch {
        /// The config file that differs.
        config: PathBuf,
        /// The store it names, for people (e.g. "the local store").
        found: String,
        /// The store asked for on the command line, for people.
        wanted: String,
        /// The demo dir.
        dir: PathBuf,
        /// The command line that resumes the existing cluster.
        resume: String,
    },
    /// A port a member needs is taken by another program.
    #[error(
        "127.0.0.1:{port}, the {what} port of {member} (kept in {config}), is in use by \
         another program. Find it with `ss -ltnp 'sport = :{port}'` and stop it, or give \
         {member} another free port below 32768 in {config}, then run the demo again"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// `PostgreSQL` or `HTTP API`.
        what: &'static str,
        /// The member.
        member: String,
        /// Its config file.
        config: PathBuf,
        /// The bind error (shown after the message, as its cause).
        source: std::io::Error,
    },
    /// `--etcd-endpoints` without `--store etcd`.
    #[error("--etcd-endpoints only applies to --store etcd; add --store etcd")]
    EndpointsWithoutEtcd,
    /// No etcd binary on PATH or in /usr/bin.
    #[error("etcd not found: install it with `apt-get install -y etcd-server`")]
    EtcdNotFound,
    /// A port the demo's etcd needs is taken.
    #[error(
        "cannot start the demo's etcd: 127.0.0.1:{port} is in use. Is another demo or etcd \
         running? Stop it, or pass --etcd-endpoints to use a running etcd"
    )]
    EtcdPortInUse {
        /// The port.
        port: u16,
        /// The bind error (shown after the message, as its cause).
        source: std::io::Error,
    },
    /// etcd was started but exited or did not become healthy.
    #[error("the demo's etcd {what}; see {log}")]
    EtcdFailed {
        /// What went wrong, e.g. "exited (exit status: 1)".
        what: String,
        /// The etcd log file.
        log: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error (shown after the message, as its cause).
        source: std::io::Error,
    },
}

impl DemoError {
    /// An [`DemoError::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
        let what = what.into();
        move |source| DemoError::Io { what, source }
    }
}

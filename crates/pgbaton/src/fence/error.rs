//! What can go wrong while fencing, each error naming what failed and where.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the fence (agent side or fence process).
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// `pipe2` failed.
    #[error("cannot create the command pipe to the fence process: {0}")]
    Pipe(nix::Error),
    /// The fence process could not be started.
    #[error("cannot start the fence process {program}: {source}")]
    Spawn {
        /// The program started.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The fence process's log file could not be opened.
    #[error("cannot open the fence log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The fence process reported why it refuses to run (e.g. a required watchdog device
    /// is missing).
    #[error("the fence process refused to start: {0}")]
    Refused(String),
    /// The fence process did not answer in time.
    #[error("the fence process did not report ready within {0:?}")]
    NotReady(Duration),
    /// The fence process exited (or closed its output) before it was ready.
    #[error("the fence process exited before it was ready: {0}")]
    Exited(String),
    /// The command pipe is full: the fence process is not reading. It keeps enforcing
    /// the previous (earlier) deadline, so this is safe but must be logged.
    #[error("the fence process is not reading its commands (pipe full); it keeps enforcing the previous deadline")]
    Busy,
    /// The fence process is gone: nothing fences PostgreSQL any more.
    #[error("the fence process is gone (pid {0}): PostgreSQL is not fenced; start a new one")]
    Gone(u32),
    /// Writing a command failed for another reason.
    #[error("cannot send a command to the fence process: {0}")]
    Write(nix::Error),
    /// The watchdog device cannot be used.
    #[error("watchdog device {path}: {what}")]
    Device {
        /// The device.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// `postmaster.pid` could not be read.
    #[error("cannot read {path}: {source}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `postmaster.pid` does not start with a process id.
    #[error("{path} does not start with a process id: {line:?}")]
    BadPidFile {
        /// The pid file.
        path: PathBuf,
        /// Its first line.
        line: String,
    },
    /// Sending SIGQUIT to the postmaster failed.
    #[error("cannot send SIGQUIT to the postmaster (pid {pid}): {source}")]
    Signal {
        /// The postmaster.
        pid: i32,
        /// Why (EPERM: the fence process must run as root or as PostgreSQL's OS user).
        source: nix::Error,
    },
}

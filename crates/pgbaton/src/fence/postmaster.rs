//! Finding this data directory's live postmaster and stopping it (immediate shutdown).
//!
//! SIGQUIT to the postmaster is PostgreSQL's immediate shutdown (`pg_ctl stop -m
//! immediate`): the postmaster sends SIGQUIT to every backend, each exits at once
//! without acknowledging anything more, and the postmaster exits after them (it
//! SIGKILLs stragglers after 5 s). No commit can be acknowledged once a backend has the
//! signal, which is milliseconds after the postmaster got it. Crash recovery runs on the
//! next start, as after a power loss.

use super::error::FenceError;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

/// What `postmaster.pid` in the data directory leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No `postmaster.pid`: PostgreSQL is not running.
    NoPidFile,
    /// The file names a process that is not this data directory's postmaster (it died,
    /// or its pid was reused): nothing to fence.
    Stale {
        /// The pid in the file.
        pid: i32,
        /// Why it is not the postmaster.
        why: String,
    },
    /// A live `postgres` process whose working directory is the data directory.
    Running(i32),
}

/// Reads `<data_dir>/postmaster.pid` and checks its pid against `/proc`: the process
/// must be alive (not a zombie), be named `postgres`, and run in `data_dir` (the
/// postmaster changes into its data directory), so a reused pid is never signalled.
pub fn lookup(data_dir: &Path) -> Result<Lookup, FenceError> {
    let path = data_dir.join("postmaster.pid");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NoPidFile),
        Err(source) => return Err(FenceError::PidFile { path, source }),
    };
    let first = text.lines().next().unwrap_or("").trim();
    let pid: i32 = match first.parse() {
        Ok(p) if p > 0 => p,
        _ if text.is_empty() => return Ok(Lookup::NoPidFile), // being written or removed
        _ => {
            return Err(FenceError::BadPidFile {
                path,
                line: first.to_string(),
            })
        }
    };
    Ok(match why_not_postmaster(pid, data_dir) {
        None => Lookup::Running(pid),
        Some(why) => Lookup::Stale { pid, why },
    })
}

/// `None` when `pid` is a live `postgres` running in `data_dir`, else the reason.
fn why_not_postmaster(pid: i32, data_dir: &Path) -> Option<String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = match std::fs::read_to_string(proc_dir.join("stat")) {
        Ok(s) => s,
        Err(_) => return Some("no such process".to_string()),
    };
    // stat is "pid (comm) state ...": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?");
    if state == "Z" || state == "X" {
        return Some("the process has exited".to_string());
    }
    let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
    let comm = comm.trim();
    if comm != "postgres" {
        return Some(format!("the process is {comm:?}, not postgres"));
    }
    let cwd = match std::fs::read_link(proc_dir.join("cwd")) {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot read its working directory: {e}")),
    };
    let want = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    if cwd != want {
        return Some(format!(
            "it runs in {}, not in {}",
            cwd.display(),
            want.display()
        ));
    }
    None
}

/// Sends SIGQUIT (immediate shutdown) to the postmaster `pid`.
pub fn quit(pid: i32) -> Result<(), FenceError> {
    kill(Pid::from_raw(pid), Signal::SIGQUIT).map_err(|source| FenceError::Signal { pid, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pid_file_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lookup(dir.path()).unwrap(), Lookup::NoPidFile);
    }

    #[test]
    fn a_pid_that_is_not_postgres_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        std::fs::write(dir.path().join("postmaster.pid"), format!("{me}\n/x\n")).unwrap();
        match lookup(dir.path()).unwrap() {
            Lookup::Stale { pid, why } => {
                assert_eq!(pid as u32, me);
                assert!(why.contains("not postgres"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dead_pid_is_stale_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("postmaster.pid");
        std::fs::write(&file, "2147483000\n").unwrap();
        assert!(matches!(
            lookup(dir.path()).unwrap(),
            Lookup::Stale { why, .. } if why == "no such process"
        ));
        std::fs::write(&file, "hello\n").unwrap();
        let err = lookup(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("postmaster.pid") && err.contains("hello"),
            "{err}"
        );
    }
}

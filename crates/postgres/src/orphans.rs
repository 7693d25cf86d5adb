//! Server processes left behind by a dead postmaster.
//!
//! When the postmaster is killed, its backends live on until they notice, and while they
//! hold the old shared memory a new postmaster refuses to start. They can still be in
//! the middle of work, so they are killed before the server is started again.

use crate::instance::Instance;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Pids of `postgres` processes whose working directory is `data_dir`.
pub fn server_processes(data_dir: &Path) -> Vec<i32> {
    let Ok(want) = std::fs::canonicalize(data_dir) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() == "postgres"
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == want)
        })
        .collect()
}

impl Instance {
    /// Kill the server processes of this data directory that outlived their postmaster,
    /// and wait (up to `timeout`) until they are gone. Call only when
    /// [`Instance::status`] says no postmaster runs. Returns how many were killed.
    pub async fn kill_orphans(&self, timeout: Duration) -> usize {
        let pids = server_processes(&self.data_dir);
        for pid in &pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let t0 = Instant::now();
        while !server_processes(&self.data_dir).is_empty() && t0.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pids.len()
    }
}

impl Instance {
    /// Remove `postmaster.pid` when the postmaster it names is dead (or a zombie that its
    /// parent has not reaped yet: PostgreSQL would take that for a live postmaster and
    /// refuse to start). Returns whether a file was removed.
    pub fn clear_stale_pid_file(&self) -> crate::error::Result<bool> {
        let path = self.data_file("postmaster.pid");
        if !path.exists() || self.status()?.is_some() {
            return Ok(false);
        }
        // The socket's lock file names the same dead postmaster.
        let lock = self.socket_dir.join(format!(".s.PGSQL.{}.lock", self.port));
        if let Ok(text) = std::fs::read_to_string(&lock) {
            let owner = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok());
            if owner.is_some_and(dead_or_zombie) {
                let _ = std::fs::remove_file(&lock);
                let _ =
                    std::fs::remove_file(self.socket_dir.join(format!(".s.PGSQL.{}", self.port)));
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(crate::error::Error::io(
                "remove stale postmaster.pid",
                &path,
                e,
            )),
        }
    }
}

/// True if `pid` no longer runs (gone, or a zombie waiting to be reaped).
fn dead_or_zombie(pid: i32) -> bool {
    matches!(
        kill(Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    ) || is_zombie(pid)
}

/// True if `pid` has exited but its parent has not reaped it yet (`/proc` state Z or X).
pub(crate) fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        matches!(state, Some("Z" | "X"))
    })
}

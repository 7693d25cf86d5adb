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

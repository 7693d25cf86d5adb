//! Waits for a process to exit without polling: a pidfd (Linux 5.3+) becomes readable
//! the moment the process exits. The postmaster is not our child (`pg_ctl start`
//! daemonizes it), so `waitpid` cannot tell; a pidfd can, for any process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A pidfd, with the raw-fd access tokio's reactor needs.
pub struct PidFd(OwnedFd);

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A watch on one process's exit.
pub struct ExitWatch(AsyncFd<PidFd>);

impl ExitWatch {
    /// Watch process `pid`, or None when pidfds are not available. Needs a tokio
    /// runtime with I/O enabled. The caller must check afterwards that `pid` is still
    /// the process it means (a pid can be reused between reading it and opening the
    /// pidfd).
    pub fn open(pid: u32) -> Option<ExitWatch> {
        let pid = libc::pid_t::try_from(pid).ok()?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let raw = RawFd::try_from(raw).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = PidFd(unsafe { OwnedFd::from_raw_fd(raw) });
        // SAFETY: `PidFd` owns the descriptor it returns, until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()?;
        Some(ExitWatch(fd))
    }

    /// Resolves when the process has exited (or the watch failed: the caller then
    /// looks at the process the ordinary way).
    pub async fn exited(&self) {
        let _ = self.0.readable().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn the_watch_fires_when_the_process_exits_not_before() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let watch = ExitWatch::open(child.id()).expect("pidfd_open (Linux 5.3+)");
        let early = tokio::time::timeout(Duration::from_millis(200), watch.exited()).await;
        assert!(early.is_err(), "fired while the process runs");
        let t0 = Instant::now();
        child.kill().expect("kill");
        tokio::time::timeout(Duration::from_secs(5), watch.exited())
            .await
            .expect("no wake-up after the exit");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        let _ = child.wait();
    }
}

//! Server process control: start, stop, promote, reload through `pg_ctl`, and a fast running check.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;

/// How to stop the server (the modes of `pg_ctl stop -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for all clients to disconnect (SIGTERM).
    Smart,
    /// Disconnect clients, write a shutdown checkpoint (SIGINT). The normal choice.
    Fast,
    /// Quit at once without a checkpoint; next start runs crash recovery (SIGQUIT).
    Immediate,
}

impl StopMode {
    fn signal(self) -> Signal {
        match self {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        }
    }
}

/// What `postmaster.pid` says about a live postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmasterInfo {
    /// Postmaster process id (alive when this is returned).
    pub pid: u32,
    /// Port it listens on, if recorded.
    pub port: Option<u16>,
    /// First Unix socket directory, if any.
    pub socket_dir: Option<String>,
    /// First listen address, if any.
    pub listen_address: Option<String>,
    /// Postmaster state line: `"starting"`, `"stopping"`, `"ready"` or `"standby"` (trimmed),
    /// `None` while the file is still being written.
    pub state: Option<String>,
}

/// Parses `postmaster.pid` text. Pure; `None` when the first line is not a pid.
pub fn parse_postmaster_pid(text: &str) -> Option<PostmasterInfo> {
    let lines: Vec<&str> = text.lines().collect();
    let pid: u32 = lines.first()?.trim().parse().ok()?;
    let field = |i: usize| {
        lines
            .get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(PostmasterInfo {
        pid,
        port: field(3).and_then(|p| p.parse().ok()),
        socket_dir: field(4),
        listen_address: field(5),
        state: field(7),
    })
}

/// How often [`Instance::wait_stopped`] looks at `postmaster.pid` when it cannot watch
/// the postmaster's exit.
const STOP_POLL: Duration = Duration::from_millis(5);

fn timeout_secs(t: Duration) -> String {
    t.as_secs_f64().ceil().max(1.0).to_string()
}

impl Instance {
    /// Is a postmaster running on this data directory? Reads `postmaster.pid` and checks the
    /// process exists (and, when `/proc` tells, that it is a `postgres` process). No subprocess;
    /// cheap enough to call every loop. A stale pid file reads as `None`.
    pub fn status(&self) -> Result<Option<PostmasterInfo>> {
        let path = self.data_file("postmaster.pid");
        let Some(text) = fsutil::read_optional(&path)? else {
            return Ok(None);
        };
        let Some(info) = parse_postmaster_pid(&text) else {
            return Ok(None);
        };
        let Ok(raw) = i32::try_from(info.pid) else {
            return Ok(None);
        };
        match kill(Pid::from_raw(raw), None) {
            Ok(()) | Err(nix::errno::Errno::EPERM) => {}
            Err(_) => return Ok(None),
        }
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{}/comm", info.pid)) {
            let comm = comm.trim();
            if comm != "postgres" && comm != "postmaster" {
                return Ok(None);
            }
        }
        // A killed postmaster not yet reaped by its parent is a zombie: dead.
        if crate::orphans::is_zombie(raw) {
            return Ok(None);
        }
        Ok(Some(info))
    }

    /// Starts the server with `pg_ctl start -w` and waits until it accepts connections (or, for a
    /// standby, reaches consistency), at most `timeout`. Creates the socket dir and log file if
    /// missing. Returns `false` without doing anything when it is already running.
    ///
    /// Call [`Instance::prepare_config`] first: port, listen addresses and socket dir come from
    /// the managed config file. Errors carry the server log tail. After a timeout the server
    /// may still be starting: check [`Instance::status`].
    pub async fn start(&self, timeout: Duration) -> Result<bool> {
        if self.status()?.is_some() {
            return Ok(false);
        }
        self.ensure_socket_dir()?;
        self.ensure_log_file()?;
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-w")
            .arg("-t")
            .arg(timeout_secs(timeout))
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file);
        self.run(
            "start PostgreSQL",
            "pg_ctl",
            cmd,
            Some(timeout + Duration::from_secs(5)),
            true,
        )
        .await?;
        Ok(true)
    }

    /// Stops the server: sends the signal of `mode` to the postmaster (what `pg_ctl stop`
    /// does) and waits for it to exit, at most `timeout` (on timeout the server may still
    /// be stopping; escalate with [`StopMode::Immediate`]). Returns `false` when it was
    /// not running.
    ///
    /// The exit is watched through a pidfd, so this returns the moment the postmaster
    /// is gone; `pg_ctl stop -w` (PostgreSQL 15) looks only every 100 ms, and a
    /// switchover's write gap waited for that.
    pub async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<bool> {
        match self.signal_stop(mode)? {
            Some(_) => {
                self.wait_stopped(timeout).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sends the stop signal for `mode` straight to the postmaster and returns at once (no
    /// subprocess, no async): the fastest way to fence a primary, usable from a watchdog
    /// thread. Returns the pid signalled, or `None` when nothing was running.
    /// Use [`Instance::wait_stopped`] to wait for the exit.
    pub fn signal_stop(&self, mode: StopMode) -> Result<Option<u32>> {
        let Some(info) = self.status()? else {
            return Ok(None);
        };
        let Ok(raw) = i32::try_from(info.pid) else {
            return Ok(None);
        };
        match kill(Pid::from_raw(raw), mode.signal()) {
            Ok(()) => Ok(Some(info.pid)),
            Err(nix::errno::Errno::ESRCH) => Ok(None),
            Err(e) => Err(Error::io(
                "signal postmaster of",
                &self.data_dir,
                std::io::Error::from(e),
            )),
        }
    }

    /// Waits until no postmaster runs, at most `timeout`: woken by the postmaster's exit
    /// (a pidfd), else by looking at [`Instance::status`] every 5 ms.
    pub async fn wait_stopped(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut watch = None;
        if let Some(info) = self.status()? {
            // Kept only while postmaster.pid still names the process watched (a pid can
            // be reused between reading it and opening the pidfd).
            watch = crate::ExitWatch::open(info.pid)
                .filter(|_| matches!(self.status(), Ok(Some(again)) if again.pid == info.pid));
        }
        loop {
            if self.status()?.is_none() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    action: format!(
                        "waiting for PostgreSQL in {} to stop",
                        self.data_dir.display()
                    ),
                    timeout,
                    log_tail: self.log_tail(10),
                });
            }
            let left = deadline - now;
            match watch.take() {
                // After the exit, postmaster.pid is gone; if it names another
                // postmaster by then, the 5 ms look decides.
                Some(w) => {
                    if tokio::time::timeout(left, w.exited()).await.is_err() {
                        watch = Some(w);
                    }
                }
                None => tokio::time::sleep(left.min(STOP_POLL)).await,
            }
        }
    }

    /// Promotes a standby with `pg_ctl promote`. With `wait`, returns once it accepts writes
    /// (at most `timeout`); otherwise right after signalling.
    pub async fn promote(&self, wait: bool, timeout: Duration) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("promote")
            .arg(if wait { "-w" } else { "-W" })
            .arg("-t")
            .arg(timeout_secs(timeout))
            .arg("-D")
            .arg(&self.data_dir);
        self.run(
            "promote PostgreSQL",
            "pg_ctl",
            cmd,
            Some(timeout + Duration::from_secs(5)),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Makes the running server re-read its config files (`pg_ctl reload`, i.e. SIGHUP).
    /// `primary_conninfo` and `primary_slot_name` take effect on reload (PostgreSQL 13+).
    pub async fn reload(&self) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("reload").arg("-D").arg(&self.data_dir);
        self.run(
            "reload PostgreSQL",
            "pg_ctl",
            cmd,
            Some(Duration::from_secs(30)),
            false,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pid_file() {
        let text = "4242\n/var/lib/pg/data\n1764098000\n5433\n/run/pg\n127.0.0.1\n  5433001     32768\nready   \n";
        let info = parse_postmaster_pid(text).unwrap();
        assert_eq!(info.pid, 4242);
        assert_eq!(info.port, Some(5433));
        assert_eq!(info.socket_dir.as_deref(), Some("/run/pg"));
        assert_eq!(info.listen_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(info.state.as_deref(), Some("ready"));
    }

    #[test]
    fn partial_or_bad_pid_file() {
        assert_eq!(parse_postmaster_pid("").map(|i| i.pid), None);
        assert_eq!(parse_postmaster_pid("abc\n").map(|i| i.pid), None);
        let info = parse_postmaster_pid("17\n/d\n").unwrap();
        assert_eq!(info.pid, 17);
        assert_eq!(info.state, None);
    }

    #[test]
    fn timeouts_round_up() {
        assert_eq!(timeout_secs(Duration::from_millis(1500)), "2");
        assert_eq!(timeout_secs(Duration::from_millis(1)), "1");
        assert_eq!(timeout_secs(Duration::ZERO), "1");
    }
}

//! Fencing: a primary's PostgreSQL stops accepting writes at its lease deadline, enforced
//! by a separate process that a hung, frozen (SIGSTOP) or killed agent cannot hold up.
//!
//! The agent starts the fence process once ([`Fence::spawn`]) and feeds it through a
//! [`FenceFeed`]: the lease keeper reports each successful renewal, the main loop each
//! store read that shows this member leading, and the fence is armed at
//! `min(renewal sent, leader confirmed) + ttl - safety_margin` on `CLOCK_BOOTTIME`
//! ([`clock`]); it is disarmed once PostgreSQL is no longer a writable primary. See
//! `docs/fencing.md` for the safety argument and [`protocol`] for the pipe protocol.

pub mod child;
pub mod clock;
pub mod decide;
pub mod device;
pub mod error;
pub mod feed;
pub mod postmaster;
pub mod protocol;
pub mod wait;

pub use child::{run as run_watchdog, WatchdogArgs};
pub use clock::now;
pub use error::FenceError;
pub use feed::{FenceFeed, FenceProcess, FenceSpawner, OsFenceSpawner};

use pgbaton_config::WatchdogMode;
use protocol::{Command, Event};
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Fence::spawn`] waits for the fence process to report `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How the agent starts its fence process.
#[derive(Debug, Clone)]
pub struct FenceOptions {
    /// The `pgbaton` binary (the agent passes `std::env::current_exe()`).
    pub program: PathBuf,
    /// PGDATA; the fence process reads `postmaster.pid` from here.
    pub data_dir: PathBuf,
    /// The member name, for the log.
    pub member: String,
    /// File the fence process appends its log to; `None`: the agent's standard error.
    pub log: Option<PathBuf>,
    /// `log.format`, passed on in [`LOG_FORMAT_ENV`].
    pub log_format: pgbaton_config::LogFormat,
    /// `watchdog.mode`.
    pub watchdog_mode: WatchdogMode,
    /// `watchdog.device`.
    pub watchdog_device: PathBuf,
    /// The device timeout to ask for (see [`decide::device_timeout`]).
    pub watchdog_timeout: Duration,
    /// `watchdog.safety_margin`: how long before the lease's earliest expiry to fence.
    pub safety_margin: Duration,
}

/// The environment variable that carries `log.format` to the fence process.
pub const LOG_FORMAT_ENV: &str = "PGBATON_LOG_FORMAT";

impl FenceOptions {
    /// Options from a validated member config, for leases of `ttl`.
    pub fn from_config(
        cfg: &pgbaton_config::NodeConfig,
        ttl: Duration,
    ) -> Result<FenceOptions, FenceError> {
        let program = std::env::current_exe().map_err(|source| FenceError::Spawn {
            program: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        let margin = Duration::from_secs(cfg.watchdog.safety_margin);
        Ok(FenceOptions {
            program,
            data_dir: cfg.data_dir.clone(),
            member: cfg.name.clone(),
            log: cfg.log.file.clone(),
            log_format: cfg.log.format,
            watchdog_mode: cfg.watchdog.mode,
            watchdog_device: cfg.watchdog.device.clone(),
            watchdog_timeout: decide::device_timeout(ttl, margin),
            safety_margin: margin,
        })
    }
}

/// What the event reader shares with [`Fence`].
#[derive(Debug, Default)]
struct Shared {
    fenced: AtomicU64,
    exited: AtomicBool,
    closing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// The agent's handle on its fence process. Cheap to use from any thread (`&self`).
///
/// Dropping it closes the command pipe: a disarmed fence process exits at once; an armed
/// one keeps enforcing its deadline and exits after it (see [`protocol`]).
#[derive(Debug)]
pub struct Fence {
    pipe: Option<OwnedFd>,
    child: Option<Child>,
    pid: u32,
    margin: Duration,
    armed: AtomicBool,
    shared: Arc<Shared>,
}

impl Fence {
    /// Starts the fence process and waits (at most [`READY_TIMEOUT`]) until it reports
    /// ready. Fails when it cannot start, or refuses to (e.g. `watchdog.mode: required`
    /// without a usable device); the agent must then not run.
    pub fn spawn(opts: FenceOptions) -> Result<Fence, FenceError> {
        // Close-on-exec: PostgreSQL tools the agent runs must not hold the pipe open, or
        // the fence process would not see the agent go.
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(FenceError::Pipe)?;
        set_nonblocking(&write_end).map_err(FenceError::Pipe)?;
        let stderr = match &opts.log {
            None => Stdio::inherit(),
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|source| FenceError::Log {
                    path: path.clone(),
                    source,
                })?,
        };
        let mut child = std::process::Command::new(&opts.program)
            .arg("fence-watchdog")
            .arg("--data-dir")
            .arg(&opts.data_dir)
            .arg("--member")
            .arg(&opts.member)
            .arg("--watchdog-mode")
            .arg(opts.watchdog_mode.as_str())
            .arg("--watchdog-device")
            .arg(&opts.watchdog_device)
            .arg("--watchdog-timeout")
            .arg(opts.watchdog_timeout.as_secs().max(1).to_string())
            .env(LOG_FORMAT_ENV, opts.log_format.as_str())
            .stdin(Stdio::from(read_end))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| FenceError::Spawn {
                program: opts.program.clone(),
                source,
            })?;
        let pid = child.id();
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        match child.stdout.take() {
            Some(stdout) => spawn_event_reader(stdout, pid, shared.clone(), ready_tx),
            None => {
                let _ = ready_tx.send(Err(FenceError::Exited("no output pipe".into())));
            }
        }
        let ready = ready_rx
            .recv_timeout(READY_TIMEOUT)
            .unwrap_or(Err(FenceError::NotReady(READY_TIMEOUT)));
        if let Err(e) = ready {
            // Not ready: this process started it and nothing is armed, so stop it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        tracing::info!(pid, data_dir = %opts.data_dir.display(), "fence process started");
        Ok(Fence {
            pipe: Some(write_end),
            child: Some(child),
            pid,
            margin: opts.safety_margin,
            armed: AtomicBool::new(false),
            shared,
        })
    }

    /// After a successful lease renewal while this member leads: fence PostgreSQL at
    /// `sent_at + ttl - safety_margin` unless armed again before. `sent_at` is
    /// [`now`] taken just BEFORE the renewal request was sent; `ttl` is the lease time
    /// the store granted. Returns the deadline. Never blocks.
    ///
    /// On error the fence process keeps the previous (earlier) deadline, which is safe;
    /// [`FenceError::Gone`] means nothing fences any more: spawn a new one and re-arm.
    #[allow(dead_code)] // The agent arms through `FenceFeed`; tests/fence.rs arms directly.
    pub fn arm(&self, sent_at: Duration, ttl: Duration) -> Result<Duration, FenceError> {
        let deadline = clock::deadline(sent_at, ttl, self.margin);
        self.arm_until(deadline, clock::earliest_expiry(sent_at, ttl))?;
        Ok(deadline)
    }

    /// Arms with an explicit `deadline` and the lease's earliest `expiry` (both on the
    /// [`now`] clock). Prefer [`Fence::arm`]. Never blocks.
    pub fn arm_until(&self, deadline: Duration, expiry: Duration) -> Result<(), FenceError> {
        self.send(Command::Arm { deadline, expiry })?;
        self.armed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops enforcing. Call only once this member's PostgreSQL no longer accepts writes
    /// as primary (demoted, stopped) or never did while armed. Never blocks.
    pub fn disarm(&self) -> Result<(), FenceError> {
        self.send(Command::Disarm)?;
        self.armed.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// How many times the fence process has fenced PostgreSQL (the `fencing_actions`
    /// metric).
    pub fn fenced_count(&self) -> u64 {
        self.shared.fenced.load(Ordering::SeqCst)
    }

    /// Whether the fence process is still running. When it is not, PostgreSQL is not
    /// fenced: start a new one (and, while leading, arm it at once).
    pub fn is_alive(&self) -> bool {
        !self.shared.exited.load(Ordering::SeqCst)
    }

    /// The last error the fence process reported (a failed fence, the watchdog device).
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Whether the last command sent was an arm.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// The fence process's pid.
    #[allow(dead_code)] // Used by tests/fence.rs.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn send(&self, cmd: Command) -> Result<(), FenceError> {
        let Some(fd) = self.pipe.as_ref() else {
            return Err(FenceError::Gone(self.pid));
        };
        let line = cmd.encode();
        // One write of a short line to a pipe is atomic: all of it or EAGAIN.
        match nix::unistd::write(fd, line.as_bytes()) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(_) => Err(FenceError::Write(nix::Error::EIO)),
            Err(nix::Error::EAGAIN) => Err(FenceError::Busy),
            Err(nix::Error::EPIPE) => Err(FenceError::Gone(self.pid)),
            Err(e) => Err(FenceError::Write(e)),
        }
    }
}

impl Drop for Fence {
    /// Closes the command pipe. A disarmed fence process exits within milliseconds and
    /// is reaped here (waiting at most 500 ms); an armed one is left to enforce its
    /// deadline and reaped by a background thread.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        drop(self.pipe.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !self.is_armed() {
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        } else {
            tracing::warn!(
                pid = self.pid,
                "leaving the fence process armed: it fences PostgreSQL at the deadline unless a new agent takes over"
            );
        }
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

/// Reads the fence process's events: the first answers `spawn`, the rest are counted
/// and logged.
fn spawn_event_reader(
    stdout: std::process::ChildStdout,
    pid: u32,
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<(), FenceError>>,
) {
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        let mut last_error: Option<String> = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match Event::parse(&line) {
                Ok(Event::Ready) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Ok(Event::Fenced { pid: pm, late_ms }) => {
                    shared.fenced.fetch_add(1, Ordering::SeqCst);
                    tracing::error!(
                        "the fence process stopped PostgreSQL (postmaster pid {pm}) {late_ms} ms after the lease deadline"
                    );
                }
                Ok(Event::Error(text)) => {
                    if ready.is_none() {
                        tracing::error!("fence process: {text}");
                    }
                    if let Ok(mut e) = shared.last_error.lock() {
                        *e = Some(text.clone());
                    }
                    last_error = Some(text);
                }
                Err(e) => tracing::warn!("fence process: {e}"),
            }
        }
        shared.exited.store(true, Ordering::SeqCst);
        match ready.take() {
            Some(tx) => {
                let err = match last_error {
                    Some(text) => FenceError::Refused(text),
                    None => FenceError::Exited(format!("pid {pid} closed its output")),
                };
                let _ = tx.send(Err(err));
            }
            None if !shared.closing.load(Ordering::SeqCst) => tracing::error!(
                pid,
                "the fence process exited: PostgreSQL is not fenced until a new one runs"
            ),
            None => {}
        }
    });
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}

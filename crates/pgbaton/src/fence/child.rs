//! The fence process (`pgbaton fence-watchdog`): enforces the armed deadline on its own,
//! so a hung, frozen or killed agent cannot keep PostgreSQL writable past it.
//!
//! It reads commands from standard input ([`super::protocol`]), sleeps until the
//! armed deadline, the device's next pet or the agent's next command (with nothing armed,
//! only the command wakes it; see [`super::wait`]), and at the deadline sends SIGQUIT to the data directory's
//! postmaster. It is started in its own session and ignores SIGINT, SIGTERM and SIGHUP,
//! so Ctrl-C, a terminal hang-up or a stop signal for the agent's process group does not
//! take it down while it still has a deadline to enforce.

use super::clock;
use super::decide::{self, Armed};
use super::device::{self, Device};
use super::postmaster::{self, Lookup};
use super::protocol::{Command, Event};
use super::wait::{Input, Waiter};
use pgbaton_config::WatchdogMode;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How often a postmaster that survived SIGQUIT gets it again.
const RESIGNAL: Duration = Duration::from_secs(1);

/// Arguments of the hidden `pgbaton fence-watchdog` subcommand (started by the agent).
#[derive(Debug, Clone, clap::Args)]
pub struct WatchdogArgs {
    /// PGDATA; `postmaster.pid` is read from here.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The member name, for the log.
    #[arg(long)]
    pub member: String,
    /// off, automatic or required.
    #[arg(long, default_value = "off", value_parser = parse_mode)]
    pub watchdog_mode: WatchdogMode,
    /// The watchdog device.
    #[arg(long, default_value = "/dev/watchdog")]
    pub watchdog_device: PathBuf,
    /// The device timeout to ask for, in seconds.
    #[arg(long, default_value_t = 5)]
    pub watchdog_timeout: u64,
}

fn parse_mode(s: &str) -> Result<WatchdogMode, String> {
    s.parse()
}

/// Runs the fence process until the agent is gone and nothing is left to enforce.
pub fn run(args: WatchdogArgs) -> anyhow::Result<()> {
    init_log();
    let span = tracing::info_span!("fence", member = %args.member);
    let _entered = span.enter();
    detach();
    let mut out = Reporter::new();
    let use_device = match (args.watchdog_mode, device::check(&args.watchdog_device)) {
        (WatchdogMode::Off, _) => false,
        (_, Ok(())) => true,
        (WatchdogMode::Automatic, Err(e)) => {
            tracing::info!("watchdog.mode is automatic and the device cannot be used ({e}); fencing without it");
            false
        }
        (WatchdogMode::Required, Err(e)) => {
            let msg = format!("watchdog.mode is required but {e}; load a watchdog driver (e.g. modprobe softdog) or set watchdog.mode to automatic or off");
            out.send(&Event::Error(msg.clone()));
            anyhow::bail!(msg);
        }
    };
    let waiter = Waiter::new();
    out.send(&Event::Ready);
    tracing::info!(
        data_dir = %args.data_dir.display(),
        device = use_device,
        "fence process ready"
    );
    let mut w = Watch {
        args,
        use_device,
        out,
        armed: None,
        agent_gone: false,
        device: None,
        device_failed: false,
        signalled: None,
        last_note: None,
        fence_failed: false,
    };
    w.run(waiter);
    Ok(())
}

/// The fence process's state.
struct Watch {
    args: WatchdogArgs,
    use_device: bool,
    out: Reporter,
    armed: Option<Armed>,
    agent_gone: bool,
    device: Option<Device>,
    /// A device problem was reported for the current armed period.
    device_failed: bool,
    /// The postmaster last sent SIGQUIT, and when.
    signalled: Option<(i32, Duration)>,
    /// The last "nothing to fence" note, logged once.
    last_note: Option<String>,
    /// The last fencing attempt could not stop or find PostgreSQL.
    fence_failed: bool,
}

impl Watch {
    fn run(&mut self, mut waiter: Waiter) {
        loop {
            let now = clock::now();
            let fence_at = decide::fence_at(self.armed, self.device.as_ref().map(|d| d.fires_at()));
            let mut running = true;
            if decide::should_fence(now, fence_at) {
                running = self.enforce(now, fence_at.unwrap_or(now));
            }
            self.tend_device(now, decide::should_fence(now, fence_at));
            if decide::should_exit(self.agent_gone, now, fence_at, running) {
                if let Some(d) = self.device.take() {
                    d.stop();
                }
                tracing::info!("the agent is gone and nothing is left to enforce: exiting");
                return;
            }
            let next_pet = self.device.as_ref().map(|d| d.last_pet + decide::PET_EVERY);
            // Nothing armed: nothing to do before the agent's next command.
            let wait = decide::next_wake(now, fence_at, next_pet);
            for input in waiter.wait(wait) {
                self.apply(input);
            }
        }
    }

    fn apply(&mut self, input: Input) {
        match input {
            Input::Cmd(Command::Arm { deadline, expiry }) => {
                if self.armed.is_none() {
                    tracing::debug!("armed");
                    self.device_failed = false;
                }
                self.armed = Some(Armed { deadline, expiry });
            }
            Input::Cmd(Command::Disarm) => {
                if self.armed.take().is_some() {
                    tracing::info!("disarmed");
                }
                self.signalled = None;
                self.last_note = None;
                if let Some(d) = self.device.take() {
                    d.stop();
                }
            }
            Input::Bad(line) => {
                tracing::warn!("ignoring a line that is not a fence command: {line:?}")
            }
            Input::Gone(why) => {
                self.agent_gone = true;
                match self.armed {
                    Some(a) => tracing::warn!(
                        "the agent is gone ({why}); still enforcing the deadline, {} ms from now",
                        a.deadline.saturating_sub(clock::now()).as_millis()
                    ),
                    None => tracing::info!("the agent is gone ({why})"),
                }
            }
        }
    }

    /// Fences the postmaster if one runs; returns whether one still runs.
    fn enforce(&mut self, now: Duration, fence_at: Duration) -> bool {
        let data_dir = self.args.data_dir.clone();
        self.fence_failed = false;
        let pid = match postmaster::lookup(&data_dir) {
            Ok(Lookup::Running(pid)) => pid,
            Ok(Lookup::NoPidFile) => {
                self.note(format!(
                    "lease deadline passed; PostgreSQL is not running in {}",
                    data_dir.display()
                ));
                return false;
            }
            Ok(Lookup::Stale { pid, why }) => {
                self.note(format!(
                    "lease deadline passed; postmaster.pid names pid {pid} but {why}: nothing to fence"
                ));
                return false;
            }
            Err(e) => {
                self.fence_failed = true;
                self.note(format!("lease deadline passed but {e}"));
                return true;
            }
        };
        let first = self.signalled.is_none_or(|(p, _)| p != pid);
        let due = match self.signalled {
            Some((p, at)) if p == pid => now.saturating_sub(at) >= RESIGNAL,
            _ => true,
        };
        if !due {
            return true;
        }
        let late_ms = u64::try_from(now.saturating_sub(fence_at).as_millis()).unwrap_or(u64::MAX);
        match postmaster::quit(pid) {
            Ok(()) => {
                self.signalled = Some((pid, now));
                if first {
                    tracing::error!(
                        "fenced PostgreSQL (pid {pid}): lease deadline passed {late_ms}ms ago"
                    );
                    self.out.send(&Event::Fenced { pid, late_ms });
                }
            }
            Err(e) => {
                let msg = format!("cannot fence PostgreSQL: {e}");
                if self.last_note.as_deref() != Some(msg.as_str()) {
                    self.out.send(&Event::Error(msg.clone()));
                }
                self.note(msg);
                // Retry on the next poll.
                self.fence_failed = true;
                self.signalled = None;
            }
        }
        true
    }

    fn note(&mut self, msg: String) {
        if self.last_note.as_deref() != Some(msg.as_str()) {
            tracing::warn!("{msg}");
            self.last_note = Some(msg);
        }
    }

    /// Opens, pets or stops the watchdog device as the armed deadline allows.
    fn tend_device(&mut self, now: Duration, fencing: bool) {
        if !self.use_device {
            return;
        }
        if fencing {
            // PostgreSQL is being fenced (or is not running): no reason to reset the
            // host, unless the signal failed, in which case the device stays unpetted.
            if !self.fence_failed {
                if let Some(d) = self.device.take() {
                    d.stop();
                }
            }
            return;
        }
        let timeout = Duration::from_secs(self.args.watchdog_timeout.max(1));
        match self.device.as_mut() {
            None if self.armed.is_some()
                && !self.device_failed
                && decide::may_pet(now, self.armed, timeout) =>
            {
                match Device::open(&self.args.watchdog_device, timeout, now) {
                    Ok(d) => {
                        tracing::info!(
                            "watchdog device {} running, timeout {:?}",
                            self.args.watchdog_device.display(),
                            d.timeout
                        );
                        self.device = Some(d);
                    }
                    Err(e) => self.device_problem(e.to_string()),
                }
            }
            Some(d)
                if now.saturating_sub(d.last_pet) >= decide::PET_EVERY
                    && decide::may_pet(now, self.armed, d.timeout) =>
            {
                if let Err(e) = d.pet(now) {
                    self.device_problem(e.to_string());
                }
            }
            _ => {}
        }
    }

    fn device_problem(&mut self, msg: String) {
        self.device_failed = true;
        let level_required = self.args.watchdog_mode == WatchdogMode::Required;
        if level_required {
            tracing::error!("{msg}; this member must not stay primary without it");
            self.out.send(&Event::Error(msg));
        } else {
            tracing::warn!("{msg}; fencing without the watchdog device");
        }
    }
}

/// Own session (so signals for the agent's process group or terminal miss it), and
/// terminal and termination signals ignored: it leaves on its own when the agent is
/// gone and nothing is armed.
fn detach() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    let _ = nix::unistd::setsid();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN runs no code in signal context.
        if let Err(e) = unsafe { signal(sig, SigHandler::SigIgn) } {
            tracing::warn!("cannot ignore {sig}: {e}");
        }
    }
}

/// Writes events to standard output without ever blocking the fence loop.
struct Reporter {
    stdout: std::io::Stdout,
}

impl Reporter {
    fn new() -> Reporter {
        let stdout = std::io::stdout();
        set_nonblocking_if_pipe(&stdout);
        Reporter { stdout }
    }

    fn send(&mut self, ev: &Event) {
        let mut lock = self.stdout.lock();
        if let Err(e) = lock
            .write_all(ev.encode().as_bytes())
            .and_then(|()| lock.flush())
        {
            tracing::debug!("cannot report {ev:?} to the agent: {e}");
        }
    }
}

/// A full pipe to a frozen agent must not block the fence; a terminal is left alone
/// (its file status flags are shared with the shell).
fn set_nonblocking_if_pipe(fd: &impl std::os::fd::AsFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::stat::{fstat, SFlag};
    let is_pipe =
        fstat(fd).is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFIFO.bits());
    if !is_pipe {
        return;
    }
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// Log to stderr (the agent points it at `log.file`) in the agent's `log.format`.
fn init_log() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    let _ = match std::env::var(super::LOG_FORMAT_ENV).as_deref() {
        Ok("json") => builder.json().with_current_span(false).try_init(),
        _ => builder.try_init(),
    };
}

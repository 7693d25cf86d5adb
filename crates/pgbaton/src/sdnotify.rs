//! systemd's notify protocol for `Type=notify` units: READY=1, WATCHDOG=1, STOPPING=1 and
//! STATUS= lines sent as datagrams to `$NOTIFY_SOCKET`.
//!
//! The socket and the watchdog interval are read once at start and removed from the
//! environment, so that neither PostgreSQL (which speaks the same protocol when built
//! with systemd support) nor the fence process inherits them and talks to systemd in
//! the agent's name. Without `$NOTIFY_SOCKET` every call here does nothing.

use sd_notify::NotifyState;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where notifications go, read from the environment at start.
#[derive(Debug)]
struct Target {
    socket: OsString,
    /// `$WATCHDOG_USEC` when it was meant for this process.
    watchdog: Option<Duration>,
}

static TARGET: OnceLock<Option<Target>> = OnceLock::new();
static LAST_PING: Mutex<Option<Instant>> = Mutex::new(None);

/// Read `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`, and remove them from the
/// environment. Call once, before any thread starts.
pub fn take_from_env() {
    let watchdog = sd_notify::watchdog_enabled();
    let socket = std::env::var_os("NOTIFY_SOCKET");
    // SAFETY: called from main() before the runtime or any other thread exists.
    unsafe {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
    }
    let _ = TARGET.set(socket.map(|socket| Target { socket, watchdog }));
}

fn target() -> Option<&'static Target> {
    TARGET.get().and_then(|t| t.as_ref())
}

/// The watchdog interval systemd expects pings within, if it watches this process.
pub fn watchdog_interval() -> Option<Duration> {
    target().and_then(|t| t.watchdog)
}

/// Send `states` as one datagram. Failures are logged at debug level only: systemd may
/// be gone during shutdown, and the agent must not stop for it.
fn send(states: &[NotifyState]) {
    let Some(t) = target() else { return };
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    if let Err(e) = send_to(&t.socket, msg.as_bytes()) {
        tracing::debug!(
            "cannot notify systemd at {}: {e}",
            t.socket.to_string_lossy()
        );
    }
}

fn send_to(socket: &OsString, msg: &[u8]) -> std::io::Result<()> {
    let bytes = socket.as_bytes();
    // A leading '@' names a socket in the abstract namespace.
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    UnixDatagram::unbound()?.send_to_addr(msg, &addr)?;
    Ok(())
}

/// The agent runs its HA loop.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
    *lock() = Some(Instant::now());
}

/// A one-line status for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The agent is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn lock() -> std::sync::MutexGuard<'static, Option<Instant>> {
    LAST_PING.lock().unwrap_or_else(|p| p.into_inner())
}

/// The caller's loop is alive: send WATCHDOG=1 if half the watchdog interval has passed
/// since the last ping. Cheap enough to call on every loop turn.
pub fn alive() {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    let mut last = lock();
    if last.is_some_and(|t| t.elapsed() < interval / 2) {
        return;
    }
    *last = Some(Instant::now());
    drop(last);
    send(&[NotifyState::Watchdog]);
}

/// Keeps the watchdog fed from a task of its own while a long step runs (a clone or a
/// crash recovery may take hours); stops when dropped.
pub struct KeepAlive(Option<tokio::task::JoinHandle<()>>);

impl KeepAlive {
    /// Start feeding the watchdog (nothing happens without one).
    pub fn start() -> KeepAlive {
        let Some(interval) = watchdog_interval() else {
            return KeepAlive(None);
        };
        KeepAlive(Some(tokio::spawn(async move {
            loop {
                alive();
                tokio::time::sleep(interval / 4).await;
            }
        })))
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

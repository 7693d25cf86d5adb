//! Graceful shutdown: SIGTERM or Ctrl-C sets one flag that the loop checks between steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A shutdown request, shared between the signal task and the agent loop.
#[derive(Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// A shutdown that only [`Shutdown::request`] triggers (no signal handler).
    pub fn manual() -> Shutdown {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Ask the agent to stop, as SIGTERM does.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Start listening for SIGTERM and SIGINT.
    pub fn listen() -> anyhow::Result<Shutdown> {
        let s = Shutdown::manual();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let me = s.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            me.request();
        });
        Ok(s)
    }

    /// True once a shutdown was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolve when a shutdown is requested. Sleeps without a timer: a `Notified` gets
    /// `notify_waiters` from the moment it is created, so a request between the flag
    /// check and the await still wakes it.
    pub async fn wait(&self) {
        while !self.requested() {
            let notified = self.notify.notified();
            if self.requested() {
                return;
            }
            notified.await;
        }
    }

    /// Sleep until `deadline` or a shutdown request, whichever comes first.
    pub async fn sleep_until(&self, deadline: Instant) {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => {},
            _ = self.wait() => {},
        }
    }
}

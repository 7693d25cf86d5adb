//! Change notification for `wait_for_change`: an inotify watch on the cluster directory
//! that wakes a waiter when `state.json` is replaced, so idle waiting costs nothing.
//!
//! The state file itself stays the only source of truth: a wake-up (or a lost or
//! overflowed event queue, which also wakes) only makes the waiter read it again.
//! When inotify is not available (instance limit reached, unusual file system), the
//! waiter falls back to polling.

use super::file::STATE_FILE;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The inotify instance, with the raw-fd access tokio's reactor needs.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A watch on one cluster directory; dropped with the waiter.
pub(crate) struct Watch {
    fd: AsyncFd<Fd>,
}

impl Watch {
    /// Watch `cluster_dir` for the state file being replaced or deleted (every write
    /// replaces it by a rename). Opening and closing the lock file or a temp file, which
    /// every store call does, raises no event, so other members' reads wake nobody.
    /// Must be called before the state is read, so no change is missed.
    /// Must run inside a tokio runtime with I/O enabled (tokio panics otherwise).
    pub(crate) fn new(cluster_dir: &Path) -> std::io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            cluster_dir,
            AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF,
        )?;
        // SAFETY: `Fd` owns the inotify instance's descriptor, which stays open, and is
        // the one `as_raw_fd` returns, until the `AsyncFd` (and with it `Fd`) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), Interest::READABLE) }?;
        Ok(Watch { fd })
    }

    /// Throw away the events queued so far (a kept watch, about to be used again,
    /// holds those of changes its next reader will see anyway). Returns false when the
    /// watch no longer works.
    pub(crate) fn drain(&self) -> bool {
        loop {
            match self.fd.get_ref().0.read_events() {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Wait up to `timeout` for a change of the state file (or anything that might be
    /// one, such as a queue overflow). Returns whether something happened, or `Err`
    /// when the watch no longer works (its runtime is gone): the caller then drops it.
    /// Events on other files of the directory (temp files) are consumed silently.
    pub(crate) async fn changed(&mut self, timeout: Duration) -> Result<bool, ()> {
        let fut = async {
            loop {
                let mut guard = match self.fd.readable().await {
                    Ok(g) => g,
                    Err(_) => return Err(()),
                };
                match guard.get_inner().0.read_events() {
                    Ok(events) => {
                        let relevant = events.iter().any(|e| {
                            e.name.as_deref().is_none_or(|n| n == STATE_FILE)
                                || e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                        });
                        if relevant {
                            return Ok(());
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                    Err(_) => return Err(()),
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(())) => Err(()),
            Err(_) => Ok(false),
        }
    }
}

/// The watch a store handle keeps between waits (creating one costs five system calls
/// and a kernel object per wait otherwise). One waiter at a time uses it; a second
/// concurrent waiter makes a watch of its own.
#[derive(Default)]
pub(crate) struct Kept(std::sync::Mutex<Option<Watch>>);

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

impl Kept {
    /// The kept watch (drained), or a new one on `cluster_dir`; None without inotify.
    pub(crate) fn take(self: &std::sync::Arc<Self>, cluster_dir: &Path) -> Option<Borrowed> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let watch = match kept.filter(Watch::drain) {
            Some(w) => w,
            None => Watch::new(cluster_dir).ok()?,
        };
        Some(Borrowed {
            watch: Some(watch),
            home: self.clone(),
        })
    }
}

/// A watch taken from [`Kept`]; goes back when dropped (also when the wait holding it
/// is cancelled), unless it broke.
pub(crate) struct Borrowed {
    watch: Option<Watch>,
    home: std::sync::Arc<Kept>,
}

impl Borrowed {
    /// See [`Watch::changed`]; a broken watch is dropped here, and `Err` tells the
    /// caller to fall back to polling.
    pub(crate) async fn changed(&mut self, timeout: Duration) -> Result<bool, ()> {
        let Some(w) = self.watch.as_mut() else {
            return Err(());
        };
        let out = w.changed(timeout).await;
        if out.is_err() {
            self.watch = None;
        }
        out
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(w) = self.watch.take() {
            let mut slot = self.home.0.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(w);
            }
        }
    }
}

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
    /// Watch `cluster_dir` for the state file being replaced, created, written or
    /// deleted. Must be called before the state is read, so no change is missed.
    /// Must run inside a tokio runtime with I/O enabled (tokio panics otherwise).
    pub(crate) fn new(cluster_dir: &Path) -> std::io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            cluster_dir,
            AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF,
        )?;
        // SAFETY: `Fd` owns the inotify instance's descriptor, which stays open, and is
        // the one `as_raw_fd` returns, until the `AsyncFd` (and with it `Fd`) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), Interest::READABLE) }?;
        Ok(Watch { fd })
    }

    /// Wait up to `timeout` for a change of the state file (or anything that might be
    /// one, such as a queue overflow). Returns whether something happened; events on
    /// other files of the directory (the lock file, temp files) are consumed silently.
    pub(crate) async fn changed(&mut self, timeout: Duration) -> bool {
        let fut = async {
            loop {
                let mut guard = match self.fd.readable().await {
                    Ok(g) => g,
                    Err(_) => return,
                };
                match guard.get_inner().0.read_events() {
                    Ok(events) => {
                        let relevant = events.iter().any(|e| {
                            e.name.as_deref().is_none_or(|n| n == STATE_FILE)
                                || e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                        });
                        if relevant {
                            return;
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                    Err(_) => return,
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.is_ok()
    }
}

//! The exclusive cross-process lock of one cluster directory (an `flock` on `lock`).
//!
//! Every read-modify-write of the state file happens under this lock. The lock is taken
//! with a non-blocking try loop up to a deadline, so a process that holds it too long
//! (hung, stopped, or a test's [`FreezeGuard`]) makes other callers fail with
//! `StoreError::Unreachable` instead of hanging. The kernel drops the lock when its
//! holder dies, even by `kill -9`.

use crate::{Result, StoreError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Name of the lock file inside a cluster directory.
pub(crate) const LOCK_FILE: &str = "lock";

/// A held lock; released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _flock: Flock<File>,
}

/// Open (creating) the lock file of `cluster_dir`.
fn open_lock_file(cluster_dir: &Path) -> Result<File> {
    let path = cluster_dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .map_err(|e| StoreError::Other(format!("cannot open lock file {}: {e}", path.display())))
}

/// Take the lock of `cluster_dir` if nobody holds it, without waiting: `None` when it
/// is busy. Cheap enough to call from async code.
pub(crate) fn try_lock(cluster_dir: &Path) -> Result<Option<DirLock>> {
    let file = open_lock_file(cluster_dir)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(Some(DirLock { _flock: flock })),
        Err((_, Errno::EWOULDBLOCK)) | Err((_, Errno::EINTR)) => Ok(None),
        Err((_, errno)) => Err(StoreError::Other(format!(
            "flock({}) failed: {errno}",
            cluster_dir.join(LOCK_FILE).display()
        ))),
    }
}

/// Take the lock of `cluster_dir`, retrying until `deadline`.
pub(crate) fn lock_until(cluster_dir: &Path, deadline: Instant) -> Result<DirLock> {
    let path = cluster_dir.join(LOCK_FILE);
    let mut file = open_lock_file(cluster_dir)?;
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => return Ok(DirLock { _flock: flock }),
            Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(StoreError::Other(format!(
                    "flock({}) failed: {errno}",
                    path.display()
                )))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StoreError::Unreachable(format!(
                "local store {} is locked by another process; gave up after {:?}",
                cluster_dir.display(),
                now - started
            )));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Holds a cluster directory's lock so every other store call on it fails with
/// `StoreError::Unreachable` after its call timeout. For tests that simulate an
/// unreachable store; drop it to "repair" the store.
#[derive(Debug)]
pub struct FreezeGuard {
    _lock: DirLock,
}

impl FreezeGuard {
    pub(crate) fn new(lock: DirLock) -> Self {
        FreezeGuard { _lock: lock }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_times_out_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_until(dir.path(), Instant::now()).unwrap();
        let t = Instant::now();
        let err = lock_until(dir.path(), Instant::now() + Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::Unreachable(_)), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_millis(500));
        drop(first);
        lock_until(dir.path(), Instant::now()).unwrap();
    }
}

//! The embedded local backend: one cluster namespace in a directory shared by the agent
//! processes of one host, with the same compare-and-set and lease guarantees as etcd.
//!
//! Layout of `<dir>/<cluster>/`: `state.json` (the whole namespace, replaced atomically),
//! `lock` (the `flock` every read-modify-write holds) and, transiently,
//! `state.json.tmp.*` temp files. See `docs/store-layout.md`.

mod clock;
mod file;
mod lock;
mod notify;
mod state;

pub use lock::FreezeGuard;

use crate::{Entry, Expect, LeaseId, Result, Revision, Snapshot, Store, StoreError};
use state::{Changed, State};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often `wait_for_change` re-reads the state file when it cannot be notified of
/// changes (no inotify), or while a due lease sweep cannot take the lock.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Extra time a call may take after winning the lock, for its file I/O.
const IO_GRACE: Duration = Duration::from_secs(1);

/// A handle on one cluster namespace of the local store. Cheap to clone; any number of
/// handles in any number of processes on the host may use the same directory at once.
#[derive(Debug, Clone)]
pub struct LocalStore {
    cluster_dir: PathBuf,
    call_timeout: Duration,
    boot_id: String,
    /// The inotify watch `wait_for_change` keeps from one call to the next.
    watch: std::sync::Arc<notify::Kept>,
}

/// Create `path` and its missing parents with mode 0700: whoever can open the lock
/// file can flock it and freeze the store for every member, and whoever can write the
/// state file controls the cluster.
fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", path.display())))
}

impl LocalStore {
    /// Open (creating as needed) the namespace `cluster` under `dir`. Every later call
    /// gives up with `StoreError::Unreachable` when it cannot take the directory lock
    /// within `call_timeout`. Fails with `StoreError::Other` when the directory cannot
    /// be created or an existing state file is damaged.
    ///
    /// This does a little blocking file I/O (no locking); it is fine to call from async code.
    pub fn open(dir: &Path, cluster: &str, call_timeout: Duration) -> Result<LocalStore> {
        let cluster_dir = cluster_dir(dir, cluster)?;
        create_private_dir(&cluster_dir)?;
        file::read_state(&cluster_dir)?;
        Ok(LocalStore {
            cluster_dir,
            call_timeout,
            boot_id: clock::boot_id()?,
            watch: Default::default(),
        })
    }

    /// The directory of this cluster namespace (`<dir>/<cluster>`).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// For tests: take the lock of `<dir>/<cluster>` and hold it until the guard is
    /// dropped, so every store call on that namespace (from any process) fails with
    /// `StoreError::Unreachable` after its call timeout. Blocks up to 10 s for the lock.
    pub fn freeze_for_tests(dir: &Path, cluster: &str) -> Result<FreezeGuard> {
        let cluster_dir = cluster_dir(dir, cluster)?;
        std::fs::create_dir_all(&cluster_dir).map_err(|e| {
            StoreError::Other(format!("cannot create {}: {e}", cluster_dir.display()))
        })?;
        let lock = lock::lock_until(&cluster_dir, Instant::now() + Duration::from_secs(10))?;
        Ok(FreezeGuard::new(lock))
    }

    /// Run `op` on the swept state under the lock, on a blocking thread, and write the
    /// state back when it or the sweep changed it.
    async fn locked<T, F>(&self, lock_wait: Duration, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, u64) -> Result<(T, Changed)> + Send + 'static,
    {
        let dir = self.cluster_dir.clone();
        let boot_id = self.boot_id.clone();
        let deadline = Instant::now() + lock_wait;
        let task = tokio::task::spawn_blocking(move || -> Result<T> {
            let _lock = lock::lock_until(&dir, deadline)?;
            let now = clock::monotonic_ms()?;
            let (mut state, fresh) = match file::read_state(&dir)? {
                Some(s) => (s, false),
                None => (State::fresh(&boot_id), true),
            };
            let swept = state.sweep(now, &boot_id);
            let (out, changed) = op(&mut state, now)?;
            if fresh || swept.dirty || changed.dirty {
                file::write_state(&dir, &state)?;
            }
            Ok(out)
        });
        match tokio::time::timeout(lock_wait + IO_GRACE, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(StoreError::Other(format!(
                "local store task for {} failed: {join}",
                self.cluster_dir.display()
            ))),
            Err(_) => Err(StoreError::Unreachable(format!(
                "local store {} did not finish within {:?}",
                self.cluster_dir.display(),
                lock_wait + IO_GRACE
            ))),
        }
    }

    /// Answer a read-only `op` on the current thread when the lock is free and the
    /// state needs no sweep (the idle case: a lock attempt and one small file read, no
    /// hand-off to a blocking thread); otherwise the same as [`LocalStore::locked`].
    async fn read<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&State) -> T + Send + 'static,
    {
        if let Some(lock) = lock::try_lock(&self.cluster_dir)? {
            if let Some(mut state) = file::read_state(&self.cluster_dir)? {
                let now = clock::monotonic_ms()?;
                if !state.sweep(now, &self.boot_id).dirty {
                    drop(lock);
                    return Ok(op(&state));
                }
            }
        }
        self.locked(self.call_timeout, move |s, _| Ok((op(s), UNCHANGED)))
            .await
    }

    /// Read the state without the lock (safe: the file is replaced atomically). A small
    /// file read, done on the current thread.
    fn peek(&self) -> Result<Option<State>> {
        file::read_state(&self.cluster_dir)
    }
}

/// `<dir>/<cluster>`, refusing cluster names that would escape `dir`.
fn cluster_dir(dir: &Path, cluster: &str) -> Result<PathBuf> {
    if cluster.is_empty() || cluster == "." || cluster == ".." || cluster.contains('/') {
        return Err(StoreError::Other(format!(
            "invalid cluster name {cluster:?} for the local store (must be a plain file name)"
        )));
    }
    Ok(dir.join(cluster))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Other("empty store key".into()));
    }
    Ok(())
}

const UNCHANGED: Changed = Changed { dirty: false };

#[async_trait::async_trait]
impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("local store at {}", self.cluster_dir.display())
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.read(|s| s.snapshot()).await
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let key = key.to_string();
        self.read(move |s| s.get(&key)).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: Expect,
    ) -> Result<bool> {
        check_key(key)?;
        let (key, value) = (key.to_string(), value.to_string());
        self.locked(self.call_timeout, move |s, _| {
            s.put(&key, &value, lease, &expect)
        })
        .await
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        check_key(key)?;
        let key = key.to_string();
        self.locked(self.call_timeout, move |s, _| Ok(s.delete(&key, &expect)))
            .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(StoreError::Other(format!(
                "lease ttl must be at least 1 ms, got {ttl:?}"
            )));
        }
        self.locked(self.call_timeout, move |s, now| Ok(s.grant(ttl_ms, now)))
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.locked(self.call_timeout, move |s, now| {
            Ok(((), s.renew(lease, now)?))
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.locked(self.call_timeout, move |s, _| Ok(((), s.revoke(lease))))
            .await
    }

    /// Reads the state file without the lock whenever inotify reports that it was
    /// replaced (polling every 10 ms only where inotify is unavailable); when the
    /// earliest lease deadline has passed it sweeps under the lock (bounded by the time
    /// left), so a lease expiry wakes waiters too: the waiter sleeps until that deadline
    /// at the latest. On timeout it returns the revision last read, without proving the
    /// lock can be taken: callers learn about an unreachable store from their next
    /// ordinary call.
    async fn wait_for_change(&self, after: Revision, timeout: Duration) -> Result<Revision> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Watch before the first read, so a change between the read and the wait wakes.
        let mut watch = self.watch.take(&self.cluster_dir);
        loop {
            let (revision, next_expiry, stale_boot) = match self.peek()? {
                Some(s) => (s.revision, s.next_expiry_ms(), s.boot_id != self.boot_id),
                None => (State::fresh(&self.boot_id).revision, None, false),
            };
            if revision > after {
                return Ok(revision);
            }
            let now = tokio::time::Instant::now();
            let now_ms = clock::monotonic_ms().ok();
            let due = stale_boot || next_expiry.is_some_and(|t| now_ms.is_some_and(|m| m >= t));
            if due && now < deadline {
                let wait = (deadline - now).min(self.call_timeout);
                match self.locked(wait, |s, _| Ok((s.revision, UNCHANGED))).await {
                    Ok(rev) if rev > after => return Ok(rev),
                    Ok(_) | Err(StoreError::Unreachable(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(revision);
            }
            let mut wait = deadline - now;
            if due || watch.is_none() {
                // A sweep that could not run (lock busy), or no notification: poll.
                wait = wait.min(POLL_INTERVAL);
            } else if let (Some(t), Some(m)) = (next_expiry, now_ms) {
                // Wake when the earliest lease can expire (1 ms late, never early).
                wait = wait.min(Duration::from_millis(t.saturating_sub(m) + 1));
            }
            match watch.as_mut() {
                Some(w) => {
                    if w.changed(wait).await.is_err() {
                        watch = None;
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }
}

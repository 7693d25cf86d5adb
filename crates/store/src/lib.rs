//! The cluster-state store: one async trait, [`Store`], implemented by the embedded
//! [`local`] backend (files on one host) and the [`etcd`] v3 backend. With the cargo
//! feature `testkit`, `testkit` starts real etcd clusters for tests. Layout and
//! guarantees: `docs/store-layout.md`.
//!
//! Keys are relative to one cluster's namespace (`leader`, `members/node1`, ...); each
//! backend maps them onto its own layout. Values are UTF-8 text (JSON by convention);
//! an etcd entry whose key or value is not is left out of reads and logged once.
//!
//! Two kinds of "no" must never be confused by callers:
//! - the store answered and refused (a compare failed): `Ok(false)`;
//! - the store could not be reached in time: `Err(StoreError::Unreachable)`. The
//!   outcome of such a call is unknown: a write may still have been applied (etcd runs a
//!   queued request once it answers again), so re-read before deciding anything.
//!
//! A primary demotes at once on the first and fences at its deadline on the second.

pub mod etcd;
pub mod local;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::time::Duration;

/// A monotonically increasing version of the whole namespace (etcd's revision).
pub type Revision = i64;

/// The handle of a lease; keys attached to it vanish when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

/// One stored key with its value and versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key relative to the cluster namespace, e.g. `members/node1`.
    pub key: String,
    /// The value, JSON text by convention.
    pub value: String,
    /// The namespace revision of the last write to this key.
    pub mod_revision: Revision,
    /// The lease this key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// Every key of the cluster namespace, read atomically at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The namespace revision this snapshot was read at.
    pub revision: Revision,
    /// Entries by relative key.
    pub entries: BTreeMap<String, Entry>,
}

impl Snapshot {
    /// The value of `key`, if present.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }
}

/// The precondition of a conditional write or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No write condition.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this mod revision.
    ModRevision(Revision),
    /// The key must exist with exactly this value.
    Value(String),
}

/// Why a store call failed. A refused compare is not an error: it is `Ok(false)`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached (or did not answer) within the call deadline.
    #[error("store unreachable: {0}")]
    Unreachable(String),
    /// The lease no longer exists (it expired or was revoked).
    #[error("lease {0:?} has expired or was revoked")]
    LeaseExpired(LeaseId),
    /// The store's own data is damaged, or it answered something unexpected.
    #[error("store error: {0}")]
    Other(String),
}

/// Result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The operations pgbaton needs from a store. Every call returns within the backend's
/// configured call deadline, with `StoreError::Unreachable` when it could not finish.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// A short human name of the backend and where it points, for logs.
    fn describe(&self) -> String;

    /// Read the whole cluster namespace atomically.
    async fn snapshot(&self) -> Result<Snapshot>;

    /// Read one key.
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Write `key` if `expect` holds, optionally attached to `lease`.
    /// Returns `Ok(false)` when the precondition failed (the store said no).
    async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: Expect,
    ) -> Result<bool>;

    /// Delete `key` if `expect` holds. Returns `Ok(false)` when the precondition failed
    /// (for `Expect::Any`, deleting an absent key returns `Ok(true)`).
    async fn delete(&self, key: &str, expect: Expect) -> Result<bool>;

    /// Grant a new lease that expires `ttl` after its last renewal.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renew a lease. Fails with `LeaseExpired` when it no longer exists.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Revoke a lease now, deleting every key attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Wait until the namespace revision is greater than `after` or `timeout` passes,
    /// and return the current revision. Lease expiries count as changes. Wakes within
    /// 100 ms of a change.
    ///
    /// A wake is a hint, not data: re-read with [`Store::snapshot`]. It may be spurious
    /// (etcd revisions are global to the etcd cluster). On timeout it returns a revision
    /// not greater than `after` (normally `after` itself) and need not have contacted
    /// the store, so it proves nothing about reachability; it fails with `Unreachable`
    /// only when the backend knows it could not watch the store at all.
    async fn wait_for_change(&self, after: Revision, timeout: Duration) -> Result<Revision>;
}

//! The simulated store: revisions, compare-and-set, leases that expire on simulated
//! time, and change notification, with etcd's semantics. Each member reaches it
//! through a [`StoreClient`] that crosses the simulated network: a request that cannot
//! reach the store times out unapplied; one whose answer cannot come back is applied
//! and still times out ("timed out but applied").

use crate::world::{lock, Shared};
use pgbaton_store::{Entry, Expect, LeaseId, Result, Revision, Snapshot, Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A lease: its ttl and when it expires unless renewed.
#[derive(Debug, Clone)]
struct Lease {
    ttl: Duration,
    expires: Instant,
}

/// The store's data.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    revision: Revision,
    kv: BTreeMap<String, Entry>,
    leases: BTreeMap<i64, Lease>,
    next_lease: i64,
}

impl StoreState {
    /// Expire leases due at `now`, deleting their keys. True if anything changed.
    pub fn expire(&mut self, now: Instant) -> Vec<i64> {
        let due: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.revoke(*id);
        }
        due
    }

    fn revoke(&mut self, id: i64) {
        self.leases.remove(&id);
        let keys: Vec<String> = self
            .kv
            .values()
            .filter(|e| e.lease == Some(LeaseId(id)))
            .map(|e| e.key.clone())
            .collect();
        if !keys.is_empty() {
            self.revision += 1;
            for k in keys {
                self.kv.remove(&k);
            }
        }
    }

    /// When the next lease expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.expires).min()
    }

    /// The value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.kv.get(key).map(|e| e.value.as_str())
    }

    fn holds(&self, key: &str, expect: &Expect) -> bool {
        let cur = self.kv.get(key);
        match expect {
            Expect::Any => true,
            Expect::Absent => cur.is_none(),
            Expect::ModRevision(r) => cur.is_some_and(|e| e.mod_revision == *r),
            Expect::Value(v) => cur.is_some_and(|e| &e.value == v),
        }
    }

    fn put(
        &mut self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: &Expect,
    ) -> Result<bool> {
        if let Some(l) = lease {
            if !self.leases.contains_key(&l.0) {
                return Err(StoreError::LeaseExpired(l));
            }
        }
        if !self.holds(key, expect) {
            return Ok(false);
        }
        self.revision += 1;
        self.kv.insert(
            key.to_string(),
            Entry {
                key: key.to_string(),
                value: value.to_string(),
                mod_revision: self.revision,
                lease,
            },
        );
        Ok(true)
    }

    fn delete(&mut self, key: &str, expect: &Expect) -> bool {
        if !self.holds(key, expect) {
            return false;
        }
        if self.kv.remove(key).is_some() {
            self.revision += 1;
        }
        true
    }

    /// Write `key` directly (an operator's `etcdctl put`).
    pub fn poke(&mut self, key: &str, value: &str) {
        let _ = self.put(key, value, None, &Expect::Any);
    }
}

/// One member's (or the operator's) connection to the simulated store.
pub struct StoreClient {
    world: Shared,
    /// The party on the network (member name, or `operator`).
    who: String,
    /// How long a call may take before it is `Unreachable`.
    timeout: Duration,
}

impl StoreClient {
    /// A client for `who`, with the backend's call deadline `timeout`.
    pub fn new(world: Shared, who: &str, timeout: Duration) -> StoreClient {
        StoreClient {
            world,
            who: who.to_string(),
            timeout,
        }
    }

    /// One round trip: request over the network, `op` applied atomically at the store,
    /// answer back.
    async fn call<T>(&self, op: impl FnOnce(&mut StoreState) -> Result<T>) -> Result<T> {
        let (lat, reaches) = {
            let mut w = lock(&self.world);
            (
                Duration::from_micros(w.rng.range(300, 3000)),
                w.link(&self.who, "store"),
            )
        };
        if !reaches {
            tokio::time::sleep(self.timeout).await;
            return Err(StoreError::Unreachable(format!(
                "simulated: no answer from the store within {:?}",
                self.timeout
            )));
        }
        tokio::time::sleep(lat).await;
        let (result, back) = {
            let mut w = lock(&self.world);
            let now = Instant::now();
            let before = w.store.revision;
            w.store.expire(now);
            let r = op(&mut w.store);
            if w.store.revision != before {
                w.store_changed.notify_waiters();
            }
            (r, w.link("store", &self.who))
        };
        if !back {
            tokio::time::sleep(self.timeout.saturating_sub(lat)).await;
            return Err(StoreError::Unreachable(format!(
                "simulated: the answer was lost (the request may have been applied) within {:?}",
                self.timeout
            )));
        }
        tokio::time::sleep(lat).await;
        result
    }
}

#[async_trait::async_trait]
impl Store for StoreClient {
    fn describe(&self) -> String {
        "simulated store".into()
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.call(|s| {
            Ok(Snapshot {
                revision: s.revision,
                entries: s.kv.clone(),
            })
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.call(|s| Ok(s.kv.get(key).cloned())).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: Expect,
    ) -> Result<bool> {
        self.call(|s| s.put(key, value, lease, &expect)).await
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        self.call(|s| Ok(s.delete(key, &expect))).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.call(|s| {
            s.next_lease += 1;
            let id = s.next_lease;
            s.leases.insert(
                id,
                Lease {
                    ttl,
                    expires: Instant::now() + ttl,
                },
            );
            Ok(LeaseId(id))
        })
        .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.call(|s| match s.leases.get_mut(&lease.0) {
            Some(l) => {
                l.expires = Instant::now() + l.ttl;
                Ok(())
            }
            None => Err(StoreError::LeaseExpired(lease)),
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.call(|s| {
            s.revoke(lease.0);
            Ok(())
        })
        .await
    }

    async fn wait_for_change(&self, after: Revision, timeout: Duration) -> Result<Revision> {
        let deadline = Instant::now() + timeout;
        loop {
            let (notify, next, rev, reaches) = {
                let mut w = lock(&self.world);
                let before = w.store.revision;
                w.store.expire(Instant::now());
                if w.store.revision != before {
                    w.store_changed.notify_waiters();
                }
                (
                    w.store_changed.clone(),
                    w.store.next_expiry(),
                    w.store.revision,
                    w.connected(&self.who, "store"),
                )
            };
            if !reaches {
                tokio::time::sleep_until(deadline).await;
                return Ok(after);
            }
            if rev > after {
                return Ok(rev);
            }
            if Instant::now() >= deadline {
                return Ok(rev);
            }
            let wake = next.map_or(deadline, |n| n.min(deadline));
            let notified = notify.notified();
            tokio::select! {
                biased;
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

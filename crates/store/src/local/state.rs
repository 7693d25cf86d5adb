//! The whole state of one local cluster namespace and the pure rules that change it.
//!
//! Nothing here touches files or clocks: callers pass "now" (CLOCK_MONOTONIC ms) and the
//! current boot id, which keeps the rules unit-testable.

use crate::{Entry, Expect, LeaseId, Revision, Snapshot, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the state file format.
pub(crate) const FORMAT: u32 = 1;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub value: String,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

/// One live lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// Time to live granted, in milliseconds.
    pub ttl_ms: u64,
    /// CLOCK_MONOTONIC milliseconds at which it expires (valid only during `boot_id`).
    pub expires_at_ms: u64,
}

/// The content of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    pub format: u32,
    pub revision: Revision,
    /// The boot during which the lease deadlines were written.
    pub boot_id: String,
    pub next_lease: i64,
    pub leases: BTreeMap<i64, LeaseRecord>,
    pub keys: BTreeMap<String, KeyRecord>,
}

/// What an operation did to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Changed {
    /// The state must be written back.
    pub dirty: bool,
}

impl State {
    /// The state of a namespace nobody has written yet.
    pub fn fresh(boot_id: &str) -> State {
        State {
            format: FORMAT,
            revision: 1,
            boot_id: boot_id.to_string(),
            next_lease: 1,
            leases: BTreeMap::new(),
            keys: BTreeMap::new(),
        }
    }

    /// Drop expired leases (all of them after a reboot) and the keys attached to them,
    /// bumping the revision once when a key goes. Returns whether anything changed.
    pub fn sweep(&mut self, now_ms: u64, boot_id: &str) -> Changed {
        let mut dirty = false;
        if self.boot_id != boot_id {
            self.leases.clear();
            self.boot_id = boot_id.to_string();
            dirty = true;
        }
        let before = self.leases.len();
        self.leases.retain(|_, l| l.expires_at_ms > now_ms);
        dirty |= self.leases.len() != before;
        dirty |= self.drop_orphans();
        Changed { dirty }
    }

    /// Remove keys whose lease is gone; bump the revision if any was removed.
    fn drop_orphans(&mut self) -> bool {
        let leases = &self.leases;
        let before = self.keys.len();
        self.keys
            .retain(|_, k| k.lease.is_none_or(|l| leases.contains_key(&l)));
        let removed = self.keys.len() != before;
        if removed {
            self.revision += 1;
        }
        removed
    }

    /// The earliest lease deadline, if any lease exists.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.leases.values().map(|l| l.expires_at_ms).min()
    }

    fn holds(&self, key: &str, expect: &Expect) -> bool {
        let cur = self.keys.get(key);
        match expect {
            Expect::Any => true,
            Expect::Absent => cur.is_none(),
            Expect::ModRevision(r) => cur.is_some_and(|k| k.mod_revision == *r),
            Expect::Value(v) => cur.is_some_and(|k| &k.value == v),
        }
    }

    /// Conditional write. `Ok(false)` when `expect` does not hold.
    pub fn put(
        &mut self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: &Expect,
    ) -> Result<(bool, Changed), StoreError> {
        if !self.holds(key, expect) {
            return Ok((false, Changed::default()));
        }
        if let Some(l) = lease {
            if !self.leases.contains_key(&l.0) {
                return Err(StoreError::LeaseExpired(l));
            }
        }
        self.revision += 1;
        let rev = self.revision;
        let create_revision = self.keys.get(key).map_or(rev, |k| k.create_revision);
        self.keys.insert(
            key.to_string(),
            KeyRecord {
                value: value.to_string(),
                create_revision,
                mod_revision: rev,
                lease: lease.map(|l| l.0),
            },
        );
        Ok((true, Changed { dirty: true }))
    }

    /// Conditional delete. `false` when `expect` does not hold.
    pub fn delete(&mut self, key: &str, expect: &Expect) -> (bool, Changed) {
        if !self.holds(key, expect) {
            return (false, Changed::default());
        }
        if self.keys.remove(key).is_some() {
            self.revision += 1;
            return (true, Changed { dirty: true });
        }
        (true, Changed::default())
    }

    /// Create a lease expiring `ttl_ms` after `now_ms`.
    pub fn grant(&mut self, ttl_ms: u64, now_ms: u64) -> (LeaseId, Changed) {
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(
            id,
            LeaseRecord {
                ttl_ms,
                expires_at_ms: now_ms.saturating_add(ttl_ms),
            },
        );
        (LeaseId(id), Changed { dirty: true })
    }

    /// Push a live lease's deadline to `now_ms + ttl`.
    pub fn renew(&mut self, lease: LeaseId, now_ms: u64) -> Result<Changed, StoreError> {
        let l = self
            .leases
            .get_mut(&lease.0)
            .ok_or(StoreError::LeaseExpired(lease))?;
        l.expires_at_ms = now_ms.saturating_add(l.ttl_ms);
        Ok(Changed { dirty: true })
    }

    /// Remove a lease and its keys; a missing lease is not an error.
    pub fn revoke(&mut self, lease: LeaseId) -> Changed {
        if self.leases.remove(&lease.0).is_none() {
            return Changed::default();
        }
        self.drop_orphans();
        Changed { dirty: true }
    }

    fn entry(&self, key: &str, k: &KeyRecord) -> Entry {
        Entry {
            key: key.to_string(),
            value: k.value.clone(),
            mod_revision: k.mod_revision,
            lease: k.lease.map(LeaseId),
        }
    }

    /// One key as an [`Entry`].
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.keys.get(key).map(|k| self.entry(key, k))
    }

    /// Every key as a [`Snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            entries: self
                .keys
                .iter()
                .map(|(key, k)| (key.clone(), self.entry(key, k)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_expectations() {
        let mut s = State::fresh("b");
        assert!(s.put("k", "1", None, &Expect::Absent).unwrap().0);
        assert!(!s.put("k", "2", None, &Expect::Absent).unwrap().0);
        let rev = s.get("k").unwrap().mod_revision;
        assert!(
            !s.put("k", "2", None, &Expect::ModRevision(rev - 1))
                .unwrap()
                .0
        );
        assert!(s.put("k", "2", None, &Expect::ModRevision(rev)).unwrap().0);
        assert!(!s.put("k", "3", None, &Expect::Value("1".into())).unwrap().0);
        assert!(s.put("k", "3", None, &Expect::Value("2".into())).unwrap().0);
        assert!(!s.put("x", "1", None, &Expect::ModRevision(0)).unwrap().0);
        assert_eq!(s.revision, 4);
        assert_eq!(s.get("k").unwrap().value, "3");
    }

    #[test]
    fn failed_compare_wins_over_missing_lease() {
        let mut s = State::fresh("b");
        s.put("k", "1", None, &Expect::Any).unwrap();
        let r = s.put("k", "2", Some(LeaseId(9)), &Expect::Absent).unwrap();
        assert!(!r.0);
        let err = s.put("k", "2", Some(LeaseId(9)), &Expect::Any).unwrap_err();
        assert!(matches!(err, StoreError::LeaseExpired(LeaseId(9))));
    }

    #[test]
    fn sweep_removes_expired_leases_and_their_keys_only() {
        let mut s = State::fresh("b");
        let (short, _) = s.grant(100, 1000);
        let (long, _) = s.grant(10_000, 1000);
        s.put("a", "1", Some(short), &Expect::Any).unwrap();
        s.put("b", "1", Some(long), &Expect::Any).unwrap();
        s.put("c", "1", None, &Expect::Any).unwrap();
        let rev = s.revision;
        assert!(!s.sweep(1099, "b").dirty);
        assert!(s.sweep(1100, "b").dirty);
        assert_eq!(s.revision, rev + 1);
        assert!(s.get("a").is_none());
        assert!(s.get("b").is_some() && s.get("c").is_some());
        assert!(matches!(
            s.renew(short, 1200),
            Err(StoreError::LeaseExpired(_))
        ));
    }

    #[test]
    fn reboot_expires_every_lease() {
        let mut s = State::fresh("boot1");
        let (l, _) = s.grant(1_000_000, 0);
        s.put("a", "1", Some(l), &Expect::Any).unwrap();
        assert!(s.sweep(1, "boot2").dirty);
        assert!(s.leases.is_empty() && s.keys.is_empty());
        assert_eq!(s.boot_id, "boot2");
    }

    #[test]
    fn revoke_deletes_attached_keys() {
        let mut s = State::fresh("b");
        let (l, _) = s.grant(1000, 0);
        s.put("a", "1", Some(l), &Expect::Any).unwrap();
        let rev = s.revision;
        assert!(s.revoke(l).dirty);
        assert_eq!(s.revision, rev + 1);
        assert!(s.get("a").is_none());
        assert!(!s.revoke(l).dirty);
    }

    #[test]
    fn delete_expectations() {
        let mut s = State::fresh("b");
        assert!(s.delete("k", &Expect::Any).0);
        s.put("k", "v", None, &Expect::Any).unwrap();
        assert!(!s.delete("k", &Expect::Value("w".into())).0);
        assert!(s.delete("k", &Expect::Value("v".into())).0);
        assert!(s.get("k").is_none());
    }

    #[test]
    fn json_roundtrip() {
        let mut s = State::fresh("b");
        let (l, _) = s.grant(1000, 5);
        s.put("members/x", "{\"a\":1}", Some(l), &Expect::Any)
            .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(s, back);
    }
}

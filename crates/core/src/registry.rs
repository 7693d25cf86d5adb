//! The primary's registry of members and their replication slots.
//!
//! Member keys vanish with their lease when an agent stops, but a replica that is only
//! restarting must find its slot (and the WAL it holds) again. So the primary keeps a
//! persistent registry in the `status` key: every member it has seen, with when it was
//! last seen. A slot lives while its member is registered; a member away longer than
//! `member_slot_retention`, or removed by `pgbaton remove`, loses its slot, and is
//! forgotten once the slot is gone. Slots whose names no registered member ever had are
//! the DBA's own and are never touched.

use crate::observation::SlotObs;
use crate::slots::slot_name;
use std::collections::{BTreeMap, BTreeSet};

/// What the primary should do about slots this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotWork {
    /// The registry to publish.
    pub registry: BTreeMap<String, u64>,
    /// Slots to create.
    pub create: Vec<String>,
    /// Slots to drop.
    pub drop: Vec<String>,
}

/// Merge the live members into the registry and work out slot changes.
///
/// - `previous`: the registry last published;
/// - `live`: members whose keys exist now;
/// - `me`: the primary itself (it needs no slot);
/// - `existing`: the physical slots PostgreSQL has;
/// - `retention_ms`: how long an absent member keeps its slot.
pub fn slot_work(
    previous: &BTreeMap<String, u64>,
    live: &BTreeSet<String>,
    me: &str,
    existing: &[SlotObs],
    now_ms: u64,
    retention_ms: u64,
) -> SlotWork {
    let mut registry = BTreeMap::new();
    let mut expired = BTreeSet::new();
    for name in live {
        registry.insert(name.clone(), now_ms);
    }
    for (name, seen) in previous {
        if registry.contains_key(name) {
            // A removed member whose agent still runs: the removal wins only while its
            // key is absent, otherwise it would lose its slot while streaming.
            continue;
        }
        if *seen == 0 || now_ms.saturating_sub(*seen) > retention_ms {
            expired.insert(name.clone());
        } else {
            registry.insert(name.clone(), *seen);
        }
    }
    let existing_names: BTreeSet<&str> = existing.iter().map(|s| s.name.as_str()).collect();
    let mut work = SlotWork::default();
    for name in registry.keys() {
        if name == me {
            continue;
        }
        let slot = slot_name(name);
        if !existing_names.contains(slot.as_str()) {
            work.create.push(slot);
        }
    }
    let wanted: BTreeSet<String> = registry.keys().map(|n| slot_name(n)).collect();
    for name in &expired {
        let slot = slot_name(name);
        if wanted.contains(&slot) {
            continue;
        }
        // Keep the registration (as expired) until the slot is really gone.
        if let Some(s) = existing.iter().find(|s| s.name == slot) {
            registry.insert(name.clone(), 0);
            if !s.active {
                work.drop.push(slot);
            }
        }
    }
    work.registry = registry;
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(names: &[(&str, bool)]) -> Vec<SlotObs> {
        names
            .iter()
            .map(|(n, a)| SlotObs {
                name: n.to_string(),
                active: *a,
            })
            .collect()
    }
    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn creates_slots_for_new_members_but_not_for_itself() {
        let w = slot_work(
            &BTreeMap::new(),
            &live(&["a", "b", "c"]),
            "a",
            &[],
            1000,
            10,
        );
        assert_eq!(w.create, vec!["b", "c"]);
        assert!(w.drop.is_empty());
        assert_eq!(w.registry.len(), 3);
    }

    #[test]
    fn absent_member_keeps_its_slot_within_retention() {
        let prev = BTreeMap::from([("b".to_string(), 900)]);
        let w = slot_work(
            &prev,
            &live(&["a"]),
            "a",
            &slots(&[("b", false)]),
            1000,
            500,
        );
        assert!(w.drop.is_empty() && w.create.is_empty());
        assert_eq!(w.registry.get("b"), Some(&900));
    }

    #[test]
    fn removed_member_loses_its_slot_then_is_forgotten() {
        let prev = BTreeMap::from([("b".to_string(), 0)]);
        let w = slot_work(
            &prev,
            &live(&["a"]),
            "a",
            &slots(&[("b", false)]),
            1000,
            500,
        );
        assert_eq!(w.drop, vec!["b"]);
        assert_eq!(w.registry.get("b"), Some(&0));
        let w = slot_work(&w.registry, &live(&["a"]), "a", &[], 2000, 500);
        assert!(!w.registry.contains_key("b"));
    }

    #[test]
    fn active_slot_is_not_dropped_yet() {
        let prev = BTreeMap::from([("b".to_string(), 0)]);
        let w = slot_work(&prev, &live(&["a"]), "a", &slots(&[("b", true)]), 1000, 500);
        assert!(w.drop.is_empty());
        assert_eq!(w.registry.get("b"), Some(&0));
    }

    #[test]
    fn foreign_slots_are_never_dropped() {
        let w = slot_work(
            &BTreeMap::new(),
            &live(&["a"]),
            "a",
            &slots(&[("dba_slot", false)]),
            1000,
            1,
        );
        assert!(w.drop.is_empty());
    }

    #[test]
    fn live_member_overrides_a_removal() {
        let prev = BTreeMap::from([("b".to_string(), 0)]);
        let w = slot_work(
            &prev,
            &live(&["a", "b"]),
            "a",
            &slots(&[("b", true)]),
            1000,
            500,
        );
        assert!(w.drop.is_empty());
        assert_eq!(w.registry.get("b"), Some(&1000));
    }
}

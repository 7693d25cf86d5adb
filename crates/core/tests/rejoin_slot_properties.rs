//! Property tests of the rejoin check (`rejoin::must_rewind`) and of the primary's
//! slot registry (`registry::slot_work`).

use pgbaton_core::model::HistoryEntry;
use pgbaton_core::registry::slot_work;
use pgbaton_core::rejoin::{must_rewind, WalEnd};
use pgbaton_core::slots::slot_name;
use pgbaton_core::{Lsn, SlotObs};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn wal_end() -> impl Strategy<Value = WalEnd> {
    prop_oneof![
        (0u64..10_000).prop_map(|l| WalEnd::Known(Lsn(l))),
        (0u64..10_000).prop_map(|l| WalEnd::LastRecordAt(Lsn(l))),
        Just(WalEnd::Unknown),
    ]
}

fn history() -> impl Strategy<Value = Vec<HistoryEntry>> {
    prop::collection::vec((2u32..7, prop::option::weighted(0.9, 0u64..10_000)), 0..6).prop_map(
        |forks| {
            forks
                .into_iter()
                .map(|(timeline, switch)| HistoryEntry {
                    timeline,
                    switch_lsn: switch.map(Lsn),
                    reason: "generated".into(),
                    time_ms: 0,
                    old_primary: None,
                    new_primary: "x".into(),
                })
                .collect()
        },
    )
}

/// The switch point where `timeline` ended, as `must_rewind` must read it.
fn switch_after(history: &[HistoryEntry], timeline: u32) -> Option<Lsn> {
    history
        .iter()
        .find(|h| h.timeline == timeline + 1)
        .and_then(|h| h.switch_lsn)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_timeline_never_rewinds(tl in 1u32..7, end in wal_end(), h in history()) {
        prop_assert!(!must_rewind(tl, end, tl, &h));
    }

    #[test]
    fn unknown_end_on_an_older_timeline_always_rewinds(
        mine in 1u32..6, ahead in 1u32..4, h in history()
    ) {
        prop_assert!(must_rewind(mine, WalEnd::Unknown, mine + ahead, &h));
    }

    #[test]
    fn a_newer_timeline_than_the_leader_always_rewinds(
        leader in 1u32..6, ahead in 1u32..4, end in wal_end(), h in history()
    ) {
        prop_assert!(must_rewind(leader + ahead, end, leader, &h));
    }

    /// On an older timeline the member follows only when its WAL provably ends before
    /// the switch point where its timeline ended; without that entry it rewinds.
    #[test]
    fn older_timeline_follows_only_before_the_switch_point(
        mine in 1u32..6, ahead in 1u32..4, end in wal_end(), h in history()
    ) {
        let rewinds = must_rewind(mine, end, mine + ahead, &h);
        match (switch_after(&h, mine), end) {
            (None, _) | (_, WalEnd::Unknown) => prop_assert!(rewinds),
            (Some(s), WalEnd::Known(l)) => prop_assert_eq!(rewinds, l > s),
            (Some(s), WalEnd::LastRecordAt(at)) => prop_assert_eq!(rewinds, at >= s),
        }
    }

    /// Less WAL never needs a rewind when more did not.
    #[test]
    fn rewinding_is_monotonic_in_the_wal_end(
        mine in 1u32..6, ahead in 1u32..4, a in 0u64..10_000, b in 0u64..10_000, h in history()
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let leader = mine + ahead;
        if !must_rewind(mine, WalEnd::Known(Lsn(hi)), leader, &h) {
            prop_assert!(!must_rewind(mine, WalEnd::Known(Lsn(lo)), leader, &h));
        }
        if !must_rewind(mine, WalEnd::LastRecordAt(Lsn(hi)), leader, &h) {
            prop_assert!(!must_rewind(mine, WalEnd::LastRecordAt(Lsn(lo)), leader, &h));
        }
    }
}

/// Member names, including ones whose slot names need mapping and a hash.
const POOL: [&str; 8] = [
    "a",
    "b",
    "c",
    "node-1",
    "node_1",
    "Node-1",
    "db.east",
    "a-very-long-member-name-that-does-not-fit-into-a-replication-slot-name",
];
const NOW: u64 = 10_000_000;
const RETENTION: u64 = 60_000;

#[derive(Debug, Clone)]
struct SlotCase {
    previous: BTreeMap<String, u64>,
    live: BTreeSet<String>,
    me: String,
    existing: Vec<SlotObs>,
}

fn slot_case() -> impl Strategy<Value = SlotCase> {
    let seen = prop_oneof![
        Just(0u64),
        (0u64..RETENTION).prop_map(|ago| NOW - ago),
        (RETENTION + 1..10 * RETENTION).prop_map(|ago| NOW - ago),
        Just(NOW - RETENTION),
    ];
    (
        prop::collection::btree_map(prop::sample::select(POOL.to_vec()), seen, 0..6),
        prop::collection::btree_set(prop::sample::select(POOL.to_vec()), 0..5),
        prop::sample::select(POOL.to_vec()),
        prop::collection::btree_map(
            prop_oneof![
                5 => prop::sample::select(POOL.to_vec()).prop_map(slot_name),
                1 => Just("dba_slot".to_string()),
            ],
            any::<bool>(),
            0..6,
        ),
    )
        .prop_map(|(previous, mut live, me, existing)| {
            // The primary's own member key is live while it runs.
            live.insert(me);
            SlotCase {
                previous: previous
                    .into_iter()
                    .map(|(n, t)| (n.to_string(), t))
                    .collect(),
                live: live.into_iter().map(str::to_string).collect(),
                me: me.to_string(),
                existing: existing
                    .into_iter()
                    .map(|(name, active)| SlotObs { name, active })
                    .collect(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slot_work_keeps_what_it_must(c in slot_case()) {
        let w = slot_work(&c.previous, &c.live, &c.me, &c.existing, NOW, RETENTION);
        let existing: BTreeSet<&str> = c.existing.iter().map(|s| s.name.as_str()).collect();
        let active: BTreeSet<&str> =
            c.existing.iter().filter(|s| s.active).map(|s| s.name.as_str()).collect();
        let registered: BTreeSet<String> = c.previous.keys().map(|n| slot_name(n)).collect();

        for name in &c.live {
            prop_assert!(!w.drop.contains(&slot_name(name)), "dropped the slot of live member {name}");
            prop_assert_eq!(w.registry.get(name), Some(&NOW), "live member {} not registered now", name);
        }
        for slot in &w.drop {
            prop_assert!(registered.contains(slot), "dropped {slot}, which no registered member maps to");
            prop_assert!(existing.contains(slot.as_str()), "dropped {slot}, which does not exist");
            prop_assert!(!active.contains(slot.as_str()), "dropped {slot} while a WAL sender uses it");
            prop_assert!(!w.create.contains(slot), "both creates and drops {slot}");
        }
        prop_assert!(!w.create.contains(&slot_name(&c.me)), "created a slot for the primary itself");
        for slot in &w.create {
            prop_assert!(!existing.contains(slot.as_str()), "creates {slot}, which exists");
        }
        for (name, seen) in &c.previous {
            let within = *seen != 0 && NOW - seen <= RETENTION;
            if within {
                prop_assert!(!w.drop.contains(&slot_name(name)), "dropped the slot of {name}, away for less than the retention");
                prop_assert!(w.registry.contains_key(name), "forgot {name} within the retention");
            }
            if !w.registry.contains_key(name) {
                let wanted = w.registry.keys().any(|n| slot_name(n) == slot_name(name));
                prop_assert!(
                    !existing.contains(slot_name(name).as_str()) || wanted,
                    "forgot {name} while its slot still exists (it would leak)"
                );
            }
        }
        // Every registered member other than the primary has its slot after this cycle.
        for name in w.registry.keys().filter(|n| **n != c.me) {
            let slot = slot_name(name);
            if w.registry.get(name) != Some(&0) {
                prop_assert!(
                    existing.contains(slot.as_str()) || w.create.contains(&slot),
                    "registered member {name} has no slot"
                );
            }
        }
        // Slots of names no member ever had are the DBA's: untouched.
        prop_assert!(!w.drop.iter().any(|s| s == "dba_slot"));
    }
}

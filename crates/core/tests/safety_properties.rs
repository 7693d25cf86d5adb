//! Safety properties of `decide()` over arbitrary observations (any store contents,
//! any local state): the key before promotion, nobody follows itself, refusals touch
//! nothing, a writable PostgreSQL without the key stops, every idle plan says why.

mod support;

use pgbaton_core::model::{
    HistoryEntry, Initialize, MemberStatus, PgState, PrimaryStatus, RequestKind, Role,
    SwitchoverPhase, SwitchoverRequest, Tags,
};
use pgbaton_core::{decide, Action, Control, DataDir, Local, Lsn, Observation, SlotObs};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES.to_vec()).prop_map(str::to_string)
}

fn lsn() -> impl Strategy<Value = Lsn> {
    prop_oneof![
        Just(Lsn(0x1000)),
        Just(Lsn(0x2000)),
        (0u64..0x4000).prop_map(Lsn)
    ]
}

fn local() -> impl Strategy<Value = Local> {
    let data = prop_oneof![
        2 => Just(DataDir::Empty),
        4 => Just(DataDir::Primary),
        5 => Just(DataDir::Standby),
        1 => Just(DataDir::Foreign),
    ];
    let control = prop::option::of(
        (any::<bool>(), lsn(), 1u32..4, prop::option::of(lsn())).prop_map(
            |(clean, l, tl, last)| Control {
                clean_shutdown: clean,
                checkpoint_lsn: l,
                timeline: tl,
                last_record: last,
            },
        ),
    );
    let sysid = prop_oneof![
        8 => Just(Some(SYSID.to_string())),
        1 => Just(Some("999".to_string())),
        1 => Just(None),
    ];
    (
        (data, any::<bool>(), prop::bool::weighted(0.1), sysid),
        (
            prop::option::of(name()),
            any::<bool>(),
            prop::option::of(lsn()),
            1u32..4,
            prop::option::of(lsn()),
        ),
        (
            control,
            prop::collection::vec((name(), any::<bool>()), 0..3),
        ),
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |(
                (data, running, odd_recovery, system_identifier),
                (following, streaming, lsn, timeline, received_lsn),
                (control, slots),
                (stream_stalled, start_failed, reinit_requested),
            )| {
                let running = running && matches!(data, DataDir::Primary | DataDir::Standby);
                let in_recovery = running.then_some(match data {
                    DataDir::Standby => true,
                    _ => odd_recovery,
                });
                // Field by field, so that fields added to `Local` keep their default.
                let mut l = local_stopped(data, None);
                l.system_identifier = if data == DataDir::Empty {
                    None
                } else {
                    system_identifier
                };
                l.running = running;
                l.in_recovery = in_recovery;
                l.following = following.map(|f| format!("host-{f}:5432"));
                l.streaming = running && streaming;
                l.slots = slots
                    .into_iter()
                    .map(|(name, active)| SlotObs { name, active })
                    .collect();
                if running {
                    l.lsn = lsn;
                    l.timeline = Some(timeline);
                    l.received_lsn = received_lsn;
                } else {
                    l.control = control;
                }
                l.stream_stalled = running && stream_stalled;
                l.start_failed = !running && start_failed;
                l.reinit_requested = reinit_requested;
                l
            },
        )
}

fn member_status() -> impl Strategy<Value = MemberStatus> {
    let role = prop_oneof![
        Just(Role::Primary),
        Just(Role::Replica),
        Just(Role::Unknown)
    ];
    let state = prop_oneof![
        Just(PgState::Running),
        Just(PgState::Streaming),
        Just(PgState::InRecovery),
        Just(PgState::Stopped),
        Just(PgState::Starting),
        Just(PgState::CreatingReplica),
    ];
    (
        name(),
        role,
        state,
        1u32..4,
        lsn(),
        prop::option::of(0u64..(3 * MB)),
        (any::<bool>(), 0i32..3),
        prop::collection::vec(name(), 0..4),
        0u64..20_000,
    )
        .prop_map(
            |(n, role, state, tl, l, lag, (nofailover, priority), slots, ago)| MemberStatus {
                role,
                state,
                timeline: Some(tl),
                lag_bytes: lag,
                tags: Tags {
                    nofailover,
                    failover_priority: priority,
                    ..Tags::default()
                },
                slots,
                updated_ms: NOW - ago,
                ..replica(&n, l.0)
            },
        )
}

fn request() -> impl Strategy<Value = SwitchoverRequest> {
    (
        any::<bool>(),
        prop::option::of(name()),
        name(),
        prop::option::of(prop_oneof![Just(NOW - 1), Just(NOW + 60_000)]),
        0u64..40_000,
        any::<bool>(),
        prop::option::of((lsn(), 0u64..40_000)),
    )
        .prop_map(|(failover, from, to, scheduled_ms, ago, force, stopped)| {
            SwitchoverRequest {
                kind: if failover {
                    RequestKind::Failover
                } else {
                    RequestKind::Switchover
                },
                from,
                to,
                scheduled_ms,
                requested_ms: NOW - ago,
                force,
                phase: match stopped {
                    None => SwitchoverPhase::Requested,
                    Some((checkpoint_lsn, ago)) => SwitchoverPhase::PrimaryStopped {
                        checkpoint_lsn,
                        timeline: 1,
                        stopped_ms: NOW - ago,
                    },
                },
            }
        })
}

fn observation() -> impl Strategy<Value = Observation> {
    let init = prop_oneof![
        1 => Just(None),
        1 => name().prop_map(|o| Some(Initialize { owner: o, system_identifier: None })),
        6 => name().prop_map(|o| Some(Initialize { owner: o, system_identifier: Some(SYSID.into()) })),
    ];
    let status = prop::option::of(
        (
            prop_oneof![name(), Just("p".to_string())],
            lsn(),
            prop::collection::btree_map(name(), prop_oneof![Just(0u64), Just(NOW - 1000)], 0..4),
        )
            .prop_map(|(primary, lsn, registry)| PrimaryStatus {
                primary,
                lsn,
                timeline: 1,
                updated_ms: NOW - 1000,
                registry,
                hosts: Default::default(),
            }),
    );
    let history = prop::collection::vec((2u32..4, lsn()), 0..3).prop_map(|h| {
        h.into_iter()
            .map(|(tl, l)| HistoryEntry {
                timeline: tl,
                switch_lsn: Some(l),
                ..fork(tl, 0)
            })
            .collect::<Vec<_>>()
    });
    (
        (
            name(),
            init,
            prop::option::of(name()),
            1i64..3,
            prop::option::of(1i64..3),
        ),
        local(),
        prop::collection::vec(member_status(), 0..5),
        (
            status,
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, request()),
            history,
        ),
        (0u64..10_000, any::<bool>(), 0i32..3),
    )
        .prop_map(
            |(
                (me, init, leader, leader_lease, my_lease),
                local,
                members,
                (status, paused, request, history),
                (waited, nofailover, priority),
            )| {
                let mut o = Obs::new(&me)
                    .local(local)
                    .config(|c| c.paused = paused)
                    .history(history);
                o.0.cluster.initialize = init.map(|i| (i, INIT_REV));
                o.0.cluster.leader = leader.clone();
                o.0.cluster.leader_lease = leader.as_ref().map(|_| leader_lease);
                o.0.my_lease = my_lease;
                o.0.cluster.members = members
                    .into_iter()
                    .map(|m| (m.name.clone(), m))
                    .collect::<BTreeMap<_, _>>();
                o.0.cluster.status = status;
                o.0.cluster.switchover = request.map(|r| (r, SW_REV));
                o.0.leaderless_since_ms = leader.is_none().then_some(NOW - waited);
                o.0.tags = Tags {
                    nofailover,
                    failover_priority: priority,
                    ..Tags::default()
                };
                o.build()
            },
        )
}

/// The index of the first action of kind `k`.
fn first_of(p: &[Action], k: &str) -> Option<usize> {
    p.iter().position(|a| kind(a) == k)
}

/// The cluster is bootstrapped and this member's data belongs to it.
fn running_cluster(o: &Observation) -> bool {
    let complete = matches!(&o.cluster.initialize, Some((i, _)) if i.system_identifier.is_some());
    complete
        && o.local.data != DataDir::Foreign
        && o.local
            .system_identifier
            .as_deref()
            .is_none_or(|s| s == SYSID)
}

fn writable(o: &Observation) -> bool {
    o.local.running && o.local.in_recovery == Some(false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_are_safe(o in observation()) {
        let plan = decide(&o);
        let a = &plan.actions;
        let leads = o.cluster.leader.as_deref() == Some(o.me.as_str());
        let takes = first_of(a, "AcquireLeader");

        // (c) every plan without actions has a reason; (d) deterministic.
        prop_assert!(!plan.reason.trim().is_empty(), "no reason: {plan:?}");
        prop_assert_eq!(&decide(&o.clone()), &plan);

        // Promotion and starting as primary happen only under the leader key.
        for k in ["Promote", "StartPrimary", "HandOver", "PublishStatus", "DropSlot"] {
            if let Some(i) = first_of(a, k) {
                prop_assert!(leads || takes.is_some_and(|t| t < i), "{k} without the leader key: {plan:?}");
            }
        }
        // In a bootstrapped cluster the key is never taken from a member that holds
        // it. (While bootstrapping, the claim owner plans AcquireLeader whatever the
        // leader key says; the agent's compare-and-set refuses it then.)
        if let Some(other) = o.cluster.leader.as_deref().filter(|l| *l != o.me && running_cluster(&o)) {
            prop_assert!(takes.is_none(), "takes the key held by {other}: {plan:?}");
        }
        // Follow, rewind and clone from the leader, never from oneself.
        for act in a {
            if let Action::Follow { leader } | Action::Rewind { leader } | Action::CloneFrom { leader } | Action::Reclone { leader } = act {
                prop_assert_eq!(Some(leader.as_str()), o.cluster.leader.as_deref(), "{:?} from a non-leader", act);
                prop_assert_ne!(leader, &o.me, "{:?} from itself", act);
            }
            if let Action::HandOver { to } = act {
                prop_assert_ne!(to, &o.me);
                prop_assert!(matches!(&o.cluster.switchover, Some((r, _)) if &r.to == to));
            }
        }
        // A refusal touches nothing else.
        if first_of(a, "Refuse").is_some() {
            prop_assert_eq!(a.len(), 1, "a refusal with other actions: {:?}", plan);
        }
        // Another member holds the key: a writable PostgreSQL here stops first.
        if running_cluster(&o) && writable(&o) && !leads && o.cluster.leader.is_some() && !o.local.reinit_requested {
            let first = a.first().map(kind);
            prop_assert_eq!(first.as_deref(), Some("StopPostgres"), "{:?}", plan);
        }
    }
}

/// Properties that currently fail: see the `rule_gaps` tests for the minimal cases.
mod known_gaps {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No leader key: a writable PostgreSQL either takes the key back (it was the
        /// last primary) or stops; it never just keeps running.
        #[test]

        fn writable_without_any_leader_stops_or_reclaims(o in observation()) {
            let plan = decide(&o);
            if running_cluster(&o) && writable(&o) && o.cluster.leader.is_none() {
                let first = plan.actions.first().map(kind);
                prop_assert!(
                    matches!(first.as_deref(), Some("StopPostgres" | "AcquireLeader" | "ClearSwitchover")),
                    "{plan:?}"
                );
            }
        }
    }
}

//! The health rules on hand-made snapshots: primary, replica, stopped PostgreSQL,
//! expired lease, stale snapshot.

use super::super::health::{evaluate, Check};
use super::{primary, replica};
use crate::api::AgentSnapshot;
use std::time::{Duration, Instant};

const ALL: [Check; 8] = [
    Check::Primary,
    Check::Replica,
    Check::ReadOnly,
    Check::Sync,
    Check::Async,
    Check::Health,
    Check::Liveness,
    Check::Readiness,
];

fn passing(snap: &AgentSnapshot, now: Instant, lag: Option<u64>) -> Vec<&'static str> {
    ALL.iter()
        .filter(|c| evaluate(**c, snap, now, lag, now).ok)
        .map(|c| c.name())
        .collect()
}

#[test]
fn a_healthy_primary() {
    let now = Instant::now();
    let s = primary(now);
    assert_eq!(
        passing(&s, now, None),
        ["primary", "read-only", "health", "liveness", "readiness"]
    );
    let v = evaluate(Check::Primary, &s, now, None, now);
    assert!(v.reason.contains("s left"), "{}", v.reason);
    assert_eq!(
        evaluate(Check::Replica, &s, now, None, now).reason,
        "PostgreSQL is not in recovery (not a replica)"
    );
}

#[test]
fn a_streaming_replica_and_its_lag_limit() {
    let now = Instant::now();
    let s = replica(now, 5000);
    assert_eq!(
        passing(&s, now, None),
        [
            "replica",
            "read-only",
            "async",
            "health",
            "liveness",
            "readiness"
        ]
    );
    assert!(evaluate(Check::Replica, &s, now, Some(5000), now).ok);
    let v = evaluate(Check::Replica, &s, now, Some(4999), now);
    assert!(
        !v.ok && v.reason.contains("5000 bytes behind"),
        "{}",
        v.reason
    );
    assert!(!evaluate(Check::ReadOnly, &s, now, Some(10), now).ok);
    assert!(!evaluate(Check::Readiness, &s, now, Some(10), now).ok);
    assert!(
        !evaluate(Check::Sync, &s, now, None, now).ok,
        "no sync set yet"
    );
    assert!(evaluate(Check::Async, &s, now, None, now).ok);
    let mut sync = replica(now, 0);
    sync.sync_standby = true;
    assert!(evaluate(Check::Sync, &sync, now, None, now).ok);
    assert!(!evaluate(Check::Async, &sync, now, None, now).ok);
    // readiness defaults to maximum_lag_on_failover
    let far = replica(now, s.cluster_config.maximum_lag_on_failover + 1);
    assert!(!evaluate(Check::Readiness, &far, now, None, now).ok);
    assert!(evaluate(Check::Replica, &far, now, None, now).ok);
}

#[test]
fn a_replica_without_walreceiver_or_tagged_noloadbalance() {
    let now = Instant::now();
    let mut s = replica(now, 0);
    s.streaming = false;
    assert_eq!(passing(&s, now, None), ["health", "liveness"]);
    let mut s = replica(now, 0);
    if let Some(m) = s.member.as_mut() {
        m.tags.noloadbalance = true;
    }
    assert!(!evaluate(Check::Replica, &s, now, None, now).ok);
    assert!(!evaluate(Check::ReadOnly, &s, now, None, now).ok);
    assert!(evaluate(Check::Readiness, &s, now, None, now).ok);
}

#[test]
fn postgres_down_is_never_primary() {
    let now = Instant::now();
    for mut s in [primary(now), replica(now, 0)] {
        s.pg_running = false;
        s.in_recovery = None;
        s.streaming = false;
        assert_eq!(passing(&s, now, None), ["liveness"]);
        assert_eq!(
            evaluate(Check::Primary, &s, now, None, now).reason,
            "PostgreSQL is not running"
        );
    }
    // Running but recovery state unknown: not primary either.
    let mut s = primary(now);
    s.in_recovery = None;
    assert!(!evaluate(Check::Primary, &s, now, None, now).ok);
}

#[test]
fn an_expired_or_missing_lease_is_never_primary() {
    let now = Instant::now();
    let mut s = primary(now);
    s.lease_renewed_at =
        Some(now - Duration::from_secs(s.cluster_config.ttl) - Duration::from_millis(1));
    let v = evaluate(Check::Primary, &s, now, None, now);
    assert!(!v.ok && v.reason.contains("expired"), "{}", v.reason);
    assert!(!evaluate(Check::ReadOnly, &s, now, None, now).ok);
    let mut s = primary(now);
    s.lease_renewed_at = None;
    assert!(!evaluate(Check::Primary, &s, now, None, now).ok);
    let mut s = primary(now);
    s.holds_leader_key = false;
    let v = evaluate(Check::Primary, &s, now, None, now);
    assert_eq!(v.reason, "this member does not hold the leader key");
}

#[test]
fn a_stale_snapshot_answers_no_role() {
    let now = Instant::now();
    for mut s in [primary(now), replica(now, 0)] {
        // loop_wait 1 → freshness window 3 s; ttl 10 → liveness window 13 s.
        s.last_cycle_at = Some(now - Duration::from_secs(4));
        assert_eq!(passing(&s, now, None), ["liveness"]);
        let v = evaluate(Check::Primary, &s, now, None, now);
        assert!(v.reason.contains("stale"), "{}", v.reason);
        s.last_cycle_at = Some(now - Duration::from_secs(14));
        assert!(passing(&s, now, None).is_empty());
    }
    // Just inside the window: still fresh.
    let mut s = primary(now);
    s.last_cycle_at = Some(now - Duration::from_millis(2900));
    assert!(evaluate(Check::Primary, &s, now, None, now).ok);
    // The window grows with loop_wait.
    let mut s = primary(now);
    s.cluster_config.loop_wait = 5;
    s.cluster_config.ttl = 30;
    s.last_cycle_at = Some(now - Duration::from_secs(14));
    assert!(evaluate(Check::Primary, &s, now, None, now).ok);
}

#[test]
fn before_the_first_cycle() {
    let started = Instant::now();
    let s = AgentSnapshot::initial("node1", Default::default());
    let now = started + Duration::from_secs(1);
    for c in ALL {
        let v = evaluate(c, &s, now, None, started);
        assert_eq!(v.ok, c == Check::Liveness, "{c:?}: {}", v.reason);
    }
    let late = started + Duration::from_secs(60);
    assert!(!evaluate(Check::Liveness, &s, late, None, started).ok);
}

#[test]
fn a_primary_handing_over_fails_the_primary_check_at_once() {
    // A switchover starts with a checkpoint and a clean stop: load balancers must stop
    // sending writes here before PostgreSQL refuses them, not a check period later.
    let now = Instant::now();
    let mut s = primary(now);
    s.handing_over = Some("node2".into());
    let v = evaluate(Check::Primary, &s, now, None, now);
    assert!(!v.ok, "{}", v.reason);
    assert!(v.reason.contains("handing over to node2"), "{}", v.reason);
    assert!(!evaluate(Check::Readiness, &s, now, None, now).ok);
    // Still a running PostgreSQL until it stops.
    assert!(evaluate(Check::Health, &s, now, None, now).ok);
}

//! One test per finding of the safety review (`shared/reviews/safety-2026-11-29.md`)
//! that the decision core can show on its own: the observation that triggered the
//! finding, and the plan the fixed rule gives. Each failed on the code at 382e02b.

mod support;

use pgbaton_core::model::{HistoryEntry, MemberStatus, PrimaryStatus, SyncState, SynchronousMode};
use pgbaton_core::{decide, Action, DataDir, Plan};
use support::*;

const LSN: u64 = 0x4000_0000;

fn sync_key(leader: &str, members: &[&str], quorum: Option<u32>) -> Option<(SyncState, i64)> {
    Some((
        SyncState {
            leader: leader.into(),
            members: members.iter().map(|s| s.to_string()).collect(),
            quorum,
        },
        77,
    ))
}

fn promotion(tl: u32, old: &str, new: &str) -> HistoryEntry {
    HistoryEntry {
        old_primary: Some(old.into()),
        new_primary: new.into(),
        ..fork(tl, LSN)
    }
}

/// A `status` key on timeline `tl`.
fn status_tl(primary: &str, lsn: u64, tl: u32) -> PrimaryStatus {
    PrimaryStatus {
        timeline: tl,
        ..status(primary, lsn, &[])
    }
}

fn takes_key(plan: &Plan) -> bool {
    plan.actions.contains(&Action::AcquireLeader)
}

fn on_timeline(m: MemberStatus, tl: u32) -> MemberStatus {
    MemberStatus {
        timeline: Some(tl),
        ..m
    }
}

/// Finding 1: the old primary `p` (timeline 1, fenced: stopped) comes back with no
/// leader in the store. `r` was promoted to timeline 2 and died; the `status` key still
/// names `p` (r died before publishing it, or p's delayed write restored it). Taking the
/// key back would rewind r and lose what it acknowledged.
#[test]
fn f1_old_primary_does_not_take_the_key_back_over_a_newer_promotion() {
    let obs = Obs::new("p")
        .status(status("p", LSN, &[]))
        .history(vec![promotion(2, "p", "r")])
        .local(local_stopped(
            DataDir::Primary,
            Some(control(false, LSN, 1)),
        ))
        .leaderless_for(60_000)
        .build();
    let plan = decide(&obs);
    assert!(!takes_key(&plan), "{plan:?}");
    assert!(
        plan.reason.contains("r was promoted to timeline 2"),
        "{}",
        plan.reason
    );
}

/// Finding 1, synchronous mode: the history append has not happened yet, but the sync
/// key (rewritten by the winner before it promotes) names `r`.
#[test]
fn f1_sync_key_of_another_member_forbids_taking_the_key_back() {
    let obs = Obs::new("p")
        .status(status("p", LSN, &[]))
        .config(|c| c.synchronous_mode = SynchronousMode::On)
        .local(local_stopped(
            DataDir::Primary,
            Some(control(false, LSN, 1)),
        ))
        .leaderless_for(60_000);
    let mut obs = obs.build();
    obs.cluster.sync = sync_key("r", &[], None);
    let plan = decide(&obs);
    assert!(!takes_key(&plan), "{plan:?}");
    assert!(plan.reason.contains("belongs to r"), "{}", plan.reason);
}

/// Finding 1: a writable old primary that may not take the key back is stopped.
#[test]
fn f1_a_running_old_primary_that_may_not_take_back_is_stopped() {
    let obs = Obs::new("p")
        .status(status("p", LSN, &[]))
        .history(vec![promotion(2, "p", "r")])
        .local(local_primary(LSN))
        .leaderless_for(60_000)
        .build();
    let plan = decide(&obs);
    assert_eq!(kinds(&plan.actions), ["StopPostgres"], "{}", plan.reason);
}

/// Finding 1, liveness: the last primary whose history is the newest still takes the
/// key back (a whole-cluster restart), in either mode.
#[test]
fn f1_the_newest_primary_takes_the_key_back() {
    let obs = Obs::new("r")
        .status(status("r", LSN, &[]))
        .history(vec![promotion(2, "p", "r")])
        .config(|c| c.synchronous_mode = SynchronousMode::On)
        .local(local_stopped(DataDir::Primary, Some(control(true, LSN, 2))))
        .leaderless_for(60_000);
    let mut obs = obs.build();
    obs.cluster.sync = sync_key("r", &[], None);
    let plan = decide(&obs);
    assert!(takes_key(&plan), "{plan:?}");
    // Promoted to timeline 3, killed before the history append: still the newest.
    let obs = Obs::new("r")
        .status(status("r", LSN, &[]))
        .history(vec![promotion(2, "p", "r")])
        .local(local_stopped(
            DataDir::Primary,
            Some(control(false, LSN, 3)),
        ))
        .leaderless_for(60_000)
        .build();
    assert!(takes_key(&decide(&obs)));
    // A stale `status` naming the old primary on an older timeline does not block the
    // member that promoted after it was written.
    let obs = Obs::new("r")
        .status(status("p", LSN, &[]))
        .history(vec![promotion(2, "p", "r")])
        .local(local_stopped(
            DataDir::Primary,
            Some(control(false, LSN, 2)),
        ))
        .leaderless_for(60_000)
        .build();
    assert!(takes_key(&decide(&obs)));
}

/// Finding 1: every promotion names its winner in the `status` key before PostgreSQL
/// promotes, so a crash right after the promotion leaves no stale status behind.
#[test]
fn f1_the_winner_claims_the_status_before_promoting() {
    let obs = Obs::new("b")
        .status(status("a", LSN, &[("b", NOW)]))
        .member(replica("b", LSN))
        .local(local_replica("host-a:5432", LSN))
        .leaderless_for(60_000)
        .build();
    let plan = decide(&obs);
    let claim = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::PublishStatus(s) if s.primary == "b"));
    let promote = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::Promote { .. }));
    assert!(
        matches!((claim, promote), (Some(c), Some(p)) if c < p),
        "{plan:?}"
    );
}

/// Finding 1, liveness in synchronous mode: the winner rewrote the sync key and died
/// before promoting. It is the only member known to hold every acknowledged commit;
/// when it comes back as a replica it finishes the promotion.
#[test]
fn f1_a_designated_successor_finishes_its_promotion() {
    let obs = Obs::new("r")
        .status(status("p", LSN, &[]))
        .config(|c| c.synchronous_mode = SynchronousMode::On)
        .member(replica("r", LSN))
        .local(local_replica("host-p:5432", LSN))
        .leaderless_for(60_000);
    let mut obs = obs.build();
    obs.cluster.sync = sync_key("r", &[], None);
    let plan = decide(&obs);
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::Promote { .. })),
        "{plan:?}"
    );
}

/// Finding 8: `t` missed the promotion to timeline 2 and is ahead on timeline 1; `s`
/// follows timeline 2. `t` must not win on its LSN.
#[test]
fn f8_a_member_on_an_older_timeline_is_not_elected() {
    let base = Obs::new("t")
        .status(status_tl("r", LSN, 2))
        .history(vec![promotion(2, "p", "r")])
        .member(on_timeline(replica("t", LSN + 4096), 1))
        .member(on_timeline(replica("s", LSN), 2))
        .leaderless_for(60_000);
    let t = decide(
        &base
            .clone()
            .local(local_replica("host-r:5432", LSN + 4096))
            .build(),
    );
    assert!(!takes_key(&t), "{t:?}");
    assert!(t.reason.contains("t is on timeline 1"), "{}", t.reason);
    let mut s_obs = base.build();
    s_obs.me = "s".into();
    s_obs.local = local_replica("host-r:5432", LSN);
    s_obs.local.timeline = Some(2);
    assert!(takes_key(&decide(&s_obs)));
}

/// Finding 5: in synchronous mode the synchronous standby is promoted even when it
/// trails the primary's last published LSN by more than the lag limit (that WAL was
/// never acknowledged).
#[test]
fn f5_the_lag_limit_does_not_exclude_the_synchronous_standby() {
    let obs = Obs::new("b")
        .status(status("a", LSN + 20 * MB, &[]))
        .config(|c| c.synchronous_mode = SynchronousMode::On)
        .member(replica("b", LSN))
        .local(local_replica("host-a:5432", LSN))
        .leaderless_for(60_000);
    let mut obs = obs.build();
    obs.cluster.sync = sync_key("a", &["b"], None);
    let plan = decide(&obs);
    assert!(takes_key(&plan), "{}", plan.reason);
}

/// Finding 4: quorum mode, `ANY 1 (a, c)`: an operator failover to `c` must not judge the
/// quorum on `a`'s report from before the primary was lost (a may hold commits c lacks).
#[test]
fn f4_quorum_operator_failover_waits_for_fresh_reports() {
    let stale = MemberStatus {
        updated_ms: NOW - 30_000,
        ..replica("a", LSN)
    };
    let obs = Obs::new("c")
        .status(status("p", LSN, &[]))
        .config(|c| {
            c.synchronous_mode = SynchronousMode::Quorum;
            c.failover_grace = 10;
        })
        .member(stale)
        .member(replica("c", LSN))
        .request(failover_request("c", false))
        .local(local_replica("host-p:5432", LSN))
        .leaderless_for(2_000);
    let mut obs = obs.build();
    obs.cluster.sync = sync_key("p", &["a", "c"], Some(1));
    let plan = decide(&obs);
    assert!(!takes_key(&plan), "{plan:?}");
    assert!(plan.reason.contains("waiting for a"), "{}", plan.reason);
}

/// Issue 11 (lab): a partitioned member's key expires while a new primary takes over.
/// The primary keeps allowing replication from its last known host while it is
/// registered, so it can rejoin the moment the partition heals.
#[test]
fn lab_a_registered_member_keeps_replication_access_after_its_key_expires() {
    let mut st = status("b", LSN, &[("a", NOW - 20_000), ("b", NOW), ("c", NOW)]);
    st.hosts = [
        ("a", "10.77.0.11"),
        ("b", "10.77.0.12"),
        ("c", "10.77.0.13"),
    ]
    .iter()
    .map(|(n, h)| (n.to_string(), h.to_string()))
    .collect();
    let obs = Obs::new("b")
        .leader("b", 7)
        .my_lease(7)
        .member(MemberStatus {
            host: "10.77.0.12".into(),
            ..primary("b", LSN, &["a", "c"])
        })
        .member(MemberStatus {
            host: "10.77.0.13".into(),
            ..replica("c", LSN)
        })
        .status(st)
        .local(local_primary(LSN))
        .build();
    let plan = decide(&obs);
    assert!(
        plan.actions.contains(&Action::AllowReplicationFrom {
            hosts: vec!["10.77.0.11".into(), "10.77.0.13".into()]
        }),
        "{plan:?}"
    );
}

/// Finding 11: a replica whose postmaster runs but does not answer SQL yet (a crash
/// restart, a long start after a clone) is not diverged: no rewind, no re-clone.
#[test]
fn f11_an_unresponsive_replica_is_waited_for_not_rewound() {
    let obs = Obs::new("b")
        .leader("a", 7)
        .member(primary("a", LSN, &["b"]))
        .local(local_stopped(DataDir::Standby, None))
        .with_local(|l| l.unresponsive = true)
        .build();
    let plan = decide(&obs);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(plan.reason.contains("does not answer"), "{}", plan.reason);
}

/// Simulator finding S4 (seed 1000411, sync on): the primary `a` ran alone (sync key
/// `{leader: a, members: []}`), its start failed (EIO) and it released the key after
/// primary_start_timeout. No replica may be promoted under that sync key, so `a` must
/// retry once its data directory reads again; before the fix it waited "for a replica
/// to be promoted" forever. The takeback rules still apply, and a sync key that lists a
/// standby, or asynchronous mode, still leaves the failover to the replicas.
#[test]
fn s4_a_sole_sync_leader_whose_start_failed_retries() {
    let failed = |mode: SynchronousMode| {
        Obs::new("a")
            .status(status("a", LSN, &[]))
            .member(replica("b", LSN))
            .config(|c| c.synchronous_mode = mode)
            .local(local_stopped(
                DataDir::Primary,
                Some(control(false, LSN, 1)),
            ))
            .with_local(|l| l.start_failed = true)
            .leaderless_for(60_000)
            .build()
    };
    for mode in [SynchronousMode::On, SynchronousMode::Quorum] {
        let mut obs = failed(mode);
        obs.cluster.sync = sync_key("a", &[], None);
        let plan = decide(&obs);
        assert!(takes_key(&plan), "{mode:?}: {plan:?}");
        assert!(plan.actions.contains(&Action::StartPrimary), "{plan:?}");
        assert!(plan.reason.contains("retry the start"), "{}", plan.reason);

        // A listed synchronous standby holds everything: it takes over instead.
        let mut obs = failed(mode);
        obs.cluster.sync = sync_key("a", &["b"], None);
        assert!(!takes_key(&decide(&obs)), "{mode:?}");

        // The takeback rules hold: another member's promotion forbids it.
        let mut obs = failed(mode);
        obs.cluster.sync = sync_key("a", &[], None);
        obs.cluster.history = vec![promotion(2, "a", "b")];
        assert!(!takes_key(&decide(&obs)), "{mode:?}");
    }
    let mut obs = failed(SynchronousMode::Off);
    obs.cluster.sync = sync_key("a", &[], None);
    assert!(!takes_key(&decide(&obs)));
}

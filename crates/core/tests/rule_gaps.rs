//! Minimal cases where `decide()` breaks a rule of issues 4 and 5. Each test states the
//! rule, is ignored with the reason, and passes once the rule is fixed in `src/`.

mod support;

use pgbaton_core::model::{MemberStatus, PgState};
use pgbaton_core::{decide, Action, DataDir, Observation, Plan};
use support::*;

const P_LSN: u64 = 0x4000_0000;

fn plan_of(o: Obs) -> (Observation, Plan) {
    let obs = o.build();
    let plan = decide(&obs);
    (obs, plan)
}

fn in_recovery(name: &str) -> MemberStatus {
    MemberStatus {
        state: PgState::InRecovery,
        ..replica(name, P_LSN)
    }
}

/// Issue 5, operator controls: `pgbaton failover --to NAME` promotes a chosen member
/// when there is no healthy primary; only a data-losing choice needs `--force`.
///
/// When the primary is dead, its replicas' WAL receivers are down, so they report
/// `in recovery`, not `streaming` (agent/publish.rs). `candidate_fit` demands
/// `streaming`, so an unforced failover to a replica that has every byte the primary
/// published is refused: "c is in recovery, not streaming (use --force ...)".
#[test]

fn unforced_failover_to_an_up_to_date_replica_of_a_dead_primary() {
    let (_, plan) = plan_of(
        Obs::new("c")
            .leaderless_for(5000)
            .member(in_recovery("b"))
            .member(in_recovery("c"))
            .status(status("a", P_LSN, &[]))
            .request(failover_request("c", false))
            .local(local_replica("host-a:5432", P_LSN))
            .with_local(|l| l.streaming = false),
    );
    assert_eq!(
        kinds(&plan.actions),
        ["AcquireLeader", "PublishStatus", "Promote"],
        "{}",
        plan.reason
    );
}

/// Issue 5, failover: when the primary is gone, the best eligible replica takes over.
///
/// A switchover a → b: `a` handed over (stopped cleanly, released the key) and then
/// died; `b` did not promote within `switchover_timeout`. From then on `b` says
/// "switchover timed out: not promoting", every other replica says "switchover to b in
/// progress", and only `a` (gone) would clear the request. Nobody ever deletes the
/// `switchover` key, so the cluster stays without a primary until an operator cancels.
#[test]

fn timed_out_switchover_without_its_old_primary_falls_back_to_failover() {
    let view = |me: &str| {
        Obs::new(me)
            .leaderless_for(40_000)
            .member(in_recovery("b"))
            .member(in_recovery("c"))
            .status(status("a", P_LSN, &[]))
            .request(switchover_stopped("a", "b", P_LSN, 31_000))
            .local(local_replica("host-a:5432", P_LSN))
            .with_local(|l| l.streaming = false)
    };
    let plans: Vec<Plan> = ["b", "c"].iter().map(|m| plan_of(view(m)).1).collect();
    assert!(
        plans.iter().any(|p| p
            .actions
            .iter()
            .any(|a| matches!(a, Action::ClearSwitchover { .. } | Action::AcquireLeader))),
        "every live member is idle: {plans:?}"
    );
}

/// Safety rule 1 (defence in depth, behind the fence): with no leader key, a
/// PostgreSQL running as a writable primary either takes the key back (it was the last
/// primary) or is stopped. Three pending requests short-circuit that rule and leave it
/// running: an operator failover to another member, a switchover in progress to
/// another member, and a reinit request naming this member.
#[test]

fn writable_primary_without_the_key_stops_even_with_a_pending_request() {
    let base = || {
        Obs::new("d")
            .leaderless_for(1000)
            .member(replica("c", P_LSN))
            .status(status("a", P_LSN, &[]))
            .local(local_primary(P_LSN))
    };
    let cases = [
        (
            "operator failover to c pending",
            base().request(failover_request("c", false)),
        ),
        (
            "switchover a -> c in progress",
            base().request(switchover_stopped("a", "c", P_LSN, 1000)),
        ),
        (
            "reinit of d requested",
            base().with_local(|l| l.reinit_requested = true),
        ),
    ];
    let mut bad = Vec::new();
    for (what, o) in cases {
        let (_, plan) = plan_of(o);
        if plan.actions.first() != Some(&Action::StopPostgres) {
            bad.push(format!("{what}: {plan:?}"));
        }
    }
    assert!(bad.is_empty(), "not stopped:\n{}", bad.join("\n"));
}

/// Issue 5, PostgreSQL crash on a primary whose agent is alive: restart it in place,
/// or release the key. A reinit request naming the leader (the CLI refuses one, but it
/// can race with a promotion) makes `decide` skip every primary duty: a crashed
/// PostgreSQL is neither restarted nor is the key released, and no status is published,
/// until the CLI withdraws the request at its timeout.
#[test]

fn reinit_request_does_not_suspend_the_primary() {
    let (_, plan) = plan_of(
        Obs::new("a")
            .leader("a", 7)
            .my_lease(7)
            .member(primary("a", P_LSN, &["b"]))
            .member(replica("b", P_LSN))
            .status(status("a", P_LSN, &[("a", NOW), ("b", NOW)]))
            .local(local_stopped(
                DataDir::Primary,
                Some(control(false, P_LSN, 1)),
            ))
            .with_local(|l| l.reinit_requested = true),
    );
    assert_eq!(kinds(&plan.actions), ["StartPrimary"], "{}", plan.reason);
}

//! The safety review's findings as scripted simulator schedules. Each failed on the
//! code before its fix (the violation it printed is in the comment) and must pass now.

use pgbaton_sim::regressions::options;
use pgbaton_sim::run::run;

fn passes(name: &str) {
    let o = options(name).expect("known regression");
    let out = run(&o);
    assert!(
        out.violations.is_empty(),
        "{name}: {:?}\n--- trace ---\n{}",
        out.violations,
        out.trace.join("\n")
    );
}

/// Before the fix: "synchronous mode: new primary node3 lacks 399 acknowledged
/// commits", then "pg_rewind on node1 destroys the only copy of 399 acknowledged commits".
#[test]
fn finding1_old_primary_does_not_take_the_key_back() {
    passes("finding1");
}

/// Before the fix: "availability: no member other than node3 accepts writes".
#[test]
fn finding2_a_stuck_primary_loses_its_key() {
    passes("finding2");
}

/// Before the fix: "two writable primaries: node1 became writable while node3 accepts writes".
#[test]
fn finding3_a_dead_fence_is_replaced_or_the_agent_fences() {
    passes("finding3");
}

/// Before the fix: "synchronous mode: new primary node2 lacks 100 acknowledged commits".
#[test]
fn finding4_operator_failover_in_quorum_mode_needs_fresh_reports() {
    passes("finding4");
}

/// Before the fix: "availability: no member other than node3 accepts writes".
#[test]
fn finding5_the_synchronous_standby_is_promoted_despite_the_lag_limit() {
    passes("finding5");
}

/// The interrupted bootstrap of issue 10 (Ctrl-C of `pgbaton demo`, then start again):
/// every agent is killed at one moment of the bootstrap and started 500 ms later. Before
/// the fix (main 05628d3 and its parents), kill times of 950-1150 ms and 1185-1190 ms
/// never converged: one member kept a data directory initialized under a claim another
/// member had released and refused forever ("its system identifier is ..., but cluster
/// members have ...").
#[test]
fn interrupted_bootstrap_converges() {
    for ms in (100..=2500)
        .step_by(100)
        .chain([950, 1020, 1050, 1150, 1185, 1190])
    {
        passes(&format!("bootstrap-{ms}"));
    }
}

/// S2, found by random campaigns (10 of 10,000 seeds before the merge of main, all
/// "two writable primaries"): a restarted agent left its running primary protected
/// only by the previous agent's fence while it waited for its old member key. Before
/// the fix: "two writable primaries". Now a starting agent stops a primary it finds
/// running before it waits for anything.
#[test]
fn restarted_agent_protects_its_running_primary() {
    passes("restart");
}

/// S4, found by a campaign (seed 1000411, sync on): the primary, running alone in the
/// sync key, fails to start and releases the key; no replica may be promoted under
/// that sync key. Before the fix: "liveness: no primary" (it waited "for a replica to be
/// promoted" forever). Now it takes the key back once its server starts again.
#[test]
fn a_sole_sync_leader_whose_start_failed_takes_the_key_back() {
    passes("s4");
}

/// S6: a promotion cut off from the store before it recorded its timeline; the next
/// promotion must take another number (fails without the timeline reservation).
#[test]
fn a_timeline_cut_off_before_it_was_recorded_is_not_reused() {
    passes("s6");
}

/// Safety review finding 9: a data directory moved away under its running primary.
/// Without the agent's check (`agent/vanished.rs`): "two writable primaries: node… became
/// writable while node… accepts writes".
#[test]
fn finding9_a_moved_data_directory_leaves_no_writable_postmaster_behind() {
    passes("finding9");
}

/// Finding 9 with the primary cut off from the store. Before the check ran ahead of the
/// store read: "two writable primaries: node… became writable while node… accepts writes".
#[test]
fn finding9_a_moved_data_directory_is_stopped_during_a_store_outage_too() {
    passes("finding9-isolated");
}

/// Safety review finding 12: no standby is listed in the sync key before the
/// checkpointer applied the setting that makes commits wait for it.
#[test]
fn finding12_no_sync_standby_is_listed_before_commits_wait_for_it() {
    passes("finding12");
}

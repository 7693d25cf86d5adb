//! Table-driven tests of `decide()`: one row per HA rule, each with the observation,
//! the expected first actions and a piece of the reason a DBA would read.

mod support;

use pgbaton_core::model::{PgState, PrimaryStatus, Role, Tags};
use pgbaton_core::{decide, Action, Control, DataDir, Lsn, Observation};
use support::*;

/// `first` of a row whose action order is not the rule under test: any non-empty plan.
const ANY: &[&str] = &["*"];

/// One row: what the rule is, the input, and what the plan must look like.
struct Case {
    what: &'static str,
    obs: Observation,
    /// Kinds of the plan's first actions, in order; empty means "no action".
    first: &'static [&'static str],
    /// Actions that must appear somewhere in the plan, exactly.
    has: Vec<Action>,
    /// Kinds that must not appear in the plan.
    never: &'static [&'static str],
    /// A piece of the reason.
    reason: &'static str,
}

fn case(
    what: &'static str,
    obs: Obs,
    first: &'static [&'static str],
    reason: &'static str,
) -> Case {
    Case {
        what,
        obs: obs.build(),
        first,
        has: Vec::new(),
        never: &[],
        reason,
    }
}

impl Case {
    fn has(mut self, a: Action) -> Case {
        self.has.push(a);
        self
    }
    fn never(mut self, kinds: &'static [&'static str]) -> Case {
        self.never = kinds;
        self
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let plan = decide(&c.obs);
        let got = kinds(&plan.actions);
        let mut why = Vec::new();
        if c.first == ANY {
            if got.is_empty() {
                why.push("expected some action".to_string());
            }
        } else if c.first.is_empty() {
            if !got.is_empty() {
                why.push("expected no action".to_string());
            }
        } else if got.len() < c.first.len() || got[..c.first.len()] != *c.first {
            why.push(format!("expected the plan to start with {:?}", c.first));
        }
        for a in &c.has {
            if !plan.actions.contains(a) {
                why.push(format!("expected {a:?} in the plan"));
            }
        }
        for k in c.never {
            if got.iter().any(|g| g == k) {
                why.push(format!("expected no {k} in the plan"));
            }
        }
        if !plan.reason.contains(c.reason) {
            why.push(format!("expected the reason to contain {:?}", c.reason));
        }
        if plan.reason.trim().is_empty() {
            why.push("empty reason".to_string());
        }
        if !why.is_empty() {
            failures.push(format!(
                "- {}: {}\n    got actions {:?}\n    reason {:?}",
                c.what,
                why.join("; "),
                plan.actions,
                plan.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const P_LSN: u64 = 0x4000_0000;
const LEASE: i64 = 7;

/// A healthy three-member cluster led by `a`, seen by `me` (whose PostgreSQL is left
/// empty: callers set it).
fn healthy(me: &str) -> Obs {
    Obs::new(me)
        .leader("a", LEASE)
        .member(primary("a", P_LSN, &["b", "c"]))
        .member(replica("b", P_LSN))
        .member(replica("c", P_LSN))
        .status(status(
            "a",
            P_LSN,
            &[("a", NOW - 1000), ("b", NOW - 1000), ("c", NOW - 1000)],
        ))
}

/// `a` itself, running as the primary on its own lease.
fn as_primary() -> Obs {
    healthy("a")
        .my_lease(LEASE)
        .local(local_primary(P_LSN))
        .with_local(|l| {
            l.slots = slots(&["b", "c"], &["b", "c"]);
        })
}

/// `b`, streaming from `a`.
fn as_replica() -> Obs {
    healthy("b")
        .local(local_replica("host-a:5432", P_LSN))
        .with_local(|l| l.slots = slots(&["a", "c"], &[]))
}

/// The cluster after `a` vanished: no leader key, `a`'s key expired, seen by `me`.
fn leaderless(me: &str, ago_ms: u64) -> Obs {
    Obs::new(me)
        .leaderless_for(ago_ms)
        .member(replica("b", P_LSN))
        .member(replica("c", P_LSN - 100))
        .status(status(
            "a",
            P_LSN,
            &[("a", NOW - 5000), ("b", NOW), ("c", NOW)],
        ))
}

fn not_streaming(mut m: pgbaton_core::model::MemberStatus) -> pgbaton_core::model::MemberStatus {
    m.state = PgState::InRecovery;
    m
}

#[test]
fn bootstrap_rules() {
    let primary_dir = || local_stopped(DataDir::Primary, Some(control(true, 0x100, 1)));
    run(vec![
        case(
            "no cluster and an empty data directory: race to initialize",
            Obs::new("a").no_cluster(),
            &["ClaimInitialize"],
            "racing to initialize",
        ),
        case(
            "no cluster and a primary data directory: claim it to adopt it",
            Obs::new("a").no_cluster().local(primary_dir()),
            &["ClaimInitialize"],
            "adopt",
        ),
        case(
            "no cluster and replica data: never adopted",
            Obs::new("a")
                .no_cluster()
                .local(local_stopped(DataDir::Standby, None)),
            &["Refuse"],
            "refusing to adopt a replica",
        ),
        case(
            "foreign files: refuse, whatever the store says",
            Obs::new("a")
                .no_cluster()
                .local(local_stopped(DataDir::Foreign, None)),
            &["Refuse"],
            "foreign files",
        ),
        case(
            "foreign files in a running cluster: refuse",
            as_replica().with_local(|l| {
                l.data = DataDir::Foreign;
                l.running = false;
            }),
            &["Refuse"],
            "foreign files",
        ),
        case(
            "another system identifier: refuse and touch nothing",
            as_replica().with_local(|l| l.system_identifier = Some("999".into())),
            &["Refuse"],
            "system identifier mismatch",
        ),
        case(
            "the claim owner with an empty directory runs initdb",
            Obs::new("a").claimed_by("a"),
            &["Initdb"],
            "won the initialize race",
        ),
        case(
            "the claim owner with a primary directory records the id, takes the key, starts",
            Obs::new("a").claimed_by("a").local(primary_dir()),
            &["RecordSystemIdentifier", "AcquireLeader", "StartPrimary"],
            "recording system identifier",
        )
        .has(Action::RecordSystemIdentifier {
            system_identifier: SYSID.into(),
        }),
        case(
            "the claim owner waits until it can read the system identifier",
            Obs::new("a")
                .claimed_by("a")
                .local(local_stopped(DataDir::Primary, None))
                .with_local(|l| l.system_identifier = None),
            &[],
            "system identifier",
        ),
        case(
            "the claim owner with replica data refuses",
            Obs::new("a")
                .claimed_by("a")
                .local(local_stopped(DataDir::Standby, None)),
            &["Refuse"],
            "refusing to adopt a replica",
        ),
        case(
            "a non-owner waits while the owner is alive",
            Obs::new("b").claimed_by("a").member(primary("a", 0, &[])),
            &[],
            "member a is initializing the cluster",
        ),
        case(
            "a non-owner releases a claim whose owner is gone",
            Obs::new("b").claimed_by("a"),
            &["ReleaseStaleInitialize"],
            "releasing the claim",
        )
        .has(Action::ReleaseStaleInitialize { revision: INIT_REV }),
    ]);
}

/// A bootstrap interrupted at any point converges: a data directory that a lost
/// bootstrap made is set aside, never refused forever; anything else is kept.
#[test]
fn interrupted_bootstrap_rules() {
    let unborn = |sysid: &str| {
        let mut l = local_stopped(DataDir::Primary, Some(control(true, 0x100, 1)));
        l.system_identifier = Some(sysid.into());
        l.unrecorded_initdb = true;
        l
    };
    run(vec![
        case(
            "another identifier was recorded: the lost initdb is set aside",
            Obs::new("b")
                .member(primary("a", 0, &[]))
                .local(unborn("999")),
            &["SetAsideDataDir"],
            "bootstrap that this member lost",
        )
        .never(&["Refuse"]),
        case(
            "the lost initdb holds a stale leader key: let go first",
            Obs::new("b")
                .leader("b", LEASE)
                .local(unborn("999"))
                .with_local(|l| {
                    l.running = true;
                    l.in_recovery = Some(false);
                }),
            &["ReleaseLeader", "SetAsideDataDir"],
            "bootstrap that this member lost",
        ),
        case(
            "another member took the claim over: set aside at once",
            Obs::new("b")
                .claimed_by("c")
                .member(replica("c", 0))
                .local(unborn("999")),
            &["SetAsideDataDir"],
            "bootstrap that this member lost",
        ),
        case(
            "a half-moved directory with the marker: set aside, not refused",
            Obs::new("b")
                .claimed_by("c")
                .local(unborn("999"))
                .with_local(|l| {
                    l.data = DataDir::Foreign;
                    l.system_identifier = None;
                }),
            &["SetAsideDataDir"],
            "bootstrap that this member lost",
        ),
        case(
            "the claim is still mine: record the identifier first",
            Obs::new("a").claimed_by("a").local(unborn(SYSID)),
            &["RecordSystemIdentifier", "AcquireLeader", "StartPrimary"],
            "recording system identifier",
        )
        .never(&["SetAsideDataDir"]),
        case(
            "the owner recorded the id and crashed before the leader key: it takes it",
            Obs::new("a").my_lease(LEASE).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x100, 1)),
            )),
            &["AcquireLeader"],
            "",
        )
        .has(Action::StartPrimary),
        case(
            "the claim was released: claim again to adopt my own initdb",
            Obs::new("a").no_cluster().local(unborn(SYSID)),
            &["ClaimInitialize"],
            "adopt",
        ),
        case(
            "the recorded identifier is mine: this is the cluster, never set aside",
            Obs::new("a").local(unborn(SYSID)),
            ANY,
            "",
        )
        .never(&["SetAsideDataDir", "Refuse"]),
        case(
            "the identifier cannot be read: wait, touch nothing",
            Obs::new("b")
                .local(unborn("999"))
                .with_local(|l| l.system_identifier = None),
            &[],
            "",
        )
        .never(&["SetAsideDataDir"]),
        case(
            "no marker: a foreign identifier is user data, refused",
            Obs::new("b")
                .local(unborn("999"))
                .with_local(|l| l.unrecorded_initdb = false),
            &["Refuse"],
            "system identifier mismatch",
        )
        .never(&["SetAsideDataDir"]),
    ]);
}

#[test]
fn clone_rules() {
    run(vec![
        case(
            "empty directory: wait until the primary created this member's slot",
            healthy("d"),
            &[],
            "waiting for primary a to create replication slot d",
        ),
        case(
            "empty directory and the slot exists: clone through it",
            healthy("d").member(primary("a", P_LSN, &["b", "c", "d"])),
            &["CloneFrom"],
            "cloning from primary a through slot d",
        )
        .has(Action::CloneFrom { leader: "a".into() }),
        case(
            "empty directory and the leader is not running yet",
            healthy("d").member(pgbaton_core::model::MemberStatus {
                state: PgState::Starting,
                ..primary("a", P_LSN, &["d"])
            }),
            &[],
            "waiting for primary a to run",
        ),
        case(
            "empty directory and the leader has no member key yet",
            Obs::new("d").leader("a", LEASE),
            &[],
            "has not published its status",
        ),
        case(
            "empty directory and no leader: wait",
            Obs::new("d").member(replica("b", P_LSN)),
            &[],
            "waiting for a leader",
        ),
        case(
            "holding the leader key with an empty directory: let go",
            Obs::new("d").leader("d", LEASE),
            &["ReleaseLeader"],
            "data directory is empty",
        ),
    ]);
}

#[test]
fn primary_duty_rules() {
    let published = PrimaryStatus {
        primary: "a".into(),
        lsn: Lsn(P_LSN),
        timeline: 1,
        updated_ms: NOW,
        registry: [("a", NOW), ("b", NOW), ("c", NOW)]
            .iter()
            .map(|(n, t)| (n.to_string(), *t))
            .collect(),
        hosts: [("a", "host-a"), ("b", "host-b"), ("c", "host-c")]
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect(),
    };
    run(vec![
        case(
            "a healthy primary publishes its status and keeps the others' hosts allowed",
            as_primary(),
            ANY,
            "primary: holding the leader key",
        )
        .has(Action::AllowReplicationFrom {
            hosts: vec!["host-b".into(), "host-c".into()],
        })
        .has(Action::PublishStatus(published.clone()))
        .never(&["CreateSlot", "DropSlot", "AcquireLeader"]),
        case(
            "a new member gets a slot",
            as_primary().member(replica("d", 0)),
            ANY,
            "creating slot d for a new member",
        )
        .has(Action::CreateSlot("d".into())),
        case(
            "a removed member (registry time 0) loses its idle slot",
            as_primary()
                .status(status(
                    "a",
                    P_LSN,
                    &[("a", NOW), ("b", NOW), ("c", NOW), ("e", 0)],
                ))
                .with_local(|l| l.slots = slots(&["b", "c", "e"], &["b", "c"])),
            ANY,
            "dropping slot e of a removed member",
        )
        .has(Action::DropSlot("e".into())),
        case(
            "a member away for less than the retention keeps its slot",
            as_primary()
                .status(status(
                    "a",
                    P_LSN,
                    &[("a", NOW), ("b", NOW), ("c", NOW), ("e", NOW - 60_000)],
                ))
                .with_local(|l| l.slots = slots(&["b", "c", "e"], &["b", "c"])),
            ANY,
            "primary",
        )
        .never(&["DropSlot", "CreateSlot"]),
        case(
            "a member away for longer than the retention loses its slot",
            as_primary()
                .config(|c| c.member_slot_retention = 60)
                .status(status(
                    "a",
                    P_LSN,
                    &[("a", NOW), ("b", NOW), ("c", NOW), ("e", NOW - 61_000)],
                ))
                .with_local(|l| l.slots = slots(&["b", "c", "e"], &["b", "c"])),
            ANY,
            "dropping slot e",
        ),
        case(
            "slots the DBA made are never dropped",
            as_primary().with_local(|l| l.slots = slots(&["b", "c", "dba_slot"], &[])),
            ANY,
            "primary",
        )
        .never(&["DropSlot"]),
        case(
            "the leader key on an old lease is re-attached to the new one",
            as_primary().my_lease(LEASE + 1),
            &["AcquireLeader"],
            "primary",
        )
        .has(Action::PublishStatus(published)),
        case(
            "PostgreSQL down on the primary: start it",
            as_primary().with_local(|l| {
                l.running = false;
                l.in_recovery = None;
            }),
            &["StartPrimary"],
            "starting PostgreSQL as primary",
        ),
        case(
            "PostgreSQL could not start in time: stop and release the key",
            as_primary().with_local(|l| {
                l.running = false;
                l.in_recovery = None;
                l.start_failed = true;
            }),
            &["StopPostgres", "ReleaseLeader"],
            "primary_start_timeout",
        ),
        case(
            "paused and PostgreSQL down on the primary: leave it",
            as_primary().config(|c| c.paused = true).with_local(|l| {
                l.running = false;
                l.in_recovery = None;
            }),
            &[],
            "paused",
        ),
        case(
            "the key holder is still in recovery after promotion began: finish it",
            as_primary().with_local(|l| l.in_recovery = Some(true)),
            &["PublishStatus", "Promote"],
            "promoting",
        ),
        case(
            "the key holder has a never-promoted replica directory: let go of the key",
            as_primary().with_local(|l| {
                l.data = DataDir::Standby;
                l.in_recovery = Some(true);
            }),
            &["ReleaseLeader"],
            "never promoted",
        ),
    ]);
}

#[test]
fn replica_duty_rules() {
    let diverged_history = vec![fork(2, 0x8000)];
    let on_tl2 = |o: Obs| {
        o.member(pgbaton_core::model::MemberStatus {
            timeline: Some(2),
            ..primary("a", 0x9000, &["b", "c"])
        })
        .history(vec![fork(2, 0x8000)])
    };
    run(vec![
        case(
            "streaming replica: keep a slot for every other member and advance them",
            as_replica(),
            &["AdvanceSlots"],
            "replica streaming from a",
        )
        .has(Action::AdvanceSlots(vec!["a".into(), "c".into()]))
        .never(&["CreateSlot"]),
        case(
            "streaming replica: create a missing slot of another member",
            as_replica().with_local(|l| l.slots = slots(&["a"], &[])),
            &["CreateSlot", "AdvanceSlots"],
            "replica streaming",
        )
        .has(Action::CreateSlot("c".into())),
        case(
            "a replica that is not streaming yet says so",
            as_replica().with_local(|l| l.streaming = false),
            &["AdvanceSlots"],
            "waiting for streaming to start",
        ),
        case(
            "stopped replica on the leader's timeline: start following",
            healthy("b").local(local_stopped(DataDir::Standby, Some(control(true, 0x4000, 1)))),
            &["Follow"],
            "starting as a replica of a (host-a:5432)",
        )
        .has(Action::Follow { leader: "a".into() }),
        case(
            "running replica pointed elsewhere: re-point it",
            as_replica().with_local(|l| l.following = Some("host-x:5432".into())),
            &["Follow"],
            "re-pointing replication to the primary a",
        ),
        case(
            "running as a primary while another member holds the key: stop at once",
            healthy("b").local(local_primary(P_LSN)),
            &["StopPostgres"],
            "stopping it so that it cannot accept writes",
        ),
        case(
            "paused, and running as a primary under another leader: still stop",
            healthy("b")
                .config(|c| c.paused = true)
                .local(local_primary(P_LSN)),
            &["StopPostgres"],
            "cannot accept writes",
        ),
        case(
            "paused replica: no automatic action",
            healthy("b")
                .config(|c| c.paused = true)
                .local(local_stopped(DataDir::Standby, Some(control(true, 0x4000, 1)))),
            &[],
            "paused",
        ),
        case(
            "stopped former primary that ran past the switch point: rewind",
            on_tl2(healthy("b")).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x8800, 1)),
            )),
            &["Rewind"],
            "rewinding",
        )
        .has(Action::Rewind { leader: "a".into() }),
        case(
            "crashed former primary on an older timeline: rewind (end unknown)",
            on_tl2(healthy("b")).local(local_stopped(
                DataDir::Primary,
                Some(control(false, 0x100, 1)),
            )),
            &["Rewind"],
            "diverged",
        ),
        case(
            "crashed or fenced former primary whose last record starts before the switch: follow, no rewind",
            on_tl2(healthy("b")).local(local_stopped(
                DataDir::Primary,
                Some(Control {
                    last_record: Some(Lsn(0x7f00)),
                    ..control(false, 0x100, 1)
                }),
            )),
            &["Follow"],
            "starting as a replica of a",
        )
        .never(&["Rewind"]),
        case(
            "crashed former primary whose last record starts at the switch point: rewind",
            on_tl2(healthy("b")).local(local_stopped(
                DataDir::Primary,
                Some(Control {
                    last_record: Some(Lsn(0x8000)),
                    ..control(false, 0x100, 1)
                }),
            )),
            &["Rewind"],
            "diverged",
        ),
        case(
            "former primary without a control file: rewind",
            on_tl2(healthy("b")).local(local_stopped(DataDir::Primary, None)),
            &["Rewind"],
            "diverged",
        ),
        case(
            "clean switchover: the old primary's shutdown checkpoint precedes the switch: follow, no rewind",
            on_tl2(healthy("b")).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x7f00, 1)),
            )),
            &["Follow"],
            "starting as a replica of a",
        )
        .never(&["Rewind"]),
        case(
            "a history without the fork entry: rewind rather than follow blindly",
            on_tl2(healthy("b"))
                .history(Vec::new())
                .local(local_stopped(DataDir::Primary, Some(control(true, 0x100, 1)))),
            &["Rewind"],
            "cannot prove",
        ),
        case(
            "paused and diverged: no rewind",
            on_tl2(healthy("b"))
                .config(|c| c.paused = true)
                .local(local_stopped(DataDir::Primary, Some(control(true, 0x8800, 1)))),
            &[],
            "paused",
        ),
        case(
            "running standby stalled on the leader and past the switch point: stop, rewind",
            on_tl2(healthy("b"))
                .history(diverged_history.clone())
                .local(local_replica("host-a:5432", 0x8800))
                .with_local(|l| {
                    l.streaming = false;
                    l.stream_stalled = true;
                }),
            &["StopPostgres", "Rewind"],
            "rewinding",
        ),
        case(
            "running standby on an older timeline but not stalled: PostgreSQL checks, no rewind",
            on_tl2(healthy("b"))
                .history(diverged_history)
                .local(local_replica("host-a:5432", 0x8800))
                .with_local(|l| l.slots = slots(&["a", "c"], &[])),
            &["AdvanceSlots"],
            "replica streaming from a",
        )
        .never(&["Rewind", "StopPostgres"]),
        case(
            "the leader reports it is not running: wait",
            healthy("b")
                .member(pgbaton_core::model::MemberStatus {
                    state: PgState::Stopped,
                    ..primary("a", P_LSN, &[])
                })
                .local(local_stopped(DataDir::Standby, Some(control(true, 0x100, 1)))),
            &[],
            "waiting for primary a to run",
        ),
        case(
            "an operator asked for a re-clone",
            as_replica().with_local(|l| l.reinit_requested = true),
            &["Reclone"],
            "re-clone this member from a",
        )
        .has(Action::Reclone { leader: "a".into() }),
    ]);
}

#[test]
fn no_leader_rules() {
    let last_primary = |running: bool| {
        Obs::new("a")
            .leaderless_for(3000)
            .member(replica("b", P_LSN))
            .status(status("a", P_LSN, &[]))
            .local(if running {
                local_primary(P_LSN)
            } else {
                local_stopped(DataDir::Primary, Some(control(false, P_LSN, 1)))
            })
    };
    run(vec![
        case(
            "the last primary takes the key back",
            last_primary(false),
            &["AcquireLeader", "StartPrimary"],
            "this member was the last primary",
        ),
        case(
            "the last primary still running takes the key back",
            last_primary(true),
            &["AcquireLeader", "StartPrimary"],
            "last primary",
        ),
        case(
            "the owner takes the key back when no status was ever published",
            Obs::new("a").leaderless_for(3000).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x100, 1)),
            )),
            &["AcquireLeader", "StartPrimary"],
            "last primary",
        ),
        case(
            "the last primary whose start failed does not take the key back",
            last_primary(false).with_local(|l| l.start_failed = true),
            &[],
            "waiting for a replica to be promoted",
        )
        .never(&["AcquireLeader", "StartPrimary"]),
        case(
            "paused, and the last primary is down: not restarted",
            last_primary(false).config(|c| c.paused = true),
            &[],
            "paused",
        ),
        case(
            "a primary that was not the last one is stopped",
            last_primary(true).status(status("z", P_LSN, &[])),
            &["StopPostgres"],
            "was not the last primary",
        ),
        case(
            "paused: no failover",
            leaderless("b", 3000)
                .config(|c| c.paused = true)
                .local(local_replica("host-a:5432", P_LSN)),
            &[],
            "paused",
        ),
        case(
            "a stopped standby starts in recovery to take part",
            leaderless("b", 3000).local(local_stopped(
                DataDir::Standby,
                Some(control(true, 0x100, 1)),
            )),
            &["StartStandby"],
            "starting this replica in recovery",
        ),
        case(
            "the most advanced eligible replica wins",
            leaderless("b", 100).local(local_replica("host-a:5432", P_LSN)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "most advanced eligible replica (rank 1)",
        )
        .has(Action::Promote {
            reason: "failover: the primary a is gone".into(),
            old_primary: Some("a".into()),
        }),
        case(
            "a less advanced replica lets the winner go first",
            leaderless("c", 100).local(local_replica("host-a:5432", P_LSN - 100)),
            &[],
            "b should take over first",
        ),
        case(
            "after one grace period the second candidate may try",
            leaderless("c", 2500).local(local_replica("host-a:5432", P_LSN - 100)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "rank 2",
        ),
        case(
            "a member that has not reported since the leader vanished is waited for",
            leaderless("c", 100)
                .member(pgbaton_core::model::MemberStatus {
                    updated_ms: NOW - 500,
                    ..replica("b", P_LSN)
                })
                .local(local_replica("host-a:5432", P_LSN - 100)),
            &[],
            "waiting for b to report",
        ),
        case(
            "a silent member is excluded after the grace period",
            leaderless("c", 2500)
                .member(pgbaton_core::model::MemberStatus {
                    updated_ms: NOW - 5000,
                    ..replica("b", P_LSN)
                })
                .local(local_replica("host-a:5432", P_LSN - 100)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "rank 1",
        ),
        case(
            "a nofailover member never takes over",
            leaderless("b", 100)
                .tags(Tags {
                    nofailover: true,
                    ..Tags::default()
                })
                .member(pgbaton_core::model::MemberStatus {
                    tags: Tags {
                        nofailover: true,
                        ..Tags::default()
                    },
                    ..replica("b", P_LSN)
                })
                .local(local_replica("host-a:5432", P_LSN)),
            &[],
            "nofailover",
        ),
        case(
            "the next candidate wins when the best one is nofailover",
            leaderless("c", 100)
                .member(pgbaton_core::model::MemberStatus {
                    tags: Tags {
                        nofailover: true,
                        ..Tags::default()
                    },
                    ..replica("b", P_LSN)
                })
                .local(local_replica("host-a:5432", P_LSN - 100)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "rank 1",
        ),
        case(
            "a replica beyond the lag limit is not promoted, and the reason says so",
            leaderless("b", 100)
                .status(status("a", P_LSN + 40 * MB, &[]))
                .member(replica("c", 0))
                .local(local_replica("host-a:5432", P_LSN)),
            &[],
            "b lags 40 MB > 1 MB limit",
        ),
        case(
            "a non-replica (its directory is a former primary) waits",
            leaderless("d", 100).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x100, 1)),
            )),
            &[],
            "waiting for a replica to be promoted",
        ),
        case(
            "equal positions: the higher failover_priority wins",
            leaderless("c", 100)
                .member(pgbaton_core::model::MemberStatus {
                    tags: Tags {
                        failover_priority: 3,
                        ..Tags::default()
                    },
                    ..replica("c", P_LSN)
                })
                .tags(Tags {
                    failover_priority: 3,
                    ..Tags::default()
                })
                .local(local_replica("host-a:5432", P_LSN)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "rank 1",
        ),
        case(
            "equal positions and priorities: the smaller name wins",
            leaderless("c", 100)
                .member(replica("c", P_LSN))
                .local(local_replica("host-a:5432", P_LSN)),
            &[],
            "b should take over first",
        ),
        case(
            "the received position counts, not only the replayed one",
            leaderless("c", 100)
                .member(pgbaton_core::model::MemberStatus {
                    received_lsn: Some(Lsn(P_LSN + 10)),
                    ..replica("c", P_LSN - 100)
                })
                .local(local_replica("host-a:5432", P_LSN - 100)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "rank 1",
        ),
    ]);
}

#[test]
fn switchover_rules() {
    let stopped = |me: &str, ago: u64| {
        Obs::new(me)
            .leaderless_for(100)
            .member(replica("b", 0x6000))
            .member(replica("c", 0x6000))
            .status(status("a", P_LSN, &[]))
            .request(switchover_stopped("a", "b", 0x6000, ago))
    };
    run(vec![
        case(
            "the primary hands over when the request is due and the candidate streams",
            as_primary().request(switchover("a", "b")),
            &["HandOver"],
            "switchover to b",
        )
        .has(Action::HandOver { to: "b".into() }),
        case(
            "a switchover scheduled later: carry on as primary",
            as_primary().request(pgbaton_core::model::SwitchoverRequest {
                scheduled_ms: Some(NOW + 60_000),
                ..switchover("a", "b")
            }),
            ANY,
            "primary: holding the leader key",
        )
        .never(&["HandOver", "ClearSwitchover"]),
        case(
            "a switchover whose time has come",
            as_primary().request(pgbaton_core::model::SwitchoverRequest {
                scheduled_ms: Some(NOW - 1),
                ..switchover("a", "b")
            }),
            &["HandOver"],
            "switchover to b",
        ),
        case(
            "candidate not streaming: cancel",
            as_primary()
                .member(not_streaming(replica("b", P_LSN)))
                .request(switchover("a", "b")),
            &["ClearSwitchover"],
            "switchover to b cancelled: b is in recovery, not streaming",
        )
        .has(Action::ClearSwitchover { revision: SW_REV }),
        case(
            "candidate lagging: cancel",
            as_primary()
                .member(pgbaton_core::model::MemberStatus {
                    lag_bytes: Some(2 * MB),
                    ..replica("b", P_LSN)
                })
                .request(switchover("a", "b")),
            &["ClearSwitchover"],
            "b lags 2 MB > 1 MB limit",
        ),
        case(
            "candidate unknown: cancel",
            as_primary().request(switchover("a", "zz")),
            &["ClearSwitchover"],
            "zz is not running",
        ),
        case(
            "switchover to the current primary: drop it",
            as_primary().request(switchover("a", "a")),
            &["ClearSwitchover"],
            "to the current primary",
        ),
        case(
            "a failover request while the primary is healthy: drop it",
            as_primary().request(failover_request("b", false)),
            &["ClearSwitchover"],
            "healthy primary",
        ),
        case(
            "the candidate waits for the shutdown checkpoint, takes the key, promotes",
            stopped("b", 500).local(local_replica("host-a:5432", 0x6000)),
            &["WaitForWal", "AcquireLeader", "PublishStatus", "Promote"],
            "shutdown checkpoint",
        )
        .has(Action::WaitForWal { lsn: Lsn(0x6000) })
        .has(Action::Promote {
            reason: "switchover from a".into(),
            old_primary: Some("a".into()),
        }),
        case(
            "a candidate that is not a running replica cancels",
            stopped("b", 500).local(local_stopped(DataDir::Standby, None)),
            &["ClearSwitchover"],
            "cannot take over",
        ),
        case(
            "a candidate too late does not promote (the old primary is gone: the request is dropped)",
            stopped("b", 31_000).local(local_replica("host-a:5432", 0x6000)),
            &["ClearSwitchover"],
            "timed out",
        )
        .never(&["AcquireLeader", "PublishStatus", "Promote"]),
        case(
            "the old primary waits while the switchover runs",
            stopped("a", 500).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x6000, 1)),
            )),
            &[],
            "switchover to b in progress",
        )
        .never(&["AcquireLeader"]),
        case(
            "timeout: the old primary resumes",
            stopped("a", 31_000).local(local_stopped(
                DataDir::Primary,
                Some(control(true, 0x6000, 1)),
            )),
            &["ClearSwitchover", "AcquireLeader", "StartPrimary"],
            "did not complete within 30 s: resuming as primary",
        ),
        case(
            "a bystander replica waits while the switchover runs",
            stopped("c", 500).local(local_replica("host-a:5432", 0x6000)),
            &[],
            "switchover to b in progress",
        ),
    ]);
}

#[test]
fn operator_failover_rules() {
    let base = |me: &str, req| {
        Obs::new(me)
            .leaderless_for(100)
            .member(not_streaming(replica("b", P_LSN)))
            .member(replica("c", P_LSN))
            .status(status("a", P_LSN, &[]))
            .request(req)
    };
    let lagging = |me: &str, force: bool| {
        base(me, failover_request(me, force))
            .member(pgbaton_core::model::MemberStatus {
                lag_bytes: Some(50 * MB),
                ..replica(me, P_LSN - 50 * MB)
            })
            .local(local_replica("host-a:5432", P_LSN - 50 * MB))
    };
    run(vec![
        case(
            "operator failover to a fit (streaming) member",
            base("c", failover_request("c", false)).local(local_replica("host-a:5432", P_LSN)),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "operator failover",
        )
        .has(Action::Promote {
            reason: "operator failover".into(),
            old_primary: Some("a".into()),
        }),
        case(
            "unforced operator failover to a lagging member is refused",
            lagging("c", false),
            &["ClearSwitchover"],
            "use --force",
        )
        .never(&["AcquireLeader", "PublishStatus", "Promote"]),
        case(
            "forced operator failover to a lagging member goes ahead and says data is lost",
            lagging("c", true),
            &["AcquireLeader", "PublishStatus", "Promote"],
            "forced",
        ),
        case(
            "the other members wait for the chosen one",
            base("b", failover_request("c", false)).local(local_replica("host-a:5432", P_LSN)),
            &[],
            "operator failover to c in progress",
        )
        .never(&["AcquireLeader"]),
        case(
            "the chosen member is not a running replica: drop the request",
            base("c", failover_request("c", true)).local(local_stopped(DataDir::Standby, None)),
            &["ClearSwitchover"],
            "not a running replica",
        ),
        case(
            "a request older than the timeout is dropped",
            base(
                "c",
                pgbaton_core::model::SwitchoverRequest {
                    requested_ms: NOW - 31_000,
                    ..failover_request("c", false)
                },
            )
            .local(local_replica("host-a:5432", P_LSN)),
            &["ClearSwitchover"],
            "did not happen within the timeout",
        ),
        case(
            "the former primary does not take the key back while an operator failover is pending",
            base("a", failover_request("c", false)).local(local_stopped(
                DataDir::Primary,
                Some(control(false, P_LSN, 1)),
            )),
            &[],
            "operator failover to c in progress",
        )
        .never(&["AcquireLeader", "StartPrimary"]),
    ]);
}

/// The role a member key reports is not used as a shortcut: a replica's published
/// `Role::Unknown` keeps it out of the election.
#[test]
fn unknown_role_is_not_elected() {
    let obs = leaderless("b", 100)
        .member(pgbaton_core::model::MemberStatus {
            role: Role::Unknown,
            ..replica("b", P_LSN)
        })
        .local(local_replica("host-a:5432", P_LSN))
        .build();
    let plan = decide(&obs);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(plan.reason.contains("b is streaming"), "{}", plan.reason);
}

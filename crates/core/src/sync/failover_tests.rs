//! Failover in synchronous mode through [`crate::decide`]: only members the `sync` key
//! allows are promoted, the winner rewrites the key before it promotes, and without an
//! eligible member the reason says so.

use crate::model::{
    ClusterConfig, Initialize, MemberStatus, PgState, PrimaryStatus, Role, SyncState,
    SynchronousMode, Tags,
};
use crate::observation::{ClusterView, DataDir, Local, Observation};
use crate::plan::Action;
use crate::Lsn;

fn replica(name: &str) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: 5432,
        api_url: String::new(),
        role: Role::Replica,
        state: PgState::Streaming,
        timeline: Some(1),
        lsn: Some(Lsn(100)),
        received_lsn: Some(Lsn(100)),
        replayed_lsn: Some(Lsn(100)),
        lag_bytes: Some(0),
        pg_version: Some(150000),
        system_identifier: Some("1".into()),
        tags: Tags::default(),
        slots: vec![],
        note: None,
        updated_ms: 10_000,
    }
}

/// `me` is a running replica; the primary `p` is gone; `sync` lists `listed`.
fn obs(me: &str, listed: &[&str], strict: bool) -> Observation {
    let config = ClusterConfig {
        synchronous_mode: SynchronousMode::On,
        synchronous_mode_strict: strict,
        ..ClusterConfig::default()
    };
    Observation {
        now_ms: 20_000,
        me: me.into(),
        tags: Tags::default(),
        my_lease: Some(1),
        local: Local {
            data: DataDir::Standby,
            system_identifier: Some("1".into()),
            running: true,
            in_recovery: Some(true),
            streaming: false,
            lsn: Some(Lsn(100)),
            timeline: Some(1),
            ..Local::default()
        },
        cluster: ClusterView {
            initialize: Some((
                Initialize {
                    owner: "p".into(),
                    system_identifier: Some("1".into()),
                },
                1,
            )),
            members: [replica("a"), replica("b")]
                .into_iter()
                .map(|m| (m.name.clone(), m))
                .collect(),
            status: Some(PrimaryStatus {
                primary: "p".into(),
                lsn: Lsn(100),
                timeline: 1,
                updated_ms: 1,
                registry: Default::default(),
                hosts: Default::default(),
            }),
            config,
            sync: Some((
                SyncState {
                    leader: "p".into(),
                    members: listed.iter().map(|s| s.to_string()).collect(),
                    quorum: None,
                },
                42,
            )),
            ..ClusterView::default()
        },
        leaderless_since_ms: Some(5_000),
    }
}

#[test]
fn only_a_listed_member_is_promoted_and_it_rewrites_the_key_first() {
    let o = obs("b", &["b"], true);
    let plan = crate::decide(&o);
    // The status key names b before b promotes (no old primary can take it back).
    let claim = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::PublishStatus(s) if s.primary == "b"))
        .cloned()
        .expect("a status claim before the promotion");
    assert_eq!(
        plan.actions,
        vec![
            Action::AcquireLeader,
            Action::WriteSync {
                state: SyncState {
                    leader: "b".into(),
                    members: vec![],
                    quorum: None
                },
                expect: Some(42)
            },
            Action::SetSynchronousStandbyNames("*".into()),
            claim,
            Action::Promote {
                reason: "failover: the primary p is gone".into(),
                old_primary: Some("p".into())
            },
        ],
        "{}",
        plan.reason
    );
    // a is more advanced-or-equal and first by name, but not synchronous.
    let plan = crate::decide(&obs("a", &["b"], false));
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(
        plan.reason.contains("a is not a synchronous standby"),
        "{}",
        plan.reason
    );
}

#[test]
fn nobody_listed_means_no_failover_and_the_reason_says_so() {
    for me in ["a", "b"] {
        let plan = crate::decide(&obs(me, &[], false));
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert!(
            plan.reason
                .contains("no failover: synchronous mode and no synchronous standby is running"),
            "{}",
            plan.reason
        );
    }
}

#[test]
fn a_leader_key_holder_the_sync_key_does_not_name_lets_go() {
    let mut o = obs("a", &["b"], false);
    o.cluster.leader = Some("a".into());
    o.cluster.leader_lease = Some(1);
    let plan = crate::decide(&o);
    assert_eq!(plan.actions, vec![Action::ReleaseLeader], "{}", plan.reason);
}

/// Issue 14 item 7: while a listed synchronous standby has not reported since the
/// primary was lost, the reason is "not yet", never "no synchronous standby is
/// running" (seen in the simulator 50 ms before that very standby was promoted).
#[test]
fn a_listed_standby_that_has_not_reported_yet_is_waited_for_not_written_off() {
    let mut o = obs("b", &["a"], false);
    o.now_ms = 5_100;
    if let Some(a) = o.cluster.members.get_mut("a") {
        a.updated_ms = 1_000;
    }
    let plan = crate::decide(&o);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(
        plan.reason
            .starts_with("no failover yet: waiting for reports from a"),
        "{}",
        plan.reason
    );
}

//! The shared request rules against a real local store in a temp dir, with hand-made
//! member keys: every refusal, and the writes.

use super::*;
use pgbaton_core::model::{
    member_key, MemberStatus, PgState, RequestKind, Role, Tags, KEY_LEADER, KEY_REINIT,
};
use pgbaton_store::local::LocalStore;
use pgbaton_store::Expect;
use std::time::Duration;

struct Fixture {
    store: LocalStore,
    _dir: tempfile::TempDir,
}

fn member(name: &str, role: Role, state: PgState, lag: Option<u64>) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: 5432,
        api_url: String::new(),
        role,
        state,
        timeline: Some(1),
        lsn: None,
        received_lsn: None,
        replayed_lsn: None,
        lag_bytes: lag,
        pg_version: None,
        system_identifier: None,
        tags: Tags::default(),
        slots: Vec::new(),
        note: None,
        updated_ms: 1,
    }
}

impl Fixture {
    /// node1 primary (leader), node2 streaming (lag 100), node3 streaming (lag 0,
    /// nofailover), node4 stopped, node5 streaming far behind.
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path(), "t", Duration::from_secs(2)).expect("store");
        let f = Fixture { store, _dir: dir };
        let mut n3 = member("node3", Role::Replica, PgState::Streaming, Some(0));
        n3.tags.nofailover = true;
        for m in [
            member("node1", Role::Primary, PgState::Running, None),
            member("node2", Role::Replica, PgState::Streaming, Some(100)),
            n3,
            member("node4", Role::Replica, PgState::Stopped, None),
            member("node5", Role::Replica, PgState::Streaming, Some(1 << 30)),
        ] {
            f.put_member(&m).await;
        }
        f.store
            .put(KEY_LEADER, "node1", None, Expect::Any)
            .await
            .expect("leader");
        f
    }

    async fn put_member(&self, m: &MemberStatus) {
        let v = serde_json::to_string(m).expect("json");
        self.store
            .put(&member_key(&m.name), &v, None, Expect::Any)
            .await
            .expect("member");
    }

    async fn switchover(&self, candidate: Option<&str>) -> Result<SwitchoverRequest, RequestError> {
        let ask = SwitchoverAsk {
            candidate: candidate.map(str::to_string),
            ..SwitchoverAsk::default()
        };
        plan_switchover(&self.store, &ClusterConfig::default(), &ask).await
    }
}

fn refused(r: Result<impl std::fmt::Debug, RequestError>, needle: &str) {
    match r {
        Err(RequestError::Refused(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected a refusal with {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn switchover_candidates_are_checked() {
    let f = Fixture::new().await;
    refused(
        f.switchover(Some("node9")).await,
        "unknown member \"node9\"",
    );
    refused(f.switchover(Some("node1")).await, "already the primary");
    refused(f.switchover(Some("node4")).await, "stopped, not streaming");
    refused(
        f.switchover(Some("node5")).await,
        "more than maximum_lag_on_failover",
    );
    // No candidate: the least lag, skipping nofailover.
    let req = f.switchover(None).await.expect("best candidate");
    assert_eq!(
        (req.from.as_deref(), req.to.as_str()),
        (Some("node1"), "node2")
    );
    assert_eq!(req.kind, RequestKind::Switchover);
    // An explicit nofailover member may be chosen by the operator.
    assert_eq!(
        f.switchover(Some("node3")).await.expect("named").to,
        "node3"
    );
    // The expected leader must be the primary.
    let ask = SwitchoverAsk {
        leader: Some("node2".into()),
        ..SwitchoverAsk::default()
    };
    refused(
        plan_switchover(&f.store, &ClusterConfig::default(), &ask).await,
        "node2 is not the primary: node1 is",
    );
}

#[tokio::test]
async fn a_paused_cluster_needs_a_named_candidate() {
    let f = Fixture::new().await;
    let paused = ClusterConfig {
        paused: true,
        ..ClusterConfig::default()
    };
    let ask = SwitchoverAsk::default();
    // The bootstrap config stands in while the store has none.
    refused(plan_switchover(&f.store, &paused, &ask).await, "paused");
    let named = SwitchoverAsk {
        candidate: Some("node2".into()),
        ..SwitchoverAsk::default()
    };
    assert!(plan_switchover(&f.store, &paused, &named).await.is_ok());
}

#[tokio::test]
async fn no_healthy_primary_no_switchover() {
    let f = Fixture::new().await;
    f.put_member(&member("node1", Role::Primary, PgState::Stopped, None))
        .await;
    refused(f.switchover(Some("node2")).await, "no healthy primary");
}

#[tokio::test]
async fn one_request_at_a_time_and_cancel() {
    let f = Fixture::new().await;
    assert_eq!(
        cancel_switchover(&f.store).await.unwrap_err(),
        RequestError::NotFound("no switchover is pending".into())
    );
    let req = f.switchover(Some("node2")).await.expect("plan");
    submit(&f.store, &req).await.expect("submit");
    assert!(matches!(
        submit(&f.store, &req).await,
        Err(RequestError::Conflict(_))
    ));
    assert!(matches!(
        f.switchover(Some("node2")).await,
        Err(RequestError::Conflict(m)) if m.contains("another switchover to node2 is pending")
    ));
    assert!(matches!(
        plan_failover(&f.store, &ClusterConfig::default(), "node2", false).await,
        Err(RequestError::Conflict(_))
    ));
    let cancelled = cancel_switchover(&f.store).await.expect("cancel");
    assert_eq!(cancelled.to, "node2");
    assert!(pending(&f.store).await.expect("read").is_none());
    // Under way: not cancellable.
    let mut going = f.switchover(Some("node2")).await.expect("plan");
    going.phase = pgbaton_core::model::SwitchoverPhase::PrimaryStopped {
        checkpoint_lsn: pgbaton_core::Lsn(1),
        timeline: 1,
        stopped_ms: 1,
    };
    submit(&f.store, &going).await.expect("submit");
    assert!(matches!(
        cancel_switchover(&f.store).await,
        Err(RequestError::Conflict(m)) if m.contains("under way")
    ));
}

#[tokio::test]
async fn failover_only_without_a_healthy_primary_and_lag_needs_force() {
    let f = Fixture::new().await;
    let cfg = ClusterConfig::default();
    assert!(matches!(
        plan_failover(&f.store, &cfg, "node2", false).await,
        Err(RequestError::Conflict(m)) if m.contains("node1 is a healthy primary")
    ));
    f.store
        .delete(KEY_LEADER, Expect::Any)
        .await
        .expect("delete");
    f.put_member(&member("node1", Role::Primary, PgState::Stopped, None))
        .await;
    refused(
        plan_failover(&f.store, &cfg, "node9", false).await,
        "unknown member",
    );
    refused(
        plan_failover(&f.store, &cfg, "node4", false).await,
        "it is stopped",
    );
    refused(
        plan_failover(&f.store, &cfg, "node5", false).await,
        "add --force",
    );
    let (req, lag) = plan_failover(&f.store, &cfg, "node5", true)
        .await
        .expect("forced");
    assert_eq!(
        (req.kind, req.force, lag),
        (RequestKind::Failover, true, 1 << 30)
    );
    let (req, lag) = plan_failover(&f.store, &cfg, "node2", false)
        .await
        .expect("ok");
    assert_eq!((req.to.as_str(), req.force, lag), ("node2", false, 100));
}

#[tokio::test]
async fn reinit_is_for_running_replicas_one_at_a_time() {
    let f = Fixture::new().await;
    refused(check_reinit(&f.store, "node1").await, "is the primary");
    refused(check_reinit(&f.store, "node9").await, "unknown member");
    check_reinit(&f.store, "node2")
        .await
        .expect("node2 may be re-cloned");
    submit_reinit(&f.store, "node2").await.expect("write");
    assert_eq!(
        f.store.get(KEY_REINIT).await.expect("get").map(|e| e.value),
        Some("node2".to_string())
    );
    assert_eq!(
        submit_reinit(&f.store, "node4").await.unwrap_err(),
        RequestError::Conflict("another reinit is in progress (of node2)".into())
    );
}

#[test]
fn times() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Ok(1000));
    assert_eq!(parse_rfc3339("1970-01-01T01:00:01+01:00"), Ok(1000));
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5-0000"), Ok(1500));
    assert_eq!(parse_rfc3339("1970-01-01T01:00:01-01:00"), Ok(7_201_000));
    for bad in [
        "1970-01-01T00:00:01",
        "tomorrow",
        "1970-01-01T00:00:01+1",
        "",
    ] {
        let e = parse_rfc3339(bad).unwrap_err();
        assert!(e.contains("time zone"), "{bad}: {e}");
    }
    assert_eq!(rfc3339(1000), "1970-01-01T00:00:01Z");
    assert_eq!(parse_at("1970-01-01T00:00:02Z"), Ok(2000));
    assert_eq!(
        parse_at("1970-01-01T00:00:02"),
        Ok(2000),
        "UTC without a zone"
    );
    let soon = parse_at("+5m").expect("relative");
    assert!(soon >= now_ms() + 299_000 && soon <= now_ms() + 300_000);
    assert!(matches!(
        parse_at("+5 parsecs"),
        Err(RequestError::Invalid(_))
    ));
}

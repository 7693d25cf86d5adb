//! The real HTTP server on a loopback port, a hand-made snapshot, and a real local
//! store in a temp dir: status codes, bodies, methods, config CAS, a frozen store.

use super::client::{get, request};
use super::{member, primary, replica};
use crate::api::{serve, AgentSnapshot, ApiContext};
use pgbaton_core::model::{
    member_key, PgState, Role, SwitchoverRequest, KEY_CONFIG, KEY_HISTORY, KEY_LEADER, KEY_REINIT,
    KEY_RESTART, KEY_SWITCHOVER,
};
use pgbaton_store::local::LocalStore;
use pgbaton_store::{Expect, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A served API on a loopback port, with its store and config file in a temp dir.
pub(super) struct Harness {
    pub(super) port: u16,
    tx: watch::Sender<AgentSnapshot>,
    pub(super) store: Arc<dyn Store>,
    store_dir: PathBuf,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start(snap: AgentSnapshot) -> Harness {
    start_with(snap, |_| {}).await
}

/// Like `start`, after `edit` changed the parsed example config (e.g. to set `api.auth`).
pub(super) async fn start_with(
    snap: AgentSnapshot,
    edit: impl FnOnce(&mut pgbaton_config::NodeConfig),
) -> Harness {
    start_limited(snap, edit, crate::api::listener::Limits::default()).await
}

/// Like `start_with`, with connection `limits` of the test's choosing.
pub(super) async fn start_limited(
    snap: AgentSnapshot,
    edit: impl FnOnce(&mut pgbaton_config::NodeConfig),
    limits: crate::api::listener::Limits,
) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let text = pgbaton_config::render_example(
        "test",
        "node1",
        &dir.path().join("data"),
        &store_dir,
        55432,
        58008,
    );
    let config_path = dir.path().join("node1.yaml");
    std::fs::write(&config_path, &text).expect("write config");
    let mut cfg = pgbaton_config::parse(&text, "node1.yaml").expect("example config parses");
    edit(&mut cfg);
    let store: Arc<dyn Store> = Arc::new(
        LocalStore::open(&store_dir, "test", Duration::from_millis(500)).expect("open store"),
    );
    let (tx, rx) = watch::channel(snap);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    serve(
        listener,
        ApiContext {
            snapshot: rx,
            store: store.clone(),
            cfg,
            config_path: config_path.clone(),
            reload: None,
        },
        limits,
    );
    let h = Harness {
        port,
        tx,
        store,
        store_dir,
        config_path,
        _dir: dir,
    };
    h.fresh().await;
    h
}

impl Harness {
    /// Stand in for the agent's cycle: hand the API a fresh store snapshot.
    pub(super) async fn fresh(&self) {
        let snap = Arc::new(self.store.snapshot().await.expect("store snapshot"));
        self.tx.send_modify(|s| s.store = Some(snap));
    }

    /// Replace the agent snapshot, keeping the store snapshot it had.
    pub(super) fn set(&self, snap: AgentSnapshot) {
        self.tx.send_modify(|s| {
            let store = s.store.take();
            *s = snap;
            s.store = store;
        });
    }
}
async fn codes(port: u16, paths: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for p in paths {
        out.push(get(port, p).await.status);
    }
    out
}

const PROBES: [&str; 10] = [
    "/primary",
    "/read-write",
    "/leader",
    "/replica",
    "/read-only",
    "/sync",
    "/async",
    "/health",
    "/liveness",
    "/readiness",
];

#[tokio::test]
async fn status_codes_on_a_primary_a_replica_a_stopped_member_and_an_expired_lease() {
    let now = Instant::now();
    let h = start(primary(now)).await;
    assert_eq!(
        codes(h.port, &PROBES).await,
        [200, 200, 200, 503, 200, 503, 503, 200, 200, 200]
    );
    let body = get(h.port, "/primary").await.json();
    assert_eq!(body["check"], "primary");
    assert_eq!(body["passed"], true);
    assert_eq!(body["role"], "primary");
    assert_eq!(body["name"], "node1");
    assert_eq!(body["member"]["state"], "running");

    h.set(replica(Instant::now(), 300));
    assert_eq!(
        codes(h.port, &PROBES).await,
        [503, 503, 503, 200, 200, 503, 200, 200, 200, 200]
    );
    assert_eq!(get(h.port, "/replica?lag=1kB").await.status, 200);
    assert_eq!(get(h.port, "/replica?lag=299").await.status, 503);
    assert_eq!(get(h.port, "/read-only?lag=10").await.status, 503);
    let r = get(h.port, "/primary").await;
    assert_eq!(
        r.json()["check_reason"],
        "PostgreSQL is in recovery (a replica)"
    );

    let mut stopped = primary(Instant::now());
    stopped.pg_running = false;
    stopped.in_recovery = None;
    h.set(stopped);
    assert_eq!(
        codes(h.port, &PROBES).await,
        [503, 503, 503, 503, 503, 503, 503, 503, 200, 503]
    );

    let mut expired = primary(Instant::now());
    expired.lease_renewed_at = Some(Instant::now() - Duration::from_secs(11));
    h.set(expired);
    let r = get(h.port, "/primary").await;
    assert_eq!(r.status, 503);
    assert!(r.json()["check_reason"]
        .as_str()
        .unwrap_or_default()
        .contains("expired"));

    let mut stale = primary(Instant::now());
    stale.last_cycle_at = Some(Instant::now() - Duration::from_secs(5));
    h.set(stale);
    let r = get(h.port, "/primary").await;
    assert_eq!(r.status, 503);
    let body = r.json();
    assert_eq!(body["fresh"], false);
    assert!(body["check_reason"]
        .as_str()
        .unwrap_or_default()
        .contains("stale"));
    assert_eq!(get(h.port, "/liveness").await.status, 200);
}

#[tokio::test]
async fn head_and_options_carry_only_the_status() {
    let h = start(primary(Instant::now())).await;
    for (method, path, code) in [
        ("HEAD", "/primary", 200),
        ("OPTIONS", "/primary", 200),
        ("HEAD", "/replica", 503),
        ("OPTIONS", "/replica", 503),
        ("OPTIONS", "/health", 200),
    ] {
        let r = request(h.port, method, path, &[], None).await;
        assert_eq!(r.status, code, "{method} {path}");
        assert_eq!(r.body, "", "{method} {path}");
    }
    assert_eq!(
        request(h.port, "POST", "/primary", &[], Some("{}"))
            .await
            .status,
        405
    );
    assert_eq!(get(h.port, "/nope").await.status, 404);
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_message() {
    let h = start(replica(Instant::now(), 0)).await;
    let r = get(h.port, "/replica?lag=abc").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("lag=\"abc\""));
    assert_eq!(get(h.port, "/readiness?lag=-5").await.status, 400);
    assert_eq!(
        request(h.port, "HEAD", "/replica?lag=x", &[], None)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn status_metrics_cluster_and_history() {
    let h = start(primary(Instant::now())).await;
    let s = get(h.port, "/status").await;
    assert_eq!(s.status, 200);
    let s = s.json();
    assert_eq!(s["leader"], true);
    assert_eq!(s["fresh"], true);
    assert_eq!(s["reason"], "holding the leader lock");
    assert!(s["lease_seconds_left"].as_f64().unwrap_or_default() > 8.0);

    let m = get(h.port, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain; version=0.0.4"));
    let series = super::metrics::parse_exposition(&m.body).expect("valid exposition");
    assert_eq!(
        series[r#"pgbaton_postgres_up{cluster="test",member="node1"}"#],
        1.0
    );

    assert_eq!(get(h.port, "/history").await.json(), serde_json::json!([]));
    let history = r#"[{"timeline":2,"switch_lsn":"0/3000000","reason":"failover","time_ms":1,"old_primary":"node2","new_primary":"node1"}]"#;
    assert!(h
        .store
        .put(KEY_HISTORY, history, None, Expect::Any)
        .await
        .expect("put"));
    h.fresh().await;
    assert_eq!(
        get(h.port, "/history").await.json()[0]["new_primary"],
        "node1"
    );

    let m = member("node1", Role::Primary, PgState::Running, None);
    let value = serde_json::to_string(&m).expect("json");
    assert!(h
        .store
        .put(&member_key("node1"), &value, None, Expect::Any)
        .await
        .expect("put"));
    h.fresh().await;
    let rows = get(h.port, "/cluster").await.json();
    assert_eq!(rows[0]["name"], "node1");
    assert_eq!(rows[0]["role"], "primary");
    assert_eq!(rows[0]["state"], "running");
}

#[tokio::test]
async fn config_patch_is_a_compare_and_set() {
    let h = start(primary(Instant::now())).await;
    // No config key yet: the bootstrap section, without an ETag.
    let r = get(h.port, "/config").await;
    assert_eq!(r.json()["loop_wait"], 1);
    assert!(r.header("etag").is_none());

    let r = request(h.port, "PATCH", "/config", &[], Some(r#"{"loop_wait": 2}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["loop_wait"], 2);
    let tag = r.header("etag").expect("etag").to_string();
    h.fresh().await;
    let r = get(h.port, "/config").await;
    assert_eq!(r.json()["loop_wait"], 2);
    assert_eq!(r.header("etag"), Some(tag.as_str()));

    // With the current revision: applied. With the old one again: 409, nothing changed.
    let r = request(
        h.port,
        "PATCH",
        "/config",
        &[("If-Match", &tag)],
        Some(r#"{"ttl": 20}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(
        h.port,
        "PATCH",
        "/config",
        &[("If-Match", &tag)],
        Some(r#"{"ttl": 30}"#),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("GET /config"));

    for (body, needle) in [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (r#"{"bogus": 1}"#, "bogus"),
        (r#"{"ttl": "long"}"#, "not valid"),
        (r#"{"ttl": 3, "retry_timeout": 2}"#, "ttl"),
    ] {
        let r = request(h.port, "PATCH", "/config", &[], Some(body)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{body}: {}",
            r.body
        );
    }
    let r = request(
        h.port,
        "PATCH",
        "/config",
        &[("If-Match", "yesterday")],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 400);

    let stored = h
        .store
        .get(KEY_CONFIG)
        .await
        .expect("get")
        .expect("config key");
    let c: serde_json::Value = serde_json::from_str(&stored.value).expect("json");
    assert_eq!(
        (c["loop_wait"].as_u64(), c["ttl"].as_u64()),
        (Some(2), Some(20))
    );
}

#[tokio::test]
async fn reload_reports_the_file_s_problems() {
    let h = start(primary(Instant::now())).await;
    let r = request(h.port, "POST", "/reload", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["valid"], true);
    assert_eq!(r.json()["applied"], false);
    std::fs::write(&h.config_path, "cluster: test\nname: node1\nbogus: 1\n").expect("write");
    let r = request(h.port, "POST", "/reload", &[], None).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["valid"], false);
    assert!(body["problems"].to_string().contains("bogus"), "{body}");
}

#[tokio::test]
async fn restart_requests_are_checked_and_written() {
    let h = start(primary(Instant::now())).await;
    three_members(&h).await;
    let r = request(
        h.port,
        "POST",
        "/restart",
        &[],
        Some(r#"{"member": "node9"}"#),
    )
    .await;
    assert_eq!(r.status, 412, "{}", r.body);
    let r = request(
        h.port,
        "POST",
        "/restart",
        &[],
        Some(r#"{"membr": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // This member (node1) by default.
    let r = request(h.port, "POST", "/restart", &[], None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        h.store
            .get(KEY_RESTART)
            .await
            .expect("get")
            .map(|e| e.value),
        Some("node1".to_string())
    );
    let r = request(
        h.port,
        "POST",
        "/restart",
        &[],
        Some(r#"{"member": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 409, "one restart at a time: {}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("of node1"));
}

/// Publish a primary node1 (holding the leader key) and replicas node2 (streaming)
/// and node3 (stopped) in the harness's store.
pub(super) async fn three_members(h: &Harness) {
    let rows = [
        member("node1", Role::Primary, PgState::Running, None),
        member("node2", Role::Replica, PgState::Streaming, Some(0)),
        member("node3", Role::Replica, PgState::Stopped, None),
    ];
    for m in rows {
        let v = serde_json::to_string(&m).expect("json");
        h.store
            .put(&member_key(&m.name), &v, None, Expect::Any)
            .await
            .expect("put member");
    }
    h.store
        .put(KEY_LEADER, "node1", None, Expect::Any)
        .await
        .expect("put leader");
}

#[tokio::test]
async fn switchover_requests_are_checked_written_and_cancelled() {
    let h = start(primary(Instant::now())).await;
    // An empty cluster has no healthy primary.
    let r = request(h.port, "POST", "/switchover", &[], None).await;
    assert_eq!(r.status, 412, "{}", r.body);
    three_members(&h).await;
    for (body, code, needle) in [
        ("{", 400, "not valid"),
        (r#"{"candidat": "node2"}"#, 400, "candidat"),
        (r#"{"candidate": "node2", "to": "node3"}"#, 400, "differ"),
        (
            r#"{"candidate": "node2", "scheduled_at": "tomorrow"}"#,
            400,
            "RFC 3339",
        ),
        (r#"{"candidate": "node9"}"#, 412, "unknown member"),
        (r#"{"candidate": "node3"}"#, 412, "not streaming"),
        (r#"{"candidate": "node1"}"#, 412, "already the primary"),
        (
            r#"{"leader": "node2", "candidate": "node2"}"#,
            412,
            "not the primary",
        ),
    ] {
        let r = request(h.port, "POST", "/switchover", &[], Some(body)).await;
        assert_eq!(r.status, code, "{body}: {}", r.body);
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(needle), "{body}: {err}");
        assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_none());
    }
    let r = request(
        h.port,
        "POST",
        "/switchover",
        &[],
        Some(r#"{"leader": "node1", "to": "node2", "scheduled_at": "2999-01-01T00:00:00+01:00"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["scheduled_at"], "2998-12-31T23:00:00Z");
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("GET /cluster"));
    let stored = h
        .store
        .get(KEY_SWITCHOVER)
        .await
        .expect("get")
        .expect("request");
    let req: SwitchoverRequest = serde_json::from_str(&stored.value).expect("json");
    assert_eq!(
        (req.from.as_deref(), req.to.as_str()),
        (Some("node1"), "node2")
    );
    // A second request, or a failover, while one is pending: 409.
    let r = request(h.port, "POST", "/switchover", &[], None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = request(
        h.port,
        "POST",
        "/failover",
        &[],
        Some(r#"{"candidate": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = request(h.port, "DELETE", "/switchover", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_none());
    let r = request(h.port, "DELETE", "/switchover", &[], None).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn failover_and_reinitialize_requests_are_checked() {
    let h = start(primary(Instant::now())).await;
    three_members(&h).await;
    let r = request(h.port, "POST", "/failover", &[], Some("{}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(
        h.port,
        "POST",
        "/failover",
        &[],
        Some(r#"{"candidate": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 409, "a healthy primary: {}", r.body);
    assert!(r.body.contains("switchover"), "{}", r.body);
    // Without a leader: node3 is stopped, node2 lags beyond the limit.
    h.store
        .delete(KEY_LEADER, Expect::Any)
        .await
        .expect("delete");
    let lagging = member("node2", Role::Replica, PgState::Streaming, Some(1 << 40));
    h.store
        .put(
            &member_key("node2"),
            &serde_json::to_string(&lagging).expect("json"),
            None,
            Expect::Any,
        )
        .await
        .expect("put");
    let r = request(
        h.port,
        "POST",
        "/failover",
        &[],
        Some(r#"{"candidate": "node3"}"#),
    )
    .await;
    assert_eq!(r.status, 412, "{}", r.body);
    let r = request(h.port, "POST", "/failover", &[], Some(r#"{"to": "node2"}"#)).await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(r.body.contains("force"), "{}", r.body);
    assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_none());
    let r = request(
        h.port,
        "POST",
        "/failover",
        &[],
        Some(r#"{"to": "node2", "force": true}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let stored = h
        .store
        .get(KEY_SWITCHOVER)
        .await
        .expect("get")
        .expect("request");
    let req: SwitchoverRequest = serde_json::from_str(&stored.value).expect("json");
    assert!(req.force && req.to == "node2", "{req:?}");

    // Reinitialize: this member (node1) by default.
    for (body, code) in [
        (r#"{"member": "node9"}"#, 412),
        (r#"{"member": "node2", "forse": true}"#, 400),
    ] {
        let r = request(h.port, "POST", "/reinitialize", &[], Some(body)).await;
        assert_eq!(r.status, code, "{body}: {}", r.body);
    }
    h.store
        .put(KEY_LEADER, "node2", None, Expect::Any)
        .await
        .expect("put");
    let r = request(
        h.port,
        "POST",
        "/reinitialize",
        &[],
        Some(r#"{"member": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 412, "the primary: {}", r.body);
    let r = request(h.port, "POST", "/reinitialize", &[], None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        h.store.get(KEY_REINIT).await.expect("get").map(|e| e.value),
        Some("node1".to_string())
    );
    let r = request(
        h.port,
        "POST",
        "/reinitialize",
        &[],
        Some(r#"{"member": "node3", "force": true}"#),
    )
    .await;
    assert_eq!(r.status, 409, "one reinit at a time: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_fast_from_the_snapshot_while_the_store_is_frozen() {
    let h = start(primary(Instant::now())).await;
    let guard = LocalStore::freeze_for_tests(&h.store_dir, "test").expect("freeze");
    for path in [
        "/primary", "/health", "/status", "/metrics", "/cluster", "/history", "/config",
    ] {
        let t = Instant::now();
        let r = get(h.port, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{path} took {:?}",
            t.elapsed()
        );
    }
    drop(guard);
}

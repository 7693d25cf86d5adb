//! End-to-end: store values written by a malicious or broken member, on a real
//! synchronous cluster. A `config` key with an extra field keeps `paused` and
//! `synchronous_mode` in force (safety finding 10); an unparsable one is shown as an
//! error in `pgbaton list` and `/metrics` while the agents keep the last good config;
//! a member key with a bad host is ignored and the cluster stays healthy (F4, F5).

mod common;

use common::{wait_for, StoreKind, TestCluster};
use pgbaton_store::local::LocalStore;
use pgbaton_store::{Expect, Store};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UP: Duration = Duration::from_secs(90);

async fn get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The cluster config member `i`'s agent runs with (from `/status`).
async fn effective(c: &TestCluster, i: usize) -> Option<Value> {
    let body = get(c.nodes[i].api_port, "/status").await?;
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(v["cluster_config"].clone())
}

/// `pgbaton_cluster_config_error` of member `i`.
async fn config_error_metric(c: &TestCluster, i: usize) -> Option<f64> {
    let body = get(c.nodes[i].api_port, "/metrics").await?;
    body.lines()
        .find(|l| l.starts_with("pgbaton_cluster_config_error{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// For `hold`, every member keeps `paused` and `synchronous_mode: on`.
async fn holds_paused_and_sync(c: &TestCluster, hold: Duration) {
    let until = Instant::now() + hold;
    while Instant::now() < until {
        for i in 0..c.nodes.len() {
            let cc = effective(c, i).await.expect("status");
            assert_eq!(cc["paused"], true, "member {i}: {cc}");
            assert_eq!(cc["synchronous_mode"], "on", "member {i}: {cc}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_key_never_reverts_paused_or_synchronous_mode() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    for i in 0..2 {
        c.add_bootstrap(i, "  synchronous_mode: on\n");
    }
    c.start_all();
    c.wait_healthy(UP).await;
    wait_for("a synchronous standby", UP, || async {
        (!c.sync_members().is_empty()).then_some(())
    })
    .await;
    let out = c.pgbaton(0, &["pause"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("every agent paused", UP, || async {
        for i in 0..2 {
            if effective(&c, i).await?["paused"] != true {
                return None;
            }
        }
        Some(())
    })
    .await;

    let store = LocalStore::open(
        &c.dir.path().join("store"),
        &c.cluster,
        Duration::from_secs(3),
    )
    .expect("open store");
    let current = store.get("config").await.expect("get").expect("config key");
    let mut value: Value = serde_json::from_str(&current.value).expect("json");

    // An extra field (a newer version's, or a typo): ignored with a warning.
    value["x_future_field"] = Value::from(1);
    assert!(store
        .put("config", &value.to_string(), None, Expect::Any)
        .await
        .expect("put"));
    holds_paused_and_sync(&c, Duration::from_secs(3)).await;
    assert_eq!(config_error_metric(&c, 0).await, Some(0.0));
    assert!(
        c.log(0).contains("x_future_field"),
        "the warning names the field"
    );

    // An unparsable value: the last good config stays, and the error is shown.
    assert!(store
        .put("config", r#"{"paused": "#, None, Expect::Any)
        .await
        .expect("put"));
    wait_for("the config error in /metrics", UP, || async {
        (config_error_metric(&c, 1).await == Some(1.0)).then_some(())
    })
    .await;
    holds_paused_and_sync(&c, Duration::from_secs(3)).await;
    let out = c.pgbaton(0, &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Cluster config error"), "{stderr}");

    // A huge ttl (overflow bait): refused the same way, nobody panics.
    assert!(store
        .put(
            "config",
            r#"{"paused":true,"synchronous_mode":"on","loop_wait":9300000000000000000,"ttl":18446744073709551615}"#,
            None,
            Expect::Any,
        )
        .await
        .expect("put"));
    holds_paused_and_sync(&c, Duration::from_secs(3)).await;
    for i in 0..2 {
        assert!(get(c.nodes[i].api_port, "/liveness").await.is_some());
    }

    // A member key with a host pg_hba.conf cannot hold, written without a lease: it is
    // ignored, and the primary keeps serving its replica.
    let bad = r#"{"name":"x","host":"a b","port":1,"role":"replica","state":"stopped"}"#;
    assert!(store
        .put("members/x", bad, None, Expect::Any)
        .await
        .expect("put"));
    let restored = value.clone();
    let mut restored = restored;
    restored
        .as_object_mut()
        .expect("object")
        .remove("x_future_field");
    assert!(store
        .put("config", &restored.to_string(), None, Expect::Any)
        .await
        .expect("put"));
    let out = c.pgbaton(0, &["resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.wait_healthy(UP).await;
    let names: Vec<String> = c
        .list(0)
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["node1", "node2"]);
    for i in 0..2 {
        assert!(
            !c.log(i).contains("panicked"),
            "agent {i} panicked: {}",
            c.log(i)
        );
    }
    for i in 0..2 {
        assert!(c.stop(i).success());
    }
}

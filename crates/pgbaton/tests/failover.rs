//! End-to-end: automatic failover, restart in place, eligibility, pause.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use std::time::{Duration, Instant};

const UP: Duration = Duration::from_secs(90);

/// Writes one row on member `i`; true when it was acknowledged.
async fn write_ok(c: &TestCluster, i: usize) -> bool {
    match c.try_connect(i).await {
        Some(cl) => cl
            .batch_execute("create table if not exists f (t timestamptz default now()); insert into f default values")
            .await
            .is_ok(),
        None => false,
    }
}

async fn node_crash(store: StoreKind) {
    let mut c = TestCluster::new(3, store);
    c.start_all();
    let old = c.wait_healthy(UP).await;
    assert!(write_ok(&c, old).await);
    let t0 = Instant::now();
    c.kill_agent(old);
    c.kill_postgres(old);
    // A replica takes over, the other follows it, and writes work again.
    let new = wait_for("a new primary", UP, || async {
        let l = c.leader()?;
        (l != c.nodes[old].name).then_some(l)
    })
    .await;
    let new = c.index(&new);
    wait_for("writes on the new primary", UP, || async {
        write_ok(&c, new).await.then_some(())
    })
    .await;
    let rto = t0.elapsed();
    assert!(rto < Duration::from_secs(6 + 10), "failover took {rto:?}");
    let other = (0..3).find(|&i| i != old && i != new).expect("other");
    wait_for("the other replica to follow", UP, || async {
        let rows = c.list(0);
        let r = rows
            .iter()
            .find(|r| r["name"] == c.nodes[other].name.as_str())?;
        (r["state"] == "streaming" && r["timeline"] == 2).then_some(())
    })
    .await;
    // The dead member comes back as a replica.
    c.start(old);
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, new);
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        h[0]["reason"].as_str().unwrap_or("").contains("failover"),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn node_crash_fails_over_on_local_store() {
    node_crash(StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_crash_fails_over_on_etcd() {
    node_crash(StoreKind::Etcd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_postmaster_is_restarted_in_place() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let t0 = Instant::now();
    c.kill_postgres(p);
    wait_for("writes again on the same primary", UP, || async {
        write_ok(&c, p).await.then_some(())
    })
    .await;
    let gap = t0.elapsed();
    assert!(
        gap < Duration::from_secs(5),
        "restart in place took {gap:?}"
    );
    assert_eq!(c.leader().as_deref(), Some(c.nodes[p].name.as_str()));
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "no promotion happened"
    );
    c.wait_healthy(UP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_cannot_start_lets_go() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let data = c.nodes[p].data_dir.clone();
    // Make the data directory unusable, then crash PostgreSQL.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o000))
        .expect("chmod");
    c.kill_postgres(p);
    let new = wait_for("the replica to take over", UP, || async {
        let l = c.leader()?;
        (l != c.nodes[p].name).then_some(l)
    })
    .await;
    assert!(
        c.log(p).contains("releasing the leader key"),
        "{}",
        c.log(p)
    );
    let new = c.index(&new);
    wait_for("writes on the new primary", UP, || async {
        write_ok(&c, new).await.then_some(())
    })
    .await;
    c.stop(p);
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
}

#[tokio::test(flavor = "multi_thread")]
async fn nofailover_member_is_never_promoted() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.append_config(2, "tags: {nofailover: true}\n");
    c.start(0);
    c.wait_healthy(UP).await;
    c.start(1);
    c.start(2);
    c.wait_healthy(UP).await;
    assert_eq!(c.leader().as_deref(), Some("node1"));
    c.kill_agent(0);
    c.kill_postgres(0);
    let new = wait_for("a new primary", UP, || async {
        let l = c.leader()?;
        (l != "node1").then_some(l)
    })
    .await;
    assert_eq!(new, "node2", "the nofailover member was promoted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_member_is_not_promoted_and_the_reason_is_shown() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start(0);
    c.wait_healthy(UP).await;
    c.start(1);
    c.wait_healthy(UP).await;
    c.stop(1);
    let w = c.connect(0).await;
    w.batch_execute(
        "create table lag as select g, repeat('x', 900) pad from generate_series(1, 4000) g",
    )
    .await
    .expect("write");
    drop(w);
    wait_for("the primary to publish its new position", UP, || async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Some(())
    })
    .await;
    c.kill_agent(0);
    c.kill_postgres(0);
    c.start(1);
    let note = wait_for("the reason why no failover happens", UP, || async {
        let rows = c.list(1);
        let r = rows.iter().find(|r| r["name"] == "node2")?;
        let note = r["note"].as_str()?.to_string();
        note.contains("lags").then_some(note)
    })
    .await;
    assert!(
        note.contains("no failover") && note.contains("limit"),
        "{note}"
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        assert_eq!(c.leader(), None, "the lagging member was promoted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_cluster_does_not_fail_over() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let out = c.pgbaton(0, &["pause"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kill_agent(p);
    c.kill_postgres(p);
    let r = 1 - p;
    // Past the lease (6 s) and well beyond: nobody takes over.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let l = c.leader();
        assert!(
            l.is_none() || l.as_deref() == Some(c.nodes[p].name.as_str()),
            "failover while paused"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = c.list(r);
    let note = rows
        .iter()
        .find(|x| x["name"] == c.nodes[r].name.as_str())
        .and_then(|x| x["note"].as_str().map(str::to_string));
    assert!(note.unwrap_or_default().contains("paused"));
    // Resuming lets the replica take over.
    let out = c.pgbaton(r, &["resume"]);
    assert!(out.status.success());
    wait_for("failover after resume", UP, || async {
        (c.leader().as_deref() == Some(c.nodes[r].name.as_str())).then_some(())
    })
    .await;
}

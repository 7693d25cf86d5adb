//! End-to-end: a replicated cluster from scratch, on real PostgreSQL 15 and real stores.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use std::collections::BTreeSet;
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

async fn three_members_stream(store: StoreKind) {
    let mut c = TestCluster::new(3, store);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let replicas: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    let names: BTreeSet<String> = replicas.iter().map(|&i| c.nodes[i].name.clone()).collect();

    // On the primary: one active physical slot and one walsender per replica.
    let slots = wait_for("two active slots", UP, || async {
        let s: BTreeSet<String> = c
            .query_col(p, "select slot_name from pg_replication_slots where slot_type = 'physical' and active")
            .await
            .into_iter()
            .collect();
        (s.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(slots, names, "slot names are the member names");
    let apps: BTreeSet<String> = c
        .query_col(p, "select application_name from pg_stat_replication")
        .await
        .into_iter()
        .collect();
    assert_eq!(apps, names);

    for &r in &replicas {
        let status = c
            .query_one(r, "select status from pg_stat_wal_receiver")
            .await;
        assert_eq!(status.as_deref(), Some("streaming"));
        let conninfo = c
            .query_one(r, "show primary_conninfo")
            .await
            .unwrap_or_default();
        for part in [
            "host=".to_string(),
            format!("port='{}'", c.nodes[p].pg_port),
            "user='replicator'".to_string(),
            format!("application_name='{}'", c.nodes[r].name),
        ] {
            assert!(conninfo.contains(&part), "{conninfo} lacks {part}");
        }
        assert!(
            !conninfo.contains("repl-secret"),
            "password leaked into primary_conninfo"
        );
        let slot = c.query_one(r, "show primary_slot_name").await;
        assert_eq!(slot.as_deref(), Some(c.nodes[r].name.as_str()));
    }

    // Rows written on the primary show up on both replicas.
    let w = c.connect(p).await;
    w.batch_execute("create table t (id int primary key, v text); insert into t select g, 'x' from generate_series(1, 1000) g")
        .await
        .expect("write");
    for &r in &replicas {
        wait_for("rows on the replica", UP, || async {
            let n = c.query_one(r, "select count(*) from t").await;
            (n.as_deref() == Some("1000")).then_some(())
        })
        .await;
    }

    // `list --format json` carries the keys scripts rely on.
    let rows = c.list(1);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        for key in [
            "name",
            "host",
            "port",
            "role",
            "state",
            "timeline",
            "lsn",
            "lag_bytes",
        ] {
            assert!(row.get(key).is_some(), "{row} lacks {key}");
        }
        if row["role"] == "primary" {
            assert!(row["lag_bytes"].is_null());
        } else {
            assert!(row["lag_bytes"].is_u64());
        }
        assert_eq!(row["timeline"], 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_stream_on_local_store() {
    three_members_stream(StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_stream_on_etcd() {
    three_members_stream(StoreKind::Etcd).await;
}

/// A replica stopped while the primary writes 100 MB of WAL catches up through its slot,
/// without a new clone.
#[tokio::test(flavor = "multi_thread")]
async fn stopped_replica_catches_up_through_its_slot() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    c.stop(r);
    let lsn = || async {
        c.query_one(p, "select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
            .await
            .and_then(|s| s.parse::<i64>().ok())
            .expect("lsn")
    };
    let before = lsn().await;
    let w = c.connect(p).await;
    w.batch_execute(
        "create table big as select g, repeat('x', 900) as pad from generate_series(1, 110000) g",
    )
    .await
    .expect("write");
    let after = lsn().await;
    assert!(
        after - before > 100_000_000,
        "wrote only {} bytes of WAL",
        after - before
    );
    // The slot kept the WAL while the replica was away.
    let retained = c
        .query_one(p, &format!("select restart_lsn < pg_current_wal_lsn() from pg_replication_slots where slot_name = '{}'", c.nodes[r].name))
        .await;
    assert_eq!(retained.as_deref(), Some("t"));
    c.start(r);
    c.wait_healthy(UP).await;
    wait_for("the replica to replay everything", UP, || async {
        let n = c.query_one(r, "select count(*) from big").await;
        (n.as_deref() == Some("110000")).then_some(())
    })
    .await;
    let clones = c
        .log(r)
        .lines()
        .filter(|l| l.contains("clone from") && l.contains(" done"))
        .count();
    assert_eq!(clones, 1, "the replica was cloned again");
}

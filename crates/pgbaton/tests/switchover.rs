//! End-to-end: planned switchovers, rejoin of the old primary, divergence, reinit.

mod common;

use common::{wait_for, StoreKind, TestCluster, SUPERUSER_PASSWORD};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

/// A writer that commits one numbered row every 10 ms through a multi-host connection
/// string, reconnecting on errors; it records every acknowledged id.
struct Writer {
    acked: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    async fn start(c: &TestCluster) -> Writer {
        let hosts = vec!["127.0.0.1"; c.nodes.len()].join(",");
        let ports: Vec<String> = c.nodes.iter().map(|n| n.pg_port.to_string()).collect();
        let conn = format!(
            "host={hosts} port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres target_session_attrs=read-write connect_timeout=2",
            ports.join(",")
        );
        let setup = c
            .connect(c.nodes.iter().position(|_| true).unwrap_or(0))
            .await;
        drop(setup);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut next = 1i64;
            let mut client: Option<tokio_postgres::Client> = None;
            while !s.load(Ordering::SeqCst) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                        Ok((cl, connection)) => {
                            tokio::spawn(connection);
                            let _ = cl
                                .batch_execute(
                                    "create table if not exists w (id bigint primary key)",
                                )
                                .await;
                            Some(cl)
                        }
                        Err(_) => None,
                    };
                }
                if let Some(cl) = &client {
                    match cl.execute("insert into w values ($1)", &[&next]).await {
                        Ok(_) => {
                            a.lock().expect("lock").push(next);
                            next += 1;
                        }
                        Err(_) => client = None,
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Writer { acked, stop, task }
    }

    async fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let v = self.acked.lock().expect("lock").clone();
        v
    }
}

async fn switch_to(c: &TestCluster, via: usize, to: &str) {
    let out = c.pgbaton(via, &["switchover", "--to", to, "--force"]);
    assert!(
        out.status.success(),
        "switchover to {to} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_under_a_writer_loses_nothing_and_needs_no_rewind() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let old = c.wait_healthy(UP).await;
    let writer = Writer::start(&c).await;
    wait_for("the writer to commit", UP, || async {
        (writer.acked.lock().expect("lock").len() > 20).then_some(())
    })
    .await;
    let new = (0..3).find(|&i| i != old).expect("replica");
    let new_name = c.nodes[new].name.clone();
    switch_to(&c, old, &new_name).await;
    // Keep writing on the new primary for a moment.
    let before = writer.acked.lock().expect("lock").len();
    wait_for("writes on the new primary", UP, || async {
        (writer.acked.lock().expect("lock").len() > before + 20).then_some(())
    })
    .await;
    let acked = writer.stop().await;
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, new);
    // Every acknowledged row is on the new primary.
    let count = c
        .query_one(new, "select count(*) from w")
        .await
        .expect("count");
    let max = c
        .query_one(new, "select max(id) from w")
        .await
        .expect("max");
    assert_eq!(
        count.parse::<usize>().expect("n"),
        acked.len(),
        "acknowledged rows lost"
    );
    assert_eq!(
        max.parse::<i64>().expect("max"),
        *acked.last().expect("acked")
    );
    // The old primary streams from the new one, without pg_rewind.
    let status = c
        .query_one(old, "select status from pg_stat_wal_receiver")
        .await;
    assert_eq!(status.as_deref(), Some("streaming"));
    assert!(!c.log(old).contains("rewinding"), "pg_rewind was used");
    // History shows the new timeline.
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(history[0]["timeline"], 2);
    assert_eq!(history[0]["new_primary"], new_name.as_str());
    assert_eq!(history[0]["old_primary"], c.nodes[old].name.as_str());
}

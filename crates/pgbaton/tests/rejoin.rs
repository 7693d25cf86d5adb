//! End-to-end: a crashed or fenced old primary rejoins without pg_rewind when the new
//! primary has all its WAL, and is rewound when it diverged; replicas stream again at
//! once when their primary restarts in place.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use std::time::{Duration, Instant};

const UP: Duration = Duration::from_secs(90);

/// Member `i` streams from the primary on `timeline`, per `list`.
fn streams_on(c: &TestCluster, i: usize, timeline: u64) -> bool {
    c.list(0).iter().any(|r| {
        r["name"] == c.nodes[i].name.as_str()
            && r["state"] == "streaming"
            && r["timeline"] == timeline
    })
}

/// Wait until member `r` has replayed everything member `p` has written.
async fn caught_up(c: &TestCluster, p: usize, r: usize) {
    let target = c
        .query_one(p, "select pg_current_wal_lsn()::text")
        .await
        .expect("primary lsn");
    let sql = format!("select (pg_last_wal_replay_lsn() >= '{target}'::pg_lsn)::text");
    wait_for("the replica to replay the primary's WAL", UP, || async {
        (c.query_one(r, &sql).await.as_deref() == Some("true")).then_some(())
    })
    .await;
}

/// The agent of the primary dies; its fence stops PostgreSQL at the lease deadline (an
/// immediate shutdown, no shutdown checkpoint); the replica takes over. The old primary
/// wrote nothing the replica lacks, so it follows at once, with no pg_rewind.
#[tokio::test(flavor = "multi_thread")]
async fn a_fenced_old_primary_that_did_not_diverge_rejoins_without_rewind() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    for i in 0..2 {
        c.set_timing(i, 4, 1, 1);
    }
    c.start_all();
    let old = c.wait_healthy(UP).await;
    let new = 1 - old;
    c.connect(old)
        .await
        .batch_execute("create table r (id int); insert into r values (1)")
        .await
        .expect("write");
    caught_up(&c, old, new).await;
    c.kill_agent(old);
    wait_for("the fence to stop the old primary", UP, || async {
        common::postmaster_pid(&c.nodes[old].data_dir)
            .is_none()
            .then_some(())
    })
    .await;
    wait_for("the replica to take over", UP, || async {
        (c.leader().as_deref() == Some(c.nodes[new].name.as_str())).then_some(())
    })
    .await;
    c.start(old);
    wait_for("the old primary to stream on timeline 2", UP, || async {
        streams_on(&c, old, 2).then_some(())
    })
    .await;
    let log = c.log(old);
    assert!(
        log.contains("was not shut down cleanly: its last WAL record"),
        "{log}"
    );
    assert!(!log.contains("rewinding"), "pg_rewind was used: {log}");
    assert_eq!(
        c.query_one(old, "select count(*)::text from r")
            .await
            .as_deref(),
        Some("1")
    );
}

/// The primary writes while the replica is stopped, then crashes (kill -9, no shutdown
/// checkpoint); the replica is promoted by force. The old primary's WAL goes past the
/// switch point: it must be rewound, and its divergent rows are gone.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long tier (scripts/test.sh --long): a crash, a forced failover and a rewind, ~30 s"]
async fn a_crashed_old_primary_that_diverged_is_rewound() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    for i in 0..2 {
        c.set_timing(i, 4, 1, 1);
    }
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let a = 1 - p;
    let w = c.connect(p).await;
    w.batch_execute("create table kept (id int); insert into kept values (1)")
        .await
        .expect("write");
    caught_up(&c, p, a).await;
    c.stop(a);
    w.batch_execute("create table divergent as select g from generate_series(1, 1000) g")
        .await
        .expect("divergent write");
    drop(w);
    c.kill_agent(p);
    c.kill_postgres(p);
    c.start(a);
    // The divergent write is small: once the crashed primary's key expires, the
    // replica may be elected by itself; otherwise promote it by force.
    let a_name = c.nodes[a].name.clone();
    let elected = wait_for("the crashed primary's key to expire", UP, || async {
        if c.leader().as_deref() == Some(a_name.as_str()) {
            return Some(true);
        }
        let rows = c.list(a);
        let r = rows.iter().find(|r| r["name"] == a_name.as_str())?;
        (c.leader().is_none() && r["state"] == "in recovery").then_some(false)
    })
    .await;
    if !elected {
        let out = c.pgbaton(a, &["failover", "--to", &a_name, "--force"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() || text.contains("healthy primary"),
            "{text}"
        );
    }
    wait_for("the replica to lead", UP, || async {
        (c.leader().as_deref() == Some(a_name.as_str())).then_some(())
    })
    .await;
    c.start(p);
    wait_for("the old primary to stream on timeline 2", UP, || async {
        streams_on(&c, p, 2).then_some(())
    })
    .await;
    let log = c.log(p);
    assert!(log.contains("pg_rewind from"), "{log}");
    assert!(!log.contains("re-cloning instead"), "{log}");
    assert_eq!(
        c.query_one(
            p,
            "select count(*)::text from pg_class where relname = 'divergent'"
        )
        .await
        .as_deref(),
        Some("0"),
        "divergent rows survived"
    );
    assert_eq!(
        c.query_one(p, "select count(*)::text from kept")
            .await
            .as_deref(),
        Some("1")
    );
}

/// The primary's postmaster is killed and restarted in place: both replicas stream
/// again well before PostgreSQL's default 5 s retry (pgbaton sets
/// `wal_retrieve_retry_interval` to 250 ms).
#[tokio::test(flavor = "multi_thread")]
async fn replicas_stream_again_soon_after_their_primary_restarts_in_place() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let replicas: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    // The WAL receiver's pid while it streams: a new one streams after a reconnection.
    let receiver = "select coalesce((select pid::text from pg_stat_wal_receiver where status = 'streaming'), 'none')";
    let mut before = Vec::new();
    for &r in &replicas {
        let pid = wait_for("the replica to stream", UP, || async {
            c.query_one(r, receiver).await.filter(|p| p != "none")
        })
        .await;
        before.push(pid);
    }
    let t0 = Instant::now();
    c.kill_postgres(p);
    for (&r, old) in replicas.iter().zip(&before) {
        wait_for("the replica to stream again", UP, || async {
            c.query_one(r, receiver)
                .await
                .filter(|p| p != "none" && p != old)
        })
        .await;
    }
    let took = t0.elapsed();
    eprintln!("postmaster killed → every replica streaming again: {took:?}");
    assert_eq!(c.leader().as_deref(), Some(c.nodes[p].name.as_str()));
    // Generous for a loaded machine, and still below PostgreSQL's 5 s default.
    assert!(
        took < Duration::from_secs(3),
        "replicas streamed again after {took:?}"
    );
}

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

/// Timeline reservation (simulator finding S6) on real servers. The store says that
/// timeline 4 was reserved by a promotion nobody else saw (a member cut off right after
/// it promoted). A switchover must create timeline 5, not 2; the numbers in between are
/// held by comment-only history files; and the members on timeline 1 must follow the
/// new primary across the gap (a standby asks for every history file in between).
#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_timeline_number_is_skipped_and_the_gap_is_followed() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let old = c.wait_healthy(UP).await;
    let store = pgbaton_store::local::LocalStore::open(
        &c.dir.path().join("store"),
        &c.cluster,
        Duration::from_secs(3),
    )
    .expect("open store");
    use pgbaton_store::Store;
    assert!(store
        .put(
            "timeline",
            r#"{"timeline":4,"member":"elsewhere","time_ms":0}"#,
            None,
            pgbaton_store::Expect::Any
        )
        .await
        .expect("put"));
    let new = (0..3).find(|&i| i != old).expect("replica");
    let third = (0..3).find(|&i| i != old && i != new).expect("third");
    let new_name = c.nodes[new].name.clone();
    switch_to(&c, old, &new_name).await;
    assert_eq!(c.wait_healthy(UP).await, new);
    let tli = c
        .query_one(
            new,
            "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
        )
        .await;
    assert_eq!(tli.as_deref(), Some("00000005"), "the new timeline");
    for held in ["00000002", "00000003", "00000004"] {
        let text = std::fs::read_to_string(
            c.nodes[new]
                .data_dir
                .join("pg_wal")
                .join(format!("{held}.history")),
        )
        .expect("held history file");
        assert!(text.starts_with('#'), "{held}.history: {text}");
    }
    let reservation: serde_json::Value =
        serde_json::from_str(&c.local_key("timeline").expect("timeline key")).expect("json");
    assert_eq!(reservation["timeline"], 5);
    assert_eq!(reservation["member"], new_name.as_str());
    // Both others follow timeline 5 and receive a new row.
    c.connect(new)
        .await
        .batch_execute("create table gap (x int); insert into gap values (5)")
        .await
        .expect("write on the new primary");
    for i in [old, third] {
        wait_for(
            &format!("{} to follow timeline 5", c.nodes[i].name),
            UP,
            || async {
                let got = c
                    .query_one(
                        i,
                        "select received_tli::text || ' ' || status from pg_stat_wal_receiver",
                    )
                    .await;
                let row = c.query_one(i, "select count(*) from gap").await;
                (got.as_deref() == Some("5 streaming") && row.as_deref() == Some("1")).then_some(())
            },
        )
        .await;
    }
    assert!(
        !c.log(third).contains("rewinding"),
        "the third member was rewound"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn five_switchovers_leave_everyone_streaming_with_identical_data() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let mut primary = c.wait_healthy(UP).await;
    let writer = Writer::start(&c).await;
    for round in 0..5 {
        let to = (primary + 1 + round % 2) % 3;
        let name = c.nodes[to].name.clone();
        switch_to(&c, primary, &name).await;
        primary = c.wait_healthy(UP).await;
        assert_eq!(primary, to, "round {round}");
    }
    let acked = writer.stop().await;
    let want = format!("{} {}", acked.len(), acked.iter().sum::<i64>());
    for i in 0..3 {
        wait_for("identical data everywhere", UP, || async {
            let got = c
                .query_one(i, "select count(*) || ' ' || coalesce(sum(id), 0) from w")
                .await?;
            (got == want).then_some(())
        })
        .await;
    }
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    let h: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(h.len(), 5);
    assert_eq!(h[4]["timeline"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_to_a_down_or_lagging_member_is_refused() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let down = (0..3).find(|&i| i != p).expect("replica");
    let slow = (0..3).find(|&i| i != p && i != down).expect("replica");
    c.stop(down);
    let out = c.pgbaton(
        p,
        &["switchover", "--to", &c.nodes[down].name.clone(), "--force"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not streaming"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Make the other replica lag: freeze its WAL receiver, then write 4 MB.
    let pid = c
        .query_one(slow, "select pid from pg_stat_wal_receiver")
        .await
        .expect("walreceiver");
    let pid: i32 = pid.parse().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("stop");
    let w = c.connect(p).await;
    w.batch_execute(
        "create table lag as select g, repeat('x', 900) pad from generate_series(1, 4000) g",
    )
    .await
    .expect("write");
    let slow_name = c.nodes[slow].name.clone();
    wait_for("the lag to show", UP, || async {
        let rows = c.list(p);
        let r = rows.iter().find(|r| r["name"] == slow_name.as_str())?;
        (r["lag_bytes"].as_u64()? > 1024 * 1024).then_some(())
    })
    .await;
    let out = c.pgbaton(p, &["switchover", "--to", &slow_name, "--force"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGCONT,
    )
    .expect("cont");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lags"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing changed.
    assert_eq!(c.leader().as_deref(), Some(c.nodes[p].name.as_str()));
    let out = c.pgbaton(p, &["history", "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_switchover_happens_and_a_cancelled_one_does_not() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    let out = c.pgbaton(
        p,
        &[
            "switchover",
            "--to",
            &c.nodes[r].name.clone(),
            "--at",
            "+4s",
            "--force",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.pgbaton(p, &["switchover", "--cancel"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        c.leader().as_deref(),
        Some(c.nodes[p].name.as_str()),
        "a cancelled switchover happened"
    );
    let t0 = std::time::Instant::now();
    let out = c.pgbaton(
        p,
        &[
            "switchover",
            "--to",
            &c.nodes[r].name.clone(),
            "--at",
            "+3s",
            "--force",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        c.leader().as_deref(),
        Some(c.nodes[p].name.as_str()),
        "it happened before its time"
    );
    wait_for("the scheduled switchover", UP, || async {
        (c.leader().as_deref() == Some(c.nodes[r].name.as_str())).then_some(())
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(2500),
        "too early: {:?}",
        t0.elapsed()
    );
}

/// Make `a` diverge: stop it, write on the primary, stop the primary, and fail over to
/// `a` by force. Returns (old primary, new primary).
async fn diverge(c: &mut TestCluster) -> (usize, usize) {
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let a = 1 - p;
    let w = c.connect(p).await;
    w.batch_execute("create table kept (id int); insert into kept values (1)")
        .await
        .expect("write");
    wait_for("the row on the replica", UP, || async {
        (c.query_one(a, "select count(*) from kept").await.as_deref() == Some("1")).then_some(())
    })
    .await;
    c.stop(a);
    w.batch_execute("create table divergent as select g, repeat('x', 900) pad from generate_series(1, 4000) g; select pg_switch_wal(); checkpoint")
        .await
        .expect("divergent write");
    drop(w);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.stop(p);
    c.start(a);
    wait_for("the replica to run without a primary", UP, || async {
        let rows = c.list(a);
        let r = rows
            .iter()
            .find(|r| r["name"] == c.nodes[a].name.as_str())?;
        (r["state"] == "in recovery").then_some(())
    })
    .await;
    let out = c.pgbaton(
        a,
        &["failover", "--to", &c.nodes[a].name.clone(), "--force"],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (p, a)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_old_primary_is_rewound() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    // pg_rewind through a dedicated, non-superuser role.
    for n in &c.nodes {
        let text = std::fs::read_to_string(&n.config).expect("config");
        let text = text.replace(
            "  replication: {username: replicator, password: repl-secret}\n",
            "  replication: {username: replicator, password: repl-secret}\n  rewind: {username: rewinder, password: rw-secret}\n",
        );
        assert!(
            text.contains("rewinder"),
            "the harness config changed: {text}"
        );
        std::fs::write(&n.config, text).expect("write config");
    }
    let (old, new) = diverge(&mut c).await;
    c.start(old);
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, new);
    assert!(c.log(old).contains("pg_rewind from"), "{}", c.log(old));
    // The log reports pg_rewind's result and duration, not the last line of its output.
    let line = c
        .log(old)
        .lines()
        .find(|l| l.contains("pg_rewind from"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.contains("finished in")
            && line.contains("servers diverged at")
            && line.contains("Done!"),
        "{line}"
    );
    assert!(
        !c.log(old).contains("re-cloning instead"),
        "pg_rewind failed: {}",
        c.log(old)
    );
    assert_eq!(
        c.query_one(
            new,
            "select rolsuper::text from pg_roles where rolname = 'rewinder'"
        )
        .await
        .as_deref(),
        Some("false"),
        "the rewind role must exist and not be a superuser"
    );
    assert_eq!(
        c.query_one(old, "select count(*) from kept")
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        c.query_one(
            old,
            "select count(*) from pg_class where relname = 'divergent'"
        )
        .await
        .as_deref(),
        Some("0"),
        "divergent rows survived"
    );
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    let h: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(h.len(), 1);
    assert!(
        h[0]["reason"].as_str().unwrap_or("").contains("forced"),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_primary_that_cannot_be_rewound_is_recloned() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    let (old, new) = diverge(&mut c).await;
    // Remove the old primary's WAL from before the divergence: pg_rewind cannot work.
    let wal = c.nodes[old].data_dir.join("pg_wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .expect("pg_wal")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.len() == 24)
        .collect();
    segments.sort();
    for s in &segments[..segments.len() - 1] {
        std::fs::remove_file(wal.join(s)).expect("remove segment");
    }
    c.start(old);
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, new);
    let log = c.log(old);
    assert!(log.contains("re-cloning instead"), "{log}");
    assert_eq!(
        c.query_one(old, "select count(*) from kept")
            .await
            .as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reinit_rebuilds_a_running_replica() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    let marker = c.nodes[r].data_dir.join("pgbaton-reinit-marker");
    std::fs::write(&marker, "x").expect("marker");
    let out = c.pgbaton(p, &["reinit", &c.nodes[r].name.clone(), "--force"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "the data directory was not rebuilt");
    c.wait_healthy(UP).await;
}

//! End-to-end: fencing. A frozen agent or an unreachable store stops the primary's
//! writes before anyone else can be promoted; never two writable primaries.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const UP: Duration = Duration::from_secs(90);

/// Tries a write on every member every 20 ms and records when each was sent and
/// acknowledged.
struct Prober {
    acks: Arc<Mutex<Vec<(usize, Instant, Instant)>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Prober {
    async fn start(c: &TestCluster) -> Prober {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (i, n) in c.nodes.iter().enumerate() {
            let conn = format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=postgres connect_timeout=1",
                n.pg_port,
                common::SUPERUSER_PASSWORD
            );
            let (acks, stop) = (acks.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                while !stop.load(Ordering::SeqCst) {
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        client = match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                            Ok((cl, connection)) => {
                                tokio::spawn(connection);
                                Some(cl)
                            }
                            Err(_) => None,
                        };
                    }
                    if let Some(cl) = &client {
                        let sent = Instant::now();
                        let r = tokio::time::timeout(
                            Duration::from_secs(1),
                            cl.execute("insert into probe values (default)", &[]),
                        )
                        .await;
                        match r {
                            Ok(Ok(_)) => acks.lock().expect("lock").push((i, sent, Instant::now())),
                            Ok(Err(e)) if e.is_closed() => client = None,
                            Ok(Err(_)) => {}
                            Err(_) => client = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        Prober { acks, stop, tasks }
    }

    async fn stop(self) -> Vec<(usize, Instant, Instant)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        let v = self.acks.lock().expect("lock").clone();
        v
    }

    fn last_ack(&self, i: usize) -> Option<Instant> {
        self.acks
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.0 == i)
            .map(|a| a.2)
            .max()
    }
}

/// No instant at which two members both accepted a write: every write acknowledged by
/// one member ended before the first write that another accepted was sent.
fn assert_never_two_primaries(acks: &[(usize, Instant, Instant)]) {
    let mut by_member: Vec<(usize, Instant, Instant)> = Vec::new();
    for &(i, sent, ack) in acks {
        match by_member.iter_mut().find(|m| m.0 == i) {
            Some(m) => {
                m.1 = m.1.min(sent);
                m.2 = m.2.max(ack);
            }
            None => by_member.push((i, sent, ack)),
        }
    }
    by_member.sort_by_key(|m| m.1);
    for pair in by_member.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.2 < b.1,
            "member {} accepted writes until {:?} after member {} started accepting them",
            a.0,
            a.2 - b.1,
            b.0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_primary_agent_is_fenced_before_a_failover() {
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let old = c.wait_healthy(UP).await;
    c.connect(old)
        .await
        .batch_execute("create table probe (id bigserial)")
        .await
        .expect("table");
    for i in 0..3 {
        wait_for("the table everywhere", UP, || async {
            c.query_one(i, "select count(*) from probe")
                .await
                .map(|_| ())
        })
        .await;
    }
    let prober = Prober::start(&c).await;
    wait_for("writes on the primary", UP, || async {
        prober.last_ack(old).map(|_| ())
    })
    .await;
    let frozen_at = Instant::now();
    c.signal_agent(old, nix::sys::signal::Signal::SIGSTOP);
    let new = wait_for("a new primary accepting writes", UP, || async {
        (0..3).find(|&i| i != old && prober.last_ack(i).is_some())
    })
    .await;
    let old_last = prober.last_ack(old).expect("old primary acks");
    // ttl 6 s minus the 2 s safety margin: the old primary stopped within about 4 s.
    assert!(
        old_last - frozen_at < Duration::from_millis(4600),
        "old primary wrote for {:?}",
        old_last - frozen_at
    );
    c.signal_agent(old, nix::sys::signal::Signal::SIGCONT);
    let acks = prober.stop().await;
    assert_never_two_primaries(&acks);
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, new);
    let log = c.log(old);
    assert!(log.contains("fenced"), "the fence did not act: {log}");
}

/// How the test cuts the store off, and restores it.
enum Outage {
    /// Hold the local store's lock (its documented test hook).
    LocalFreeze(Option<pgbaton_store::local::FreezeGuard>),
    /// SIGSTOP the etcd member.
    EtcdPause,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_outage_fences_the_primary_and_it_carries_on_after() {
    store_outage(StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_etcd_outage_fences_the_primary_and_it_carries_on_after() {
    store_outage(StoreKind::Etcd).await;
}

async fn store_outage(kind: StoreKind) {
    let (c, p, prober) = writing_pair(kind).await;
    let store_dir = c.dir.path().join("store");
    let frozen_at = Instant::now();
    let mut outage = match kind {
        StoreKind::Local => Outage::LocalFreeze(Some(
            pgbaton_store::local::LocalStore::freeze_for_tests(&store_dir, &c.cluster)
                .expect("freeze"),
        )),
        StoreKind::Etcd => {
            c.etcd.as_ref().expect("etcd").pause(0);
            Outage::EtcdPause
        }
    };
    // The primary must stop accepting writes by ttl - safety margin (8 s).
    let stopped = writes_stopped(&prober, p, frozen_at).await;
    assert!(
        stopped < Duration::from_millis(8300),
        "the primary wrote for {stopped:?} without the store"
    );
    match &mut outage {
        Outage::LocalFreeze(guard) => drop(guard.take()),
        Outage::EtcdPause => c.etcd.as_ref().expect("etcd").resume(0),
    }
    // The same primary carries on; nobody was promoted.
    let before = prober.last_ack(p).expect("acks");
    wait_for("writes again on the same primary", UP, || async {
        (prober.last_ack(p)? > before).then_some(())
    })
    .await;
    let acks = prober.stop().await;
    assert!(
        acks.iter().all(|a| a.0 == p),
        "another member accepted writes"
    );
    assert_eq!(c.leader().as_deref(), Some(c.nodes[p].name.as_str()));
    let out = c.pgbaton(0, &["history", "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// SIGSTOP (or SIGCONT) the PostgreSQL processes of member `i`: its walreceiver sends
/// no more status replies, as when the network to it is cut.
fn freeze_postgres(c: &TestCluster, i: usize, sig: nix::sys::signal::Signal) {
    let pm = common::postmaster_pid(&c.nodes[i].data_dir).expect("replica postmaster");
    let mut pids = common::descendants(pm);
    pids.push(pm);
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
}

/// Wait (up to 12 s) until member `p` has acknowledged nothing for 300 ms; how long
/// after `since` its last write was acknowledged.
async fn writes_stopped(prober: &Prober, p: usize, since: Instant) -> Duration {
    wait_for(
        "the primary to stop accepting writes",
        Duration::from_secs(12),
        || async {
            let last = prober.last_ack(p)?;
            (last.elapsed() > Duration::from_millis(300)).then_some(())
        },
    )
    .await;
    prober.last_ack(p).expect("acks") - since
}

/// A 2-member cluster on `kind` (ttl 10, loop_wait 1, retry_timeout 2) with a probe
/// table and writes flowing on the primary; returns the primary's index and the prober.
async fn writing_pair(kind: StoreKind) -> (TestCluster, usize, Prober) {
    let mut c = TestCluster::new(2, kind);
    for i in 0..2 {
        c.set_timing(i, 10, 1, 2);
    }
    c.start_all();
    let p = c.wait_healthy(UP).await;
    c.connect(p)
        .await
        .batch_execute("create table probe (id bigserial)")
        .await
        .expect("table");
    wait_for("the table on the replica", UP, || async {
        c.query_one(1 - p, "select count(*) from probe")
            .await
            .map(|_| ())
    })
    .await;
    let prober = Prober::start(&c).await;
    wait_for("writes on the primary", UP, || async {
        prober.last_ack(p).map(|_| ())
    })
    .await;
    (c, p, prober)
}

/// Issue 11 item 5: a primary that reaches neither the store nor its replica stops
/// accepting writes after about retry_timeout (2 s) plus two status-reply intervals,
/// not at its fence deadline (ttl 10 - margin 2 = 8 s); once the store answers again,
/// the same member carries on as primary.
#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_primary_stops_writes_well_before_its_fence_deadline() {
    use nix::sys::signal::Signal;
    let (c, p, prober) = writing_pair(StoreKind::Local).await;
    let store_dir = c.dir.path().join("store");
    freeze_postgres(&c, 1 - p, Signal::SIGSTOP);
    let frozen_at = Instant::now();
    let guard =
        pgbaton_store::local::LocalStore::freeze_for_tests(&store_dir, &c.cluster).expect("freeze");
    let stopped = writes_stopped(&prober, p, frozen_at).await;
    freeze_postgres(&c, 1 - p, Signal::SIGCONT);
    drop(guard);
    eprintln!("the isolated primary stopped writing {stopped:?} after the cut");
    // The fence deadline is 8 s after the older of the last renewal (sent every 2.5 s)
    // and the last confirmation: at least 5.5 s after the cut. The guard acts about
    // retry_timeout (2 s) after the last store success, once the store call failed.
    assert!(
        stopped < Duration::from_millis(5000),
        "the isolated primary wrote for {stopped:?} (its fence deadline is 5.5-8 s after the cut)"
    );
    assert!(
        c.log(p).contains("isolated: no answer from the store"),
        "the isolation guard did not act:\n{}",
        c.log(p)
    );
    let before = prober.last_ack(p).expect("acks");
    wait_for("writes again on the same primary", UP, || async {
        (prober.last_ack(p)? > before).then_some(())
    })
    .await;
    let acks = prober.stop().await;
    assert_never_two_primaries(&acks);
    assert_eq!(c.leader().as_deref(), Some(c.nodes[p].name.as_str()));
}

/// The other side of item 5: a store outage shorter than the fence deadline, with the
/// replica streaming, does not stop the primary's writes at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_blip_with_a_streaming_replica_does_not_stop_the_primary() {
    let (c, p, prober) = writing_pair(StoreKind::Local).await;
    let store_dir = c.dir.path().join("store");
    let guard =
        pgbaton_store::local::LocalStore::freeze_for_tests(&store_dir, &c.cluster).expect("freeze");
    let frozen_at = Instant::now();
    // 6 s: past retry_timeout + the reply window, short of the 8 s fence deadline.
    let mut longest_gap = Duration::ZERO;
    while frozen_at.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let since_ack = prober.last_ack(p).expect("acks").elapsed();
        longest_gap = longest_gap.max(since_ack);
    }
    drop(guard);
    assert!(
        longest_gap < Duration::from_millis(1500),
        "the primary stopped writing for {longest_gap:?} during a 6 s store outage"
    );
    assert!(!c.log(p).contains("isolated: no answer from the store"));
    let acks = prober.stop().await;
    assert!(
        acks.iter().all(|a| a.0 == p),
        "another member accepted writes"
    );
}

//! The local store shared by several OS processes: CAS races, crashes in the middle of
//! a write, and leases of a killed process. Child processes are this test binary
//! re-executed with `PGBATON_STORE_CHILD` set, running only `child_entry`.

use pgbaton_store::local::LocalStore;
use pgbaton_store::{Expect, Store};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PGBATON_STORE_CHILD";
const CLUSTER: &str = "mp";

/// Not a test on its own: the body of a child process, selected by `PGBATON_STORE_CHILD`
/// (`counter:<dir>:<n>`, `scribble:<dir>` or `lease:<dir>`).
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = mode.splitn(3, ':').collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = LocalStore::open(Path::new(parts[1]), CLUSTER, Duration::from_secs(20)).unwrap();
    rt.block_on(async move {
        match parts[0] {
            "counter" => increment(&store, parts[2].parse().unwrap()).await,
            "scribble" => scribble(&store).await,
            "lease" => hold_lease(&store).await,
            other => panic!("unknown child mode {other}"),
        }
    });
}

/// Add one to `counter` `n` times with CAS loops; race to create `winner` once.
async fn increment(s: &LocalStore, n: u64) {
    let me = std::process::id().to_string();
    s.put("winner", &me, None, Expect::Absent).await.unwrap();
    let mut done = 0;
    while done < n {
        let cur = s.get("counter").await.unwrap();
        let (value, expect) = match cur {
            None => (1, Expect::Absent),
            Some(e) => (
                e.value.parse::<u64>().unwrap() + 1,
                Expect::ModRevision(e.mod_revision),
            ),
        };
        if s.put("counter", &value.to_string(), None, expect)
            .await
            .unwrap()
        {
            done += 1;
        }
    }
}

/// Rewrite a large self-checking value forever (until killed).
async fn scribble(s: &LocalStore) {
    let mut i: u64 = match s.get("seq").await.unwrap() {
        Some(e) => e.value.parse().unwrap(),
        None => 0,
    };
    loop {
        i += 1;
        let body = "x".repeat(2 << 20);
        s.put("big", &format!("{i}:{body}:{i}"), None, Expect::Any)
            .await
            .unwrap();
        s.put("seq", &i.to_string(), None, Expect::Any)
            .await
            .unwrap();
        // The lock is not fair: without a pause longer than a waiter's 2 ms retry, the
        // test's own reads could be starved while fsync is slow (seen beside a build).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Hold a 1 s lease with an attached key, renewing it until killed.
async fn hold_lease(s: &LocalStore) {
    let l = s.grant_lease(Duration::from_secs(1)).await.unwrap();
    s.put("members/child", "alive", Some(l), Expect::Absent)
        .await
        .unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.keep_alive(l).await.unwrap();
    }
}

fn spawn_child(mode: String) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn wait_child(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn processes_race_on_cas() {
    let dir = tempfile::tempdir().unwrap();
    let (procs, per_proc) = (4, 40);
    let mut children: Vec<Child> = (0..procs)
        .map(|_| spawn_child(format!("counter:{}:{per_proc}", dir.path().display())))
        .collect();
    let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    tokio::task::spawn_blocking(move || {
        for c in &mut children {
            wait_child(c, Duration::from_secs(8));
        }
    })
    .await
    .unwrap();
    let s = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(
        snap.value("counter"),
        Some((procs * per_proc).to_string().as_str())
    );
    let winner = snap.value("winner").unwrap();
    assert!(pids.iter().any(|p| p == winner), "{winner} not in {pids:?}");
}

#[tokio::test]
async fn crash_in_the_middle_of_writes_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).unwrap();
    let mut last_rev = 0;
    let mut last_seq = 0u64;
    let mut stray_temps = 0;
    for round in 0..5u64 {
        let mut child = spawn_child(format!("scribble:{}", dir.path().display()));
        // Let it get going, then kill it at a moment that varies per round.
        eventually(Duration::from_secs(5), "child to write", || async {
            let seq = s.get("seq").await.unwrap()?.value.parse::<u64>().ok()?;
            (seq > last_seq).then_some(())
        })
        .await;
        if round % 2 == 0 {
            // Kill it the moment a temp file shows up: right in the middle of a write.
            let cluster_dir = s.cluster_dir().to_path_buf();
            child = tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + Duration::from_secs(5);
                while !has_temp_file(&cluster_dir) {
                    assert!(Instant::now() < deadline, "never saw a temp file");
                }
                child.kill().unwrap();
                child
            })
            .await
            .unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(7 * round + 3)).await;
            child.kill().unwrap();
        }
        child.wait().unwrap();
        stray_temps += usize::from(has_temp_file(s.cluster_dir()));

        let reopened = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).unwrap();
        let snap = reopened.snapshot().await.unwrap();
        assert!(snap.revision >= last_rev, "revision went back");
        last_rev = snap.revision;
        let big = snap.value("big").unwrap();
        let (head, rest) = big.split_once(':').unwrap();
        let (body, tail) = rest.rsplit_once(':').unwrap();
        assert_eq!(head, tail, "torn value");
        assert_eq!(body.len(), 2 << 20);
        let seq: u64 = snap.value("seq").unwrap().parse().unwrap();
        let big_seq: u64 = head.parse().unwrap();
        assert!(
            big_seq == seq || big_seq == seq + 1,
            "big {big_seq} vs seq {seq}"
        );
        last_seq = seq;
    }
    // The next write removes whatever temp files the crashes left.
    assert!(s.put("after", "crash", None, Expect::Absent).await.unwrap());
    let names: Vec<String> = std::fs::read_dir(s.cluster_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    assert!(stray_temps > 0, "no kill hit the middle of a write");
}

fn has_temp_file(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp."))
}

#[tokio::test]
async fn lease_of_a_killed_process_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).unwrap();
    let mut child = spawn_child(format!("lease:{}", dir.path().display()));
    eventually(Duration::from_secs(5), "child's key", || async {
        s.get("members/child").await.unwrap()
    })
    .await;
    // Outlive a few renewals to show they work across processes.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let rev = s.snapshot().await.unwrap().revision;
    assert_eq!(
        s.get("members/child").await.unwrap().unwrap().value,
        "alive"
    );
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    let r = s
        .wait_for_change(rev, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(r > rev);
    assert!(
        killed.elapsed() < Duration::from_millis(2500),
        "{:?}",
        killed.elapsed()
    );
    assert!(s.get("members/child").await.unwrap().is_none());
}

#[tokio::test]
async fn corrupt_state_is_reported_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).unwrap();
    s.put("config", "{}", None, Expect::Any).await.unwrap();
    let path = s.cluster_dir().join("state.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = s.snapshot().await.unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let err = s.put("config", "x", None, Expect::Any).await.unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    assert!(LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(2)).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
}

/// Safety review finding 12 (last part): a process that holds the lock and never lets go
/// (an agent frozen with SIGSTOP mid-operation; here `flock` holding it) stalls the store
/// for everyone else, safely: every call fails as unreachable at its own deadline (so
/// lease keepers stop renewing and fences fire on time), nothing is written, and the
/// store works again once the holder is gone.
#[tokio::test]
async fn a_frozen_lock_holder_stalls_every_caller_until_its_deadline_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path(), CLUSTER, Duration::from_secs(1)).unwrap();
    assert!(s.put("k", "before", None, Expect::Any).await.unwrap());
    let rev = s.snapshot().await.unwrap().revision;
    let lock = dir.path().join(CLUSTER).join("lock");
    assert!(lock.exists(), "{}", lock.display());
    // `--close`: the lock stays with flock(1) itself, not with the `cat` it runs (which
    // ends when its stdin, held here, is dropped).
    let mut holder = Command::new("flock")
        .arg("--close")
        .arg(&lock)
        .arg("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until the holder has the lock: a put fails.
    let t0 = Instant::now();
    loop {
        let started = Instant::now();
        match s.put("k", "during", None, Expect::Any).await {
            Err(e) => {
                assert!(
                    matches!(e, pgbaton_store::StoreError::Unreachable(_)),
                    "{e}"
                );
                // The call gave up at its own deadline, not later.
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "{:?}",
                    started.elapsed()
                );
                break;
            }
            Ok(_) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "flock never took the lock"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let started = Instant::now();
    assert!(s.get("k").await.is_err(), "reads stall too");
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.kill().unwrap();
    holder.wait().unwrap();
    eventually(
        Duration::from_secs(5),
        "the store to answer again",
        || async { s.snapshot().await.ok() },
    )
    .await;
    let entry = s.get("k").await.unwrap().unwrap();
    assert!(
        entry.value == "before" || entry.value == "during",
        "{}",
        entry.value
    );
    assert!(s.put("k", "after", None, Expect::Any).await.unwrap());
    assert!(s.snapshot().await.unwrap().revision > rev);
}

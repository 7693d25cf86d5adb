//! End-to-end on etcd: a cluster on a 3-member etcd is not disturbed when one etcd
//! member dies or when someone writes undecodable entries under its prefix, and
//! `pgbaton demo --store etcd` comes up and stops cleanly.

mod common;

use common::{wait_for, TestCluster};
use pgbaton_store::testkit::EtcdCluster;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UP: Duration = Duration::from_secs(60);
/// The lease TTL the harness configures (`bootstrap.ttl`).
const TTL: Duration = Duration::from_secs(6);

/// Log phrases (lower case) that mean a member gave up or changed its role; none may
/// appear after an etcd member dies.
const DISTURBANCES: &[&str] = &[
    "demot",
    "fenced",
    "lease deadline passed",
    "lease expired",
    "stopping postgresql",
    "restarting postgresql",
    "promoted",
    "promoting",
    "re-point",
    "no leader in the store",
];

/// Which etcd member the test takes away, and how.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// SIGKILL the etcd leader.
    Leader,
    /// SIGKILL a follower.
    Follower,
    /// SIGSTOP a follower: its sockets stay open but it answers nothing.
    HungFollower,
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_an_etcd_follower_does_not_disturb_the_cluster() {
    undisturbed_by_losing(Victim::Follower).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_etcd_leader_does_not_disturb_the_cluster() {
    undisturbed_by_losing(Victim::Leader).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_etcd_member_does_not_disturb_the_cluster() {
    undisturbed_by_losing(Victim::HungFollower).await;
}

async fn undisturbed_by_losing(victim: Victim) {
    let etcd = EtcdCluster::start(3);
    let planned = pick(&etcd, victim);
    let mut c = TestCluster::with_etcd(3, etcd);
    // Every agent (and `list`) talks to the victim first, so its death also forces
    // each client over to another endpoint.
    put_first(&c, &etcd_of(&c).endpoint(planned));
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let primary = c.nodes[p].name.clone();
    assert_undisturbed(&c.list(0), &primary, 3);

    let w = c.connect(p).await;
    w.batch_execute("create table beat (n int primary key)")
        .await
        .expect("create table on the primary");
    let start_time = c
        .query_one(p, "select pg_postmaster_start_time()::text")
        .await;
    let marks: Vec<usize> = (0..3).map(|i| c.log(i).len()).collect();

    // Choose again now: the etcd leader may have moved while the cluster came up.
    let kill = pick(etcd_of(&c), victim);
    eprintln!("killing etcd member {kill} ({victim:?}); agents talk to member {planned} first");
    match victim {
        Victim::Leader | Victim::Follower => etcd_of(&c).kill(kill),
        Victim::HungFollower => etcd_of(&c).pause(kill),
    }
    // A one-shot `list` spends its whole call timeout on the first endpoint when that
    // one hangs (the store moves on only for later calls), so for a hung member it
    // reads through a config that names the member last.
    let client = match victim {
        Victim::HungFollower => Some(client_config(&c, &etcd_of(&c).endpoint(kill))),
        _ => None,
    };

    let until = Instant::now() + 3 * TTL;
    let mut writes = 0;
    while Instant::now() < until {
        match &client {
            Some(path) => assert_undisturbed(&list(path), &primary, 3),
            None => {
                for i in 0..3 {
                    assert_undisturbed(&c.list(i), &primary, 3);
                }
            }
        }
        writes += 1;
        if let Err(e) = w.execute("insert into beat values ($1)", &[&writes]).await {
            panic!("write {writes} on the primary {primary} failed after the etcd kill: {e}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(writes > 20, "only {writes} rounds in {:?}", 3 * TTL);
    assert_eq!(
        c.query_one(p, "select pg_is_in_recovery()::text")
            .await
            .as_deref(),
        Some("false")
    );
    assert_eq!(
        c.query_one(p, "select pg_postmaster_start_time()::text")
            .await,
        start_time,
        "the primary's PostgreSQL was restarted"
    );
    for i in (0..3).filter(|&i| i != p) {
        wait_for("every write on the replica", UP, || async {
            let n = c.query_one(i, "select count(*) from beat").await;
            (n == Some(writes.to_string())).then_some(())
        })
        .await;
    }
    undisturbed_logs(&c, &marks, "the etcd kill");
}

/// Each member's log since `marks`, after checking that no line shows a disturbance
/// (see [`DISTURBANCES`]) since `event`; WARN and ERROR lines are printed.
fn undisturbed_logs(c: &TestCluster, marks: &[usize], event: &str) -> Vec<String> {
    let mut logs = Vec::new();
    for (i, &mark) in marks.iter().enumerate() {
        let log = c.log(i);
        let after = &log[mark..];
        for line in after.lines() {
            let lower = line.to_lowercase();
            if let Some(word) = DISTURBANCES.iter().find(|w| lower.contains(*w)) {
                panic!(
                    "{} logged {word:?} after {event}:\n{line}\n--- log since then ---\n{after}",
                    c.nodes[i].name
                );
            }
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                eprintln!("{} after {event}: {line}", c.nodes[i].name);
            }
        }
        logs.push(after.to_string());
    }
    logs
}

/// Exactly `n` members, `primary` the only primary and leader, the others streaming.
fn assert_undisturbed(rows: &[Value], primary: &str, n: usize) {
    assert_eq!(rows.len(), n, "members missing: {rows:#?}");
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default();
        let want = if name == primary {
            ("primary", "running", true)
        } else {
            ("replica", "streaming", false)
        };
        let got = (
            row["role"].as_str().unwrap_or_default(),
            row["state"].as_str().unwrap_or_default(),
            row["leader"].as_bool().unwrap_or_default(),
        );
        assert_eq!(got, want, "{name} (primary is {primary}): {rows:#?}");
    }
}

fn etcd_of(c: &TestCluster) -> &EtcdCluster {
    c.etcd.as_ref().expect("the cluster runs on etcd")
}

/// The index of the member to kill: the etcd leader, or the member after it.
fn pick(etcd: &EtcdCluster, victim: Victim) -> usize {
    let leader = wait_leader(etcd);
    match victim {
        Victim::Leader => leader,
        Victim::Follower | Victim::HungFollower => (leader + 1) % 3,
    }
}

/// The index of the etcd member that is leader, per its own status.
fn wait_leader(etcd: &EtcdCluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (i, url) in etcd.endpoints().iter().enumerate() {
            if let Some(status) = member_status(url) {
                let me = &status["header"]["member_id"];
                if !me.is_null() && *me == status["leader"] {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no etcd leader within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /v3/maintenance/status` through etcd's JSON gateway.
fn member_status(url: &str) -> Option<Value> {
    let addr: std::net::SocketAddr = url.strip_prefix("http://")?.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(
        b"POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

/// `pgbaton list --format json -c config`.
fn list(config: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
        .args(["list", "--format", "json", "-c"])
        .arg(config)
        .output()
        .expect("run list");
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("list json")
}

/// A copy of node1's config whose endpoint list ends with `last`, for `list`.
fn client_config(c: &TestCluster, last: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&c.nodes[0].config).expect("read config");
    let mut ordered: Vec<String> = etcd_of(c)
        .endpoints()
        .into_iter()
        .filter(|e| e != last)
        .collect();
    ordered.push(last.to_string());
    let path = c.dir.path().join("client.yaml");
    std::fs::write(&path, with_endpoints(&text, &ordered)).expect("write config");
    path
}

/// `text` with its `endpoints: [...]` list replaced by `endpoints` (in that order).
fn with_endpoints(text: &str, endpoints: &[String]) -> String {
    let list = endpoints
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.find("endpoints: [") {
            Some(at) => {
                found = true;
                format!("{}endpoints: [{list}]", &line[..at])
            }
            None => line.to_string(),
        })
        .collect();
    assert!(found, "no endpoints list in:\n{text}");
    lines.join("\n") + "\n"
}

/// Rewrite every member config so that `endpoint` comes first in `store.etcd.endpoints`.
fn put_first(c: &TestCluster, endpoint: &str) {
    let mut ordered = vec![endpoint.to_string()];
    ordered.extend(etcd_of(c).endpoints().into_iter().filter(|e| e != endpoint));
    for node in &c.nodes {
        let text = std::fs::read_to_string(&node.config).expect("read config");
        std::fs::write(&node.config, with_endpoints(&text, &ordered)).expect("write config");
    }
}

/// A `pgbaton demo` child process; SIGTERMed (then killed) on drop.
struct Demo(Option<Child>);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            sigterm(child.id());
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_on_etcd_comes_up_and_stops_cleanly() {
    let tmp = tempfile::Builder::new()
        .prefix("pgbaton-demo-etcd-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let dir = tmp.path().join("demo");
    let out_path = tmp.path().join("demo.out");
    let out = std::fs::File::create(&out_path).expect("demo output file");
    let child = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
        .args(["demo", "--store", "etcd", "--nodes", "2", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("start the demo");
    let mut demo = Demo(Some(child));
    let output = || std::fs::read_to_string(&out_path).unwrap_or_default();

    let config = dir.join("node1.yaml");
    let deadline = Instant::now() + UP;
    while !demo_streams(&config) {
        if let Some(Ok(Some(status))) = demo.0.as_mut().map(Child::try_wait) {
            panic!("the demo exited early ({status}):\n{}", output());
        }
        assert!(
            Instant::now() < deadline,
            "no primary and streaming replica within {UP:?}:\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&config).expect("node1.yaml");
    assert!(
        text.contains("endpoints: [\"http://127.0.0.1:22379\"]"),
        "{text}"
    );
    assert!(dir.join("etcd").is_dir() && dir.join("logs/etcd.log").is_file());

    let mut child = demo.0.take().expect("demo running");
    sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the demo") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the demo did not exit within 60 s of SIGTERM:\n{}",
                output()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "demo exited with {status}:\n{}", output());
    let left = processes_under(&dir);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    for node in ["node1", "node2"] {
        let pid = dir.join("data").join(node).join("postmaster.pid");
        assert!(!pid.exists(), "{} still exists", pid.display());
    }
    let text = output();
    assert!(text.contains("stopped etcd"), "{text}");

    // The configs name etcd: a run on the local store is refused, with the way back.
    let again = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
        .args(["demo", "--nodes", "2", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the demo again");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(
        err.contains("uses etcd at http://127.0.0.1:22379") && err.contains("--store etcd`"),
        "{err}"
    );
    assert!(
        processes_under(&dir).is_empty(),
        "the refused run started something"
    );
}

/// Whether `pgbaton list` through `config` shows one running primary and one streaming
/// replica.
fn demo_streams(config: &Path) -> bool {
    let Ok(out) = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
        .args(["list", "--format", "json", "-c"])
        .arg(config)
        .output()
    else {
        return false;
    };
    let Ok(rows) = serde_json::from_slice::<Vec<Value>>(&out.stdout) else {
        return false;
    };
    let roles: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    roles.len() == 2
        && roles.contains(&("primary", "running"))
        && roles.contains(&("replica", "streaming"))
}

/// Every process whose command line mentions `dir` (etcd's data dir, a postmaster's
/// `-D`, an agent's config), as "pid: command line".
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(&needle)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// A value and a key that are not UTF-8, written under the cluster's prefix by someone
/// else, must not stop any member from reading the cluster: the primary keeps its
/// lease and its writes, nobody fails over or fences, and each member warns about each
/// bad key once instead of on every loop.
#[tokio::test(flavor = "multi_thread")]
async fn undecodable_entries_in_etcd_do_not_disturb_the_cluster() {
    let mut c = TestCluster::new(3, common::StoreKind::Etcd);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let primary = c.nodes[p].name.clone();
    let w = c.connect(p).await;
    w.batch_execute("create table beat (n int primary key)")
        .await
        .expect("create table on the primary");
    let marks: Vec<usize> = (0..3).map(|i| c.log(i).len()).collect();

    // Raw bytes as etcdctl arguments: `etcdctl put /pgbaton/test/junk $'\xff'`.
    let prefix = format!("/pgbaton/{}/", c.cluster);
    let os =
        |b: &[u8]| <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b).to_os_string();
    let etcd = etcd_of(&c);
    etcd.etcdctl(
        0,
        &[
            os(b"put"),
            os(format!("{prefix}junk").as_bytes()),
            os(b"\xff"),
        ],
    );
    etcd.etcdctl(
        0,
        &[
            os(b"put"),
            os(&[prefix.as_bytes(), b"bad\xfekey"].concat()),
            os(b"{}"),
        ],
    );

    let until = Instant::now() + 3 * TTL;
    let mut writes = 0;
    while Instant::now() < until {
        assert_undisturbed(&c.list(0), &primary, 3);
        writes += 1;
        if let Err(e) = w.execute("insert into beat values ($1)", &[&writes]).await {
            panic!("write {writes} on the primary {primary} failed after the bad entries: {e}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(writes > 20, "only {writes} rounds in {:?}", 3 * TTL);
    assert_eq!(
        c.query_one(p, "select pg_is_in_recovery()::text")
            .await
            .as_deref(),
        Some("false")
    );
    let logs = undisturbed_logs(&c, &marks, "the bad entries");
    for (i, after) in logs.iter().enumerate() {
        let warnings: Vec<&str> = after.lines().filter(|l| l.contains("not UTF-8")).collect();
        assert!(
            (1..=2).contains(&warnings.len()),
            "{} warned {} times about the 2 bad entries:\n{after}",
            c.nodes[i].name,
            warnings.len()
        );
        // Each names the key the way a shell takes it back: etcdctl del $'...'.
        for w in &warnings {
            assert!(
                w.contains(&format!("etcdctl del $'{prefix}junk'"))
                    || w.contains(&format!("etcdctl del $'{prefix}bad\\xfekey'")),
                "{w}"
            );
        }
    }
}

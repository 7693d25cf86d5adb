//! End-to-end: the real `pgbaton demo`, interrupted with SIGINT (what Ctrl-C sends) at
//! several moments of its first start, heals when it is started again.

mod common;

use common::{local_store_key, postmaster_pid, Moment};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const UP: Duration = Duration::from_secs(120);

/// One demo at a time: demos started together would pick the same free ports.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One `pgbaton demo --dir <tempdir>/demo`. The demo makes its directory itself (it
/// refuses one it did not make); the demo's output goes beside it.
struct Demo {
    root: tempfile::TempDir,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Demo {
    fn new() -> Demo {
        let root = tempfile::Builder::new()
            .prefix("pgbaton-demo-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir = root.path().join("demo");
        Demo {
            root,
            dir,
            child: None,
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("demo.out"))
            .expect("demo.out");
        let child = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
            .args(["demo", "--nodes", &NODES.to_string(), "--dir"])
            .arg(self.dir.as_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn demo");
        self.child = Some(child);
    }

    /// Ctrl-C, and wait for the demo to stop its members and exit.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("demo running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + UP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(
                    status.success(),
                    "demo exited with {status}: {}",
                    self.output()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.root.path().join("demo.out")).unwrap_or_default()
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        (1..=NODES)
            .map(|i| self.dir.as_path().join("data").join(format!("node{i}")))
            .collect()
    }

    fn key(&self, key: &str) -> Option<String> {
        local_store_key(&self.dir.as_path().join("store"), "demo", key)
    }

    /// `pgbaton list --format json`, or None while it cannot answer yet.
    fn list(&self) -> Option<Vec<Value>> {
        let out = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
            .args(["list", "--format", "json", "-c"])
            .arg(self.dir.as_path().join("node1.yaml"))
            .output()
            .ok()?;
        out.status.success().then_some(())?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn wait_moment(&self, m: Moment) {
        let dirs = self.data_dirs();
        let deadline = Instant::now() + UP;
        while !m.reached(|k| self.key(k), &dirs) {
            assert!(Instant::now() < deadline, "never reached {m:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Poll `list` until one primary runs and every other member streams; then check
    /// that every member has the system identifier the store records.
    async fn wait_converged(&mut self, what: &str) {
        let deadline = Instant::now() + UP;
        let ports = loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{what}: the demo exited ({status}):\n{}", self.logs());
            }
            if let Some(rows) = self.list() {
                let primaries = rows
                    .iter()
                    .filter(|r| r["role"] == "primary" && r["state"] == "running")
                    .count();
                let streaming = rows
                    .iter()
                    .filter(|r| r["role"] == "replica" && r["state"] == "streaming")
                    .count();
                if rows.len() == NODES && primaries == 1 && streaming == NODES - 1 {
                    break rows
                        .iter()
                        .filter_map(|r| r["port"].as_u64())
                        .collect::<Vec<_>>();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not converged within {UP:?}: {:?}\n{}",
                self.list(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let init: Value =
            serde_json::from_str(&self.key("initialize").expect("initialize key")).expect("json");
        let recorded = init["system_identifier"].as_str().expect("recorded");
        for port in ports {
            let conn = format!(
                "host=127.0.0.1 port={port} user=postgres password=pgbaton-demo-superuser \
                 dbname=postgres connect_timeout=3"
            );
            let (c, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let row = c
                .query_one(
                    "select system_identifier::text from pg_control_system()",
                    &[],
                )
                .await
                .expect("query");
            assert_eq!(row.get::<_, String>(0), recorded, "{what}: port {port}");
        }
    }

    fn logs(&self) -> String {
        let mut out = self.output();
        for i in 1..=NODES {
            let log = self.dir.as_path().join("logs").join(format!("node{i}.log"));
            out.push_str(&format!(
                "\n===== node{i} =====\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        out
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for d in self.data_dirs() {
            if let Some(pid) = postmaster_pid(&d) {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The two moments of the reported bug (Ctrl-C right after initdb, and while a replica
/// clones); the long tier interrupts at every moment.
#[tokio::test(flavor = "multi_thread")]
async fn a_demo_interrupted_after_initdb_or_during_a_clone_heals() {
    interrupt_at(&[Moment::DataInPlace, Moment::CloneTmp]).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long tier (scripts/test.sh --long): 7 moments, ~85 s"]
async fn a_demo_interrupted_at_any_moment_heals_when_started_again() {
    interrupt_at(&[
        Moment::Claimed,
        Moment::InitdbTmp,
        Moment::DataInPlace,
        Moment::Recorded,
        Moment::PostmasterUp,
        Moment::LeaderTaken,
        Moment::CloneTmp,
    ])
    .await;
}

/// Interrupt a starting demo at each of `moments`, start it again, and check it heals.
async fn interrupt_at(moments: &[Moment]) {
    let _one = ONE_AT_A_TIME.lock().await;
    for &m in moments {
        let mut demo = Demo::new();
        demo.start();
        demo.wait_moment(m);
        demo.interrupt();
        demo.start();
        demo.wait_converged(&format!("after Ctrl-C at {m:?}")).await;
        // And once more, interrupted while healthy: it resumes.
        demo.interrupt();
        demo.start();
        demo.wait_converged(&format!("resumed after {m:?}")).await;
        demo.interrupt();
    }
}

/// Ctrl-C while the demo is still starting its members: it stops them and exits
/// cleanly (it must not die of the signal and leave them to the kernel), and the next
/// start converges.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_demo_starts_stops_it_cleanly() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut demo = Demo::new();
    demo.start();
    let config = demo.dir.as_path().join("node1.yaml");
    let deadline = Instant::now() + UP;
    while !config.exists() {
        assert!(Instant::now() < deadline, "no config written");
        std::thread::sleep(Duration::from_millis(1));
    }
    demo.interrupt();
    demo.start();
    demo.wait_converged("after Ctrl-C during startup").await;
    demo.interrupt();
}

//! Test harness: real pgbaton agents and real PostgreSQL 15 on loopback, in a temp dir.
//!
//! Each [`TestCluster`] writes one config per member, starts `pgbaton agent` processes,
//! and on drop stops them (and, as a last resort, kills any PostgreSQL left behind).
#![allow(dead_code)]

use pgbaton_store::testkit::EtcdCluster;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which store the cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Local,
    Etcd,
}

/// One member.
pub struct Node {
    pub name: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub pg_port: u16,
    pub api_port: u16,
    pub log: PathBuf,
    pub agent: Option<Child>,
}

/// A cluster of agents under test.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub cluster: String,
    pub nodes: Vec<Node>,
    pub etcd: Option<EtcdCluster>,
    pub store: StoreKind,
}

pub const SUPERUSER_PASSWORD: &str = "su-secret";

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range (32768+) so that
/// no outgoing connection can take it between now and the server's bind. Each test
/// process walks its own block of ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = 12000 + (std::process::id() % 100) as u16 * 200;
    for _ in 0..200 {
        let port = block + NEXT.fetch_add(1, Ordering::SeqCst) % 200;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{block}+200");
}

/// Moments of a bootstrap at which a test interrupts or crashes the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A member holds the `initialize` key.
    Claimed,
    /// `initdb` is writing `<data_dir>.initdb-tmp`.
    InitdbTmp,
    /// The new data directory has been moved into place.
    DataInPlace,
    /// The `initialize` key records a system identifier.
    Recorded,
    /// A postmaster runs on it.
    PostmasterUp,
    /// A member holds the leader key.
    LeaderTaken,
    /// A replica is being cloned into `<data_dir>.clone-tmp`.
    CloneTmp,
}

impl Moment {
    /// Whether a bootstrap has reached this moment, given a reader of store keys and
    /// the members' data directories.
    pub fn reached(self, key: impl Fn(&str) -> Option<String>, data_dirs: &[PathBuf]) -> bool {
        let tmp = |d: &PathBuf, suffix: &str| {
            let mut s = d.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s).exists()
        };
        match self {
            Moment::Claimed => key("initialize").is_some(),
            Moment::InitdbTmp => data_dirs.iter().any(|d| tmp(d, ".initdb-tmp")),
            Moment::DataInPlace => data_dirs.iter().any(|d| d.join("PG_VERSION").exists()),
            Moment::Recorded => key("initialize").is_some_and(|v| v.contains("system_identifier")),
            Moment::PostmasterUp => data_dirs.iter().any(|d| postmaster_pid(d).is_some()),
            Moment::LeaderTaken => key("leader").is_some(),
            Moment::CloneTmp => data_dirs.iter().any(|d| tmp(d, ".clone-tmp")),
        }
    }
}

/// The value of `key` in the local store of `cluster` under `store_dir`, read straight
/// from its state file.
pub fn local_store_key(store_dir: &Path, cluster: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(store_dir.join(cluster).join("state.json")).ok()?;
    let state: Value = serde_json::from_str(&text).ok()?;
    state["keys"][key]["value"].as_str().map(str::to_string)
}

/// Poll `f` every 100 ms until it returns Some, or panic after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestCluster {
    /// Write configs for `n` members (node1..noden); nothing is started.
    pub fn new(n: usize, store: StoreKind) -> TestCluster {
        let etcd = (store == StoreKind::Etcd).then(|| EtcdCluster::start(1));
        TestCluster::build(n, store, etcd)
    }

    /// Like `new(n, StoreKind::Etcd)`, but on an etcd cluster the test started itself
    /// (e.g. 3 members); every config lists all of its endpoints, in its order.
    pub fn with_etcd(n: usize, etcd: EtcdCluster) -> TestCluster {
        TestCluster::build(n, StoreKind::Etcd, Some(etcd))
    }

    fn build(n: usize, store: StoreKind, etcd: Option<EtcdCluster>) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("pgbaton-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let mut c = TestCluster {
            dir,
            cluster: "test".into(),
            nodes: Vec::new(),
            etcd,
            store,
        };
        for i in 1..=n {
            c.add_node(&format!("node{i}"));
        }
        c
    }

    /// The store section of a config.
    fn store_yaml(&self) -> String {
        match &self.etcd {
            Some(e) => format!(
                "store:\n  etcd:\n    endpoints: [{}]\n",
                e.endpoints()
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "store:\n  local: {}\n",
                self.dir.path().join("store").display()
            ),
        }
    }

    /// Write the config of a new member named `name` and return its index.
    pub fn add_node(&mut self, name: &str) -> usize {
        let data_dir = self.dir.path().join("data").join(name);
        std::fs::create_dir_all(data_dir.parent().expect("parent")).expect("mkdir");
        std::fs::set_permissions(
            data_dir.parent().expect("parent"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        let pg_port = free_port();
        let api_port = free_port();
        let config = self.dir.path().join(format!("{name}.yaml"));
        let text = format!(
            "cluster: {cluster}\nname: {name}\ndata_dir: {data}\n{store}postgres:\n  listen: 127.0.0.1:{pg_port}\n  superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}}}\n  replication: {{username: replicator, password: repl-secret}}\n  parameters: {{max_connections: 30, shared_buffers: 16MB, fsync: off}}\napi:\n  listen: 127.0.0.1:{api_port}\nbootstrap:\n  ttl: 6\n  loop_wait: 1\n  retry_timeout: 2\n",
            cluster = self.cluster,
            data = data_dir.display(),
            store = self.store_yaml(),
        );
        std::fs::write(&config, text).expect("write config");
        let log = self.dir.path().join(format!("{name}.agent.log"));
        self.nodes.push(Node {
            name: name.to_string(),
            config,
            data_dir,
            pg_port,
            api_port,
            log,
            agent: None,
        });
        self.nodes.len() - 1
    }

    /// Start the agent of member `i`.
    pub fn start(&mut self, i: usize) {
        self.start_with_env(i, &[]);
    }

    /// Start the agent of member `i` with extra environment variables.
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &std::ffi::OsStr)]) {
        let node = &mut self.nodes[i];
        assert!(node.agent.is_none(), "{} already started", node.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
            .args(["agent", "-c"])
            .arg(&node.config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn agent");
        node.agent = Some(child);
    }

    /// Start every agent.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGTERM the agent of member `i` and wait until it exits (it stops PostgreSQL).
    pub fn stop(&mut self, i: usize) -> std::process::ExitStatus {
        let node = &mut self.nodes[i];
        let mut child = node.agent.take().expect("agent running");
        signal(child.id(), nix::sys::signal::Signal::SIGTERM);
        wait_child(&mut child, Duration::from_secs(60)).expect("agent did not stop within 60 s")
    }

    /// `kill -9` the agent of member `i` (PostgreSQL keeps running).
    pub fn kill_agent(&mut self, i: usize) {
        let mut child = self.nodes[i].agent.take().expect("agent running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A crash of the whole host: `kill -9` every agent, everything it started (fence,
    /// initdb, pg_ctl, ...) and every postmaster with its server processes, all at once,
    /// and wait until they are gone.
    pub fn crash_all(&mut self) {
        let mut pids = Vec::new();
        for node in &self.nodes {
            if let Some(child) = node.agent.as_ref() {
                pids.push(child.id());
            }
            if let Some(pid) = postmaster_pid(&node.data_dir) {
                pids.push(pid);
            }
        }
        let mut all = pids.clone();
        for pid in pids {
            all.extend(descendants(pid));
        }
        for &pid in &all {
            signal(pid, nix::sys::signal::Signal::SIGSTOP);
        }
        for &pid in &all {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.agent.take() {
                let _ = child.wait();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while all.iter().any(|&p| alive(p)) {
            assert!(Instant::now() < deadline, "processes survived kill -9");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The value of `key` in the local store, read straight from its state file.
    pub fn local_key(&self, key: &str) -> Option<String> {
        local_store_key(&self.dir.path().join("store"), &self.cluster, key)
    }

    /// `kill -9` the postmaster of member `i`.
    pub fn kill_postgres(&self, i: usize) {
        let pid = postmaster_pid(&self.nodes[i].data_dir).expect("postmaster running");
        signal(pid, nix::sys::signal::Signal::SIGKILL);
    }

    /// Send `sig` to the agent of member `i`.
    pub fn signal_agent(&self, i: usize, sig: nix::sys::signal::Signal) {
        let pid = self.nodes[i].agent.as_ref().expect("agent running").id();
        signal(pid, sig);
    }

    /// Append `text` to the config file of member `i` (before it starts).
    pub fn append_config(&self, i: usize, text: &str) {
        let path = &self.nodes[i].config;
        let mut s = std::fs::read_to_string(path).expect("config");
        s.push_str(text);
        std::fs::write(path, s).expect("write config");
    }

    /// Change the bootstrap timing in the config of member `i` (before it starts).
    pub fn set_timing(&self, i: usize, ttl: u64, loop_wait: u64, retry_timeout: u64) {
        let path = &self.nodes[i].config;
        let s = std::fs::read_to_string(path).expect("config");
        let s = s.replace(
            "bootstrap:\n  ttl: 6\n  loop_wait: 1\n  retry_timeout: 2\n",
            &format!("bootstrap:\n  ttl: {ttl}\n  loop_wait: {loop_wait}\n  retry_timeout: {retry_timeout}\n"),
        );
        std::fs::write(path, s).expect("write config");
    }

    /// Add `lines` (e.g. `"  synchronous_mode: on\n"`, indented by two spaces) to the
    /// `bootstrap:` section of member `i`'s config (before the cluster is created).
    pub fn add_bootstrap(&self, i: usize, lines: &str) {
        let path = &self.nodes[i].config;
        let s = std::fs::read_to_string(path).expect("config");
        assert!(s.contains("bootstrap:\n"), "no bootstrap section");
        let s = s.replacen("bootstrap:\n", &format!("bootstrap:\n{lines}"), 1);
        std::fs::write(path, s).expect("write config");
    }

    /// The members `list` marks as synchronous (`sync` or `quorum`), by name.
    pub fn sync_members(&self) -> Vec<String> {
        self.list(0)
            .iter()
            .filter(|r| r["sync"].is_string())
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The name of the member holding the leader key, per `list`.
    pub fn leader(&self) -> Option<String> {
        self.list(0)
            .iter()
            .find(|r| r["leader"] == true)
            .and_then(|r| r["name"].as_str().map(str::to_string))
    }

    /// Wait for the agent of member `i` to exit by itself.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> std::process::ExitStatus {
        let node = &mut self.nodes[i];
        let mut child = node.agent.take().expect("agent running");
        wait_child(&mut child, timeout).expect("agent did not exit")
    }

    /// The agent log of member `i`.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// `pgbaton list --format json`, through member `i`'s config.
    pub fn list(&self, i: usize) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
            .args(["list", "--format", "json", "-c"])
            .arg(&self.nodes[i].config)
            .output()
            .expect("run list");
        assert!(
            out.status.success(),
            "list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("list json")
    }

    /// Run `pgbaton` with `args` and the config of member `i`.
    pub fn pgbaton(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_pgbaton"))
            .args(args)
            .arg("-c")
            .arg(&self.nodes[i].config)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run pgbaton")
    }

    /// Wait until one primary and all other started members stream; returns the
    /// primary's index.
    pub async fn wait_healthy(&self, timeout: Duration) -> usize {
        let expected: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.agent.is_some())
            .map(|n| n.name.clone())
            .collect();
        let name = wait_for("one primary and streaming replicas", timeout, || async {
            let rows = self.list(0);
            let mut primary = None;
            for n in &expected {
                let row = rows.iter().find(|r| r["name"] == n.as_str())?;
                match (row["role"].as_str()?, row["state"].as_str()?) {
                    ("primary", "running") => primary = Some(n.clone()),
                    ("replica", "streaming") => {}
                    _ => return None,
                }
            }
            primary
        })
        .await;
        self.index(&name)
    }

    /// The index of member `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .expect("member")
    }

    /// Connect to member `i`'s PostgreSQL as the superuser.
    pub async fn connect(&self, i: usize) -> tokio_postgres::Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres connect_timeout=3",
            self.nodes[i].pg_port
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.nodes[i].name));
        tokio::spawn(connection);
        client
    }

    /// Connect to member `i`'s PostgreSQL, or None.
    pub async fn try_connect(&self, i: usize) -> Option<tokio_postgres::Client> {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres connect_timeout=3",
            self.nodes[i].pg_port
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(connection);
        Some(client)
    }

    /// One text column of the first row of `sql` on member `i`; None when the query
    /// fails or returns nothing.
    pub async fn query_one(&self, i: usize, sql: &str) -> Option<String> {
        let c = self.try_connect(i).await?;
        let rows = c.simple_query(sql).await.ok()?;
        rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })?
    }

    /// Every value of the first column of `sql` on member `i`.
    pub async fn query_col(&self, i: usize, sql: &str) -> Vec<String> {
        let c = self.connect(i).await;
        let rows = c.simple_query(sql).await.expect("query");
        rows.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every process below `pid` (children, their children, ...), from `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent_of.push((p, pp));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

/// Whether `pid` runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// The postmaster pid of `data_dir`, if one runs.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse::<u32>().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// Kill the postmaster of `data_dir`, if one runs (cleanup of last resort).
pub fn kill_postmaster(data_dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) {
        if let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        {
            signal(pid, nix::sys::signal::Signal::SIGQUIT);
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.agent.as_ref() {
                signal(child.id(), nix::sys::signal::Signal::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.agent.take() {
                if wait_child(&mut child, Duration::from_secs(30)).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            kill_postmaster(&node.data_dir);
        }
        if std::thread::panicking() || std::env::var_os("PGBATON_TEST_LOGS").is_some() {
            for node in &self.nodes {
                eprintln!(
                    "===== agent log of {} =====\n{}",
                    node.name,
                    std::fs::read_to_string(&node.log).unwrap_or_default()
                );
            }
        }
    }
}

//! A local pgbaton cluster for benchmarks: writes one config per member, starts and
//! stops `pgbaton agent` processes, and answers "who is primary, is everyone streaming".
//!
//! PostgreSQL runs as the OS user `postgres` when we are root, so the cluster directory
//! is made traversable (0755). Dropping a [`Cluster`] stops every agent it started (and,
//! as a last resort, kills what is left), so a benchmark never leaves servers behind.

use crate::procs;
use crate::sql;
use crate::{BenchError, Result};
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser password in configs made by `pgbaton_config::render_example`.
pub const SUPERUSER_PASSWORD: &str = "pgbaton-demo-superuser";
/// The cluster name used by the benchmarks.
pub const CLUSTER: &str = "bench";
/// Longest wait for one `pgbaton` CLI call other than a switchover.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for an agent to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster-wide timing written into every member's `bootstrap` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Lease time, seconds.
    pub ttl: u64,
    /// HA cycle period, seconds.
    pub loop_wait: u64,
    /// Store call deadline, seconds.
    pub retry_timeout: u64,
    /// Fencing margin (`watchdog.safety_margin`); None keeps pgbaton's default.
    pub safety_margin: Option<u64>,
}

impl Timing {
    /// Timing for lease `ttl`: `loop_wait` defaults to 1 and `retry_timeout` to the
    /// largest value up to 3 that pgbaton's timing rule allows. Fails when the rule
    /// (`retry_timeout < ttl`, `loop_wait + retry_timeout < ttl`) cannot hold.
    pub fn for_ttl(
        ttl: u64,
        loop_wait: Option<u64>,
        retry_timeout: Option<u64>,
        safety_margin: Option<u64>,
    ) -> Result<Timing> {
        let loop_wait = loop_wait.unwrap_or(1);
        let retry_timeout =
            retry_timeout.unwrap_or_else(|| 3.min(ttl.saturating_sub(loop_wait + 1)).max(1));
        if loop_wait == 0 || retry_timeout == 0 || loop_wait + retry_timeout >= ttl {
            return Err(BenchError::Usage(format!(
                "ttl {ttl}, loop_wait {loop_wait}, retry_timeout {retry_timeout}: pgbaton needs loop_wait + retry_timeout < ttl (all at least 1); the smallest ttl is 3"
            )));
        }
        Ok(Timing {
            ttl,
            loop_wait,
            retry_timeout,
            safety_margin,
        })
    }

    /// The YAML appended to each member's config.
    fn yaml(&self) -> String {
        let mut s = format!(
            "bootstrap:\n  ttl: {}\n  loop_wait: {}\n  retry_timeout: {}\n",
            self.ttl, self.loop_wait, self.retry_timeout
        );
        if let Some(m) = self.safety_margin {
            s.push_str(&format!("watchdog:\n  safety_margin: {m}\n"));
        }
        s
    }
}

/// What cluster to build.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of members (node1..nodeN).
    pub members: usize,
    /// Cluster-wide timing.
    pub timing: Timing,
    /// Where to put configs, data and logs; None for a new temp dir.
    pub dir: Option<PathBuf>,
    /// Keep the directory afterwards (always true with `dir`).
    pub keep: bool,
    /// The pgbaton binary.
    pub pgbaton: PathBuf,
    /// etcd endpoints for the store; empty for the local store.
    pub etcd: Vec<String>,
}

/// One member of the cluster.
#[derive(Debug)]
pub struct Member {
    /// Member name (node1, node2, ...).
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its PGDATA.
    pub data_dir: PathBuf,
    /// PostgreSQL port on 127.0.0.1.
    pub pg_port: u16,
    /// Agent API port.
    pub api_port: u16,
    /// The agent's log file (stdout and stderr).
    pub log: PathBuf,
    agent: Option<Child>,
}

/// One row of `pgbaton list --format json` (the keys the benchmarks need).
#[derive(Debug, Clone, Deserialize)]
pub struct ListRow {
    /// Member name.
    pub name: String,
    /// `primary` or `replica`.
    pub role: String,
    /// e.g. `running`, `streaming`, `stopped`.
    pub state: String,
    /// Whether it holds the leader key.
    #[serde(default)]
    pub leader: bool,
    /// Timeline.
    #[serde(default)]
    pub timeline: Option<u32>,
    /// Why it does what it does.
    #[serde(default)]
    pub note: Option<String>,
    /// `sync` or `quorum` when the `sync` key lists it as a synchronous standby.
    #[serde(default)]
    pub sync: Option<String>,
}

/// A running (or stopped) local cluster.
pub struct Cluster {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
    members: Vec<Member>,
    pgbaton: PathBuf,
    timing: Timing,
}

/// A free TCP port on 127.0.0.1 (the small race with other programs is accepted).
pub fn free_port() -> Result<u16> {
    // Below the kernel's ephemeral range (32768+): a port the kernel handed out with
    // `bind(:0)` can be taken by an outgoing connection before the server binds it (a
    // bootstrap once waited 120 s for a member that never started). Each benchmark
    // process walks its own block.
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = 22000 + (std::process::id() % 40) as u16 * 200;
    for _ in 0..200 {
        let port = block + NEXT.fetch_add(1, Ordering::SeqCst) % 200;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(BenchError::io(
        "find a free port in",
        format!("127.0.0.1:{block}+200"),
        std::io::ErrorKind::AddrInUse.into(),
    ))
}

fn chmod_755(path: &Path) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| BenchError::io("chmod 0755", path, e))
}

impl Cluster {
    /// Write the configs of `spec.members` members; nothing is started yet.
    pub fn create(spec: &ClusterSpec) -> Result<Cluster> {
        if !spec.pgbaton.is_file() {
            return Err(BenchError::NoBinary(spec.pgbaton.clone()));
        }
        let (root, temp) = match &spec.dir {
            Some(dir) => {
                let busy = std::fs::read_dir(dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false);
                if busy {
                    return Err(BenchError::Usage(format!(
                        "--dir {} is not empty; give a new or empty directory",
                        dir.display()
                    )));
                }
                std::fs::create_dir_all(dir).map_err(|e| BenchError::io("create", dir, e))?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("pgbaton-bench-")
                    .tempdir()
                    .map_err(|e| BenchError::io("create a temp dir in", std::env::temp_dir(), e))?;
                if spec.keep {
                    let p = t.keep();
                    (p, None)
                } else {
                    (t.path().to_path_buf(), Some(t))
                }
            }
        };
        chmod_755(&root)?;
        let data = root.join("data");
        let store = root.join("store");
        std::fs::create_dir_all(&data).map_err(|e| BenchError::io("create", &data, e))?;
        chmod_755(&data)?;
        let mut members = Vec::new();
        for i in 1..=spec.members {
            let name = format!("node{i}");
            let data_dir = data.join(&name);
            let (pg_port, api_port) = (free_port()?, free_port()?);
            let mut text = if spec.etcd.is_empty() {
                pgbaton_config::render_example(CLUSTER, &name, &data_dir, &store, pg_port, api_port)
            } else {
                pgbaton_config::render_example_etcd(
                    CLUSTER, &name, &data_dir, &spec.etcd, pg_port, api_port,
                )
            };
            if !text.contains(SUPERUSER_PASSWORD) {
                return Err(BenchError::Cluster(format!(
                    "render_example no longer uses the superuser password {SUPERUSER_PASSWORD:?}; update bench/src/cluster.rs"
                )));
            }
            text.push_str(&spec.timing.yaml());
            let config = root.join(format!("{name}.yaml"));
            std::fs::write(&config, text)
                .map_err(|e| BenchError::io("write config", &config, e))?;
            let log = root.join(format!("{name}.agent.log"));
            members.push(Member {
                name,
                config,
                data_dir,
                pg_port,
                api_port,
                log,
                agent: None,
            });
        }
        Ok(Cluster {
            root,
            _temp: temp,
            members,
            pgbaton: spec.pgbaton.clone(),
            timing: spec.timing,
        })
    }

    /// The directory holding configs, data and logs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local store's state file of this cluster (see docs/store-layout.md).
    pub fn store_state_file(&self) -> PathBuf {
        self.root.join("store").join(CLUSTER).join("state.json")
    }

    /// The cluster timing.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Every member.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The index of the member named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// The index of the member whose PostgreSQL listens on `port`.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.members.iter().position(|m| m.pg_port == port)
    }

    /// A connection string to member `i` as the superuser.
    pub fn conninfo(&self, i: usize) -> String {
        sql::conninfo(self.members[i].pg_port, SUPERUSER_PASSWORD, 1)
    }

    /// The writer's libpq multi-host string over every member, read-write sessions only.
    pub fn writer_conninfo(&self) -> String {
        let hosts = vec!["127.0.0.1"; self.members.len()].join(",");
        let ports: Vec<String> = self.members.iter().map(|m| m.pg_port.to_string()).collect();
        format!(
            "host={hosts} port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres target_session_attrs=read-write connect_timeout=2 application_name=pgbaton-bench-writer",
            ports.join(",")
        )
    }

    /// Validate member `i`'s config with `pgbaton check-config`.
    pub async fn check_config(&self, i: usize) -> Result<()> {
        self.pgbaton(i, &["check-config"], CLI_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Start the agent of member `i` (its output goes to the member's log file).
    pub fn start(&mut self, i: usize) -> Result<()> {
        let pgbaton = self.pgbaton.clone();
        let m = &mut self.members[i];
        if m.agent.is_some() {
            return Err(BenchError::Cluster(format!(
                "the agent of {} already runs",
                m.name
            )));
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| BenchError::io("open agent log", &m.log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("dup agent log", &m.log, e))?;
        let child = Command::new(&pgbaton)
            .args(["agent", "-c"])
            .arg(&m.config)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                what: format!("{} agent -c {}", pgbaton.display(), m.config.display()),
                source,
            })?;
        m.agent = Some(child);
        Ok(())
    }

    /// Start every agent that is not running.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].agent.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// The pid of member `i`'s agent, while it runs.
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.members[i].agent.as_ref().map(|c| c.id())
    }

    /// Whether member `i`'s agent was started and has not been reaped.
    pub fn agent_running(&self, i: usize) -> bool {
        self.members[i].agent.is_some()
    }

    /// Reap member `i`'s agent after it was killed (waits up to 5 s).
    pub async fn reap(&mut self, i: usize) -> Result<()> {
        let name = self.members[i].name.clone();
        if let Some(mut child) = self.members[i].agent.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    self.members[i].agent = Some(child);
                    return Err(BenchError::Timeout {
                        what: format!("the killed agent of {name} to exit"),
                        after: Duration::from_secs(5),
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    /// Run `pgbaton ARGS -c <config of member via>` within `timeout`; fails on a
    /// non-zero exit.
    pub async fn pgbaton(
        &self,
        via: usize,
        args: &[&str],
        timeout: Duration,
    ) -> Result<std::process::Output> {
        let command = args.join(" ");
        let fut = tokio::process::Command::new(&self.pgbaton)
            .args(args)
            .arg("-c")
            .arg(&self.members[via].config)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(out)) => out,
            Ok(Err(source)) => {
                return Err(BenchError::Spawn {
                    what: format!("pgbaton {command}"),
                    source,
                })
            }
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("`pgbaton {command}`"),
                    after: timeout,
                })
            }
        };
        if !out.status.success() {
            return Err(BenchError::Command {
                command,
                detail: format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(out)
    }

    /// `pgbaton list --format json`.
    pub async fn list(&self) -> Result<Vec<ListRow>> {
        let out = self
            .pgbaton(0, &["list", "--format", "json"], CLI_TIMEOUT)
            .await?;
        serde_json::from_slice(&out.stdout).map_err(|e| BenchError::Command {
            command: "list --format json".into(),
            detail: format!("unreadable JSON: {e}"),
        })
    }

    /// The member holding the leader key, if any.
    pub async fn leader(&self) -> Result<Option<usize>> {
        let rows = self.list().await?;
        Ok(rows
            .iter()
            .find(|r| r.leader)
            .and_then(|r| self.index_of(&r.name)))
    }

    /// Wait until one member is a running primary holding the leader key and every
    /// other member whose agent runs is a streaming replica; returns the primary.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer from `pgbaton list`");
        loop {
            if let Ok(rows) = self.list().await {
                match self.healthy_primary(&rows) {
                    Ok(p) => return Ok(p),
                    Err(why) => last = why,
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: format!("a healthy cluster (last: {last})"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The healthy primary in `rows`, or why the cluster is not healthy yet.
    fn healthy_primary(&self, rows: &[ListRow]) -> std::result::Result<usize, String> {
        let mut primary = None;
        for (i, m) in self.members.iter().enumerate() {
            if m.agent.is_none() {
                continue;
            }
            let Some(r) = rows.iter().find(|r| r.name == m.name) else {
                return Err(format!("{} is not listed", m.name));
            };
            match (r.role.as_str(), r.state.as_str(), r.leader) {
                ("primary", "running", true) => primary = Some(i),
                ("replica", "streaming", false) => {}
                (role, state, leader) => {
                    return Err(format!(
                        "{}: {role} {state}{}{}",
                        m.name,
                        if leader { " (leader)" } else { "" },
                        r.note
                            .as_deref()
                            .map(|n| format!(", {n}"))
                            .unwrap_or_default()
                    ))
                }
            }
        }
        primary.ok_or_else(|| "no running primary with the leader key".to_string())
    }

    /// Wait until member `i`'s WAL receiver streams from member `from`; polls
    /// `pg_stat_wal_receiver` every 10 ms over one connection (reopened when the server
    /// restarts). Returns when it was first seen streaming.
    pub async fn wait_streaming(
        &self,
        i: usize,
        from: usize,
        timeout: Duration,
    ) -> Result<Instant> {
        let conninfo = self.conninfo(i);
        let want = format!("streaming:{}", self.members[from].pg_port);
        let deadline = Instant::now() + timeout;
        let mut client: Option<tokio_postgres::Client> = None;
        let mut last = String::from("no connection");
        loop {
            if client.is_none() {
                match sql::connect(&conninfo, &self.members[i].name, Duration::from_secs(1)).await {
                    Ok(c) => client = Some(c),
                    Err(e) => last = e.to_string(),
                }
            }
            if let Some(c) = &client {
                let q =
                    c.simple_query("select status || ':' || sender_port from pg_stat_wal_receiver");
                match tokio::time::timeout(Duration::from_secs(2), q).await {
                    Ok(Ok(rows)) => {
                        let got = rows.iter().find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => {
                                r.get(0).map(str::to_string)
                            }
                            _ => None,
                        });
                        if got.as_deref() == Some(want.as_str()) {
                            return Ok(Instant::now());
                        }
                        last = got.unwrap_or_else(|| "no WAL receiver".into());
                    }
                    Ok(Err(e)) => {
                        last = e.to_string();
                        client = None;
                    }
                    Err(_) => {
                        last = "query timed out".into();
                        client = None;
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: format!(
                        "{} to stream from {} (last seen: {last})",
                        self.members[i].name, self.members[from].name
                    ),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The size of member `i`'s agent log (0 when missing).
    pub fn log_len(&self, i: usize) -> u64 {
        std::fs::metadata(&self.members[i].log).map_or(0, |m| m.len())
    }

    /// What member `i`'s agent logged after byte `from` (see [`Cluster::log_len`]).
    pub fn log_since(&self, i: usize, from: u64) -> String {
        let bytes = std::fs::read(&self.members[i].log).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// The last `n` lines of member `i`'s agent log.
    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM every running agent, wait for them (each stops its PostgreSQL), then kill
    /// whatever is left. Blocking; bounded by one minute.
    pub fn stop_all(&mut self) {
        let pids: Vec<u32> = self
            .members
            .iter()
            .filter_map(|m| m.agent.as_ref().map(|c| c.id()))
            .collect();
        procs::signal_all(&pids, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        for m in &mut self.members {
            if let Some(mut child) = m.agent.take() {
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if child.try_wait().ok().flatten().is_none() {
                    eprintln!(
                        "the agent of {} did not stop within {STOP_TIMEOUT:?}; killing it",
                        m.name
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        for m in &self.members {
            if let Some(pid) = procs::postmaster_pid(&m.data_dir) {
                eprintln!(
                    "PostgreSQL of {} still runs after its agent stopped; immediate shutdown",
                    m.name
                );
                procs::signal_all(&[pid], nix::sys::signal::Signal::SIGQUIT);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        if self._temp.is_none() {
            eprintln!("cluster files kept in {}", self.root.display());
        }
    }
}

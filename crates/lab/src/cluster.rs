//! One lab: N namespace hosts, each with an etcd member, PostgreSQL and a pgbaton agent.
//! Dropping it stops everything and removes the namespaces, even after a panic.

use crate::net::{self, etcd_addr, host_addr, host_ns, Net};
use crate::proc::{self, command_in};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// libfaketime, for clock skew.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The superuser password every member uses.
pub const SUPERUSER_PASSWORD: &str = "lab-su";
/// Size of each host's data filesystem (a tmpfs: only what is used takes memory).
pub const DATA_FS_SIZE: &str = "512m";

/// Synchronous replication mode of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Async,
    On,
    Quorum,
    Strict,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "async" => Mode::Async,
            "on" => Mode::On,
            "quorum" => Mode::Quorum,
            "strict" => Mode::Strict,
            _ => bail!("unknown mode {s:?}: use async, on, quorum or strict"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::On => "on",
            Mode::Quorum => "quorum",
            Mode::Strict => "strict",
        }
    }

    fn bootstrap_yaml(self) -> &'static str {
        match self {
            Mode::Async => "",
            Mode::On => "  synchronous_mode: on\n",
            Mode::Quorum => "  synchronous_mode: quorum\n  synchronous_node_count: 1\n",
            Mode::Strict => "  synchronous_mode: on\n  synchronous_mode_strict: true\n",
        }
    }
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct Options {
    pub hosts: usize,
    pub mode: Mode,
    pub ttl: u64,
    pub retry_timeout: u64,
    /// Run agents (and what they start) under libfaketime, driven by a per-host file.
    pub faketime: bool,
}

/// A running lab.
pub struct Lab {
    pub opts: Options,
    pub dir: PathBuf,
    pub etcd: Vec<Option<Child>>,
    pub agents: Vec<Option<Child>>,
    pub net: Net,
    pgbaton: PathBuf,
}

/// The `pgbaton` binary: `$PGBATON_BIN`, else next to this executable (or one level up,
/// for test binaries in target/*/deps).
pub fn pgbaton_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("PGBATON_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join("pgbaton");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "no pgbaton binary next to {}: run `cargo build -p pgbaton` or set PGBATON_BIN",
        exe.display()
    )
}

impl Lab {
    /// Build the namespaces and start etcd and the agents; does not wait for PostgreSQL.
    pub fn start(opts: Options) -> Result<Lab> {
        let pgbaton = pgbaton_bin()?;
        let net = Net::create(opts.hosts)?;
        unmount_under(&std::env::temp_dir());
        let dir = std::env::temp_dir().join(format!("pgbaton-lab-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let mut lab = Lab {
            etcd: (0..opts.hosts).map(|_| None).collect(),
            agents: (0..opts.hosts).map(|_| None).collect(),
            opts,
            dir,
            net,
            pgbaton,
        };
        for i in 0..lab.opts.hosts {
            lab.write_host(i)?;
        }
        for i in 0..lab.opts.hosts {
            lab.start_etcd(i, true)?;
        }
        for i in 0..lab.opts.hosts {
            lab.start_agent(i)?;
        }
        Ok(lab)
    }

    /// Directory of host `i`.
    pub fn host_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{}", i + 1))
    }

    /// Host `i`'s own small filesystem (a tmpfs of [`DATA_FS_SIZE`]) holding its data
    /// directory and pg_wal, which the `wal-full` fault fills.
    pub fn data_fs(&self, i: usize) -> PathBuf {
        self.host_dir(i).join("fs")
    }

    /// Data directory of host `i` (on [`Lab::data_fs`]).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.data_fs(i).join("data")
    }

    /// Unix socket directory of host `i` (socket files are shared across namespaces).
    pub fn socket_dir(&self, i: usize) -> PathBuf {
        self.host_dir(i).join("sock")
    }

    /// Member name of host `i`.
    pub fn member(i: usize) -> String {
        format!("h{}", i + 1)
    }

    fn write_host(&self, i: usize) -> Result<()> {
        let hd = self.host_dir(i);
        std::fs::create_dir_all(self.socket_dir(i))?;
        std::fs::create_dir_all(self.data_fs(i))?;
        let size = format!("size={DATA_FS_SIZE},mode=0755");
        let fs = self.data_fs(i).display().to_string();
        proc::run(&["mount", "-t", "tmpfs", "-o", &size, "pbl-data", &fs])?;
        std::fs::set_permissions(&hd, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(self.socket_dir(i), std::fs::Permissions::from_mode(0o1777))?;
        std::fs::write(hd.join("faketime"), "+0s\n")?;
        let endpoints: Vec<String> = (0..self.opts.hosts)
            .map(|k| format!("\"http://{}:2379\"", etcd_addr(k)))
            .collect();
        let o = &self.opts;
        let text = format!(
            "cluster: lab\nname: {name}\ndata_dir: {data}\nstore:\n  etcd:\n    endpoints: [{eps}]\npostgres:\n  listen: {addr}:5432\n  socket_dir: {sock}\n  superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}}}\n  replication: {{username: replicator, password: lab-repl}}\n  parameters: {{max_connections: 40, shared_buffers: 16MB, fsync: off}}\n  pg_hba: [\"host all all 10.77.0.0/24 scram-sha-256\"]\napi:\n  listen: {addr}:8008\n  auth: {{username: lab, password: lab-api}}\nbootstrap:\n  ttl: {ttl}\n  loop_wait: 1\n  retry_timeout: {rt}\n{mode}",
            name = Lab::member(i),
            data = self.data_dir(i).display(),
            eps = endpoints.join(", "),
            addr = host_addr(i),
            sock = self.socket_dir(i).display(),
            ttl = o.ttl,
            rt = o.retry_timeout,
            mode = o.mode.bootstrap_yaml(),
        );
        std::fs::write(hd.join("pgbaton.yaml"), text)?;
        Ok(())
    }

    fn log(&self, i: usize, what: &str) -> Result<(Stdio, Stdio)> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.host_dir(i).join(format!("{what}.log")))?;
        Ok((f.try_clone()?.into(), f.into()))
    }

    /// Start (or restart, `new == false`) etcd member `i`.
    pub fn start_etcd(&mut self, i: usize, new: bool) -> Result<()> {
        let cluster: Vec<String> = (0..self.opts.hosts)
            .map(|k| format!("e{}=http://{}:2380", k + 1, etcd_addr(k)))
            .collect();
        let e = etcd_addr(i);
        let client = format!("http://{e}:2379");
        let peer = format!("http://{e}:2380");
        let data = self.host_dir(i).join("etcd");
        let name = format!("e{}", i + 1);
        let (out, err) = self.log(i, "etcd")?;
        let child = command_in(
            &host_ns(i),
            &[
                "etcd",
                "--name",
                &name,
                "--data-dir",
                &data.display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-token",
                "pbl",
                "--initial-cluster-state",
                if new { "new" } else { "existing" },
                // A member cut off and back must not depose a working leader with its
                // higher term (etcd 3.4 has pre-vote off by default; seed 247).
                "--pre-vote",
            ],
        )
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("spawn etcd")?;
        self.etcd[i] = Some(child);
        Ok(())
    }

    /// Start the agent of host `i`.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let cfg = self.host_dir(i).join("pgbaton.yaml");
        let bin = self.pgbaton.display().to_string();
        let (out, err) = self.log(i, "agent")?;
        let mut cmd = command_in(
            &host_ns(i),
            &[&bin, "agent", "-c", &cfg.display().to_string()],
        );
        cmd.env("RUST_LOG", "info").stdout(out).stderr(err);
        if self.opts.faketime {
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", self.host_dir(i).join("faketime"))
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        self.agents[i] = Some(cmd.spawn().context("spawn agent")?);
        Ok(())
    }

    /// Set host `i`'s wall-clock offset, e.g. "+30s" (needs `faketime`).
    pub fn set_skew(&self, i: usize, offset: &str) -> Result<()> {
        std::fs::write(self.host_dir(i).join("faketime"), format!("{offset}\n"))?;
        Ok(())
    }

    /// Pid of host `i`'s agent.
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.agents[i].as_ref().map(|c| c.id())
    }

    /// Pid of host `i`'s fence process (a `pgbaton fence` child of the agent).
    pub fn fence_pid(&self, i: usize) -> Option<u32> {
        let agent = self.agent_pid(i)?;
        proc::descendants(agent)
            .into_iter()
            .find(|&p| proc::cmdline(p).contains(" fence"))
    }

    /// Pid of host `i`'s postmaster.
    pub fn postmaster_pid(&self, i: usize) -> Option<u32> {
        proc::postmaster_pid(&self.data_dir(i))
    }

    /// `kill -9` the child and reap it.
    pub fn kill_child(slot: &mut Option<Child>) {
        if let Some(mut c) = slot.take() {
            proc::signal(c.id(), nix::sys::signal::Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reap agents that exited on their own; true when every agent still runs.
    pub fn agents_alive(&mut self) -> bool {
        self.agents
            .iter_mut()
            .all(|a| a.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))))
    }

    /// How many times each host's agent re-cloned its data directory so far (from its
    /// log: a re-clone first moves the old directory aside).
    pub fn reclones(&self) -> Vec<usize> {
        (0..self.opts.hosts)
            .map(|i| {
                std::fs::read_to_string(self.host_dir(i).join("agent.log"))
                    .map(|t| t.matches("old data directory kept at").count())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Copy the logs of this lab to `to` (for a failed run).
    pub fn save_logs(&self, to: &Path) -> Result<()> {
        std::fs::create_dir_all(to)?;
        for i in 0..self.opts.hosts {
            for what in ["agent", "etcd"] {
                let from = self.host_dir(i).join(format!("{what}.log"));
                let _ = std::fs::copy(&from, to.join(format!("h{}.{what}.log", i + 1)));
            }
            let pglog = self.data_dir(i).join("log");
            if let Ok(d) = std::fs::read_dir(&pglog) {
                for e in d.flatten() {
                    let name = format!("h{}.pg.{}", i + 1, e.file_name().to_string_lossy());
                    let _ = std::fs::copy(e.path(), to.join(name));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Stop agents first (SIGCONT in case a fault stopped them), then everything left.
        for a in &mut self.agents {
            Lab::kill_child(a);
        }
        for i in 0..self.opts.hosts {
            if let Some(pid) = self.postmaster_pid(i) {
                proc::signal(pid, nix::sys::signal::Signal::SIGCONT);
                proc::signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
            net::kill_inside(&host_ns(i));
        }
        for e in &mut self.etcd {
            Lab::kill_child(e);
        }
        net::kill_inside(net::CLIENT_NS);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unmount the lab's data filesystems (named `pbl-data`) mounted under `dir`, including
/// those a crashed lab left behind.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(src), Some(at)) = (f.next(), f.next()) else {
            continue;
        };
        if src == "pbl-data" && at.starts_with(&prefix) {
            let _ = proc::run(&["umount", "-l", at]);
        }
    }
}

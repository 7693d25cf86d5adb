//! The simulated world: hosts (data directories, a postmaster, fence processes, clocks),
//! the store, the network, the client's acknowledged commits, and the trace. One
//! `World` behind one mutex; every simulated component locks it briefly and never
//! across an await.

use crate::pg::wal::DataDir;
use crate::rng::Rng;
use crate::store::StoreState;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The world, shared by every simulated component.
pub type Shared = Arc<Mutex<World>>;

/// Lock the world (a panic elsewhere must not hide the trace).
pub fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running postmaster.
#[derive(Debug, Clone)]
pub struct Postmaster {
    /// Process id (unique in the simulation).
    pub pid: u32,
    /// The data directory it runs on (its working directory: it keeps it when the
    /// directory is moved away from the configured path).
    pub dir: PathBuf,
    /// When it started (ms of simulated time).
    pub started_ms: u64,
    /// Started as (and still) a standby.
    pub in_recovery: bool,
    /// `synchronous_standby_names` in effect (read at start and reload).
    pub ssn: String,
    /// The checkpointer's `sync_standbys_defined`: commits wait for standbys only
    /// when it is set. Set from `ssn` at start, and at a reload unless a long
    /// checkpoint defers it (`reload_pending`).
    pub sync_defined: bool,
    /// A reload the checkpointer has not applied yet.
    pub reload_pending: bool,
    /// The member it streams from (standby), from `primary_conninfo` at start/reload.
    pub upstream: Option<String>,
    /// The WAL receiver streams.
    pub streaming: bool,
}

/// A fence process (`pgbaton fence-watchdog`).
#[derive(Debug, Clone)]
pub struct FenceProc {
    /// Which spawn this is.
    pub gen: u64,
    /// The agent incarnation that started it.
    pub owner: u64,
    /// Not killed.
    pub alive: bool,
    /// SIGSTOPped: alive but enforcing nothing.
    pub frozen: bool,
    /// (deadline, earliest lease expiry) on the host's boot clock.
    pub armed: Option<(Duration, Duration)>,
    /// How many times it stopped PostgreSQL.
    pub fenced: u64,
}

/// A commit waiting for its synchronous acknowledgement on a primary.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The commit.
    pub commit: u64,
    /// The end of its record.
    pub end: u64,
    /// Acknowledged to the client.
    pub acked: bool,
}

/// One member's host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Member name (also the host name).
    pub name: String,
    /// The address PostgreSQL listens on (`10.0.0.N:5432`).
    pub addr: String,
    /// Directories on disk: the data directory and its siblings.
    pub dirs: BTreeMap<PathBuf, DataDir>,
    /// The configured data directory.
    pub data_dir: PathBuf,
    /// The postmaster, while it runs.
    pub pm: Option<Postmaster>,
    /// The data directory answers every access with EIO.
    pub eio: bool,
    /// Every start of PostgreSQL fails (a scripted fault).
    pub start_fails: bool,
    /// This host's boot clock reads virtual time plus this.
    pub boot_offset: Duration,
    /// This host's wall clock is off by this many ms.
    pub wall_skew_ms: i64,
    /// Fence processes (an old one lives on after its agent died, until it may exit).
    pub fences: Vec<FenceProc>,
    /// The current agent incarnation (0: never started).
    pub agent_incarnation: u64,
    /// The agent process runs (not killed).
    pub agent_alive: bool,
    /// The agent is SIGSTOPped.
    pub agent_frozen: bool,
    /// The WAL receiver is SIGSTOPped (streams nothing).
    pub receiver_stalled: bool,
    /// SQL sessions to this server hang (the agent's backend is SIGSTOPped).
    pub sql_hung: bool,
    /// A long checkpoint runs: the checkpointer defers reloads (fault `SlowCheckpoint`).
    pub ckpt_busy: bool,
    /// Commits waiting for synchronous standbys.
    pub pending: Vec<Pending>,
    /// Times this host's PostgreSQL was stopped by a fence.
    pub fenced: u64,
}

impl Host {
    /// PostgreSQL runs as a primary.
    pub fn writable(&self) -> bool {
        self.pm.as_ref().is_some_and(|p| !p.in_recovery)
    }

    /// The directory PostgreSQL works on: the running postmaster's (wherever it was
    /// moved), else the one at the configured path.
    pub fn data(&self) -> Option<&DataDir> {
        let dir = self.pm.as_ref().map_or(&self.data_dir, |p| &p.dir);
        self.dirs.get(dir)
    }

    /// [`Host::data`], to change.
    pub fn data_mut(&mut self) -> Option<&mut DataDir> {
        let dir = self.pm.as_ref().map_or(&self.data_dir, |p| &p.dir);
        self.dirs.get_mut(dir)
    }

    /// What the configured path leads to (what the agent's file operations see).
    pub fn path_data(&self) -> Option<&DataDir> {
        self.dirs.get(&self.data_dir)
    }

    /// [`Host::path_data`], to change.
    pub fn path_data_mut(&mut self) -> Option<&mut DataDir> {
        self.dirs.get_mut(&self.data_dir)
    }

    /// Where `MoveDataDir` number `id` puts the data directory (a sibling).
    pub fn moved_dir(&self, id: u64) -> PathBuf {
        PathBuf::from(format!("{}{id}", self.moved_prefix()))
    }

    /// Whether `dir` is one of the places `MoveDataDir` put the data directory.
    pub fn is_moved_dir(&self, dir: &std::path::Path) -> bool {
        dir.display().to_string().starts_with(&self.moved_prefix())
    }

    fn moved_prefix(&self) -> String {
        format!("{}.moved-", self.data_dir.display())
    }

    /// The postmaster runs on a directory the configured path no longer leads to.
    pub fn pm_moved(&self) -> bool {
        self.pm.as_ref().is_some_and(|p| p.dir != self.data_dir)
    }
}

/// A commit the client saw acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The commit id.
    pub commit: u64,
    /// The primary that acknowledged it.
    pub host: String,
    /// When (ms of simulated time).
    pub at_ms: u64,
}

/// A deliberately broken rule, to prove the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Broken {
    /// Nothing broken.
    #[default]
    None,
    /// Fence processes never stop PostgreSQL.
    SkipFence,
}

/// The whole simulated world.
pub struct World {
    /// The seed of this run.
    pub seed: u64,
    /// The run's randomness.
    pub rng: Rng,
    /// Virtual time zero.
    pub start: Instant,
    /// Hosts by member name.
    pub hosts: BTreeMap<String, Host>,
    /// The store's state.
    pub store: StoreState,
    /// Wakes store watchers.
    pub store_changed: Arc<tokio::sync::Notify>,
    /// One-way links that drop everything: (from, to). Parties: member names, `store`,
    /// `client`.
    pub blocked: BTreeSet<(String, String)>,
    /// Ids for records, system identifiers, pids, commits.
    pub next_id: u64,
    /// Commits acknowledged to the client.
    pub acked: Vec<Acked>,
    /// (system identifier, timeline) → who created it.
    pub timelines: BTreeMap<(u64, u32), String>,
    /// Invariant violations found.
    pub violations: Vec<String>,
    /// The trace.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Synchronous mode (on or quorum) is configured: acknowledged commits must survive.
    pub sync_mode: bool,
    /// A rule deliberately broken.
    pub broken: Broken,
    /// Acknowledged commits lost (counted in async mode, where it is allowed).
    pub lost_async: u64,
}

impl World {
    /// Milliseconds of simulated time.
    pub fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.start).as_millis() as u64
    }

    /// A fresh id.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Append a line to the trace.
    pub fn note(&self, who: &str, msg: impl AsRef<str>) {
        let line = format!("{} {who:<7} {}", fmt_time(self.now_ms()), msg.as_ref());
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// Whether a message from `from` reaches `to`.
    pub fn link(&self, from: &str, to: &str) -> bool {
        !self.blocked.contains(&(from.to_string(), to.to_string()))
    }

    /// Both directions work (a TCP connection between the two).
    pub fn connected(&self, a: &str, b: &str) -> bool {
        self.link(a, b) && self.link(b, a)
    }

    /// The member whose PostgreSQL listens on `addr`.
    pub fn host_by_addr(&self, addr: &str) -> Option<String> {
        self.hosts
            .values()
            .find(|h| h.addr == addr)
            .map(|h| h.name.clone())
    }

    /// Record an invariant violation (also in the trace).
    pub fn violation(&mut self, msg: String) {
        self.note("CHECK", format!("VIOLATION: {msg}"));
        self.violations.push(msg);
    }
}

/// `12.345s`, fixed width.
pub fn fmt_time(ms: u64) -> String {
    format!("{:>5}.{:03}s", ms / 1000, ms % 1000)
}

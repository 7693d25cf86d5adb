//! The local PostgreSQL as the agent sees it: control (start, stop, reload, rewind,
//! clone, initdb), its data directory, and SQL probes. The method names and meanings
//! are those of `pgbaton_postgres::Instance` and `Sql`; see their documentation.

use pgbaton_core::Lsn;
use pgbaton_postgres::{
    ConnTarget, ControlData, DataDirState, PassfileEntry, PostmasterInfo, Probe, ReplicationPeer,
    Result, RewindReport, SlotInfo, StandbyTarget, StopMode,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One local PostgreSQL instance and its data directory.
#[async_trait::async_trait]
pub trait Pg: Send + Sync {
    /// The data directory (`PGDATA`).
    fn data_dir(&self) -> &Path;
    /// Where the PostgreSQL programs are, for logs.
    fn describe(&self) -> String;
    /// What the data directory holds.
    fn data_dir_state(&self) -> Result<DataDirState>;
    /// `pg_controldata` of the data directory.
    async fn controldata(&self) -> Result<ControlData>;
    /// The live postmaster, if any.
    fn status(&self) -> Result<Option<PostmasterInfo>>;
    /// A watch that fires when the postmaster `pid` (from [`Pg::status`]) exits, or
    /// None when exits cannot be watched: the agent then calls `status` every 100 ms.
    fn watch_exit(&self, _pid: u32) -> Option<super::ExitWatch> {
        None
    }
    /// A SQL session with the local server.
    async fn connect(&self) -> Result<Box<dyn PgSql>>;
    /// Write `pgbaton.conf` and the standby config (`Some`) or primary config (`None`).
    fn prepare_config(
        &self,
        settings: &BTreeMap<String, String>,
        standby: Option<&StandbyTarget>,
    ) -> Result<bool>;
    /// Create or remove `standby.signal`.
    fn set_standby_signal(&self, standby: bool) -> Result<bool>;
    /// Start the server and wait until it accepts connections.
    async fn start(&self, timeout: Duration) -> Result<bool>;
    /// Stop the server and wait until it is gone.
    async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<bool>;
    /// Reload the configuration files.
    async fn reload(&self) -> Result<()>;
    /// Write `pg_hba.conf`.
    fn write_hba(&self, lines: &[String]) -> Result<bool>;
    /// Write a libpq password file at `path`.
    fn write_passfile(&self, path: &Path, entries: &[PassfileEntry]) -> Result<bool>;
    /// `pg_rewind` from `source` (the server must be stopped).
    async fn rewind(
        &self,
        source: &ConnTarget,
        dry_run: bool,
        timeout: Duration,
    ) -> Result<RewindReport>;
    /// Where timeline `tli` began, from its history file.
    fn timeline_switch_point(&self, tli: u32) -> Result<Option<Lsn>>;
    /// The newest timeline with a history file in `pg_wal` (1 when none has).
    fn newest_timeline_file(&self) -> Result<u32>;
    /// Keep the next promotion from choosing timeline `tli`, which another member
    /// reserved; whether anything was written (`Instance::hold_timeline`).
    fn hold_timeline(&self, tli: u32) -> Result<bool>;
    /// For a stopped data directory that was not shut down cleanly: where its last
    /// valid WAL record on timeline `tli` starts, reading from the checkpoint at `from`
    /// as crash recovery would (without starting the server); `Ok(None)` when that
    /// cannot be told for sure.
    async fn last_wal_record(&self, tli: u32, from: Lsn) -> Result<Option<Lsn>>;
    /// Kill server processes a dead postmaster left behind; how many.
    async fn kill_orphans(&self, timeout: Duration) -> usize;
    /// Remove the `postmaster.pid` of a dead postmaster.
    fn clear_stale_pid_file(&self) -> Result<bool>;
    /// `initdb` into `dir` (missing or empty), with the default options.
    async fn initdb_in(&self, dir: &Path) -> Result<()>;
    /// `pg_basebackup` from `source` into `dir` (missing or empty).
    async fn basebackup_into(
        &self,
        dir: &Path,
        source: &ConnTarget,
        slot: Option<&str>,
    ) -> Result<()>;
    /// Move a finished data directory `tmp` into the data directory (missing or empty),
    /// with mode 0700 and owned by the PostgreSQL OS user; the initdb marker
    /// (`agent::execute::INITDB_MARKER`) first, so that a crash half-way leaves a
    /// directory that says where it came from.
    fn install_dir(&self, tmp: &Path) -> anyhow::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Remove the directory tree at `path`.
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()>;
    /// Rename `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Write a small file at `path` and flush it to disk.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()>;
    /// Remove the file at `path` and flush its directory.
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// The pid of a live postmaster of this data directory, as the fence finds it.
    fn postmaster_pid(&self) -> std::result::Result<Option<i32>, crate::fence::FenceError>;
    /// The start time of live process `pid` (to tell a reused pid apart), if it runs.
    fn process_start(&self, pid: i32) -> Option<u64>;
    /// Immediate shutdown of postmaster `pid` (what the fence does at the deadline).
    fn quit_postmaster(&self, pid: i32) -> std::result::Result<(), crate::fence::FenceError>;
}

/// An open SQL session with the local server.
#[async_trait::async_trait]
pub trait PgSql: Send + Sync {
    /// True once the connection is broken or closed.
    fn is_closed(&self) -> bool;
    /// Recovery state, positions, timeline and WAL receiver.
    async fn probe(&self) -> Result<Probe>;
    /// `SHOW name`.
    async fn show(&self, name: &str) -> Result<String>;
    /// `pg_stat_replication`.
    async fn replication(&self) -> Result<Vec<ReplicationPeer>>;
    /// `pg_replication_slots`.
    async fn slots(&self) -> Result<Vec<SlotInfo>>;
    /// Create a physical slot (idempotent).
    async fn create_physical_slot(&self, name: &str) -> Result<bool>;
    /// Drop a slot (idempotent).
    async fn drop_slot(&self, name: &str) -> Result<bool>;
    /// Move a slot forward to `to`.
    async fn advance_slot(&self, name: &str, to: Lsn) -> Result<Option<Lsn>>;
    /// `CHECKPOINT`.
    async fn checkpoint(&self) -> Result<()>;
    /// `SELECT pg_promote(false)`: ask a standby to promote, without waiting.
    async fn promote(&self) -> Result<()>;
    /// Create or update the replication role.
    async fn ensure_replication_role(&self, user: &str, password: &str) -> Result<bool>;
    /// Create or update the pg_rewind role.
    async fn ensure_rewind_role(&self, user: &str, password: &str) -> Result<bool>;
    /// Settings that wait for a restart.
    async fn pending_restart(&self) -> Result<Vec<String>>;
}

//! The production [`Pg`]: a real PostgreSQL through `pgbaton_postgres::Instance`.

use super::pg::{Pg, PgSql};
use crate::fence::postmaster::{lookup, quit, Lookup};
use crate::fence::FenceError;
use anyhow::Context;
use pgbaton_core::Lsn;
use pgbaton_postgres::{
    ConnTarget, ControlData, DataDirState, InitdbOptions, Instance, PassfileEntry, PostmasterInfo,
    Probe, ReplicationPeer, Result, RewindReport, SlotInfo, Sql, StandbyTarget, StopMode,
};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A real local PostgreSQL.
#[derive(Debug, Clone)]
pub struct LocalPg(pub Instance);

impl LocalPg {
    fn at(&self, dir: &Path) -> Instance {
        Instance {
            data_dir: dir.to_path_buf(),
            ..self.0.clone()
        }
    }
}

#[async_trait::async_trait]
impl Pg for LocalPg {
    fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }
    fn describe(&self) -> String {
        self.0.bin_dir.display().to_string()
    }
    fn data_dir_state(&self) -> Result<DataDirState> {
        self.0.data_dir_state()
    }
    async fn controldata(&self) -> Result<ControlData> {
        self.0.controldata().await
    }
    fn status(&self) -> Result<Option<PostmasterInfo>> {
        self.0.status()
    }
    fn watch_exit(&self, pid: u32) -> Option<super::ExitWatch> {
        super::ExitWatch::open(pid)
    }
    async fn connect(&self) -> Result<Box<dyn PgSql>> {
        Ok(Box::new(self.0.connect().await?))
    }
    fn prepare_config(
        &self,
        settings: &BTreeMap<String, String>,
        standby: Option<&StandbyTarget>,
    ) -> Result<bool> {
        self.0.prepare_config(settings, standby)
    }
    fn set_standby_signal(&self, standby: bool) -> Result<bool> {
        self.0.set_standby_signal(standby)
    }
    async fn start(&self, timeout: Duration) -> Result<bool> {
        self.0.start(timeout).await
    }
    async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<bool> {
        self.0.stop(mode, timeout).await
    }
    async fn reload(&self) -> Result<()> {
        self.0.reload().await
    }
    fn write_hba(&self, lines: &[String]) -> Result<bool> {
        self.0.write_hba(lines)
    }
    fn write_passfile(&self, path: &Path, entries: &[PassfileEntry]) -> Result<bool> {
        self.0.write_passfile(path, entries)
    }
    async fn rewind(
        &self,
        source: &ConnTarget,
        dry_run: bool,
        timeout: Duration,
    ) -> Result<RewindReport> {
        self.0.rewind(source, dry_run, timeout).await
    }
    fn timeline_switch_point(&self, tli: u32) -> Result<Option<Lsn>> {
        self.0.timeline_switch_point(tli)
    }
    fn newest_timeline_file(&self) -> Result<u32> {
        self.0.newest_timeline_file()
    }
    fn hold_timeline(&self, tli: u32) -> Result<bool> {
        self.0.hold_timeline(tli)
    }
    async fn last_wal_record(&self, tli: u32, from: Lsn) -> Result<Option<Lsn>> {
        // Past this, pg_rewind (which replays the same WAL in crash recovery first) is
        // no slower than reading on.
        self.0
            .last_wal_record(tli, from, Duration::from_secs(30))
            .await
    }
    async fn kill_orphans(&self, timeout: Duration) -> usize {
        self.0.kill_orphans(timeout).await
    }
    fn clear_stale_pid_file(&self) -> Result<bool> {
        self.0.clear_stale_pid_file()
    }
    async fn initdb_in(&self, dir: &Path) -> Result<()> {
        self.at(dir).initdb(&InitdbOptions::default()).await
    }
    async fn basebackup_into(
        &self,
        dir: &Path,
        source: &ConnTarget,
        slot: Option<&str>,
    ) -> Result<()> {
        self.at(dir).basebackup(source, slot, None).await
    }
    fn install_dir(&self, tmp: &Path) -> anyhow::Result<()> {
        let data_dir = &self.0.data_dir;
        install_dir(tmp, data_dir)?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(user) = &self.0.run_as {
            user.chown(data_dir)?;
        }
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn write_file(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
    fn postmaster_pid(&self) -> std::result::Result<Option<i32>, FenceError> {
        Ok(match lookup(&self.0.data_dir)? {
            Lookup::Running(pid) => Some(pid),
            _ => None,
        })
    }
    fn process_start(&self, pid: i32) -> Option<u64> {
        crate::agent::process_start_time(pid)
    }
    fn quit_postmaster(&self, pid: i32) -> std::result::Result<(), FenceError> {
        quit(pid)
    }
}

/// Move a finished data directory from `tmp` into `data_dir` (missing or empty).
fn install_dir(tmp: &Path, data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.exists() {
        std::fs::rename(tmp, data_dir)
            .with_context(|| format!("moving {} to {}", tmp.display(), data_dir.display()))?;
        return Ok(());
    }
    // One entry at a time: the initdb marker goes first, so that a crash half-way
    // leaves a directory that says where it came from.
    let mut entries = std::fs::read_dir(tmp)
        .with_context(|| format!("reading {}", tmp.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name() != crate::agent::INITDB_MARKER);
    for entry in entries {
        let to = data_dir.join(entry.file_name());
        std::fs::rename(entry.path(), &to)
            .with_context(|| format!("moving {} to {}", entry.path().display(), to.display()))?;
    }
    std::fs::remove_dir(tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(())
}

#[async_trait::async_trait]
impl PgSql for Sql {
    fn is_closed(&self) -> bool {
        Sql::is_closed(self)
    }
    async fn probe(&self) -> Result<Probe> {
        Sql::probe(self).await
    }
    async fn show(&self, name: &str) -> Result<String> {
        Sql::show(self, name).await
    }
    async fn replication(&self) -> Result<Vec<ReplicationPeer>> {
        Sql::replication(self).await
    }
    async fn slots(&self) -> Result<Vec<SlotInfo>> {
        Sql::slots(self).await
    }
    async fn create_physical_slot(&self, name: &str) -> Result<bool> {
        Sql::create_physical_slot(self, name).await
    }
    async fn drop_slot(&self, name: &str) -> Result<bool> {
        Sql::drop_slot(self, name).await
    }
    async fn advance_slot(&self, name: &str, to: Lsn) -> Result<Option<Lsn>> {
        Sql::advance_slot(self, name, to).await
    }
    async fn checkpoint(&self) -> Result<()> {
        Sql::checkpoint(self).await
    }
    async fn promote(&self) -> Result<()> {
        self.execute("SELECT pg_promote(false)").await
    }
    async fn ensure_replication_role(&self, user: &str, password: &str) -> Result<bool> {
        Sql::ensure_replication_role(self, user, password).await
    }
    async fn ensure_rewind_role(&self, user: &str, password: &str) -> Result<bool> {
        Sql::ensure_rewind_role(self, user, password).await
    }
    async fn pending_restart(&self) -> Result<Vec<String>> {
        Sql::pending_restart(self).await
    }
}

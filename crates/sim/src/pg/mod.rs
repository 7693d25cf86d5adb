//! The simulated PostgreSQL behind the agent's [`Pg`] and [`PgSql`] interfaces: each
//! call takes a little simulated time, then reads or changes the world through
//! [`model`].

pub mod model;
pub mod wal;

use crate::world::{lock, Shared};
use pgbaton::effects::{Pg, PgSql};
use pgbaton_core::Lsn;
use pgbaton_postgres::{
    ClusterState, ConnTarget, ControlData, DataDirState, Error, PassfileEntry, PostmasterInfo,
    Probe, ReplicationPeer, Result, RewindReport, SlotInfo, StandbyTarget, StopMode, WalReceiver,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wal::DirState;

fn fail(action: &str, msg: impl Into<String>) -> Error {
    Error::Command {
        action: action.to_string(),
        program: "simulated".into(),
        status: "failed".into(),
        output: msg.into(),
        log_tail: String::new(),
    }
}

fn eio(what: &'static str, path: &Path) -> Error {
    Error::Io {
        what,
        path: path.to_path_buf(),
        source: std::io::Error::from_raw_os_error(5),
    }
}

async fn take(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One member's simulated PostgreSQL.
pub struct SimPg {
    world: Shared,
    host: String,
    data_dir: PathBuf,
}

impl SimPg {
    /// The PostgreSQL of member `host`.
    pub fn new(world: Shared, host: &str, data_dir: &Path) -> SimPg {
        SimPg {
            world,
            host: host.to_string(),
            data_dir: data_dir.to_path_buf(),
        }
    }
}

#[async_trait::async_trait]
impl Pg for SimPg {
    fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    fn describe(&self) -> String {
        "simulated PostgreSQL 15".into()
    }
    fn data_dir_state(&self) -> Result<DataDirState> {
        let w = lock(&self.world);
        let h = &w.hosts[&self.host];
        if h.eio {
            return Err(eio("list data directory", &self.data_dir));
        }
        Ok(match h.path_data() {
            None => DataDirState::Missing,
            Some(d) => DataDirState::Initialized {
                standby_signal: d.standby_signal,
                recovery_signal: false,
                pg_version: "15".into(),
            },
        })
    }
    async fn controldata(&self) -> Result<ControlData> {
        take(5).await;
        let w = lock(&self.world);
        let h = &w.hosts[&self.host];
        if h.eio {
            return Err(eio("run pg_controldata on", &self.data_dir));
        }
        let d = h
            .path_data()
            .ok_or_else(|| fail("pg_controldata", "no data directory"))?;
        let (ck, ck_tli) = d.last_checkpoint();
        let in_recovery = matches!(
            d.state,
            DirState::InArchiveRecovery | DirState::ShutDownInRecovery
        );
        Ok(ControlData {
            system_identifier: d.sysid.to_string(),
            cluster_state: match d.state {
                DirState::ShutDown => ClusterState::ShutDown,
                DirState::ShutDownInRecovery => ClusterState::ShutDownInRecovery,
                DirState::InProduction => ClusterState::InProduction,
                DirState::InArchiveRecovery => ClusterState::InArchiveRecovery,
            },
            checkpoint_lsn: Lsn(ck),
            redo_lsn: Lsn(ck),
            checkpoint_timeline: ck_tli,
            prev_checkpoint_timeline: ck_tli,
            min_recovery_end_lsn: Lsn(if in_recovery { d.end() } else { 0 }),
            min_recovery_end_timeline: if in_recovery { d.tli() } else { 0 },
            data_checksums: true,
            wal_log_hints: true,
            fields: BTreeMap::new(),
        })
    }
    fn status(&self) -> Result<Option<PostmasterInfo>> {
        let w = lock(&self.world);
        let h = &w.hosts[&self.host];
        if h.eio {
            return Err(eio("read postmaster.pid in", &self.data_dir));
        }
        // postmaster.pid is in the directory the postmaster runs on: a moved one is
        // out of reach of the path.
        if h.pm_moved() {
            return Ok(None);
        }
        Ok(h.pm.as_ref().map(|p| PostmasterInfo {
            pid: p.pid,
            port: Some(5432),
            socket_dir: None,
            listen_address: None,
            state: Some(if p.in_recovery { "standby" } else { "ready" }.into()),
        }))
    }
    async fn connect(&self) -> Result<Box<dyn PgSql>> {
        take(1).await;
        let w = lock(&self.world);
        match w.hosts[&self.host].pm.as_ref() {
            Some(p) => Ok(Box::new(SimSql {
                world: self.world.clone(),
                host: self.host.clone(),
                pid: p.pid,
                closed: AtomicBool::new(false),
            })),
            None => Err(fail(
                "connect",
                "connection refused: the server is not running",
            )),
        }
    }
    fn prepare_config(
        &self,
        settings: &BTreeMap<String, String>,
        standby: Option<&StandbyTarget>,
    ) -> Result<bool> {
        let mut w = lock(&self.world);
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or_else(|| fail("config", "host"))?;
        if h.eio {
            return Err(eio("write pgbaton.conf in", &self.data_dir));
        }
        let d = h
            .path_data_mut()
            .ok_or_else(|| fail("write config", "the data directory is missing"))?;
        let conf = wal::DirConf {
            ssn: settings
                .get("synchronous_standby_names")
                .cloned()
                .unwrap_or_default(),
            upstream: standby.map(|s| format!("{}:{}", s.upstream.host, s.upstream.port)),
            slot: standby.and_then(|s| s.slot_name.clone()),
        };
        let changed = d.conf != conf || d.standby_signal != standby.is_some();
        d.conf = conf;
        d.standby_signal = standby.is_some();
        Ok(changed)
    }
    fn set_standby_signal(&self, standby: bool) -> Result<bool> {
        let mut w = lock(&self.world);
        let d = w
            .hosts
            .get_mut(&self.host)
            .and_then(|h| h.path_data_mut())
            .ok_or_else(|| fail("standby.signal", "the data directory is missing"))?;
        let changed = d.standby_signal != standby;
        d.standby_signal = standby;
        Ok(changed)
    }
    // `pg_ctl start` and `pg_ctl stop` act when they are called (the postmaster is
    // started or signalled at once) and then wait: an agent frozen in the wait does not
    // delay the effect, as on a real host (seed 1049230 found the opposite model).
    async fn start(&self, _timeout: Duration) -> Result<bool> {
        let started = model::start(&mut lock(&self.world), &self.host)
            .map_err(|e| fail("start PostgreSQL", e));
        take(150).await;
        started
    }
    async fn stop(&self, mode: StopMode, _timeout: Duration) -> Result<bool> {
        let clean = mode != StopMode::Immediate;
        let stopped = model::stop(
            &mut lock(&self.world),
            &self.host,
            clean,
            &format!("pg_ctl stop -m {mode:?}").to_lowercase(),
        );
        take(60).await;
        Ok(stopped)
    }
    async fn reload(&self) -> Result<()> {
        take(2).await;
        let mut w = lock(&self.world);
        let Some(h) = w.hosts.get(&self.host) else {
            return Err(fail("reload", "no host"));
        };
        let conf = h.data().map(|d| d.conf.clone()).unwrap_or_default();
        if h.pm.is_none() {
            return Err(fail("reload", "the server is not running"));
        }
        let upstream = conf.upstream.as_deref().and_then(|a| w.host_by_addr(a));
        if let Some(pm) = w.hosts.get_mut(&self.host).and_then(|h| h.pm.as_mut()) {
            pm.ssn = conf.ssn;
            if pm.in_recovery {
                pm.upstream = upstream;
            }
        }
        model::checkpointer_reload(&mut w, &self.host);
        Ok(())
    }
    fn write_hba(&self, _lines: &[String]) -> Result<bool> {
        Ok(false)
    }
    fn write_passfile(&self, _path: &Path, _entries: &[PassfileEntry]) -> Result<bool> {
        Ok(false)
    }
    async fn rewind(
        &self,
        source: &ConnTarget,
        _dry_run: bool,
        _timeout: Duration,
    ) -> Result<RewindReport> {
        take(400).await;
        let src = format!("{}:{}", source.host, source.port);
        let rewound = model::rewind(&mut lock(&self.world), &self.host, &src)
            .map_err(|e| fail("pg_rewind", e))?;
        Ok(RewindReport {
            rewound,
            output: if rewound {
                "Done!".into()
            } else {
                "no rewind required".into()
            },
        })
    }
    fn timeline_switch_point(&self, tli: u32) -> Result<Option<Lsn>> {
        let w = lock(&self.world);
        Ok(w.hosts[&self.host]
            .path_data()
            .and_then(|d| d.histories.get(&tli))
            .and_then(|h| h.last())
            .map(|(_, l)| Lsn(*l)))
    }
    fn newest_timeline_file(&self) -> Result<u32> {
        let w = lock(&self.world);
        let h = &w.hosts[&self.host];
        if h.eio {
            return Err(eio("list", &self.data_dir));
        }
        Ok(h.path_data()
            .and_then(|d| d.histories.keys().max().copied())
            .unwrap_or(1))
    }
    fn hold_timeline(&self, tli: u32) -> Result<bool> {
        let mut w = lock(&self.world);
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or_else(|| fail("write", "no host"))?;
        if h.eio {
            return Err(eio("write a history file in", &self.data_dir));
        }
        let d = h
            .path_data_mut()
            .ok_or_else(|| fail("write", "no data directory"))?;
        // A history file that holds only a comment: no parent timelines.
        if d.histories.contains_key(&tli) {
            return Ok(false);
        }
        d.histories.insert(tli, Vec::new());
        w.note(
            &self.host,
            format!("[pg] timeline {tli} held (history file with a comment only)"),
        );
        Ok(true)
    }
    async fn last_wal_record(&self, tli: u32, from: Lsn) -> Result<Option<Lsn>> {
        take(20).await;
        let w = lock(&self.world);
        let h = &w.hosts[&self.host];
        if h.eio {
            return Err(eio("run pg_waldump on", &self.data_dir));
        }
        let d = h
            .path_data()
            .ok_or_else(|| fail("pg_waldump", "no data directory"))?;
        // As the real one: WAL or a history file of a newer timeline makes the end
        // unknown; otherwise crash recovery ends after the last record.
        if d.newest_tli() > tli {
            return Ok(None);
        }
        Ok(d.wal
            .last()
            .filter(|r| r.tli == tli && r.start >= from.0)
            .map(|r| Lsn(r.start)))
    }
    async fn kill_orphans(&self, _timeout: Duration) -> usize {
        0
    }
    fn clear_stale_pid_file(&self) -> Result<bool> {
        Ok(false)
    }
    async fn initdb_in(&self, dir: &Path) -> Result<()> {
        take(700).await;
        model::initdb(&mut lock(&self.world), &self.host, dir).map_err(|e| fail("initdb", e))
    }
    async fn basebackup_into(
        &self,
        dir: &Path,
        source: &ConnTarget,
        _slot: Option<&str>,
    ) -> Result<()> {
        take(800).await;
        let src = format!("{}:{}", source.host, source.port);
        model::basebackup(&mut lock(&self.world), &self.host, dir, &src)
            .map_err(|e| fail("pg_basebackup", e))
    }
    fn install_dir(&self, tmp: &Path) -> anyhow::Result<()> {
        let mut w = lock(&self.world);
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or_else(|| anyhow::anyhow!("no host"))?;
        if h.dirs.contains_key(&self.data_dir) {
            anyhow::bail!("{} is not empty", self.data_dir.display());
        }
        let d = h
            .dirs
            .remove(tmp)
            .ok_or_else(|| anyhow::anyhow!("{} is missing", tmp.display()))?;
        h.dirs.insert(self.data_dir.clone(), d);
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        let w = lock(&self.world);
        let dirs = &w.hosts[&self.host].dirs;
        dirs.contains_key(path)
            || in_dir(path).is_some_and(|(d, f)| dirs.get(d).is_some_and(|d| d.files.contains(f)))
    }
    fn write_file(&self, path: &Path, _bytes: &[u8]) -> anyhow::Result<()> {
        let mut w = lock(&self.world);
        let (dir, file) =
            in_dir(path).ok_or_else(|| anyhow::anyhow!("bad path {}", path.display()))?;
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or_else(|| anyhow::anyhow!("no host"))?;
        if h.eio {
            anyhow::bail!("creating {}: Input/output error", path.display());
        }
        let d = h
            .dirs
            .get_mut(dir)
            .ok_or_else(|| anyhow::anyhow!("creating {}: no such directory", path.display()))?;
        d.files.insert(file.to_string());
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut w = lock(&self.world);
        let (dir, file) = in_dir(path).ok_or(std::io::ErrorKind::NotFound)?;
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or(std::io::ErrorKind::NotFound)?;
        if h.eio {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        let removed = h.dirs.get_mut(dir).is_some_and(|d| d.files.remove(file));
        if removed {
            Ok(())
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        let mut w = lock(&self.world);
        let lost: Vec<u64> = match w.hosts[&self.host].dirs.get(path) {
            Some(d) => d.commits().collect(),
            None => return Err(std::io::ErrorKind::NotFound.into()),
        };
        check_discard(&mut w, &self.host, path, &lost);
        if let Some(h) = w.hosts.get_mut(&self.host) {
            h.dirs.remove(path);
        }
        w.note(&self.host, format!("[fs] removed {}", path.display()));
        Ok(())
    }
    fn postmaster_pid(&self) -> std::result::Result<Option<i32>, pgbaton::fence::FenceError> {
        // Read from postmaster.pid at the path, as the real one.
        if lock(&self.world).hosts[&self.host].pm_moved() {
            return Ok(None);
        }
        Ok(self.pm_pid())
    }
    fn process_start(&self, pid: i32) -> Option<u64> {
        (self.pm_pid() == Some(pid)).then_some(0)
    }
    fn quit_postmaster(&self, pid: i32) -> std::result::Result<(), pgbaton::fence::FenceError> {
        let mut w = lock(&self.world);
        if w.hosts[&self.host].pm.as_ref().map(|p| p.pid as i32) == Some(pid) {
            model::stop(
                &mut w,
                &self.host,
                false,
                "immediate shutdown by the agent's backstop",
            );
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut w = lock(&self.world);
        let h = w
            .hosts
            .get_mut(&self.host)
            .ok_or(std::io::ErrorKind::NotFound)?;
        if h.eio {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        let d = h.dirs.remove(from).ok_or(std::io::ErrorKind::NotFound)?;
        h.dirs.insert(to.to_path_buf(), d);
        // A running postmaster keeps working on its directory wherever it goes.
        if let Some(pm) = h.pm.as_mut().filter(|p| p.dir == from) {
            pm.dir = to.to_path_buf();
        }
        w.note(
            &self.host,
            format!("[fs] moved {} to {}", from.display(), to.display()),
        );
        Ok(())
    }
}

impl SimPg {
    fn pm_pid(&self) -> Option<i32> {
        lock(&self.world).hosts[&self.host]
            .pm
            .as_ref()
            .map(|p| p.pid as i32)
    }
}

/// `path` as (its directory, its file name).
fn in_dir(path: &Path) -> Option<(&Path, &str)> {
    Some((path.parent()?, path.file_name()?.to_str()?))
}

fn check_discard(w: &mut crate::world::World, host: &str, path: &Path, lost: &[u64]) {
    crate::check::discarding(w, host, path, &format!("removing {}", path.display()), lost);
}

/// A SQL session with a simulated server; broken once that postmaster is gone.
pub struct SimSql {
    world: Shared,
    host: String,
    pid: u32,
    closed: AtomicBool,
}

impl SimSql {
    /// Run `f` on the world if the session's server still runs.
    async fn with<T>(&self, f: impl FnOnce(&mut crate::world::World) -> Result<T>) -> Result<T> {
        take(1).await;
        while lock(&self.world).hosts[&self.host].sql_hung {
            take(10).await;
        }
        let mut w = lock(&self.world);
        let alive = w.hosts[&self.host]
            .pm
            .as_ref()
            .is_some_and(|p| p.pid == self.pid);
        if !alive {
            self.closed.store(true, Ordering::SeqCst);
            return Err(fail("query", "server closed the connection unexpectedly"));
        }
        f(&mut w)
    }
}

#[async_trait::async_trait]
impl PgSql for SimSql {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    async fn probe(&self) -> Result<Probe> {
        let host = self.host.clone();
        self.with(|w| {
            let h = &w.hosts[&host];
            let pm = h.pm.as_ref().ok_or_else(|| fail("probe", "gone"))?;
            let d = h.data().ok_or_else(|| fail("probe", "no data directory"))?;
            let upstream_addr = pm
                .upstream
                .as_ref()
                .and_then(|u| w.hosts.get(u))
                .map(|u| u.addr.clone());
            Ok(Probe {
                in_recovery: pm.in_recovery,
                server_version_num: 150010,
                system_identifier: d.sysid.to_string(),
                timeline: d.tli(),
                checkpoint_timeline: d.last_checkpoint().1,
                current_lsn: (!pm.in_recovery).then(|| Lsn(d.end())),
                receive_lsn: pm.in_recovery.then(|| Lsn(d.end())),
                replay_lsn: pm.in_recovery.then(|| Lsn(d.end())),
                wal_receiver: (pm.in_recovery && pm.streaming).then(|| WalReceiver {
                    pid: 1,
                    status: "streaming".into(),
                    sender_host: upstream_addr
                        .as_deref()
                        .map(|a| a.split(':').next().unwrap_or_default().to_string()),
                    sender_port: Some(5432),
                    slot_name: d.conf.slot.clone(),
                    received_tli: Some(d.tli()),
                    written_lsn: Some(Lsn(d.end())),
                    flushed_lsn: Some(Lsn(d.end())),
                    latest_end_lsn: Some(Lsn(d.end())),
                }),
            })
        })
        .await
    }
    async fn show(&self, name: &str) -> Result<String> {
        let host = self.host.clone();
        let name = name.to_string();
        self.with(|w| {
            let pm = w.hosts[&host]
                .pm
                .as_ref()
                .ok_or_else(|| fail("show", "gone"))?;
            Ok(match name.as_str() {
                "synchronous_standby_names" => pm.ssn.clone(),
                _ => String::new(),
            })
        })
        .await
    }
    async fn replication(&self) -> Result<Vec<ReplicationPeer>> {
        let host = self.host.clone();
        self.with(|w| {
            let ssn = w.hosts[&host]
                .pm
                .as_ref()
                .map(|p| p.ssn.clone())
                .unwrap_or_default();
            let standbys = model::standbys_of(w, &host);
            let (states, _) = model::sync_view(&ssn, &standbys, 0);
            Ok(standbys
                .iter()
                .zip(states)
                .map(|((name, flush), st)| ReplicationPeer {
                    pid: 1,
                    application_name: name.clone(),
                    client_addr: None,
                    state: Some("streaming".into()),
                    sent_lsn: Some(Lsn(*flush)),
                    write_lsn: Some(Lsn(*flush)),
                    flush_lsn: Some(Lsn(*flush)),
                    replay_lsn: Some(Lsn(*flush)),
                    sync_priority: Some(if st == "async" { 0 } else { 1 }),
                    sync_state: Some(st),
                    // A connected standby replies continually: a new reply each time.
                    reply_time_us: Some(w.now_ms() as i64 * 1000),
                })
                .collect())
        })
        .await
    }
    async fn slots(&self) -> Result<Vec<SlotInfo>> {
        let host = self.host.clone();
        self.with(|w| {
            let d = w.hosts[&host]
                .data()
                .ok_or_else(|| fail("slots", "no data directory"))?;
            let active: Vec<String> = w
                .hosts
                .values()
                .filter(|s| {
                    s.pm.as_ref().is_some_and(|p| {
                        p.streaming && p.upstream.as_deref() == Some(host.as_str())
                    })
                })
                .filter_map(|s| s.data().and_then(|d| d.conf.slot.clone()))
                .collect();
            Ok(d.slots
                .iter()
                .map(|(n, at)| SlotInfo {
                    name: n.clone(),
                    slot_type: "physical".into(),
                    active: active.contains(n),
                    active_pid: None,
                    restart_lsn: Some(Lsn(*at)),
                    wal_status: Some("reserved".into()),
                })
                .collect())
        })
        .await
    }
    async fn create_physical_slot(&self, name: &str) -> Result<bool> {
        let host = self.host.clone();
        let name = name.to_string();
        self.with(|w| {
            let d = w
                .hosts
                .get_mut(&host)
                .and_then(|h| h.data_mut())
                .ok_or_else(|| fail("create slot", "no data directory"))?;
            let end = d.end();
            Ok(d.slots.insert(name, end).is_none())
        })
        .await
    }
    async fn drop_slot(&self, name: &str) -> Result<bool> {
        let host = self.host.clone();
        let name = name.to_string();
        self.with(|w| {
            let d = w
                .hosts
                .get_mut(&host)
                .and_then(|h| h.data_mut())
                .ok_or_else(|| fail("drop slot", "no data directory"))?;
            Ok(d.slots.remove(&name).is_some())
        })
        .await
    }
    async fn advance_slot(&self, name: &str, to: Lsn) -> Result<Option<Lsn>> {
        let host = self.host.clone();
        let name = name.to_string();
        self.with(|w| {
            let d = w
                .hosts
                .get_mut(&host)
                .and_then(|h| h.data_mut())
                .ok_or_else(|| fail("advance slot", "no data directory"))?;
            Ok(d.slots.get_mut(&name).map(|s| {
                *s = (*s).max(to.0);
                Lsn(*s)
            }))
        })
        .await
    }
    async fn checkpoint(&self) -> Result<()> {
        // The request waits for a running long checkpoint; the checkpointer re-reads
        // the configuration before it starts the requested one.
        while lock(&self.world)
            .hosts
            .get(&self.host)
            .is_some_and(|h| h.ckpt_busy)
        {
            take(10).await;
        }
        let host = self.host.clone();
        self.with(|w| {
            model::checkpointer_reload(w, &host);
            let id = w.id();
            let h = w
                .hosts
                .get_mut(&host)
                .ok_or_else(|| fail("checkpoint", "host"))?;
            if h.writable() {
                if let Some(d) = h.data_mut() {
                    d.append(id, wal::RecKind::Checkpoint { shutdown: false }, 114);
                }
            }
            Ok(())
        })
        .await
    }
    async fn promote(&self) -> Result<()> {
        // The server promotes once the query arrives; `pg_promote` then waits for it.
        let host = self.host.clone();
        let promoted = self
            .with(|w| model::promote(w, &host).map_err(|e| fail("pg_promote", e)))
            .await;
        take(20).await;
        promoted
    }
    async fn ensure_replication_role(&self, _user: &str, _password: &str) -> Result<bool> {
        self.with(|_| Ok(false)).await
    }
    async fn ensure_rewind_role(&self, _user: &str, _password: &str) -> Result<bool> {
        self.with(|_| Ok(false)).await
    }
    async fn pending_restart(&self) -> Result<Vec<String>> {
        self.with(|_| Ok(Vec::new())).await
    }
}

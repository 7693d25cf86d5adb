//! Carries out the actions of a plan against the store and PostgreSQL.
//!
//! Each action is one small method. Long ones (initdb, clone) build the new data
//! directory beside the real one and move it into place only when complete, so a crash
//! half-way never leaves a half-made data directory behind.

use super::settings::{managed_settings, passfile, sibling, upstream_passwords};
use super::Agent;
use crate::effects::{Pg, PgSql};
use anyhow::{bail, Context};
use pgbaton_config::NodeConfig;
use pgbaton_core::model::{
    Initialize, MemberStatus, PrimaryStatus, KEY_CONFIG, KEY_INITIALIZE, KEY_LEADER, KEY_STATUS,
    KEY_SWITCHOVER, KEY_SYNC,
};
use pgbaton_core::slots::slot_name;
use pgbaton_core::{Action, Observation};
use pgbaton_postgres::{standard_hba, ConnTarget, StandbyTarget, StopMode};
use pgbaton_store::Expect;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// A file that this member's initdb leaves in the new data directory until its system
/// identifier is recorded in the store: while it is there, the directory never served
/// as the cluster, and a bootstrap lost to another member may set it aside.
pub const INITDB_MARKER: &str = "pgbaton-initdb";

const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// A short name of an action, for logs.
pub fn describe(action: &Action) -> String {
    match action {
        Action::CreateSlot(s) => format!("creating slot {s}"),
        Action::DropSlot(s) => format!("dropping slot {s}"),
        Action::PublishStatus(_) => "publishing the primary status".into(),
        Action::AllowReplicationFrom { .. } => "updating pg_hba.conf".into(),
        other => format!("{other:?}"),
    }
}

/// Whether the stored `old` status says what `new` says, apart from times: the same
/// primary, WAL position, timeline and hosts, and the same members registered, each
/// still registered (a time) or removed (0) as before. The times of live members
/// advance every cycle; rewriting the key only for them would wake every member each
/// cycle. The primary still rewrites it about every `3/4 ttl` ([`Agent::refresh_due`]),
/// so the registry's times lag by at most that, against a `member_slot_retention` of
/// hours.
fn same_status(old: &PrimaryStatus, new: &PrimaryStatus) -> bool {
    old.primary == new.primary
        && old.lsn == new.lsn
        && old.timeline == new.timeline
        && old.hosts == new.hosts
        && old.registry.len() == new.registry.len()
        && old
            .registry
            .iter()
            .zip(&new.registry)
            .all(|((a, at), (b, bt))| a == b && (*at == 0) == (*bt == 0))
}

/// Remove half-made data directories left by a crash during initdb or a clone.
pub fn clean_leftovers(cfg: &NodeConfig, pg: &dyn Pg) {
    for suffix in ["initdb-tmp", "clone-tmp"] {
        let dir = sibling(cfg, suffix);
        if pg.exists(&dir) {
            tracing::info!("removing {} left by an interrupted run", dir.display());
            if let Err(e) = pg.remove_dir_all(&dir) {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

impl Agent {
    /// Execute one action. An error stops the rest of the plan; the next cycle re-plans.
    pub(super) async fn execute(
        &mut self,
        action: &Action,
        obs: &Observation,
    ) -> anyhow::Result<()> {
        // Any action may start, rewind or replace the data directory: read its WAL
        // again before the next decision that needs it.
        self.wal_end.clear();
        match action {
            Action::ClaimInitialize => self.claim_initialize().await,
            Action::ReleaseStaleInitialize { revision } => {
                self.store
                    .delete(KEY_INITIALIZE, Expect::ModRevision(*revision))
                    .await?;
                Ok(())
            }
            Action::Initdb => self.initdb().await,
            Action::SetAsideDataDir => self.set_aside_data_dir().await,
            Action::StartPrimary => self.start_primary(obs).await,
            Action::RecordSystemIdentifier { system_identifier } => {
                self.record_system_identifier(system_identifier).await
            }
            Action::AcquireLeader => self.acquire_leader(obs).await,
            Action::ReleaseLeader => {
                self.store
                    .delete(KEY_LEADER, Expect::Value(self.cfg.name.clone()))
                    .await?;
                Ok(())
            }
            Action::CloneFrom { leader } => self.clone_from(obs, leader).await,
            Action::Follow { leader } => self.follow(obs, leader).await,
            Action::StartStandby => {
                self.sync_names = None;
                self.standby_target = None;
                // It streams from nobody now: the next cycle must re-point it.
                self.following = None;
                let settings = self.settings();
                self.pg.prepare_config(&settings, None)?;
                self.pg.set_standby_signal(true)?;
                self.start_pg(START_TIMEOUT).await?;
                tracing::info!("PostgreSQL started in recovery, without a primary to follow");
                Ok(())
            }
            Action::StopPostgres => {
                self.pg.stop(StopMode::Fast, STOP_TIMEOUT).await?;
                self.sql = None;
                self.fence.stepped_down()?;
                Ok(())
            }
            Action::AllowReplicationFrom { hosts } => {
                if self.write_hba(hosts)? {
                    tracing::info!("pg_hba.conf updated for replication from {hosts:?}: reloading");
                    self.pg.reload().await?;
                }
                Ok(())
            }
            Action::CreateSlot(name) => {
                self.sql()?.create_physical_slot(name).await?;
                tracing::info!("created replication slot {name}");
                Ok(())
            }
            Action::DropSlot(name) => {
                self.sql()?.drop_slot(name).await?;
                tracing::info!("dropped replication slot {name}");
                Ok(())
            }
            Action::PublishStatus(status) => {
                if obs.cluster.status_revision.is_some()
                    && obs
                        .cluster
                        .status
                        .as_ref()
                        .is_some_and(|old| same_status(old, status))
                    && !self.refresh_due(self.status_written_at)
                {
                    // The store holds this status already (see `same_status`).
                    return Ok(());
                }
                // Compare-and-set against the snapshot this plan was made from: a
                // deposed primary's delayed write can never restore a stale `status`
                // over a newer primary's claim (safety review finding 1).
                let value = serde_json::to_string(status)?;
                let expect = match obs.cluster.status_revision {
                    Some(rev) => Expect::ModRevision(rev),
                    None => Expect::Absent,
                };
                if !self.store.put(KEY_STATUS, &value, None, expect).await? {
                    anyhow::bail!(
                        "the status key changed since this cycle read it (another member \
                         wrote it); deciding again"
                    );
                }
                self.status_written_at = Some(Instant::now());
                Ok(())
            }
            Action::HandOver { to } => self.hand_over(obs, to).await,
            Action::WaitForWal { lsn } => self.wait_for_wal(obs, *lsn).await,
            Action::Promote {
                reason,
                old_primary,
            } => self.promote(obs, reason, old_primary.as_deref()).await,
            Action::ClearSwitchover { revision } => {
                self.store
                    .delete(KEY_SWITCHOVER, Expect::ModRevision(*revision))
                    .await?;
                Ok(())
            }
            Action::Rewind { leader } => self.rewind(obs, leader).await,
            Action::Reclone { leader } => self.reclone(obs, leader).await,
            Action::AdvanceSlots(slots) => self.advance_slots(slots).await,
            Action::SetSynchronousStandbyNames(names) => self.set_sync_names(names).await,
            Action::WriteSync { state, expect } => {
                let value = serde_json::to_string(state)?;
                let expect = match expect {
                    Some(r) => Expect::ModRevision(*r),
                    None => Expect::Absent,
                };
                if !self.store.put(KEY_SYNC, &value, None, expect).await? {
                    bail!("the sync key changed meanwhile; re-planning");
                }
                tracing::info!(
                    "sync key: leader {}, synchronous standbys [{}]{}",
                    state.leader,
                    state.members.join(", "),
                    state
                        .quorum
                        .map(|q| format!(", each commit on {q}"))
                        .unwrap_or_default()
                );
                Ok(())
            }
            Action::Refuse(msg) => bail!("{msg}"),
        }
    }

    /// The settings for `pgbaton.conf` now.
    pub(super) fn settings(&self) -> std::collections::BTreeMap<String, String> {
        managed_settings(&self.cfg, &self.cluster_config, self.sync_names.as_deref())
    }

    /// Put `synchronous_standby_names` into `pgbaton.conf` and reload a running
    /// PostgreSQL (a replica only when its standby config is known, so that it is
    /// written back unchanged); a stopped one gets it at its next start.
    async fn set_sync_names(&mut self, names: &str) -> anyhow::Result<()> {
        self.sync_names = Some(names.to_string());
        if names.is_empty() {
            self.sync_applied.reset();
        }
        if self.pg.status()?.is_none() {
            return Ok(());
        }
        let settings = self.settings();
        let probe = self.sql()?.probe().await?;
        let changed = if probe.in_recovery {
            match self.standby_target.clone() {
                Some(t) => self.pg.prepare_config(&settings, Some(&t))?,
                None => return Ok(()),
            }
        } else {
            self.pg.prepare_config(&settings, None)?
        };
        if changed {
            self.pg.reload().await?;
            tracing::info!("synchronous_standby_names set to '{names}'");
        }
        Ok(())
    }

    /// Start PostgreSQL, first killing server processes left by a dead postmaster (they
    /// would hold the old shared memory and make the start fail).
    pub(super) async fn start_pg(&mut self, timeout: Duration) -> pgbaton_postgres::Result<bool> {
        let killed = self.pg.kill_orphans(Duration::from_secs(5)).await;
        if killed > 0 {
            tracing::info!("killed {killed} server processes left by a dead postmaster");
        }
        if self.pg.clear_stale_pid_file()? {
            tracing::info!("removed the postmaster.pid of a dead postmaster");
        }
        let started = self.pg.start(timeout).await;
        // Remember the new postmaster at once: should its data directory move away
        // before the next observation, it must still be found and stopped.
        if let Ok(Some(info)) = self.pg.status() {
            self.postmaster_seen = super::vanished::Seen::of(self.pg.as_ref(), info.pid);
        }
        started
    }

    pub(super) fn sql(&self) -> anyhow::Result<&dyn PgSql> {
        self.sql
            .as_deref()
            .context("no SQL connection to the local PostgreSQL")
    }

    async fn claim_initialize(&mut self) -> anyhow::Result<()> {
        let claim = Initialize {
            owner: self.cfg.name.clone(),
            system_identifier: None,
        };
        let won = self
            .store
            .put(
                KEY_INITIALIZE,
                &serde_json::to_string(&claim)?,
                None,
                Expect::Absent,
            )
            .await?;
        if won {
            tracing::info!("won the race to initialize cluster {}", self.cfg.cluster);
            let config = serde_json::to_string(&self.cfg.bootstrap)?;
            self.store
                .put(KEY_CONFIG, &config, None, Expect::Absent)
                .await?;
        } else {
            tracing::info!("another member claimed cluster {} first", self.cfg.cluster);
        }
        Ok(())
    }

    async fn record_system_identifier(&mut self, sysid: &str) -> anyhow::Result<()> {
        let entry = self
            .store
            .get(KEY_INITIALIZE)
            .await?
            .context("the initialize key vanished")?;
        let mut claim: Initialize = serde_json::from_str(&entry.value)?;
        if claim.owner != self.cfg.name {
            bail!("the initialize key now belongs to {}", claim.owner);
        }
        claim.system_identifier = Some(sysid.to_string());
        let value = serde_json::to_string(&claim)?;
        if !self
            .store
            .put(
                KEY_INITIALIZE,
                &value,
                None,
                Expect::ModRevision(entry.mod_revision),
            )
            .await?
        {
            bail!("the initialize key changed meanwhile");
        }
        tracing::info!(
            "cluster {} initialized with system identifier {sysid}",
            self.cfg.cluster
        );
        self.forget_initdb_marker()?;
        Ok(())
    }

    /// The data directory is the cluster's now: drop the marker of its initdb (before
    /// PostgreSQL first starts, so that no clone ever copies it).
    fn forget_initdb_marker(&self) -> anyhow::Result<()> {
        let marker = self.pg.data_dir().join(INITDB_MARKER);
        match self.pg.remove_file(&marker) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", marker.display())),
        }
    }

    /// Move a data directory made by a lost bootstrap out of the way (never delete it),
    /// so that the member is cloned like a new one.
    async fn set_aside_data_dir(&mut self) -> anyhow::Result<()> {
        if self.pg.status()?.is_some() {
            self.pg.stop(StopMode::Fast, STOP_TIMEOUT).await?;
        }
        self.sql = None;
        self.fence.stepped_down()?;
        let secs = self.clock.wall_ms() / 1000;
        let to = sibling(&self.cfg, &format!("set-aside-{secs}"));
        let from = self.pg.data_dir();
        self.pg.rename(from, &to).with_context(|| {
            format!(
                "moving {} aside to {}: move it elsewhere by hand (or empty data_dir) \
                 so that this member can be cloned",
                from.display(),
                to.display()
            )
        })?;
        self.system_identifier = None;
        self.following = None;
        tracing::warn!(
            "moved {} to {}: it came from a bootstrap that another member won and never \
             served as the cluster; delete it once you do not need it",
            from.display(),
            to.display()
        );
        Ok(())
    }

    async fn acquire_leader(&mut self, obs: &Observation) -> anyhow::Result<()> {
        let lease = self.lease.borrow().lease.context("no store lease yet")?;
        let expect = match obs.cluster.leader.as_deref() {
            Some(l) if l == self.cfg.name => Expect::Value(self.cfg.name.clone()),
            Some(other) => bail!("member {other} holds the leader key"),
            None => Expect::Absent,
        };
        let sent = self.clock.boot();
        if !self
            .store
            .put(KEY_LEADER, &self.cfg.name, Some(lease), expect)
            .await?
        {
            bail!("another member took the leader key first");
        }
        // Armed before PostgreSQL can become writable.
        self.fence.confirmed_leader(sent, lease.0)?;
        tracing::info!("holding the leader key (lease {})", lease.0);
        // For `/primary` at once (a promotion right after this must not wait for the
        // next cycle's snapshot to be routed writes).
        let renewed = self.lease.borrow().renewed_at;
        self.api_state.send_modify(|s| {
            s.holds_leader_key = true;
            s.lease_renewed_at = renewed.map(Instant::into_std);
        });
        Ok(())
    }

    async fn initdb(&mut self) -> anyhow::Result<()> {
        let tmp = sibling(&self.cfg, "initdb-tmp");
        let started = Instant::now();
        self.pg.initdb_in(&tmp).await?;
        // Moved into place with the directory, in the same rename.
        self.pg
            .write_file(&tmp.join(INITDB_MARKER), self.cfg.name.as_bytes())?;
        self.install_dir(&tmp)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "initdb done (data checksums on)"
        );
        self.system_identifier = None;
        Ok(())
    }

    /// Refuse to make PostgreSQL writable once the fence deadline has passed: the
    /// leader key may be about to expire (or have expired) and the fence would stop
    /// the server moments later, after it had accepted writes beside a new primary.
    /// Found by the simulator: a resumed (SIGCONT) agent started its old primary from
    /// a snapshot taken just before its lease expired.
    pub(super) fn check_deadline(&self, what: &str) -> anyhow::Result<()> {
        if let Some(deadline) = self.fence.deadline() {
            if self.clock.boot() >= deadline {
                bail!(
                    "not {what}: the fence deadline has passed (the leader key is about to expire)"
                );
            }
        }
        Ok(())
    }

    pub(super) async fn start_primary(&mut self, obs: &Observation) -> anyhow::Result<()> {
        self.standby_target = None;
        let settings = self.settings();
        let mut changed = self.pg.prepare_config(&settings, None)?;
        changed |= self.write_hba(&member_hosts(obs, &self.cfg.name))?;
        self.forget_initdb_marker()?;
        if self.pg.status()?.is_none() {
            // A running cluster's primary gets primary_start_timeout to come back;
            // after that a replica takes over. A new cluster gets longer.
            let bootstrapping = obs
                .cluster
                .initialize
                .as_ref()
                .is_none_or(|(i, _)| i.system_identifier.is_none());
            let timeout = if bootstrapping {
                START_TIMEOUT
            } else {
                Duration::from_secs(self.cluster_config.primary_start_timeout.max(1))
            };
            self.check_deadline("starting PostgreSQL as primary")?;
            let started = Instant::now();
            if let Err(e) = self.start_pg(timeout).await {
                self.start_failed = true;
                return Err(e.into());
            }
            self.start_failed = false;
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "PostgreSQL started as primary"
            );
        } else if changed {
            self.reload_or_restart().await?;
        }
        self.sql = Some(self.pg.connect().await?);
        let repl = &self.cfg.postgres.replication;
        self.sql()?
            .ensure_replication_role(&repl.username, &repl.password)
            .await?;
        if let Some(rewind) = &self.cfg.postgres.rewind {
            self.sql()?
                .ensure_rewind_role(&rewind.username, &rewind.password)
                .await?;
        }
        Ok(())
    }

    /// Reload the config; restart when a changed setting needs it (or SQL is not
    /// reachable with the new socket or port settings).
    async fn reload_or_restart(&mut self) -> anyhow::Result<()> {
        self.pg.reload().await?;
        let needs_restart = match self.pg.connect().await {
            Ok(sql) => !sql.pending_restart().await?.is_empty(),
            Err(_) => true,
        };
        if needs_restart {
            tracing::info!("a changed setting needs a restart: restarting PostgreSQL");
            self.pg.stop(StopMode::Fast, STOP_TIMEOUT).await?;
            self.start_pg(START_TIMEOUT).await?;
        }
        self.sql = None;
        Ok(())
    }

    fn write_hba(&self, hosts: &[String]) -> anyhow::Result<bool> {
        let pg = &self.cfg.postgres;
        let lines = standard_hba(
            &pg.superuser.username,
            &pg.replication.username,
            hosts,
            &pg.pg_hba,
        )?;
        Ok(self.pg.write_hba(&lines)?)
    }

    /// The connection to another member's PostgreSQL, with a passfile holding the
    /// replication and pg_rewind (dedicated role, else superuser) passwords.
    pub(super) fn upstream(&self, primary: &MemberStatus) -> anyhow::Result<ConnTarget> {
        let repl = &self.cfg.postgres.replication;
        let pass = passfile(&self.cfg);
        self.pg
            .write_passfile(&pass, &upstream_passwords(&self.cfg, primary))?;
        Ok(ConnTarget {
            host: primary.host.clone(),
            port: primary.port,
            user: repl.username.clone(),
            passfile: pass,
            application_name: self.cfg.name.clone(),
            connect_timeout_secs: 3,
            extra: Vec::new(),
        })
    }

    pub(super) async fn clone_from(
        &mut self,
        obs: &Observation,
        leader: &str,
    ) -> anyhow::Result<()> {
        let primary = obs
            .cluster
            .members
            .get(leader)
            .with_context(|| format!("member {leader} vanished"))?;
        let target = self.upstream(primary)?;
        let slot = slot_name(&self.cfg.name);
        let tmp = sibling(&self.cfg, "clone-tmp");
        let started = Instant::now();
        tracing::info!(
            "cloning from {leader} ({}:{}) through slot {slot}",
            target.host,
            target.port
        );
        self.pg.basebackup_into(&tmp, &target, Some(&slot)).await?;
        self.install_dir(&tmp)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "clone from {leader} done"
        );
        self.system_identifier = None;
        self.follow(obs, leader).await
    }

    pub(super) async fn follow(&mut self, obs: &Observation, leader: &str) -> anyhow::Result<()> {
        let primary = obs
            .cluster
            .members
            .get(leader)
            .with_context(|| format!("member {leader} vanished"))?;
        let target = self.upstream(primary)?;
        let address = format!("{}:{}", target.host, target.port);
        let standby = StandbyTarget {
            upstream: target,
            slot_name: Some(slot_name(&self.cfg.name)),
        };
        // A replica's synchronous_standby_names matters only once it is promoted, and
        // the promotion sets it first.
        self.sync_names = None;
        self.sync_applied.reset();
        let settings = self.settings();
        let changed = self.pg.prepare_config(&settings, Some(&standby))?;
        self.standby_target = Some(standby);
        self.write_hba(&member_hosts(obs, &self.cfg.name))?;
        if self.pg.status()?.is_none() {
            let started = Instant::now();
            self.start_pg(START_TIMEOUT).await?;
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "PostgreSQL started as a replica of {leader} ({address})"
            );
        } else if changed || self.following.is_none() {
            // Reload also when the file was already right but this agent has not
            // pointed the running server itself: a previous agent killed between
            // writing pgbaton.conf and reloading left it streaming from the old
            // upstream (simulator seed 40008385).
            self.pg.reload().await?;
            tracing::info!("replication re-pointed to {leader} ({address})");
        }
        self.following = Some(address);
        Ok(())
    }

    /// Move a finished data directory into place, owned by the PostgreSQL OS user.
    fn install_dir(&self, tmp: &Path) -> anyhow::Result<()> {
        self.pg.install_dir(tmp)
    }

    /// Stop PostgreSQL, give up the leader key and revoke the lease. Called once, on
    /// the way out.
    pub(super) async fn stop(&mut self) {
        match self.pg.status() {
            Ok(Some(_)) => {
                tracing::info!("stopping PostgreSQL");
                match self.pg.stop(StopMode::Fast, STOP_TIMEOUT).await {
                    Ok(_) => {
                        let _ = self.fence.stepped_down();
                    }
                    Err(e) => tracing::error!("stopping PostgreSQL failed: {e}"),
                }
            }
            Ok(None) => {
                let _ = self.fence.stepped_down();
            }
            Err(e) => tracing::warn!("cannot tell whether PostgreSQL runs: {e}"),
        }
        if let Err(e) = self
            .store
            .delete(KEY_LEADER, Expect::Value(self.cfg.name.clone()))
            .await
        {
            tracing::warn!("cannot release the leader key: {e}");
        }
        let lease = self.lease.borrow().lease;
        if let Some(lease) = lease {
            if let Err(e) = self.store.revoke_lease(lease).await {
                tracing::warn!("cannot revoke the store lease: {e}");
            }
        }
        tracing::info!("agent stopped");
    }
}

/// Hosts of every other member, for the replication rules of `pg_hba.conf`.
fn member_hosts(obs: &Observation, me: &str) -> Vec<String> {
    let mut hosts: Vec<String> = obs
        .cluster
        .members
        .values()
        .filter(|m| m.name != me)
        .map(|m| m.host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

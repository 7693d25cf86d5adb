//! The role changes: hand-over, promotion, rewind and re-clone, and the history they
//! leave behind. Each step is timed and logged, because every millisecond here is a
//! millisecond without writes.

use super::settings::sibling;
use super::Agent;
use crate::effects::PgSql;
use anyhow::{bail, Context};
use pgbaton_core::model::{
    HistoryEntry, RequestKind, SwitchoverPhase, SwitchoverRequest, KEY_HISTORY, KEY_LEADER,
    KEY_SWITCHOVER,
};
use pgbaton_core::{Lsn, Observation};
use pgbaton_postgres::StopMode;
use pgbaton_store::Expect;
use std::time::Duration;
use tokio::time::Instant;

const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);
const WAL_WAIT: Duration = Duration::from_secs(10);
/// How often the hand-over looks for the shutdown checkpoint and for the end of
/// recovery: these waits are the write gap.
const PROMOTE_POLL: Duration = Duration::from_millis(2);
const REWIND_TIMEOUT: Duration = Duration::from_secs(600);

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

impl Agent {
    /// Switchover, primary side: checkpoint, clean stop, publish the shutdown
    /// checkpoint, release the leader key.
    pub(super) async fn hand_over(&mut self, obs: &Observation, to: &str) -> anyhow::Result<()> {
        let (request, revision) = obs
            .cluster
            .switchover
            .clone()
            .context("the switchover request vanished")?;
        let t0 = Instant::now();
        // `/primary` fails from here on, so that load balancers stop routing writes
        // here now rather than one health-check period after PostgreSQL stopped.
        self.api_state
            .send_modify(|s| s.handing_over = Some(to.to_string()));
        self.sql()?.checkpoint().await?;
        let checkpointed = ms(t0);
        tracing::info!("switchover: checkpoint done in {checkpointed} ms");
        tracing::info!("switchover: fast shutdown signalled");
        self.pg
            .stop(StopMode::Fast, Duration::from_secs(120))
            .await?;
        self.sql = None;
        self.api_state.send_modify(|s| s.pg_running = false);
        self.fence.stepped_down()?;
        let stopped = ms(t0);
        let control = self.pg.controldata().await?;
        if !control.cluster_state.is_clean_shutdown() {
            bail!(
                "PostgreSQL did not shut down cleanly ({:?})",
                control.cluster_state
            );
        }
        tracing::info!(
            stop_ms = stopped - checkpointed,
            "switchover: PostgreSQL stopped cleanly at checkpoint {}",
            control.checkpoint_lsn
        );
        let phase = SwitchoverPhase::PrimaryStopped {
            checkpoint_lsn: control.checkpoint_lsn,
            timeline: control.checkpoint_timeline,
            stopped_ms: self.clock.wall_ms(),
        };
        let updated = SwitchoverRequest {
            from: Some(self.cfg.name.clone()),
            phase,
            ..request
        };
        let value = serde_json::to_string(&updated)?;
        if !self
            .store
            .put(KEY_SWITCHOVER, &value, None, Expect::ModRevision(revision))
            .await?
        {
            bail!("the switchover request changed meanwhile (cancelled?)");
        }
        self.store
            .delete(KEY_LEADER, Expect::Value(self.cfg.name.clone()))
            .await?;
        tracing::info!(
            checkpoint_ms = checkpointed,
            stop_ms = stopped - checkpointed,
            total_ms = ms(t0),
            "switchover: primary stopped cleanly at checkpoint {}; leader key handed to {to}",
            control.checkpoint_lsn
        );
        Ok(())
    }

    /// The open SQL session of this cycle, or a new one: on the hand-over path a new
    /// session costs more than the step it serves.
    async fn session(&mut self) -> anyhow::Result<&dyn PgSql> {
        if self.sql.as_ref().is_none_or(|s| s.is_closed()) {
            self.sql = Some(self.pg.connect().await?);
        }
        self.sql()
    }

    /// Switchover, candidate side: wait until WAL past the old primary's shutdown
    /// checkpoint has arrived here (it normally has: the old primary's walsender
    /// waits for it to be flushed here before the postmaster exits).
    /// The timeline number is reserved meanwhile, off the write gap's path.
    pub(super) async fn wait_for_wal(&mut self, obs: &Observation, lsn: Lsn) -> anyhow::Result<()> {
        let current = self.session().await?.probe().await?.timeline;
        let on_disk = self.newest_local_timeline(current)?;
        let (waited, reserved) =
            tokio::join!(self.wal_past(lsn), self.reserve_timeline(obs, on_disk));
        match reserved {
            Ok(t) => self.reserved_timeline = Some(t),
            Err(e) => tracing::warn!(
                "reserving a timeline ahead failed ({e}); trying again at the promotion"
            ),
        }
        waited
    }

    async fn wal_past(&self, lsn: Lsn) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let sql = self.sql()?;
        loop {
            let probe = sql.probe().await?;
            let got = probe.receive_lsn.max(probe.replay_lsn);
            if got.is_some_and(|g| g > lsn) {
                tracing::info!(
                    waited_ms = ms(t0),
                    "received WAL past the shutdown checkpoint {lsn} (up to {})",
                    got.unwrap_or_default()
                );
                return Ok(());
            }
            if t0.elapsed() > WAL_WAIT {
                bail!("WAL past {lsn} did not arrive within {WAL_WAIT:?} (have {got:?})");
            }
            tokio::time::sleep(PROMOTE_POLL).await;
        }
    }

    /// Promote the local replica and wait until it accepts writes; then record the new
    /// timeline in the history and clear a finished request.
    pub(super) async fn promote(
        &mut self,
        obs: &Observation,
        reason: &str,
        old_primary: Option<&str>,
    ) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let current = self.session().await?.probe().await?.timeline;
        let reserved = self.timeline_for_promotion(obs, current).await?;
        self.check_deadline("promoting")?;
        tracing::info!("promoting: pg_promote (timeline {reserved} reserved)");
        let sql = self.sql()?;
        sql.promote().await?;
        // pg_promote(wait => true) would look only every 100 ms (PostgreSQL 15).
        loop {
            if !sql.probe().await?.in_recovery {
                break;
            }
            if t0.elapsed() > PROMOTE_TIMEOUT {
                bail!("PostgreSQL did not leave recovery within {PROMOTE_TIMEOUT:?}");
            }
            tokio::time::sleep(PROMOTE_POLL).await;
        }
        let promoted = ms(t0);
        // Writable, and the key is this member's (every plan that promotes holds it
        // or takes it first; `holds_leader_key` says which): `/primary` answers 200
        // now, not after the rest of this cycle and the next.
        self.api_state.send_modify(|s| {
            s.pg_running = true;
            s.in_recovery = Some(false);
        });
        let sql = self
            .sql
            .take()
            .context("no SQL connection to the local PostgreSQL")?;
        let probe = sql.probe().await?;
        tracing::info!(
            promote_ms = promoted,
            timeline = probe.timeline,
            "promoted: accepting writes ({reason})"
        );
        if probe.timeline != reserved {
            tracing::error!(
                "PostgreSQL chose timeline {} but pgbaton reserved {reserved}: check \
                 pg_wal for history files pgbaton did not write",
                probe.timeline
            );
        }
        self.following = None;
        self.standby_target = None;
        self.promotions += 1;
        if let Some(names) = self.sync_names.clone() {
            // Synchronous mode: the primary's config now, with the setting the plan
            // chose before the promotion (`*` in strict mode).
            let settings = self.settings();
            if self.pg.prepare_config(&settings, None)? {
                self.pg.reload().await?;
            }
            tracing::info!("synchronous_standby_names is '{names}' on the new primary");
        }
        let switch_lsn = self
            .pg
            .timeline_switch_point(probe.timeline)
            .unwrap_or(None);
        self.append_history(HistoryEntry {
            timeline: probe.timeline,
            switch_lsn,
            reason: reason.to_string(),
            time_ms: self.clock.wall_ms(),
            old_primary: old_primary.map(str::to_string),
            new_primary: self.cfg.name.clone(),
        })
        .await?;
        if let Some((req, revision)) = &obs.cluster.switchover {
            if req.to == self.cfg.name {
                self.store
                    .delete(KEY_SWITCHOVER, Expect::ModRevision(*revision))
                    .await?;
                if req.kind == RequestKind::Failover && req.force {
                    tracing::warn!(
                        "forced failover: commits this member had not received are lost"
                    );
                }
            }
        }
        // pg_rewind on the old primary reads the new timeline from the control file.
        if let Err(e) = sql.checkpoint().await {
            tracing::warn!("checkpoint after promotion failed: {e}");
        }
        self.sql = Some(sql);
        Ok(())
    }

    async fn append_history(&self, entry: HistoryEntry) -> anyhow::Result<()> {
        for _ in 0..20 {
            let current = self.store.get(KEY_HISTORY).await?;
            let (mut list, expect) = match &current {
                Some(e) => (
                    serde_json::from_str::<Vec<HistoryEntry>>(&e.value).unwrap_or_default(),
                    Expect::ModRevision(e.mod_revision),
                ),
                None => (Vec::new(), Expect::Absent),
            };
            list.push(entry.clone());
            if self
                .store
                .put(KEY_HISTORY, &serde_json::to_string(&list)?, None, expect)
                .await?
            {
                return Ok(());
            }
        }
        bail!("could not append to the history: too many concurrent writers")
    }

    /// Make a stopped former primary (or a diverged replica) follow `leader`: pg_rewind,
    /// or a new clone if that fails and the cluster allows it.
    pub(super) async fn rewind(&mut self, obs: &Observation, leader: &str) -> anyhow::Result<()> {
        let primary = obs
            .cluster
            .members
            .get(leader)
            .with_context(|| format!("member {leader} vanished"))?
            .clone();
        let t0 = Instant::now();
        let mut source = self.upstream(&primary)?;
        // A dedicated rewind role when configured (PostgreSQL 11+), else the superuser.
        source.user = match &self.cfg.postgres.rewind {
            Some(r) => r.username.clone(),
            None => self.cfg.postgres.superuser.username.clone(),
        };
        tracing::info!("rewinding from {leader} ({}:{})", source.host, source.port);
        match self.pg.rewind(&source, false, REWIND_TIMEOUT).await {
            Ok(report) => {
                tracing::info!(
                    elapsed_ms = ms(t0),
                    rewound = report.rewound,
                    "pg_rewind from {leader} finished in {:.2} s: {}",
                    t0.elapsed().as_secs_f64(),
                    report.summary()
                );
                self.system_identifier = None;
                self.rewinds += 1;
                self.follow(obs, leader).await
            }
            Err(e) if self.cluster_config.reclone_on_rewind_failure => {
                tracing::warn!("pg_rewind from {leader} failed ({e}); re-cloning instead");
                self.reclone(obs, leader).await
            }
            Err(e) => Err(e).context(
                "pg_rewind failed and reclone_on_rewind_failure is off: this member stays \
                 down; run `pgbaton reinit` to clone it again",
            ),
        }
    }

    /// Move the data directory aside, clone it again, and delete the old copy only once
    /// the clone succeeded.
    pub(super) async fn reclone(&mut self, obs: &Observation, leader: &str) -> anyhow::Result<()> {
        if self.pg.status()?.is_some() {
            self.pg
                .stop(StopMode::Fast, Duration::from_secs(120))
                .await?;
            self.sql = None;
        }
        let aside = sibling(&self.cfg, "old");
        if self.pg.exists(&aside) {
            self.pg
                .remove_dir_all(&aside)
                .with_context(|| format!("removing an older copy {}", aside.display()))?;
        }
        self.pg
            .rename(self.pg.data_dir(), &aside)
            .with_context(|| {
                format!(
                    "moving {} aside to {}",
                    self.pg.data_dir().display(),
                    aside.display()
                )
            })?;
        tracing::info!(
            "old data directory kept at {} until the clone succeeds",
            aside.display()
        );
        match self.clone_from(obs, leader).await {
            Ok(()) => {
                self.pg
                    .remove_dir_all(&aside)
                    .with_context(|| format!("removing {}", aside.display()))?;
                let _ = self
                    .store
                    .delete(
                        pgbaton_core::model::KEY_REINIT,
                        Expect::Value(self.cfg.name.clone()),
                    )
                    .await;
                Ok(())
            }
            Err(e) => {
                if !self.pg.exists(self.pg.data_dir()) {
                    self.pg.rename(&aside, self.pg.data_dir())?;
                    tracing::warn!("clone failed: the old data directory was put back");
                }
                Err(e)
            }
        }
    }

    /// Move the slots this replica keeps for other members to its replay position.
    /// Nothing is sent when replay has not moved since these very slots were last
    /// advanced (an idle cluster), as advancing again would change nothing.
    pub(super) async fn advance_slots(&mut self, slots: &[String]) -> anyhow::Result<()> {
        let sql = self.sql()?;
        let Some(to) = sql.probe().await?.replay_lsn else {
            return Ok(());
        };
        if self
            .slots_advanced
            .as_ref()
            .is_some_and(|(lsn, names)| *lsn == to && names.as_slice() == slots)
        {
            return Ok(());
        }
        for slot in slots {
            sql.advance_slot(slot, to).await?;
        }
        self.slots_advanced = Some((to, slots.to_vec()));
        Ok(())
    }
}

impl Agent {
    /// `pgbaton restart`: stop PostgreSQL cleanly and start it again in the same role.
    pub(super) async fn restart_postgres(&mut self, obs: &Observation) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let was_primary = obs.local.running && obs.local.in_recovery == Some(false);
        if self.pg.status()?.is_some() {
            self.pg
                .stop(StopMode::Fast, Duration::from_secs(120))
                .await?;
            self.sql = None;
        }
        // Restart in the role the rules would give it, never more: a former primary's
        // data directory is started (writable) only under this member's leader key
        // (safety review finding 7); otherwise the next cycle decides how it rejoins.
        let leader = obs.cluster.leader.clone();
        let me = self.cfg.name.as_str();
        let result = match (leader.as_deref(), obs.local.data) {
            (Some(l), pgbaton_core::DataDir::Primary) if l == me => self.start_primary(obs).await,
            (Some(l), pgbaton_core::DataDir::Standby) if l != me => self.follow(obs, l).await,
            (_, pgbaton_core::DataDir::Standby) => self
                .start_pg(Duration::from_secs(120))
                .await
                .map(|_| ())
                .map_err(Into::into),
            _ => {
                tracing::warn!(
                    was_primary,
                    "not starting PostgreSQL after the restart request: its data directory \
                     is a former primary and this member does not hold the leader key; it \
                     rejoins as a replica when the cluster's rules allow"
                );
                Ok(())
            }
        };
        let _ = self
            .store
            .delete(
                pgbaton_core::model::KEY_RESTART,
                Expect::Value(self.cfg.name.clone()),
            )
            .await;
        result?;
        tracing::info!(
            elapsed_ms = ms(t0),
            "PostgreSQL restarted on operator request"
        );
        Ok(())
    }

    /// After a config reload: rewrite `pgbaton.conf` and `pg_hba.conf` for the current
    /// role, and reload PostgreSQL (restart it if a changed setting needs that).
    pub(super) async fn apply_settings(&mut self, obs: &Observation) -> anyhow::Result<()> {
        match obs.cluster.leader.as_deref() {
            Some(l) if l == self.cfg.name && obs.local.in_recovery == Some(false) => {
                self.start_primary(obs).await
            }
            Some(l) if l != self.cfg.name && obs.local.in_recovery == Some(true) => {
                self.follow(obs, l).await
            }
            _ => Ok(()),
        }
    }
}

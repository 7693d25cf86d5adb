//! Observes the local PostgreSQL: data directory, process, and SQL probes.

use super::Agent;
use anyhow::Context;
use pgbaton_core::{Control, DataDir, Local, Lsn, SlotObs, StandbyObs};
use pgbaton_postgres::DataDirState;

/// What the agent saw of its PostgreSQL: the core's part plus details for publishing.
#[derive(Debug, Clone, Default)]
pub struct LocalView {
    /// The part the decision core reads.
    pub core: Local,
    /// Last WAL position received by a replica.
    pub received_lsn: Option<Lsn>,
    /// Last WAL position replayed by a replica.
    pub replayed_lsn: Option<Lsn>,
    /// `server_version_num`.
    pub pg_version: Option<u32>,
}

impl Agent {
    /// Stop the postmaster this agent last saw when the data directory no longer leads
    /// to it (`status`: what the path shows now) before anything is decided from
    /// "PostgreSQL is stopped" (safety review finding 9). Purely local: the HA cycle runs
    /// it before it reads the store too, so that a store outage cannot delay it.
    pub(super) async fn stop_vanished_postmaster(
        &mut self,
        status: Option<&pgbaton_postgres::PostmasterInfo>,
    ) -> anyhow::Result<()> {
        if let Some(info) = status {
            self.postmaster_seen = super::vanished::Seen::of(self.pg.as_ref(), info.pid);
            return Ok(());
        }
        let Some(seen) = self.postmaster_seen.filter(|s| s.alive(self.pg.as_ref())) else {
            self.postmaster_seen = None;
            return Ok(());
        };
        // The path no longer leads to the postmaster this agent saw, yet it runs.
        tracing::error!(
            postmaster = seen.pid(),
            "the data directory {} no longer leads to the running postmaster (moved, \
             unmounted or replaced?): stopping it so that it cannot accept writes",
            self.pg.data_dir().display()
        );
        if !seen
            .stop(self.pg.as_ref(), std::time::Duration::from_secs(10))
            .await
        {
            anyhow::bail!(
                "postmaster {} keeps running although its data directory vanished",
                seen.pid()
            );
        }
        self.postmaster_seen = None;
        Ok(())
    }

    /// Look at the data directory and, if PostgreSQL runs, ask it about itself. With
    /// `scan_wal`, a data directory that was not shut down cleanly has its WAL read to
    /// the end (once per stop), so that it can follow a new primary without pg_rewind.
    pub(super) async fn observe(&mut self, scan_wal: bool) -> anyhow::Result<LocalView> {
        let state = self
            .pg
            .data_dir_state()
            .with_context(|| format!("inspecting data_dir {}", self.pg.data_dir().display()))?;
        let data = match state {
            DataDirState::Missing | DataDirState::Empty => DataDir::Empty,
            DataDirState::Initialized {
                standby_signal: true,
                ..
            } => DataDir::Standby,
            DataDirState::Initialized { .. } => DataDir::Primary,
            DataDirState::NotAPostgresDir { .. } => DataDir::Foreign,
        };
        let status = self.pg.status()?;
        self.stop_vanished_postmaster(status.as_ref()).await?;
        let mut view = LocalView::default();
        view.core.data = data;
        view.core.unrecorded_initdb = self
            .pg
            .exists(&self.pg.data_dir().join(super::execute::INITDB_MARKER));
        if matches!(data, DataDir::Empty | DataDir::Foreign) {
            self.system_identifier = None;
            self.sql = None;
            return Ok(view);
        }
        if self.system_identifier.is_none() {
            let control = self
                .pg
                .controldata()
                .await
                .context("reading pg_controldata")?;
            self.system_identifier = Some(control.system_identifier);
        }
        view.core.system_identifier = self.system_identifier.clone();
        view.core.following = self.following.clone();
        if status.is_none() {
            self.sql = None;
            let control = match self.pg.controldata().await {
                Ok(c) => c,
                Err(e) => {
                    // Unreadable while stopped: decide without it (a leader will try to
                    // start, fail, and let go).
                    tracing::warn!("cannot read pg_controldata: {e}");
                    return Ok(view);
                }
            };
            let end = if data == DataDir::Standby {
                control.checkpoint_lsn.max(control.min_recovery_end_lsn)
            } else {
                control.checkpoint_lsn
            };
            let clean = control.cluster_state.is_clean_shutdown();
            let timeline = control
                .checkpoint_timeline
                .max(control.min_recovery_end_timeline);
            let last_record = if !clean && scan_wal {
                self.last_wal_record(timeline, control.checkpoint_lsn).await
            } else {
                None
            };
            view.core.control = Some(Control {
                clean_shutdown: clean,
                checkpoint_lsn: end,
                timeline,
                last_record,
            });
            return Ok(view);
        }
        self.wal_end.clear();
        if self.sql.as_ref().is_none_or(|s| s.is_closed()) {
            self.sql = self.pg.connect().await.ok();
        }
        let Some(sql) = self.sql.as_deref() else {
            // The postmaster exists but does not answer yet (starting or stopping).
            view.core.unresponsive = true;
            return Ok(view);
        };
        // The probe and the slot list go out together (pipelined): one round trip.
        let (probe, slots) = tokio::join!(sql.probe(), sql.slots());
        let probe = match probe {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("probe failed: {e}");
                self.sql = None;
                view.core.unresponsive = true;
                return Ok(view);
            }
        };
        view.core.running = true;
        view.core.in_recovery = Some(probe.in_recovery);
        view.core.timeline = Some(probe.timeline);
        view.pg_version = u32::try_from(probe.server_version_num).ok();
        if probe.in_recovery {
            view.received_lsn = probe.receive_lsn;
            view.core.received_lsn = probe.receive_lsn;
            view.replayed_lsn = probe.replay_lsn;
            view.core.lsn = probe.replay_lsn.or(probe.receive_lsn);
            view.core.streaming = probe
                .wal_receiver
                .as_ref()
                .is_some_and(|w| w.status == "streaming");
        } else {
            view.core.lsn = probe.current_lsn;
            if let Some(replies) = standbys_of(sql, &mut view).await {
                let now = self.clock.boot();
                self.replies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sample(now, &replies);
            }
            view.core.sync_names_pending = match &view.core.synchronous_standby_names {
                Some(names) => self.sync_applied.pending(names, &self.pg),
                None => false,
            };
            // Adopt a running primary's setting when pgbaton does not manage one yet
            // (e.g. after an agent restart), so that rewriting pgbaton.conf keeps it.
            if self.sync_names.is_none() {
                self.sync_names = view
                    .core
                    .synchronous_standby_names
                    .clone()
                    .filter(|v| !v.is_empty());
            }
        }
        match slots {
            Ok(slots) => {
                view.core.slots = slots
                    .into_iter()
                    .filter(|s| s.slot_type == "physical")
                    .map(|s| SlotObs {
                        name: s.name,
                        active: s.active,
                    })
                    .collect();
            }
            Err(e) => tracing::debug!("listing slots failed: {e}"),
        }
        Ok(view)
    }
}

/// Primary: the connected standbys and the `synchronous_standby_names` in effect;
/// returns the walsenders' status replies for the isolation guard.
async fn standbys_of(
    sql: &dyn crate::effects::PgSql,
    view: &mut LocalView,
) -> Option<Vec<(i32, Option<i64>)>> {
    let (names, peers) = tokio::join!(sql.show("synchronous_standby_names"), sql.replication());
    match names {
        Ok(v) => view.core.synchronous_standby_names = Some(v),
        Err(e) => tracing::debug!("reading synchronous_standby_names failed: {e}"),
    }
    match peers {
        Ok(peers) => {
            let replies = super::isolation::replies(&peers);
            view.core.standbys = peers
                .into_iter()
                .map(|p| StandbyObs {
                    name: p.application_name,
                    streaming: p.state.as_deref() == Some("streaming"),
                    flush_lsn: p.flush_lsn,
                    sync_state: p.sync_state.unwrap_or_default(),
                })
                .collect();
            Some(replies)
        }
        Err(e) => {
            tracing::debug!("reading pg_stat_replication failed: {e}");
            view.core.synchronous_standby_names = None;
            None
        }
    }
}

//! Publishes this member's status in its member key, attached to its lease.

use super::observe::LocalView;
use super::Agent;
use pgbaton_core::model::{member_key, MemberStatus, PgState, Role};
use pgbaton_core::{DataDir, Observation};
use pgbaton_store::{Entry, Expect};
use std::time::Duration;
use tokio::time::Instant;

impl Agent {
    /// Write the member key. Skipped (and retried next cycle) while there is no lease,
    /// and while the store already holds this very report (see [`unchanged_report`]).
    pub(super) async fn publish(
        &mut self,
        obs: &Observation,
        local: &LocalView,
        reason: &str,
    ) -> MemberStatus {
        let status = self.member_status(obs, local, reason);
        let Some(lease) = self.lease.borrow().lease else {
            tracing::debug!("no store lease yet: member status not published");
            return status;
        };
        let stored = self.stored_report.as_ref();
        if obs.cluster.leader.is_some()
            && stored.is_some_and(|e| e.lease == Some(lease) && unchanged_report(e, &status))
            && !self.refresh_due(self.report_written_at)
        {
            return status;
        }
        let value = match serde_json::to_string(&status) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("cannot encode the member status: {e}");
                return status;
            }
        };
        if let Err(e) = self
            .store
            .put(
                &member_key(&self.cfg.name),
                &value,
                Some(lease),
                Expect::Any,
            )
            .await
        {
            tracing::warn!("cannot publish the member status: {e}");
        } else {
            self.report_written_at = Some(Instant::now());
            // What the store holds now is no longer the snapshot's entry.
            self.stored_report = None;
        }
        status
    }

    /// Whether a report written at `written` must be written again although nothing
    /// in it changed: when waiting for the next cycle would leave it unwritten for more
    /// than `3/4 ttl`, so that the key's revision keeps moving while its agent runs. A
    /// second agent started with the same name watches exactly that for `ttl + 1` s
    /// before it refuses to run (`check_name_is_free`), and the primary's registry of
    /// members stays fresh to within about `3/4 ttl`. (At `loop_wait` 10 and ttl 30
    /// that is every second cycle; `2/3 ttl` was every cycle, as a cycle ends a few
    /// milliseconds after `loop_wait`.)
    pub(super) fn refresh_due(&self, written: Option<Instant>) -> bool {
        let every = Duration::from_secs(self.running_ttl) * 3 / 4;
        let next_cycle = Duration::from_secs(self.cluster_config.loop_wait.max(1));
        written.is_none_or(|t| t.elapsed() + next_cycle > every)
    }

    fn member_status(&self, obs: &Observation, local: &LocalView, reason: &str) -> MemberStatus {
        let l = &local.core;
        let leads = obs.cluster.leader.as_deref() == Some(self.cfg.name.as_str());
        let role = if (l.running && l.in_recovery == Some(false))
            || (leads && l.data == DataDir::Primary)
        {
            Role::Primary
        } else if (l.data == DataDir::Empty && !leads)
            || l.data == DataDir::Standby
            || l.in_recovery == Some(true)
        {
            Role::Replica
        } else {
            Role::Unknown
        };
        let state = self.activity.unwrap_or(match (l.running, l.in_recovery) {
            (true, Some(false)) => PgState::Running,
            (true, _) if l.streaming => PgState::Streaming,
            (true, _) => PgState::InRecovery,
            (false, _) => PgState::Stopped,
        });
        let primary_lsn = obs.cluster.status.as_ref().map(|s| s.lsn);
        let lag_bytes = match (role, primary_lsn) {
            (Role::Primary, _) => None,
            (_, Some(p)) => local
                .received_lsn
                .max(local.replayed_lsn)
                .map(|mine| p.bytes_after(mine)),
            _ => None,
        };
        let (host, port) = self.connect_address();
        MemberStatus {
            name: self.cfg.name.clone(),
            host,
            port,
            api_url: self.cfg.api_url(),
            role,
            state,
            timeline: l.timeline,
            lsn: l.lsn,
            received_lsn: local.received_lsn,
            replayed_lsn: local.replayed_lsn,
            lag_bytes,
            pg_version: local.pg_version,
            system_identifier: l.system_identifier.clone(),
            tags: self.cfg.tags.clone(),
            slots: l.slots.iter().map(|s| s.name.clone()).collect(),
            note: Some(reason.to_string()),
            updated_ms: obs.now_ms,
        }
    }

    /// The `host:port` other members use to reach this PostgreSQL.
    pub(super) fn connect_address(&self) -> (String, u16) {
        self.cfg.pg_connect()
    }
}

/// Whether the member key `stored` already says what `fresh` says, apart from the time
/// of the report. While the cluster has a leader, such a report is not written again
/// (until [`Agent::refresh_due`], about every `3/4 ttl`): an idle member then writes nothing, and no other
/// member is woken to read it. Without a leader every report is written: an election
/// counts only reports whose revision is newer than the leader's loss (`freshness`).
fn unchanged_report(stored: &Entry, fresh: &MemberStatus) -> bool {
    serde_json::from_str::<MemberStatus>(&stored.value).is_ok_and(|old| {
        MemberStatus {
            updated_ms: fresh.updated_ms,
            ..old
        } == *fresh
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgbaton_core::model::Tags;
    use pgbaton_store::LeaseId;

    fn report(state: PgState, updated_ms: u64) -> MemberStatus {
        MemberStatus {
            name: "node1".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            api_url: String::new(),
            role: Role::Replica,
            state,
            timeline: Some(1),
            lsn: None,
            received_lsn: None,
            replayed_lsn: None,
            lag_bytes: Some(0),
            pg_version: None,
            system_identifier: None,
            tags: Tags::default(),
            slots: vec![],
            note: Some("replica".into()),
            updated_ms,
        }
    }

    #[test]
    fn only_the_report_time_may_differ() {
        let stored = Entry {
            key: "members/node1".into(),
            value: serde_json::to_string(&report(PgState::Streaming, 1)).unwrap(),
            mod_revision: 7,
            lease: Some(LeaseId(3)),
        };
        assert!(unchanged_report(&stored, &report(PgState::Streaming, 99)));
        assert!(!unchanged_report(&stored, &report(PgState::InRecovery, 1)));
        let mut moved = report(PgState::Streaming, 1);
        moved.received_lsn = Some(pgbaton_core::Lsn(5));
        assert!(!unchanged_report(&stored, &moved));
        let garbage = Entry {
            value: "{".into(),
            ..stored
        };
        assert!(!unchanged_report(&garbage, &report(PgState::Streaming, 1)));
    }
}

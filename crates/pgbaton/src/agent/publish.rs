//! Publishes this member's status in its member key, attached to its lease.

use super::observe::LocalView;
use super::Agent;
use pgbaton_core::model::{member_key, MemberStatus, PgState, Role};
use pgbaton_core::{DataDir, Observation};
use pgbaton_store::Expect;

impl Agent {
    /// Write the member key. Skipped (and retried next cycle) while there is no lease.
    pub(super) async fn publish(
        &self,
        obs: &Observation,
        local: &LocalView,
        reason: &str,
    ) -> MemberStatus {
        let status = self.member_status(obs, local, reason);
        let Some(lease) = self.lease.borrow().lease else {
            tracing::debug!("no store lease yet: member status not published");
            return status;
        };
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
        }
        status
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

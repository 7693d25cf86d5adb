//! The JSON shape of `GET /status` (and of every health answer): this member's state
//! as the agent last saw it, plus derived facts such as lease seconds left.

use super::health::{holds_live_lease, snapshot_age, staleness};
use super::AgentSnapshot;
use pgbaton_core::model::{ClusterConfig, MemberStatus, Role};
use serde::Serialize;
use std::time::Instant;

/// This member's full state. Field names are part of the API (only ever added).
#[derive(Debug, Clone, Serialize)]
pub struct StatusBody {
    /// Member name.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// `primary`, `replica` or `unknown`, as the member last published it.
    pub role: &'static str,
    /// PostgreSQL state as in `pgbaton list` (`running`, `streaming`, `stopped`, ...).
    pub state: Option<&'static str>,
    /// PostgreSQL is running and answering SQL.
    pub pg_running: bool,
    /// PostgreSQL is in recovery, when running.
    pub in_recovery: Option<bool>,
    /// The WAL receiver is streaming.
    pub streaming: bool,
    /// The leader key names this member on its own lease.
    pub holds_leader_key: bool,
    /// Holds the leader key and the lease has not expired.
    pub leader: bool,
    /// Seconds left on the leader lease, when this member holds it.
    pub lease_seconds_left: Option<f64>,
    /// Seconds since the last HA cycle finished (null before the first one).
    pub last_cycle_age_seconds: Option<f64>,
    /// Duration of the last HA cycle, in milliseconds.
    pub last_cycle_ms: u64,
    /// Whether the state is recent enough for health checks to answer 200.
    pub fresh: bool,
    /// Why the state is not fresh, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_reason: Option<String>,
    /// The reason of the agent's last plan.
    pub reason: String,
    /// Timeline, when known.
    pub timeline: Option<u32>,
    /// WAL position (write position on the primary, replay position on a replica).
    pub lsn: Option<String>,
    /// Bytes behind the primary (replicas only).
    pub lag_bytes: Option<u64>,
    /// Failovers and switchovers seen.
    pub promotions_seen: u64,
    /// Fencing actions taken by this member.
    pub fencing_actions: u64,
    /// The status the member last published in the store (null before the first cycle).
    pub member: Option<MemberStatus>,
    /// Cluster-wide settings in effect.
    pub cluster_config: ClusterConfig,
}

/// The role text of `snap`: the published role, or `unknown` before the first cycle.
pub fn role_name(snap: &AgentSnapshot) -> &'static str {
    match snap.member.as_ref().map(|m| m.role) {
        Some(Role::Primary) => "primary",
        Some(Role::Replica) => "replica",
        Some(Role::Unknown) | None => "unknown",
    }
}

/// Build the status of `snap` at `now` for member of `cluster`.
pub fn status_body(snap: &AgentSnapshot, cluster: &str, now: Instant) -> StatusBody {
    let stale_reason = staleness(snap, now);
    let member = snap.member.clone();
    StatusBody {
        name: snap.name.clone(),
        cluster: cluster.to_string(),
        role: role_name(snap),
        state: member.as_ref().map(|m| m.state.as_str()),
        pg_running: snap.pg_running,
        in_recovery: snap.in_recovery,
        streaming: snap.streaming,
        holds_leader_key: snap.holds_leader_key,
        leader: holds_live_lease(snap, now),
        lease_seconds_left: snap.lease_seconds_left(now).map(round_ms),
        last_cycle_age_seconds: snapshot_age(snap, now).map(|d| round_ms(d.as_secs_f64())),
        last_cycle_ms: snap.last_cycle_ms,
        fresh: stale_reason.is_none(),
        stale_reason,
        reason: snap.reason.clone(),
        timeline: member.as_ref().and_then(|m| m.timeline),
        lsn: member.as_ref().and_then(|m| m.lsn).map(|l| l.to_string()),
        lag_bytes: member.as_ref().and_then(|m| m.lag_bytes),
        promotions_seen: snap.promotions_seen,
        fencing_actions: snap.fencing_actions,
        member,
        cluster_config: snap.cluster_config.clone(),
    }
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

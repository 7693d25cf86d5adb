//! The agent's state as the HTTP API sees it: a copy the agent replaces after every
//! observation, so health answers never wait for the agent or the store.

use pgbaton_core::model::{ClusterConfig, MemberStatus};
use std::time::Instant;

/// What the agent knew at the end of its last observation.
#[derive(Debug, Clone)]
pub struct AgentSnapshot {
    /// This member's name.
    pub name: String,
    /// The status it last published (None before the first cycle).
    pub member: Option<MemberStatus>,
    /// PostgreSQL is running and answering SQL.
    pub pg_running: bool,
    /// PostgreSQL is in recovery (a replica), when running.
    pub in_recovery: Option<bool>,
    /// The WAL receiver is streaming.
    pub streaming: bool,
    /// The leader key names this member and is attached to this member's live lease.
    pub holds_leader_key: bool,
    /// The member this primary is handing over to in a switchover (checkpoint, clean
    /// stop, key released): `/primary` fails from the hand-over's very start, so load
    /// balancers move on before PostgreSQL refuses writes.
    pub handing_over: Option<String>,
    /// When the lease was last renewed; the leader lock is held until `+ ttl`.
    pub lease_renewed_at: Option<Instant>,
    /// Cluster-wide settings, as last read from the store.
    pub cluster_config: ClusterConfig,
    /// When the last HA cycle finished.
    pub last_cycle_at: Option<Instant>,
    /// How long the last HA cycle took, in milliseconds.
    pub last_cycle_ms: u64,
    /// The reason of the last plan.
    pub reason: String,
    /// Failovers and switchovers seen (promotions recorded in history).
    pub promotions_seen: u64,
    /// Fencing actions taken by this member.
    pub fencing_actions: u64,
    /// The `sync` key lists this member as a synchronous (or quorum) standby.
    pub sync_standby: bool,
    /// The store snapshot of the last cycle: `/cluster`, `/history` and `/config` are
    /// answered from it, so API load never reaches the store.
    pub store: Option<std::sync::Arc<pgbaton_store::Snapshot>>,
}

impl AgentSnapshot {
    /// The state before the first cycle.
    pub fn initial(name: &str, cluster_config: ClusterConfig) -> AgentSnapshot {
        AgentSnapshot {
            name: name.to_string(),
            member: None,
            pg_running: false,
            in_recovery: None,
            streaming: false,
            holds_leader_key: false,
            handing_over: None,
            lease_renewed_at: None,
            cluster_config,
            last_cycle_at: None,
            last_cycle_ms: 0,
            reason: String::new(),
            promotions_seen: 0,
            fencing_actions: 0,
            sync_standby: false,
            store: None,
        }
    }

    /// Seconds left on the leader lease, if this member holds it.
    pub fn lease_seconds_left(&self, now: Instant) -> Option<f64> {
        if !self.holds_leader_key {
            return None;
        }
        let renewed = self.lease_renewed_at?;
        let ttl = std::time::Duration::from_secs(self.cluster_config.ttl);
        let expires = renewed.checked_add(ttl)?;
        Some(expires.saturating_duration_since(now).as_secs_f64())
    }
}

//! Tests of the API: pure rules on hand-made snapshots, and the real HTTP server on a
//! loopback port backed by a real local store in a temp dir.

mod auth;
mod client;
mod fuzz;
mod health;
mod hostile;
mod http;
mod metrics;
mod tls;

use super::AgentSnapshot;
use pgbaton_core::model::{ClusterConfig, MemberStatus, PgState, Role, Tags};
use pgbaton_core::Lsn;
use std::time::{Duration, Instant};

/// A member status as the agent would publish it.
pub fn member(name: &str, role: Role, state: PgState, lag: Option<u64>) -> MemberStatus {
    MemberStatus {
        name: name.to_string(),
        host: "127.0.0.1".into(),
        port: 5432,
        api_url: "http://127.0.0.1:8008".into(),
        role,
        state,
        timeline: Some(3),
        lsn: Some(Lsn(0x3000148)),
        received_lsn: None,
        replayed_lsn: None,
        lag_bytes: lag,
        pg_version: Some(150010),
        system_identifier: Some("7300000000000000001".into()),
        tags: Tags::default(),
        slots: Vec::new(),
        note: Some("test".into()),
        updated_ms: 1,
    }
}

/// A healthy primary that finished a cycle 100 ms before `now` and renewed its lease
/// 1 s before `now`.
pub fn primary(now: Instant) -> AgentSnapshot {
    let mut s = AgentSnapshot::initial("node1", ClusterConfig::default());
    s.member = Some(member("node1", Role::Primary, PgState::Running, None));
    s.pg_running = true;
    s.in_recovery = Some(false);
    s.holds_leader_key = true;
    s.lease_renewed_at = Some(now - Duration::from_secs(1));
    s.last_cycle_at = Some(now - Duration::from_millis(100));
    s.last_cycle_ms = 12;
    s.reason = "holding the leader lock".into();
    s
}

/// A healthy streaming replica `lag` bytes behind.
pub fn replica(now: Instant, lag: u64) -> AgentSnapshot {
    let mut s = AgentSnapshot::initial("node2", ClusterConfig::default());
    s.member = Some(member(
        "node2",
        Role::Replica,
        PgState::Streaming,
        Some(lag),
    ));
    s.pg_running = true;
    s.in_recovery = Some(true);
    s.streaming = true;
    s.last_cycle_at = Some(now - Duration::from_millis(100));
    s.reason = "following node1".into();
    s
}

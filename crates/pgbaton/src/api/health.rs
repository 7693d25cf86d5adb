//! The health-check rules: pure functions from an [`AgentSnapshot`] to "200 or 503, and
//! why". They never answer "yes" from stale data: when the agent's last cycle is too
//! old, every role check fails with the age as the reason.

use super::AgentSnapshot;
use pgbaton_core::model::ClusterConfig;
use std::time::{Duration, Instant};

/// One health question a load balancer or orchestrator can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `/primary`, `/read-write`, `/leader`, `/master`: the writable leader.
    Primary,
    /// `/replica`: a streaming replica for read traffic (honours `noloadbalance`).
    Replica,
    /// `/read-only`: primary or replica.
    ReadOnly,
    /// `/sync`: a synchronous standby.
    Sync,
    /// `/async`: a streaming replica that is not a synchronous standby.
    Async,
    /// `/health`: PostgreSQL is running.
    Health,
    /// `/liveness`: the agent's loop runs.
    Liveness,
    /// `/readiness`: primary, or replica streaming within the lag limit.
    Readiness,
}

impl Check {
    /// The check's name, as shown in answers.
    pub fn name(self) -> &'static str {
        match self {
            Check::Primary => "primary",
            Check::Replica => "replica",
            Check::ReadOnly => "read-only",
            Check::Sync => "sync",
            Check::Async => "async",
            Check::Health => "health",
            Check::Liveness => "liveness",
            Check::Readiness => "readiness",
        }
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 200 when true, 503 when false.
    pub ok: bool,
    /// Why, in one sentence.
    pub reason: String,
}

impl Verdict {
    fn pass(reason: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            reason: reason.into(),
        }
    }
    fn fail(reason: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: reason.into(),
        }
    }
}

/// How old the snapshot may be for role checks: `max(3 * loop_wait, 3 s)`.
pub fn freshness_window(cc: &ClusterConfig) -> Duration {
    Duration::from_secs(cc.loop_wait.saturating_mul(3).max(3))
}

/// How long the agent may go without finishing a cycle before `/liveness` fails:
/// the freshness window plus `ttl`, so one slow action (a restart, a rewind) does not
/// get the agent killed by an orchestrator.
pub fn liveness_window(cc: &ClusterConfig) -> Duration {
    freshness_window(cc).saturating_add(Duration::from_secs(cc.ttl))
}

/// Seconds since the last finished cycle, if any.
pub fn snapshot_age(snap: &AgentSnapshot, now: Instant) -> Option<Duration> {
    snap.last_cycle_at.map(|t| now.saturating_duration_since(t))
}

/// `None` when the snapshot is fresh; otherwise why it is not.
pub fn staleness(snap: &AgentSnapshot, now: Instant) -> Option<String> {
    let limit = freshness_window(&snap.cluster_config);
    match snapshot_age(snap, now) {
        None => Some("no HA cycle has finished yet; the state is unknown".to_string()),
        Some(age) if age > limit => Some(format!(
            "the agent's state is stale: its last HA cycle finished {:.1} s ago (limit {} s); the agent may be busy or stuck",
            age.as_secs_f64(),
            limit.as_secs()
        )),
        Some(_) => None,
    }
}

/// This member holds the leader key on a lease that has not expired yet.
pub fn holds_live_lease(snap: &AgentSnapshot, now: Instant) -> bool {
    snap.lease_seconds_left(now).is_some_and(|s| s > 0.0)
}

/// Answer `check` from `snap` at `now`. `lag_limit` is the `?lag=` parameter in bytes;
/// `api_started` stands in for the last cycle before the first one finished (liveness).
pub fn evaluate(
    check: Check,
    snap: &AgentSnapshot,
    now: Instant,
    lag_limit: Option<u64>,
    api_started: Instant,
) -> Verdict {
    match check {
        Check::Primary => primary(snap, now),
        Check::Replica => replica(snap, now, lag_limit, true),
        Check::Async => {
            let r = replica(snap, now, lag_limit, false);
            if r.ok && snap.sync_standby {
                Verdict::fail("a synchronous standby (listed in the sync key), not asynchronous")
            } else {
                r
            }
        }
        Check::ReadOnly => {
            let p = primary(snap, now);
            if p.ok {
                return p;
            }
            let r = replica(snap, now, lag_limit, true);
            if r.ok {
                return r;
            }
            if p.reason == r.reason {
                return p;
            }
            Verdict::fail(format!(
                "not primary ({}) and not replica ({})",
                p.reason, r.reason
            ))
        }
        // A synchronous standby is a streaming replica the `sync` key lists.
        Check::Sync => {
            let r = replica(snap, now, lag_limit, false);
            match (r.ok, snap.sync_standby) {
                (true, true) => Verdict::pass(format!("synchronous standby; {}", r.reason)),
                (true, false) => {
                    Verdict::fail("not a synchronous standby (the sync key does not list it)")
                }
                (false, _) => r,
            }
        }
        Check::Health => {
            if let Some(why) = staleness(snap, now) {
                Verdict::fail(why)
            } else if snap.pg_running {
                Verdict::pass("PostgreSQL is running")
            } else {
                Verdict::fail("PostgreSQL is not running")
            }
        }
        Check::Liveness => {
            let limit = liveness_window(&snap.cluster_config);
            let (age, what) = match snapshot_age(snap, now) {
                Some(age) => (age, "the last HA cycle finished"),
                None => (
                    now.saturating_duration_since(api_started),
                    "no HA cycle has finished yet; the agent started",
                ),
            };
            let text = format!(
                "{what} {:.1} s ago (limit {} s)",
                age.as_secs_f64(),
                limit.as_secs()
            );
            if age <= limit {
                Verdict::pass(text)
            } else {
                Verdict::fail(text)
            }
        }
        Check::Readiness => {
            let p = primary(snap, now);
            if p.ok {
                return p;
            }
            let limit = lag_limit.unwrap_or(snap.cluster_config.maximum_lag_on_failover);
            let r = replica(snap, now, Some(limit), false);
            if r.ok || p.reason == r.reason {
                return r;
            }
            Verdict::fail(format!(
                "not primary ({}) and not a ready replica ({})",
                p.reason, r.reason
            ))
        }
    }
}

fn primary(snap: &AgentSnapshot, now: Instant) -> Verdict {
    if let Some(why) = staleness(snap, now) {
        return Verdict::fail(why);
    }
    if !snap.pg_running {
        return Verdict::fail("PostgreSQL is not running");
    }
    match snap.in_recovery {
        Some(false) => {}
        Some(true) => return Verdict::fail("PostgreSQL is in recovery (a replica)"),
        None => return Verdict::fail("whether PostgreSQL is in recovery is unknown"),
    }
    if !snap.holds_leader_key {
        return Verdict::fail("this member does not hold the leader key");
    }
    if let Some(to) = &snap.handing_over {
        return Verdict::fail(format!(
            "switchover: handing over to {to} (checkpoint, clean shutdown)"
        ));
    }
    match snap.lease_seconds_left(now) {
        Some(left) if left > 0.0 => Verdict::pass(format!(
            "primary: holds the leader lease ({left:.1} s left), PostgreSQL is running and not in recovery"
        )),
        _ => Verdict::fail(format!(
            "the leader lease has expired (ttl {} s since its last known renewal)",
            snap.cluster_config.ttl
        )),
    }
}

fn replica(
    snap: &AgentSnapshot,
    now: Instant,
    lag_limit: Option<u64>,
    honour_noloadbalance: bool,
) -> Verdict {
    if let Some(why) = staleness(snap, now) {
        return Verdict::fail(why);
    }
    if !snap.pg_running {
        return Verdict::fail("PostgreSQL is not running");
    }
    match snap.in_recovery {
        Some(true) => {}
        Some(false) => return Verdict::fail("PostgreSQL is not in recovery (not a replica)"),
        None => return Verdict::fail("whether PostgreSQL is in recovery is unknown"),
    }
    if !snap.streaming {
        return Verdict::fail("the replica is not streaming (no WAL receiver)");
    }
    let member = snap.member.as_ref();
    if honour_noloadbalance && member.is_some_and(|m| m.tags.noloadbalance) {
        return Verdict::fail("the member is tagged noloadbalance");
    }
    let lag = member.and_then(|m| m.lag_bytes);
    match (lag_limit, lag) {
        (Some(limit), None) => Verdict::fail(format!(
            "the replica's lag is unknown, so it cannot be shown to be within lag={limit} bytes"
        )),
        (Some(limit), Some(l)) if l > limit => Verdict::fail(format!(
            "the replica is {l} bytes behind, more than lag={limit} bytes"
        )),
        (_, Some(l)) => Verdict::pass(format!("streaming replica, {l} bytes behind")),
        (None, None) => Verdict::pass("streaming replica"),
    }
}

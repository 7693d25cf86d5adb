//! Early fencing of an isolated primary: one that reaches neither the store nor any
//! replica stops accepting writes after `retry_timeout`, well before its fence deadline
//! (issue 11 item 5). In async mode every write it acknowledges after the cut is lost
//! at the failover, so the sooner it stops, the fewer.
//!
//! "Reaches no replica" is judged on this host's own clock, never a peer's: a standby
//! sends a status reply at least every `wal_receiver_status_interval` (pgbaton sets 1 s),
//! so a walsender whose `reply_time` has not changed for [`REPLY_WINDOW`] no longer hears
//! from its standby, whatever the clocks of the two hosts say.

use std::time::Duration;

/// How long every walsender must stay silent (no new status reply) before the replicas
/// count as unreachable: two status intervals of 1 s, at least.
pub const REPLY_WINDOW: Duration = Duration::from_secs(2);

/// What the agent's isolation guard knows, on one monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IsolationInput {
    /// Now.
    pub now: Duration,
    /// When the last store call that succeeded was sent (a lease renewal, or a read
    /// that showed this member leading).
    pub store_ok_at: Option<Duration>,
    /// When a store call failed (no answer, or unreachable), if one has since then.
    pub store_failed_at: Option<Duration>,
    /// The store's call timeout.
    pub retry_timeout: Duration,
    /// When the guard began sampling `pg_stat_replication` (this store outage).
    pub watching_since: Option<Duration>,
    /// When a walsender last showed a new status reply (or a new walsender appeared).
    pub replica_heard_at: Option<Duration>,
    /// The last cluster view had another member, one that could take over. A member
    /// alone has no one to hand over to: it waits for its fence deadline.
    pub others: bool,
}

/// Whether the primary is isolated and must stop accepting writes now.
///
/// All of: another member exists; a store call failed since the last success; the
/// last success is at least `retry_timeout` old; replication has been watched for
/// [`REPLY_WINDOW`]; and no walsender heard from its standby within that window.
pub fn isolated(i: &IsolationInput) -> bool {
    let Some(ok) = i.store_ok_at else {
        return false;
    };
    let store_down =
        i.store_failed_at.is_some_and(|f| f >= ok) && i.now.saturating_sub(ok) >= i.retry_timeout;
    let watched = i
        .watching_since
        .is_some_and(|w| i.now.saturating_sub(w) >= REPLY_WINDOW);
    let replicas_silent = i
        .replica_heard_at
        .is_none_or(|h| i.now.saturating_sub(h) >= REPLY_WINDOW);
    i.others && store_down && watched && replicas_silent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn isolation_table() {
        // A primary that confirmed at 100 s, store call failed at 102 s, retry_timeout 2.
        let base = IsolationInput {
            now: s(105),
            store_ok_at: Some(s(100)),
            store_failed_at: Some(s(102)),
            retry_timeout: s(2),
            watching_since: Some(s(102)),
            replica_heard_at: None,
            others: true,
        };
        let cases: Vec<(&str, IsolationInput, bool)> = vec![
            ("store and replicas gone: stop", base, true),
            (
                "store blip, a replica still replies: keep writing",
                IsolationInput {
                    replica_heard_at: Some(s(104)),
                    ..base
                },
                false,
            ),
            (
                "replica heard long ago, store down: stop",
                IsolationInput {
                    replica_heard_at: Some(s(102)),
                    ..base
                },
                true,
            ),
            (
                "alone in the cluster: wait for the fence deadline",
                IsolationInput {
                    others: false,
                    ..base
                },
                false,
            ),
            (
                "replicas down but the store answers (no failure since the success)",
                IsolationInput {
                    store_failed_at: Some(s(99)),
                    ..base
                },
                false,
            ),
            (
                "no failure at all (a slow loop): keep writing",
                IsolationInput {
                    store_failed_at: None,
                    ..base
                },
                false,
            ),
            (
                "store failed, but the last success is younger than retry_timeout",
                IsolationInput {
                    now: s(101),
                    watching_since: Some(s(98)),
                    ..base
                },
                false,
            ),
            (
                "not watched for a whole reply window yet",
                IsolationInput {
                    watching_since: Some(s(104)),
                    ..base
                },
                false,
            ),
            (
                "never watched",
                IsolationInput {
                    watching_since: None,
                    ..base
                },
                false,
            ),
            (
                "never talked to the store",
                IsolationInput {
                    store_ok_at: None,
                    ..base
                },
                false,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(isolated(&input), want, "{name}: {input:?}");
        }
    }
}

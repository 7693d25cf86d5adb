//! The isolation guard: a leading member that reaches neither the store nor any replica
//! stops PostgreSQL (the fence's immediate shutdown) after `retry_timeout`, instead of
//! accepting writes until its fence deadline (issue 11 item 5; the rule is
//! [`pgbaton_core::isolation::isolated`]).
//!
//! It runs apart from the main loop, whose cycles fail at the store read while the store
//! is down. It costs nothing while the store answers: the main loop's own reads of
//! `pg_stat_replication` (every cycle, on a primary) feed the [`ReplyTracker`]; the
//! guard sleeps until the last store success is `retry_timeout` old, and only then
//! samples `pg_stat_replication` itself every [`SAMPLE_EVERY`] (one connection, closed
//! when the store answers again).

use crate::effects::{Clock, Pg, PgSql, Spawner};
use crate::fence::FenceFeed;
use pgbaton_core::isolation::{isolated, IsolationInput};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often `pg_stat_replication` is sampled while the store does not answer.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How long one sample (connect and query) may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the walsenders still hear from their standbys, from successive samples of
/// (walsender pid, `reply_time`) taken by the main loop and the guard.
#[derive(Debug, Default)]
pub struct ReplyTracker {
    /// Walsender pid → its last `reply_time`; `None` before the first sample.
    last: Option<BTreeMap<i32, Option<i64>>>,
    /// When the first sample was taken.
    pub since: Option<Duration>,
    /// When a sample last showed a new reply or a new walsender.
    pub heard_at: Option<Duration>,
}

impl ReplyTracker {
    /// Record a sample taken at `now`: the streaming walsenders' (pid, reply_time).
    pub fn sample(&mut self, now: Duration, rows: &[(i32, Option<i64>)]) {
        let rows: BTreeMap<i32, Option<i64>> = rows.iter().copied().collect();
        if let Some(last) = &self.last {
            let news = rows
                .iter()
                .any(|(pid, reply)| last.get(pid).is_none_or(|r| r != reply));
            if news {
                self.heard_at = Some(now);
            }
        } else {
            self.since = Some(now);
        }
        self.last = Some(rows);
    }
}

/// The tracker shared by the main loop and the guard.
pub type Replies = Arc<Mutex<ReplyTracker>>;

/// The streaming walsenders' (pid, reply_time) in `peers`.
pub fn replies(peers: &[pgbaton_postgres::ReplicationPeer]) -> Vec<(i32, Option<i64>)> {
    peers
        .iter()
        .filter(|p| matches!(p.state.as_deref(), Some("streaming" | "catchup")))
        .map(|p| (p.pid, p.reply_time_us))
        .collect()
}

/// Start the guard for the PostgreSQL of `pg`. `others` is kept up to date by the main
/// loop: whether its last view had another member. Abort the returned task to stop it.
pub fn spawn(
    feed: Arc<FenceFeed>,
    pg: Arc<dyn Pg>,
    clock: Arc<dyn Clock>,
    retry_timeout: Duration,
    others: Arc<AtomicBool>,
    tracker: Replies,
    spawner: &dyn Spawner,
) -> tokio::task::JoinHandle<()> {
    spawner.spawn(Box::pin(async move {
        let mut changes = feed.subscribe();
        let mut sql: Option<Box<dyn PgSql>> = None;
        let mut acted_for: Option<Duration> = None;
        loop {
            let state = feed.state();
            let armed = state.arm_at(feed.margin()).is_some();
            let now = clock.boot();
            let wait = match state.store_ok() {
                Some(ok) if armed => (ok + retry_timeout).saturating_sub(now),
                _ => Duration::from_secs(3600),
            };
            if !armed || !wait.is_zero() {
                // The store answers (or this member does not lead): nothing to watch.
                sql = None;
                tokio::select! {
                    biased;
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let sampled = sample(pg.as_ref(), &mut sql).await;
            let (since, heard_at) = {
                let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(rows) = sampled {
                    t.sample(clock.boot(), &rows);
                }
                (t.since, t.heard_at)
            };
            let input = IsolationInput {
                now: clock.boot(),
                store_ok_at: state.store_ok(),
                store_failed_at: state.store_failed,
                retry_timeout,
                watching_since: since,
                replica_heard_at: heard_at,
                others: others.load(Ordering::Relaxed),
            };
            // Once per outage (keyed by the last store success): the main loop cannot
            // start PostgreSQL again before the store answers, which ends the outage.
            if isolated(&input) && acted_for != state.store_ok() {
                acted_for = state.store_ok();
                if let Ok(Some(pid)) = pg.postmaster_pid() {
                    tracing::error!(
                        postmaster = pid,
                        "isolated: no answer from the store for {:?} and no standby has \
                         replied for {:?}; stopping PostgreSQL now (immediate shutdown) \
                         rather than accepting writes a failover would discard",
                        input
                            .now
                            .saturating_sub(input.store_ok_at.unwrap_or_default()),
                        pgbaton_core::isolation::REPLY_WINDOW,
                    );
                    if let Err(e) = pg.quit_postmaster(pid) {
                        tracing::error!("cannot stop the isolated PostgreSQL: {e}");
                    }
                    sql = None;
                }
            }
            tokio::select! {
                biased;
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    }))
}

/// The streaming walsenders' (pid, reply_time), or None when PostgreSQL does not answer.
async fn sample(pg: &dyn Pg, sql: &mut Option<Box<dyn PgSql>>) -> Option<Vec<(i32, Option<i64>)>> {
    if sql.as_ref().is_none_or(|c| c.is_closed()) {
        *sql = tokio::time::timeout(SAMPLE_TIMEOUT, pg.connect())
            .await
            .ok()
            .and_then(|r| r.ok());
    }
    let conn = sql.as_ref()?;
    let peers = match tokio::time::timeout(SAMPLE_TIMEOUT, conn.replication()).await {
        Ok(Ok(p)) => p,
        _ => {
            *sql = None;
            return None;
        }
    };
    Some(replies(&peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn a_new_reply_or_a_new_walsender_is_heard_the_first_sample_is_not() {
        let mut t = ReplyTracker::default();
        t.sample(ms(0), &[(10, Some(1)), (11, Some(5))]);
        assert_eq!((t.since, t.heard_at), (Some(ms(0)), None));
        t.sample(ms(250), &[(10, Some(1)), (11, Some(5))]);
        assert_eq!(t.heard_at, None, "nothing changed");
        t.sample(ms(500), &[(10, Some(2)), (11, Some(5))]);
        assert_eq!(t.heard_at, Some(ms(500)), "a new reply");
        t.sample(ms(750), &[(10, Some(2))]);
        assert_eq!(t.heard_at, Some(ms(500)), "a walsender gone is no news");
        t.sample(ms(1000), &[(10, Some(2)), (12, None)]);
        assert_eq!(t.heard_at, Some(ms(1000)), "a new walsender");
    }
}

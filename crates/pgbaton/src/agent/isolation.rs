//! The isolation guard: a leading member that reaches neither the store nor any replica
//! stops PostgreSQL (the fence's immediate shutdown) after `retry_timeout`, instead of
//! accepting writes until its fence deadline (issue 11 item 5; the rule is
//! [`pgbaton_core::isolation::isolated`]).
//!
//! It runs apart from the main loop, whose cycles fail at the store read while the store
//! is down. While this member leads, the main loop's own reads of `pg_stat_replication`
//! (every cycle) feed the [`ReplyTracker`], and the guard adds a read when the last one
//! is older than [`armed_period`] (never while the cycles run on time); once the last
//! store success is `retry_timeout` old, it reads every [`SAMPLE_EVERY`] and decides.
//! Nothing runs on a member that does not lead.

use crate::effects::{Clock, Pg, PgSql, Spawner};
use crate::fence::FenceFeed;
use pgbaton_core::isolation::{isolated, IsolationInput};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often `pg_stat_replication` is sampled while the store does not answer.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How fresh the last sample is kept while leading, at least (the main loop's own reads
/// count): when the store stops answering, the guard must already know when the
/// standbys last replied, or it would wait a whole
/// [`pgbaton_core::isolation::REPLY_WINDOW`] more.
const SAMPLE_ARMED: Duration = Duration::from_secs(1);

/// How old the last sample may get while leading: [`SAMPLE_ARMED`], or half of
/// `loop_wait` when that is longer (an idle primary at `loop_wait` 10 would otherwise
/// pay a SQL round trip every second, half its idle CPU; its baseline is then up to 5 s
/// old when an outage starts, which delays the guard by as much, still far ahead of a
/// fence deadline of ttl − safety_margin), plus a quarter second so that the guard does
/// not race the main loop's own read of each cycle.
pub fn armed_period(loop_wait: Duration) -> Duration {
    SAMPLE_ARMED.max(loop_wait / 2) + Duration::from_millis(250)
}

/// The timing the guard runs with (fixed at the agent's start).
#[derive(Debug, Clone, Copy)]
pub struct GuardTiming {
    /// The cluster's `retry_timeout`: how long the store may fail before the guard acts.
    pub retry_timeout: Duration,
    /// The cluster's `loop_wait`: how often the main loop samples (see [`armed_period`]).
    pub loop_wait: Duration,
    /// The lease ttl: the keeper renews every ttl/4.
    pub ttl: Duration,
}

impl GuardTiming {
    /// The longest a healthy agent goes without a store success: its cycle reads the
    /// store every `loop_wait`, its keeper renews every ttl/4.
    fn quiet(&self) -> Duration {
        self.loop_wait.min(self.ttl / 4)
    }
}

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
    /// When the last sample was taken.
    pub last_at: Option<Duration>,
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
        self.last_at = Some(now);
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
    timing: GuardTiming,
    others: Arc<AtomicBool>,
    tracker: Replies,
    spawner: &dyn Spawner,
) -> tokio::task::JoinHandle<()> {
    let retry_timeout = timing.retry_timeout;
    let quiet = timing.quiet();
    let armed_every = armed_period(timing.loop_wait);
    spawner.spawn(Box::pin(async move {
        let mut changes = feed.subscribe();
        let mut sql: Option<Box<dyn PgSql>> = None;
        let mut acted_for: Option<Duration> = None;
        let mut tried_at: Option<Duration> = None;
        loop {
            let state = feed.state();
            let armed = state.arm_at(feed.margin()).is_some();
            let now = clock.boot();
            let Some(ok) = state.store_ok().filter(|_| armed) else {
                // Not leading: nothing to watch.
                sql = None;
                if until_change(&mut changes, Duration::from_secs(3600))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            };
            let outage_at = ok + retry_timeout;
            // A store call failed since the last success, or none succeeded for longer
            // than a healthy agent ever waits: a store merely not called for
            // retry_timeout (loop_wait 10: renewals every ttl/4) is no outage, and
            // sampling every 250 ms then would be most of an idle primary's CPU.
            let failed = state.store_failed.is_some_and(|f| f >= ok);
            let suspect_at = if failed { outage_at } else { outage_at + quiet };
            let in_outage = now >= suspect_at;
            let period = if in_outage { SAMPLE_EVERY } else { armed_every };
            let last = tracker.lock().unwrap_or_else(|e| e.into_inner()).last_at;
            let due = last.max(tried_at).map_or(now, |l| l + period);
            if now < due {
                let wake = if in_outage { due } else { due.min(suspect_at) };
                if until_change(&mut changes, wake - now).await.is_err() {
                    return;
                }
                continue;
            }
            tried_at = Some(now);
            let sampled = sample(pg.as_ref(), &mut sql).await;
            let (since, heard_at) = {
                let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(rows) = sampled {
                    t.sample(clock.boot(), &rows);
                }
                (t.since, t.heard_at)
            };
            if !in_outage {
                continue;
            }
            let input = IsolationInput {
                now: clock.boot(),
                store_ok_at: Some(ok),
                store_failed_at: state.store_failed,
                retry_timeout,
                watching_since: since,
                replica_heard_at: heard_at,
                others: others.load(Ordering::Relaxed),
            };
            // Once per outage (keyed by the last store success): the main loop cannot
            // start PostgreSQL again before the store answers, which ends the outage.
            if isolated(&input) && acted_for != Some(ok) {
                acted_for = Some(ok);
                if let Ok(Some(pid)) = pg.postmaster_pid() {
                    tracing::error!(
                        postmaster = pid,
                        "isolated: no answer from the store for {:?} and no standby has \
                         replied for {:?}; stopping PostgreSQL now (immediate shutdown) \
                         rather than accepting writes a failover would discard",
                        input.now.saturating_sub(ok),
                        pgbaton_core::isolation::REPLY_WINDOW,
                    );
                    if let Err(e) = pg.quit_postmaster(pid) {
                        tracing::error!("cannot stop the isolated PostgreSQL: {e}");
                    }
                    sql = None;
                }
            }
        }
    }))
}

/// Sleep for `wait` or until what the fence was told changes; Err once the feed is gone.
async fn until_change(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    wait: Duration,
) -> Result<(), ()> {
    tokio::select! {
        biased;
        changed = changes.changed() => changed.map_err(|_| ()),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
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

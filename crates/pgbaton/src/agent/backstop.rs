//! The agent's own fence backstop: it stops PostgreSQL at the lease deadline when the
//! fence process could not (safety review finding 3).
//!
//! The fence process is the primary defence: a hung or frozen agent cannot hold it up.
//! But it can die (OOM, kill -9) or be frozen itself, and the agent starts a new one
//! only at the top of a cycle, which a store outage can delay past the deadline. So
//! this task, independent of the main loop, sleeps until the armed deadline and, if the
//! postmaster still runs a moment after it, sends it the same immediate shutdown the
//! fence would have. It never polls while nothing is armed: it wakes on every change
//! of what the fence was told.

use crate::effects::{Clock, Pg, Spawner};
use crate::fence::FenceFeed;
use std::sync::Arc;
use std::time::Duration;

/// How long after the deadline the backstop acts when the fence process looks alive
/// (it should have acted at the deadline; a frozen fence has not).
const GRACE_IF_FENCE_ALIVE: Duration = Duration::from_millis(250);

/// While the deadline stays passed, how often the postmaster is looked for again.
const RECHECK: Duration = Duration::from_secs(1);

/// Start the backstop for the PostgreSQL of `pg`, with `spawner`; abort the returned
/// task to stop it.
pub fn spawn(
    feed: Arc<FenceFeed>,
    pg: Arc<dyn Pg>,
    clock: Arc<dyn Clock>,
    spawner: &dyn Spawner,
) -> tokio::task::JoinHandle<()> {
    spawner.spawn(Box::pin(async move {
        let mut changes = feed.subscribe();
        loop {
            let grace = if feed.is_alive() {
                GRACE_IF_FENCE_ALIVE.min(feed.margin() / 2)
            } else {
                Duration::ZERO
            };
            let wait = match feed.deadline() {
                Some(deadline) => (deadline + grace).saturating_sub(clock.boot()),
                None => Duration::from_secs(3600),
            };
            if !wait.is_zero() {
                tokio::select! {
                    biased;
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
            // The deadline (plus grace) has passed and nothing re-armed the fence.
            if let Ok(Some(pid)) = pg.postmaster_pid() {
                let fence = if feed.is_alive() {
                    "has not stopped it"
                } else {
                    "is not running"
                };
                tracing::error!(
                    postmaster = pid,
                    "lease deadline passed and the fence process {fence}: the agent stops \
                     PostgreSQL itself (immediate shutdown)"
                );
                if let Err(e) = pg.quit_postmaster(pid) {
                    tracing::error!("cannot stop PostgreSQL at the lease deadline: {e}");
                }
            }
            tokio::select! {
                biased;
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }))
}

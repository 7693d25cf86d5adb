//! When a former primary may take the leader key back by itself, with no election.
//!
//! With no leader key, the member that was the last primary may restart as primary
//! at once (a whole-cluster restart, a primary whose agent was down for a while). It is
//! the most dangerous shortcut in the policy: a member on an older history that takes
//! the cluster back makes every commit acknowledged on the newer one disappear when the
//! others rewind (safety review finding 1). So every piece of evidence in the store
//! must agree that no other member has been promoted since:
//! - the `status` key names this member (or, before any status, it won the bootstrap);
//! - no promotion in `history` is newer than this member's timeline, or another
//!   member's promotion to that very timeline;
//! - this member's own timeline is not older than the newest promotion's, nor than the
//!   timeline the `status` key reports;
//! - in synchronous mode, the `sync` key names this member as its leader (a winner
//!   rewrites it before promoting).

use crate::model::SynchronousMode;
use crate::observation::{DataDir, Observation};

/// This member's timeline, from the running server or the stopped data directory.
pub fn my_timeline(obs: &Observation) -> Option<u32> {
    if obs.local.running {
        obs.local.timeline
    } else {
        obs.local.control.map(|c| c.timeline)
    }
}

/// Whether this member's data directory is the last primary's, by the `status` key (or,
/// before any primary published one, by the bootstrap claim).
pub fn was_last_primary(obs: &Observation) -> bool {
    let me = obs.me.as_str();
    match &obs.cluster.status {
        Some(s) => s.primary == me,
        None => obs
            .cluster
            .initialize
            .as_ref()
            .is_some_and(|(i, _)| i.owner == me),
    }
}

/// `Ok` when this former primary may take the leader key back without an election;
/// otherwise why not, for the plan's reason.
pub fn may_take_back(obs: &Observation) -> Result<(), String> {
    if obs.local.data != DataDir::Primary {
        return Err("its data directory is not a primary".into());
    }
    if !was_last_primary(obs) {
        let last = obs
            .cluster
            .status
            .as_ref()
            .map(|s| s.primary.as_str())
            .unwrap_or("another member");
        return Err(format!("the last primary was {last}"));
    }
    let Some(mine) = my_timeline(obs) else {
        return Err("the timeline of its data directory is unknown".into());
    };
    // A promotion newer than this data directory's timeline, or another member's
    // promotion to this very timeline, means the cluster moved on without it. A
    // history older than its timeline is fine: this member promoted and the history
    // append did not happen before it stopped.
    if let Some(newest) = obs.cluster.history.iter().max_by_key(|h| h.timeline) {
        if newest.timeline > mine || (newest.timeline == mine && newest.new_primary != obs.me) {
            return Err(format!(
                "{} was promoted to timeline {} and this member is on timeline {mine}",
                newest.new_primary, newest.timeline
            ));
        }
    }
    if let Some(s) = &obs.cluster.status {
        if s.timeline > mine {
            return Err(format!(
                "it is on timeline {mine} but the primary status reports timeline {}",
                s.timeline
            ));
        }
    }
    if obs.cluster.config.synchronous_mode != SynchronousMode::Off {
        if let Some((sync, _)) = &obs.cluster.sync {
            if sync.leader != obs.me {
                return Err(format!(
                    "the synchronous-standby set belongs to {}, so only it is known to hold \
                     every acknowledged commit",
                    sync.leader
                ));
            }
        }
    }
    Ok(())
}

//! When a former primary may take the leader key back by itself, with no election.
//!
//! With no leader key, the member that was the last primary may restart as primary
//! at once (a whole-cluster restart, a primary whose agent was down for a while). It is
//! the most dangerous shortcut in the policy: a member on an older history that takes
//! the cluster back makes every commit acknowledged on the newer one disappear when the
//! others rewind (safety review finding 1). So every piece of evidence in the store
//! must agree that no other member has been promoted since:
//! - the `status` key names this member, or reports an older timeline than this
//!   member's (or, before any status, this member won the bootstrap);
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

/// `Ok` when this former primary may take the leader key back without an election;
/// otherwise why not, for the plan's reason.
pub fn may_take_back(obs: &Observation) -> Result<(), String> {
    if obs.local.data != DataDir::Primary {
        return Err("its data directory is not a primary".into());
    }
    let Some(mine) = my_timeline(obs) else {
        return Err("the timeline of its data directory is unknown".into());
    };
    // The `status` key names the last primary. A member on a newer timeline than the
    // one `status` reports promoted after it was written (and died before publishing):
    // it is the newer primary, as long as the history and the sync key agree below.
    match &obs.cluster.status {
        Some(s) if s.primary == obs.me || s.timeline < mine => {}
        Some(s) => return Err(format!("the last primary was {}", s.primary)),
        None => {
            let owner = obs
                .cluster
                .initialize
                .as_ref()
                .map(|(i, _)| i.owner.as_str());
            if owner != Some(obs.me.as_str()) {
                return Err(format!(
                    "the cluster was created by {}",
                    owner.unwrap_or("another member")
                ));
            }
        }
    }
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

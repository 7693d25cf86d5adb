//! Timeline reservations: a promotion first takes its timeline number in the store,
//! then holds the numbers below it that this data directory does not know, so that
//! PostgreSQL cannot reuse a number another member may have used (simulator finding S6).

use super::Agent;
use anyhow::bail;
use pgbaton_core::model::{TimelineReservation, KEY_TIMELINE};
use pgbaton_core::Observation;
use pgbaton_store::Expect;

impl Agent {
    /// The newest timeline this data directory knows: `current` (the one PostgreSQL is
    /// on) or a newer history file in `pg_wal`.
    pub(super) fn newest_local_timeline(&self, current: u32) -> anyhow::Result<u32> {
        Ok(self.pg.newest_timeline_file()?.max(current))
    }

    /// Reserve a timeline number for this member's promotion, one past every number it
    /// has heard of (`on_disk`, from [`Agent::newest_local_timeline`], the store's
    /// history, members' reports and earlier reservations). The number is this member's
    /// for good: every later reservation is higher.
    ///
    /// A member promoted and then cut off from the store before it published anything
    /// still left its reservation behind: the next promotion skips its number.
    pub(super) async fn reserve_timeline(
        &self,
        obs: &Observation,
        on_disk: u32,
    ) -> anyhow::Result<u32> {
        let heard = obs
            .cluster
            .history
            .iter()
            .map(|h| h.timeline)
            .chain(obs.cluster.members.values().filter_map(|m| m.timeline))
            .chain(obs.cluster.status.as_ref().map(|s| s.timeline))
            .max()
            .unwrap_or(1);
        for _ in 0..20 {
            let (stored, expect) = match self.store.get(KEY_TIMELINE).await? {
                Some(e) => match serde_json::from_str::<TimelineReservation>(&e.value) {
                    Ok(r) => (r.timeline, Expect::ModRevision(e.mod_revision)),
                    Err(err) => {
                        tracing::warn!(
                            "store key \"{KEY_TIMELINE}\" is not a timeline reservation \
                             ({err}); replacing it (the history and member reports still \
                             bound the next number)"
                        );
                        (0, Expect::ModRevision(e.mod_revision))
                    }
                },
                None => (0, Expect::Absent),
            };
            let next = on_disk.max(heard).max(stored) + 1;
            let value = TimelineReservation {
                timeline: next,
                member: self.cfg.name.clone(),
                time_ms: self.clock.wall_ms(),
            };
            if !self
                .store
                .put(KEY_TIMELINE, &serde_json::to_string(&value)?, None, expect)
                .await?
            {
                continue;
            }
            return Ok(next);
        }
        bail!("could not reserve a timeline number: too many concurrent writers")
    }

    /// The timeline the promotion about to happen creates: the one reserved ahead
    /// (during a switchover, while the old primary shut down) if PostgreSQL can still
    /// pick it, else a new reservation; the numbers below it are held.
    pub(super) async fn timeline_for_promotion(
        &mut self,
        obs: &Observation,
        current: u32,
    ) -> anyhow::Result<u32> {
        let on_disk = self.newest_local_timeline(current)?;
        let next = match self.reserved_timeline.take() {
            Some(t) if t > on_disk => t,
            _ => self.reserve_timeline(obs, on_disk).await?,
        };
        for tli in current + 1..next {
            if self.pg.hold_timeline(tli)? {
                tracing::warn!(
                    "timeline {tli} is held: this member never saw it, but it was reserved \
                     (a promotion that may have happened elsewhere); the new timeline will \
                     be {next}"
                );
            }
        }
        Ok(next)
    }
}

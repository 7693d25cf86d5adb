//! Report freshness measured on this agent's own clock, never on other hosts' clocks.
//!
//! The election counts a member's report as final only if it was written after the
//! leader vanished. Members stamp their reports with their own wall clock, and comparing
//! that with this agent's clock breaks under skew (safety review finding 6): a member
//! with a fast clock whose report is stale would count as fresh, and hide commits only
//! it acknowledged since, in quorum mode. So before deciding, the agent replaces each
//! member's `updated_ms` with the time *this agent* first saw that revision of its key:
//! - a revision first seen in a snapshot taken while the leader was still there, or in
//!   the very snapshot where the leader was first missing, may predate the loss: it is
//!   stamped no later than one millisecond before the loss was seen;
//! - a revision first seen in a later snapshot was written after the loss (the store's
//!   revisions are totally ordered): it is stamped with when it was seen.
//!
//! Both times come from the same clock on the same host, so skew between hosts cannot
//! matter. (A local clock step still moves both together.)

use pgbaton_core::model::MemberStatus;
use std::collections::BTreeMap;

/// When this agent first saw each member key's current revision.
#[derive(Debug, Default)]
pub struct Freshness {
    /// Member name → (mod revision of its key, local ms when first seen).
    seen: BTreeMap<String, (i64, u64)>,
}

impl Freshness {
    /// Re-stamp `members` (by name, with `revisions` of their keys) as seen at `now_ms`.
    /// `leaderless_since_ms` is when this agent first saw no leader key (`None` while
    /// there is one).
    pub fn stamp(
        &mut self,
        members: &mut BTreeMap<String, MemberStatus>,
        revisions: &BTreeMap<String, i64>,
        now_ms: u64,
        leaderless_since_ms: Option<u64>,
    ) {
        // A revision first seen now is fresh only if the leader loss was seen in an
        // earlier snapshot than this one.
        let first_seen = match leaderless_since_ms {
            Some(since) if since < now_ms => now_ms,
            Some(since) => since.saturating_sub(1),
            None => now_ms,
        };
        self.seen.retain(|name, _| members.contains_key(name));
        for (name, m) in members.iter_mut() {
            let rev = revisions.get(name).copied().unwrap_or(0);
            let stamp = match self.seen.get(name) {
                Some((r, at)) if *r == rev => *at,
                _ => {
                    self.seen.insert(name.clone(), (rev, first_seen));
                    first_seen
                }
            };
            m.updated_ms = stamp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgbaton_core::model::{PgState, Role, Tags};

    fn member(name: &str, updated_ms: u64) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 5432,
            api_url: String::new(),
            role: Role::Replica,
            state: PgState::Streaming,
            timeline: Some(1),
            lsn: None,
            received_lsn: None,
            replayed_lsn: None,
            lag_bytes: None,
            pg_version: None,
            system_identifier: None,
            tags: Tags::default(),
            slots: vec![],
            note: None,
            updated_ms,
        }
    }

    fn one(m: MemberStatus) -> BTreeMap<String, MemberStatus> {
        [(m.name.clone(), m)].into_iter().collect()
    }

    fn rev(r: i64) -> BTreeMap<String, i64> {
        [("a".to_string(), r)].into_iter().collect()
    }

    #[test]
    fn a_fast_clock_does_not_make_a_stale_report_fresh() {
        let mut f = Freshness::default();
        // Seen at 1000 while the leader is there; the member's clock is 60 s ahead.
        let mut ms = one(member("a", 61_000));
        f.stamp(&mut ms, &rev(5), 1000, None);
        assert_eq!(ms["a"].updated_ms, 1000);
        // The leader is gone since 2000; the same revision (the member's agent hangs).
        let mut ms = one(member("a", 61_000));
        f.stamp(&mut ms, &rev(5), 2000, Some(2000));
        assert!(ms["a"].updated_ms < 2000, "stale report counted as fresh");
        let mut ms = one(member("a", 61_000));
        f.stamp(&mut ms, &rev(5), 9000, Some(2000));
        assert!(ms["a"].updated_ms < 2000);
    }

    #[test]
    fn a_slow_clock_does_not_make_a_fresh_report_stale() {
        let mut f = Freshness::default();
        let mut ms = one(member("a", 0));
        f.stamp(&mut ms, &rev(5), 1000, None);
        // Leader loss first seen at 2000, with a revision new in that very snapshot:
        // it may predate the loss.
        let mut ms = one(member("a", 0));
        f.stamp(&mut ms, &rev(6), 2000, Some(2000));
        assert!(ms["a"].updated_ms < 2000);
        // A newer revision seen later was written after the loss, whatever its clock.
        let mut ms = one(member("a", 0));
        f.stamp(&mut ms, &rev(7), 2500, Some(2000));
        assert_eq!(ms["a"].updated_ms, 2500);
    }
}

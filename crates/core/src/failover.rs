//! Who may become primary when the leader key is gone, and in which order.
//!
//! Every member computes the same ranking from the same member keys, so exactly one
//! member (the first) tries to take the leader key at once; the next may try only after
//! a grace period per rank. A member is eligible when it:
//! - runs as a replica that streams or recently streamed (it reports a WAL position);
//! - is not tagged `nofailover`;
//! - is within `maximum_lag_on_failover` of the last LSN the primary published (not
//!   applied in synchronous mode, where the sync key says who holds every commit);
//! - is on the cluster's newest timeline ([`exclude_older_timelines`]);
//! - published its status after the leader vanished (so its position is final), unless
//!   the grace for silent members has passed.
//!
//! The winner has the highest received-or-replayed LSN, then the highest
//! `failover_priority`, then the smallest name.

use crate::model::{HistoryEntry, MemberStatus, PgState, PrimaryStatus, Role};
use crate::Lsn;
use std::collections::BTreeMap;

/// One eligible member, ranked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Member name.
    pub name: String,
    /// Its best known WAL position.
    pub lsn: Lsn,
    /// Its failover priority.
    pub priority: i32,
}

/// The outcome of an election: the ranking, and why each other member is out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Election {
    /// Eligible members, best first.
    pub ranking: Vec<Candidate>,
    /// Members still expected to report (their status predates the leader loss).
    pub pending: Vec<String>,
    /// `name: why not`, for every ineligible member.
    pub excluded: Vec<String>,
}

impl Election {
    /// One line explaining why nobody can be promoted.
    ///
    /// While members are still expected to report, the answer is "not yet", never "no":
    /// an operator reads this line first in an incident.
    pub fn no_winner_reason(&self) -> String {
        let excluded = self.excluded.join("; ");
        match (self.pending.is_empty(), self.excluded.is_empty()) {
            (false, true) => format!(
                "no failover yet: waiting for reports from {} (their last status predates the loss of the primary)",
                self.pending.join(", ")
            ),
            (false, false) => format!(
                "no failover yet: waiting for reports from {} (their last status predates the loss of the primary); {excluded}",
                self.pending.join(", ")
            ),
            (true, true) => "no failover: no replica is running".to_string(),
            (true, false) => format!("no failover: {excluded}"),
        }
    }
}

/// The best known WAL position of a member.
pub fn position(m: &MemberStatus) -> Option<Lsn> {
    match (m.received_lsn, m.replayed_lsn, m.lsn) {
        (None, None, l) => l,
        (a, b, _) => a.max(b),
    }
}

/// Rank the members for a failover.
///
/// - `members`: the live member keys;
/// - `status`: the primary's last report (for the lag limit);
/// - `max_lag`: `maximum_lag_on_failover` in bytes;
/// - `fresh_after_ms`: members must have reported after this time, unless
///   `ignore_silent` (the grace for silent members has passed).
pub fn elect(
    members: &BTreeMap<String, MemberStatus>,
    status: Option<&PrimaryStatus>,
    max_lag: u64,
    fresh_after_ms: u64,
    ignore_silent: bool,
) -> Election {
    let mut e = Election::default();
    for m in members.values() {
        let name = &m.name;
        if m.tags.nofailover {
            e.excluded.push(format!("{name} nofailover"));
            continue;
        }
        if m.role != Role::Replica || !matches!(m.state, PgState::Streaming | PgState::InRecovery) {
            e.excluded.push(format!("{name} is {}", m.state.as_str()));
            continue;
        }
        let Some(lsn) = position(m) else {
            e.excluded.push(format!("{name} reports no WAL position"));
            continue;
        };
        if let Some(s) = status {
            let lag = s.lsn.bytes_after(lsn);
            if lag > max_lag {
                e.excluded.push(format!(
                    "{name} lags {} > {} limit",
                    human(lag),
                    human(max_lag)
                ));
                continue;
            }
        }
        if m.updated_ms < fresh_after_ms {
            if ignore_silent {
                e.excluded.push(format!("{name} stopped reporting"));
            } else {
                e.pending.push(name.clone());
            }
            continue;
        }
        e.ranking.push(Candidate {
            name: name.clone(),
            lsn,
            priority: m.tags.failover_priority,
        });
    }
    e.ranking.sort_by(|a, b| {
        b.lsn
            .cmp(&a.lsn)
            .then(b.priority.cmp(&a.priority))
            .then(a.name.cmp(&b.name))
    });
    e
}

/// The newest timeline the cluster is known to have reached: the primary's last report
/// or the newest promotion in the history, whichever is higher.
pub fn newest_timeline(status: Option<&PrimaryStatus>, history: &[HistoryEntry]) -> u32 {
    let reported = status.map(|s| s.timeline).unwrap_or(0);
    let promoted = history.iter().map(|h| h.timeline).max().unwrap_or(0);
    reported.max(promoted)
}

/// Drop from the ranking every candidate on a timeline older than `newest` (safety
/// review finding 8). Such a member missed a promotion: whatever its LSN, its WAL is
/// another history, so promoting it would throw away the newer timeline's commits and
/// would start a second, different timeline with a number already in use.
pub fn exclude_older_timelines(
    e: &mut Election,
    members: &BTreeMap<String, MemberStatus>,
    newest: u32,
) {
    let mut kept = Vec::with_capacity(e.ranking.len());
    for c in e.ranking.drain(..) {
        let tl = members.get(&c.name).and_then(|m| m.timeline).unwrap_or(0);
        if tl >= newest {
            kept.push(c);
        } else {
            e.excluded.push(format!(
                "{} is on timeline {tl}, behind the cluster's timeline {newest}",
                c.name
            ));
        }
    }
    e.ranking = kept;
}

/// Bytes for people: `40 MB`, `512 kB`, `100 B`.
pub fn human(b: u64) -> String {
    if b >= 1024 * 1024 {
        format!("{} MB", b / (1024 * 1024))
    } else if b >= 1024 {
        format!("{} kB", b / 1024)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tags;

    pub(crate) fn replica(name: &str, lsn: u64, updated: u64) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 5432,
            api_url: String::new(),
            role: Role::Replica,
            state: PgState::Streaming,
            timeline: Some(1),
            lsn: Some(Lsn(lsn)),
            received_lsn: Some(Lsn(lsn)),
            replayed_lsn: Some(Lsn(lsn)),
            lag_bytes: Some(0),
            pg_version: Some(150000),
            system_identifier: Some("1".into()),
            tags: Tags::default(),
            slots: vec![],
            note: None,
            updated_ms: updated,
        }
    }

    fn map(ms: Vec<MemberStatus>) -> BTreeMap<String, MemberStatus> {
        ms.into_iter().map(|m| (m.name.clone(), m)).collect()
    }

    #[test]
    fn most_advanced_then_priority_then_name() {
        let mut b = replica("b", 100, 10);
        b.tags.failover_priority = 5;
        let ms = map(vec![replica("a", 100, 10), b, replica("c", 200, 10)]);
        let e = elect(&ms, None, u64::MAX, 0, false);
        let names: Vec<&str> = e.ranking.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["c", "b", "a"]);
    }

    #[test]
    fn excluded_members_say_why() {
        let mut n = replica("n", 100, 10);
        n.tags.nofailover = true;
        let far = replica("far", 0, 10);
        let mut stopped = replica("s", 100, 10);
        stopped.state = PgState::Stopped;
        let ms = map(vec![n, far, stopped]);
        let status = PrimaryStatus {
            primary: "p".into(),
            lsn: Lsn(50 * 1024 * 1024),
            timeline: 1,
            updated_ms: 0,
            registry: BTreeMap::new(),
            hosts: BTreeMap::new(),
        };
        let e = elect(&ms, Some(&status), 1024 * 1024, 0, false);
        assert!(e.ranking.is_empty());
        let why = e.no_winner_reason();
        assert!(why.contains("n nofailover"), "{why}");
        assert!(why.contains("far lags 50 MB > 1 MB limit"), "{why}");
        assert!(why.contains("s is stopped"), "{why}");
    }

    #[test]
    fn no_winner_reason_says_waiting_while_members_have_not_reported() {
        let mut stopped = replica("s", 100, 20);
        stopped.state = PgState::Stopped;
        // (pending members, excluded member) → the line an operator reads.
        let cases: Vec<(Vec<MemberStatus>, &str)> = vec![
            (
                vec![replica("a", 100, 5), replica("b", 100, 5)],
                "no failover yet: waiting for reports from a, b (their last status predates the loss of the primary)",
            ),
            (
                vec![replica("a", 100, 5), stopped.clone()],
                "no failover yet: waiting for reports from a (their last status predates the loss of the primary); s is stopped",
            ),
            (vec![stopped], "no failover: s is stopped"),
            (vec![], "no failover: no replica is running"),
        ];
        for (members, want) in cases {
            let e = elect(&map(members), None, u64::MAX, 10, false);
            assert!(e.ranking.is_empty());
            assert_eq!(e.no_winner_reason(), want);
        }
    }

    #[test]
    fn stale_reports_wait_until_the_grace_passes() {
        let ms = map(vec![replica("a", 100, 5), replica("b", 50, 20)]);
        let e = elect(&ms, None, u64::MAX, 10, false);
        assert_eq!(e.pending, vec!["a"]);
        let e = elect(&ms, None, u64::MAX, 10, true);
        assert_eq!(e.ranking.len(), 1);
        assert_eq!(e.ranking[0].name, "b");
    }
}

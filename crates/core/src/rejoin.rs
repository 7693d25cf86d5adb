//! Whether a member may follow a new primary as it is, or must be rewound first.
//!
//! Timelines only fork at promotions, and every promotion is in the history with the
//! position where the old timeline ended (the switch point). A member on the parent
//! timeline may follow when its WAL ends at or before that switch point; past it, its
//! history has diverged and it must be rewound (or re-cloned). That holds for a crashed
//! or fenced old primary too: when its last valid record starts before the switch
//! point, the new primary has everything it wrote, and it follows with no pg_rewind. When the needed history
//! entry is missing, the answer is "rewind": pg_rewind itself finds out cheaply that
//! nothing needs doing, while following blindly could mix histories.

use crate::model::HistoryEntry;
use crate::Lsn;

/// How far a member's WAL goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalEnd {
    /// Exactly known and final enough to compare: a running replica's received
    /// position.
    Known(Lsn),
    /// A stopped server whose last valid WAL record starts here: the shutdown
    /// checkpoint of a clean stop, or, after a crash or a fence, the last record that
    /// crash recovery would replay (found by reading the WAL, never by starting it).
    LastRecordAt(Lsn),
    /// Unknown (e.g. after a crash whose WAL could not be read to its end): assume the
    /// worst.
    Unknown,
}

/// Whether the member must be rewound before following.
pub fn must_rewind(
    my_timeline: u32,
    end: WalEnd,
    leader_timeline: u32,
    history: &[HistoryEntry],
) -> bool {
    if my_timeline == leader_timeline {
        return false;
    }
    if my_timeline > leader_timeline {
        return true;
    }
    let Some(fork) = history.iter().find(|h| h.timeline == my_timeline + 1) else {
        return true;
    };
    let Some(switch) = fork.switch_lsn else {
        return true;
    };
    match end {
        WalEnd::Known(lsn) => lsn > switch,
        // The last record starts at `at` and ends after it. Up to the switch point the
        // new primary's WAL is byte for byte this member's (it streamed it), so records
        // start at the same places there: a record starting before the switch point is
        // one the new primary replayed whole, and nothing of this member's comes after
        // it. A record starting at or past the switch point is one it never had.
        WalEnd::LastRecordAt(at) => at >= switch,
        WalEnd::Unknown => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(tl: u32, at: u64) -> HistoryEntry {
        HistoryEntry {
            timeline: tl,
            switch_lsn: Some(Lsn(at)),
            reason: "test".into(),
            time_ms: 0,
            old_primary: None,
            new_primary: "x".into(),
        }
    }

    #[test]
    fn same_timeline_follows() {
        assert!(!must_rewind(2, WalEnd::Unknown, 2, &[]));
    }

    #[test]
    fn clean_old_primary_follows_when_the_candidate_had_its_checkpoint() {
        let h = [fork(2, 1000)];
        assert!(!must_rewind(1, WalEnd::LastRecordAt(Lsn(900)), 2, &h));
        assert!(must_rewind(1, WalEnd::LastRecordAt(Lsn(1000)), 2, &h));
        assert!(must_rewind(1, WalEnd::LastRecordAt(Lsn(1200)), 2, &h));
    }

    #[test]
    fn replica_ahead_of_the_switch_point_diverged() {
        let h = [fork(2, 1000)];
        assert!(!must_rewind(1, WalEnd::Known(Lsn(1000)), 2, &h));
        assert!(must_rewind(1, WalEnd::Known(Lsn(1001)), 2, &h));
    }

    #[test]
    fn unknown_history_or_end_means_rewind() {
        assert!(must_rewind(1, WalEnd::Known(Lsn(1)), 2, &[]));
        assert!(must_rewind(1, WalEnd::Unknown, 2, &[fork(2, 1000)]));
        assert!(must_rewind(3, WalEnd::Known(Lsn(1)), 2, &[]));
    }
}

//! Pure analysis of a writer log: gaps between commits, first write after a fault, and
//! acknowledged rows missing from the final table.

use crate::writer::{Attempt, Outcome};
use std::collections::HashSet;
use std::time::Duration;

/// The acks in the log, in ack order: (ack time, server port, id).
pub fn acks(log: &[Attempt]) -> Vec<(Duration, u16, i64)> {
    let mut v: Vec<_> = log
        .iter()
        .filter_map(|a| match a.outcome {
            Outcome::Acked { at, port, .. } => Some((at, port, a.id)),
            Outcome::Failed { .. } => None,
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// The first ack of an attempt sent at or after `after`: (ack time, port). With
/// `fresh_session`, only acks on sessions opened at or after `after` count.
pub fn first_ack_after(
    log: &[Attempt],
    after: Duration,
    fresh_session: bool,
) -> Option<(Duration, u16)> {
    log.iter()
        .filter(|a| a.sent >= after)
        .find_map(|a| match a.outcome {
            Outcome::Acked { at, port, session } if !fresh_session || session >= after => {
                Some((at, port))
            }
            _ => None,
        })
}

/// The last ack at or before `t`.
pub fn last_ack_before(log: &[Attempt], t: Duration) -> Option<Duration> {
    log.iter().rev().find_map(|a| match a.outcome {
        Outcome::Acked { at, .. } if at <= t => Some(at),
        _ => None,
    })
}

/// The longest time between two consecutive acks, looking at every ack in `[from, to]`
/// plus the last ack before `from` and the first ack after `to`. When no ack follows
/// `to`, the open gap up to `to` counts. None when there is no ack at all.
pub fn longest_gap(log: &[Attempt], from: Duration, to: Duration) -> Option<Duration> {
    let times: Vec<Duration> = acks(log).into_iter().map(|a| a.0).collect();
    let start = times.iter().rposition(|&t| t < from).unwrap_or(0);
    let end = times
        .iter()
        .position(|&t| t > to)
        .map(|i| i + 1)
        .unwrap_or(times.len());
    let window = times.get(start..end)?;
    let mut longest = window.windows(2).map(|w| w[1] - w[0]).max();
    if end == times.len() {
        if let Some(&last) = window.last() {
            let open = to.saturating_sub(last);
            longest = Some(longest.map_or(open, |l| l.max(open)));
        }
    }
    longest.or(if window.is_empty() {
        None
    } else {
        Some(Duration::ZERO)
    })
}

/// The ids that were acknowledged, in order.
pub fn acked_ids(log: &[Attempt]) -> Vec<i64> {
    acks(log).into_iter().map(|a| a.2).collect()
}

/// Acknowledged ids that are not in `present`, with their ack times.
pub fn lost(log: &[Attempt], present: &HashSet<i64>) -> Vec<(i64, Duration)> {
    acks(log)
        .into_iter()
        .filter(|a| !present.contains(&a.2))
        .map(|a| (a.2, a.0))
        .collect()
}

/// Number of failed attempts in `[from, to]` (by send time).
pub fn failures_between(log: &[Attempt], from: Duration, to: Duration) -> usize {
    log.iter()
        .filter(|a| a.sent >= from && a.sent <= to && matches!(a.outcome, Outcome::Failed { .. }))
        .count()
}

/// Commit latencies (ack minus send) of acks sent in `[from, to]`.
pub fn latencies(log: &[Attempt], from: Duration, to: Duration) -> Vec<Duration> {
    log.iter()
        .filter(|a| a.sent >= from && a.sent <= to)
        .filter_map(|a| match a.outcome {
            Outcome::Acked { at, .. } => Some(at.saturating_sub(a.sent)),
            Outcome::Failed { .. } => None,
        })
        .collect()
}

/// For each fault time in `faults` (ascending), how many of the `lost` rows were acked
/// after the previous fault and at or before this one (a row lost at a fault was acked
/// before it). Rows acked after the last fault are counted in the extra last slot.
pub fn lost_per_fault(lost: &[(i64, Duration)], faults: &[Duration]) -> Vec<usize> {
    let mut counts = vec![0; faults.len() + 1];
    for &(_, at) in lost {
        let slot = faults.iter().position(|&f| at <= f).unwrap_or(faults.len());
        counts[slot] += 1;
    }
    counts
}

#[cfg(test)]
mod fault_tests {
    use super::*;

    #[test]
    fn lost_rows_are_charged_to_the_next_fault() {
        let s = Duration::from_secs;
        let lost = vec![(1, s(1)), (2, s(5)), (3, s(6)), (4, s(20))];
        assert_eq!(lost_per_fault(&lost, &[s(5), s(10)]), vec![2, 1, 1]);
        assert_eq!(lost_per_fault(&[], &[s(5)]), vec![0, 0]);
    }
}

/// The first ack on the server at `port` of a write sent at or after `after`.
pub fn first_ack_on(log: &[Attempt], after: Duration, port: u16) -> Option<Duration> {
    log.iter()
        .filter(|a| a.sent >= after)
        .find_map(|a| match a.outcome {
            Outcome::Acked { at, port: p, .. } if p == port => Some(at),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn ack(id: i64, sent: u64, at: u64) -> Attempt {
        Attempt {
            id,
            sent: ms(sent),
            outcome: Outcome::Acked {
                at: ms(at),
                port: 5432,
                session: ms(sent.min(300)),
            },
        }
    }

    fn fail(id: i64, sent: u64, at: u64) -> Attempt {
        Attempt {
            id,
            sent: ms(sent),
            outcome: Outcome::Failed {
                at: ms(at),
                error: "x".into(),
            },
        }
    }

    fn log() -> Vec<Attempt> {
        vec![
            ack(1, 0, 2),
            ack(2, 10, 12),
            fail(3, 20, 25),
            fail(4, 25, 300),
            ack(5, 300, 352),
            ack(6, 362, 364),
        ]
    }

    #[test]
    fn longest_gap_spans_the_fault() {
        assert_eq!(longest_gap(&log(), ms(15), ms(310)), Some(ms(340)));
        // The window is bracketed by the acks around it.
        assert_eq!(longest_gap(&log(), ms(100), ms(100)), Some(ms(340)));
        assert_eq!(longest_gap(&log(), ms(0), ms(5)), Some(ms(10)));
    }

    #[test]
    fn an_open_gap_counts_up_to_the_end_of_the_window() {
        let l = vec![ack(1, 0, 2), fail(2, 10, 20)];
        assert_eq!(longest_gap(&l, ms(0), ms(1000)), Some(ms(998)));
        assert_eq!(longest_gap(&[], ms(0), ms(1000)), None);
    }

    #[test]
    fn first_ack_after_ignores_earlier_sends() {
        assert_eq!(
            first_ack_after(&log(), ms(15), false),
            Some((ms(352), 5432))
        );
        assert_eq!(last_ack_before(&log(), ms(300)), Some(ms(12)));
        assert_eq!(first_ack_after(&log(), ms(1000), false), None);
        // Sessions: acks up to 300 ms were on sessions opened at their send time (test
        // helper), later ones on a session opened at 300 ms.
        assert_eq!(
            first_ack_after(&log(), ms(301), false),
            Some((ms(364), 5432))
        );
        assert_eq!(first_ack_after(&log(), ms(301), true), None);
    }

    #[test]
    fn lost_lists_acked_ids_missing_from_the_table() {
        let present: HashSet<i64> = [1, 2, 3, 6].into_iter().collect();
        assert_eq!(lost(&log(), &present), vec![(5, ms(352))]);
        assert_eq!(acked_ids(&log()), vec![1, 2, 5, 6]);
        assert_eq!(failures_between(&log(), ms(0), ms(1000)), 2);
        assert_eq!(latencies(&log(), ms(300), ms(400)), vec![ms(52), ms(2)]);
    }
}

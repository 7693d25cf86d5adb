//! The hand-over trace of a switchover: when each step happened, read from the agents'
//! log lines (their timestamps are wall-clock, microseconds) and the writer's log, so a
//! benchmark can say where the write gap goes.
//!
//! The steps are found by the stable start of the agent's log messages; a step that is
//! missing (an older binary, a failed run) is shown as `—`.

use crate::writer::{Attempt, Outcome};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One step of a hand-over, in the order it normally happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The old primary's cycle chose the hand-over.
    PrimaryDecided,
    /// Its CHECKPOINT returned (the shutdown checkpoint is small after it).
    Checkpointed,
    /// PostgreSQL was told to stop (fast shutdown): from here no write is accepted.
    StopSent,
    /// The postmaster exited cleanly.
    Stopped,
    /// The switchover key names the shutdown checkpoint and the leader key is gone.
    KeyReleased,
    /// The candidate's cycle saw the released key.
    CandidateDecided,
    /// The candidate has WAL past the shutdown checkpoint.
    WalReceived,
    /// The candidate holds the leader key.
    KeyTaken,
    /// `pg_promote` was called.
    PromoteCalled,
    /// The candidate left recovery: it accepts writes.
    Promoted,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::PrimaryDecided,
        Step::Checkpointed,
        Step::StopSent,
        Step::Stopped,
        Step::KeyReleased,
        Step::CandidateDecided,
        Step::WalReceived,
        Step::KeyTaken,
        Step::PromoteCalled,
        Step::Promoted,
    ];

    /// What the step is called in the report.
    pub fn label(self) -> &'static str {
        match self {
            Step::PrimaryDecided => "old primary decides to hand over",
            Step::Checkpointed => "CHECKPOINT done",
            Step::StopSent => "fast shutdown signalled",
            Step::Stopped => "old primary stopped (shutdown checkpoint written)",
            Step::KeyReleased => "leader key released",
            Step::CandidateDecided => "candidate decides to take over",
            Step::WalReceived => "candidate has the shutdown checkpoint",
            Step::KeyTaken => "candidate holds the leader key",
            Step::PromoteCalled => "pg_promote called",
            Step::Promoted => "promoted (out of recovery)",
        }
    }

    /// Whether the old primary (true) or the candidate (false) logs it.
    fn on_old_primary(self) -> bool {
        matches!(
            self,
            Step::PrimaryDecided
                | Step::Checkpointed
                | Step::StopSent
                | Step::Stopped
                | Step::KeyReleased
        )
    }

    /// Whether the agent's log message `msg` marks this step.
    fn matches(self, msg: &str) -> bool {
        match self {
            Step::PrimaryDecided => {
                msg.starts_with("switchover to ") && msg.contains(": checkpoint, clean shutdown")
            }
            other => msg.starts_with(other.needle()),
        }
    }

    /// The start of the agent's log message for this step.
    fn needle(self) -> &'static str {
        match self {
            Step::PrimaryDecided => "switchover to ",
            Step::Checkpointed => "switchover: checkpoint done",
            Step::StopSent => "switchover: fast shutdown signalled",
            Step::Stopped => "switchover: PostgreSQL stopped cleanly",
            Step::KeyReleased => "switchover: primary stopped cleanly",
            Step::CandidateDecided => "switchover: promoting once",
            Step::WalReceived => "received WAL past the shutdown checkpoint",
            Step::KeyTaken => "holding the leader key",
            Step::PromoteCalled => "promoting: pg_promote",
            Step::Promoted => "promoted: accepting writes",
        }
    }
}

/// The trace of one hand-over: when each step happened, and the writer's view.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// When each step of [`Step::ALL`] happened (same index), if it was logged.
    pub steps: Vec<Option<SystemTime>>,
    /// The writer's last ack before the gap.
    pub last_write: Option<SystemTime>,
    /// The writer's first ack on the new primary.
    pub first_write: Option<SystemTime>,
}

impl Trace {
    /// When `step` happened.
    pub fn at(&self, step: Step) -> Option<SystemTime> {
        let i = Step::ALL.iter().position(|&s| s == step)?;
        self.steps.get(i).copied().flatten()
    }
}

/// The wall-clock time a log line starts with (`2026-11-29T23:10:00.123456Z ...`).
fn line_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp).ok()
}

/// The message of a text log line: what follows the timestamp and the level.
fn message(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .split_once(char::is_whitespace)?
        .1
        .trim_start();
    Some(rest.split_once(char::is_whitespace)?.1.trim_start())
}

/// The first time each step appears in `text` (an agent's log) within `[from, to]`.
fn scan(
    text: &str,
    from: SystemTime,
    to: SystemTime,
    old_primary: bool,
) -> Vec<Option<SystemTime>> {
    let mut found = vec![None; Step::ALL.len()];
    for line in text.lines() {
        let Some(at) = line_time(line) else { continue };
        if at < from || at > to {
            continue;
        }
        let Some(msg) = message(line) else { continue };
        for (i, step) in Step::ALL.iter().enumerate() {
            if step.on_old_primary() == old_primary && found[i].is_none() && step.matches(msg) {
                found[i] = Some(at);
            }
        }
    }
    found
}

/// The trace of the hand-over from the member logging to `old_log` to the one logging
/// to `new_log`, between `from` and `to` (wall clock). `epoch` is the writer's epoch on
/// the wall clock; `new_port` is the new primary's PostgreSQL port.
pub fn trace(
    old_log: &Path,
    new_log: &Path,
    (from, to): (SystemTime, SystemTime),
    writer: (&[Attempt], SystemTime),
    new_port: u16,
) -> Trace {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let old = scan(&read(old_log), from, to, true);
    let new = scan(&read(new_log), from, to, false);
    let steps = old
        .into_iter()
        .zip(new)
        .map(|(a, b)| a.or(b))
        .collect::<Vec<_>>();
    let (log, epoch) = writer;
    let wall = |d: Duration| epoch + d;
    let stop = Step::ALL
        .iter()
        .position(|&s| s == Step::StopSent)
        .and_then(|i| steps[i]);
    let since = from.duration_since(epoch).unwrap_or_default();
    let mut last_write = None;
    let mut first_write = None;
    for a in log.iter().filter(|a| a.sent >= since) {
        if let Outcome::Acked { at, port, .. } = a.outcome {
            let at = wall(at);
            if at > to {
                break;
            }
            if port == new_port && first_write.is_none() {
                first_write = Some(at);
            }
            if port != new_port && stop.is_none_or(|s| at <= s + Duration::from_secs(1)) {
                last_write = Some(at);
            }
        }
    }
    Trace {
        steps,
        last_write,
        first_write,
    }
}

/// Milliseconds from `base` to `t` (negative before it), or `—`.
pub fn ms_after(base: Option<SystemTime>, t: Option<SystemTime>) -> String {
    match (base, t) {
        (Some(b), Some(t)) => match t.duration_since(b) {
            Ok(d) => format!("{:.1}", d.as_secs_f64() * 1000.0),
            Err(e) => format!("-{:.1}", e.duration().as_secs_f64() * 1000.0),
        },
        _ => "—".into(),
    }
}

/// Milliseconds between two points in time, when both are known and in order.
pub fn span(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<Duration> {
    b?.duration_since(a?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steps_from_text_log_lines() {
        let text = "\
2026-11-29T23:10:00.100000Z  INFO switchover to node2: checkpoint, clean shutdown, and hand-over once node2 has the shutdown checkpoint
2026-11-29T23:10:00.110000Z  INFO switchover: checkpoint done in 9 ms; fast shutdown next
2026-11-29T23:10:00.111000Z  INFO switchover: fast shutdown signalled
2026-11-29T23:10:00.150000Z  INFO switchover: PostgreSQL stopped cleanly at checkpoint 0/3000028 stop_ms=39
2026-11-29T23:10:00.160000Z  INFO switchover: primary stopped cleanly at checkpoint 0/3000028; leader key handed to node2
2026-11-29T23:10:00.170000Z  INFO promoted: accepting writes (switchover from node1)
";
        let t = |s: &str| humantime::parse_rfc3339(s).expect("time");
        let from = t("2026-11-29T23:10:00Z");
        let to = t("2026-11-29T23:10:01Z");
        let old = scan(text, from, to, true);
        assert_eq!(old[0], Some(t("2026-11-29T23:10:00.100000Z")));
        assert_eq!(old[3], Some(t("2026-11-29T23:10:00.150000Z")));
        assert_eq!(old[4], Some(t("2026-11-29T23:10:00.160000Z")));
        assert_eq!(
            old[9], None,
            "a candidate step is not read from the old primary"
        );
        let new = scan(text, from, to, false);
        assert_eq!(new[9], Some(t("2026-11-29T23:10:00.170000Z")));
        // Outside the window: nothing.
        let late = scan(text, to, to + Duration::from_secs(1), true);
        assert!(late.iter().all(Option::is_none));
    }

    #[test]
    fn milliseconds_between_points() {
        let b = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let later = b + Duration::from_micros(12_345);
        assert_eq!(ms_after(Some(b), Some(later)), "12.3");
        assert_eq!(ms_after(Some(later), Some(b)), "-12.3");
        assert_eq!(ms_after(None, Some(b)), "—");
        assert_eq!(
            span(Some(b), Some(later)),
            Some(Duration::from_micros(12_345))
        );
    }
}

//! The line protocol between the agent and its fence process.
//!
//! Agent → fence process, on the fence process's standard input (a pipe), one command
//! per line, each written with a single `write(2)` of less than `PIPE_BUF` bytes so
//! lines never interleave or tear:
//!
//! ```text
//! arm <deadline_ns> <expiry_ns>   fence PostgreSQL once CLOCK_BOOTTIME reaches deadline_ns;
//!                                 expiry_ns is the earliest moment the store can expire the
//!                                 lease (used only to bound the watchdog device). Replaces
//!                                 any earlier arm, also one with a later deadline.
//! disarm                          stop enforcing (this member no longer leads, or its
//!                                 PostgreSQL is no longer writable).
//! ```
//!
//! End of input (the agent exited, crashed or closed the pipe) means "the agent is
//! gone": the fence process keeps enforcing an armed deadline, and exits once it is
//! disarmed, or once the deadline has passed and PostgreSQL is down.
//!
//! Fence process → agent, on its standard output, one event per line:
//!
//! ```text
//! ready                     started; the watchdog device check passed
//! fenced <pid> <late_ms>    sent SIGQUIT to the postmaster <pid>, late_ms after the deadline
//! error <text>              something the agent must know (a failed fence, the device);
//!                           before `ready`, the reason the process refuses to start
//! ```

use std::time::Duration;

/// A command from the agent to the fence process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Fence at `deadline` (on the fence clock) unless re-armed or disarmed before.
    Arm {
        /// When PostgreSQL must stop accepting writes.
        deadline: Duration,
        /// The earliest moment the store can expire the lease (`>= deadline`).
        expiry: Duration,
    },
    /// Stop enforcing.
    Disarm,
}

/// An event reported by the fence process to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The fence process is up and enforcing.
    Ready,
    /// It sent SIGQUIT to the postmaster `pid`, `late_ms` after the deadline.
    Fenced {
        /// The postmaster's process id.
        pid: i32,
        /// Milliseconds between the deadline and the signal.
        late_ms: u64,
    },
    /// A problem the agent must log (or, before `Ready`, the reason for refusing to run).
    Error(String),
}

/// A line that is not part of the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a fence protocol line: {0:?}")]
pub struct BadLine(pub String);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Command {
    /// The command as one protocol line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Command::Arm { deadline, expiry } => {
                format!("arm {} {}\n", nanos(*deadline), nanos(*expiry))
            }
            Command::Disarm => "disarm\n".to_string(),
        }
    }

    /// Parses one line (without or with its newline).
    pub fn parse(line: &str) -> Result<Command, BadLine> {
        let bad = || BadLine(line.to_string());
        let mut words = line.split_whitespace();
        let cmd = match words.next() {
            Some("arm") => {
                let mut num = || -> Result<Duration, BadLine> {
                    let n = words.next().ok_or_else(bad)?;
                    n.parse::<u64>()
                        .map(Duration::from_nanos)
                        .map_err(|_| bad())
                };
                let deadline = num()?;
                let expiry = num()?;
                Command::Arm {
                    deadline,
                    expiry: expiry.max(deadline),
                }
            }
            Some("disarm") => Command::Disarm,
            _ => return Err(bad()),
        };
        match words.next() {
            None => Ok(cmd),
            Some(_) => Err(bad()),
        }
    }
}

impl Event {
    /// The event as one protocol line, newline included (newlines in text are replaced).
    pub fn encode(&self) -> String {
        match self {
            Event::Ready => "ready\n".to_string(),
            Event::Fenced { pid, late_ms } => format!("fenced {pid} {late_ms}\n"),
            Event::Error(text) => format!("error {}\n", text.replace(['\n', '\r'], " ")),
        }
    }

    /// Parses one line (without or with its newline).
    pub fn parse(line: &str) -> Result<Event, BadLine> {
        let line = line.trim_end_matches(['\n', '\r']);
        let bad = || BadLine(line.to_string());
        if line == "ready" {
            return Ok(Event::Ready);
        }
        if let Some(text) = line.strip_prefix("error ") {
            return Ok(Event::Error(text.to_string()));
        }
        if let Some(rest) = line.strip_prefix("fenced ") {
            let mut words = rest.split_whitespace();
            let pid = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            let late_ms = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            return Ok(Event::Fenced { pid, late_ms });
        }
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for cmd in [
            Command::Arm {
                deadline: Duration::from_nanos(123_456_789_012),
                expiry: Duration::from_nanos(125_456_789_012),
            },
            Command::Disarm,
        ] {
            let line = cmd.encode();
            assert!(line.ends_with('\n') && line.len() < 64);
            assert_eq!(Command::parse(&line), Ok(cmd));
        }
    }

    #[test]
    fn bad_commands_are_rejected() {
        for line in [
            "",
            "arm",
            "arm 1",
            "arm x 2",
            "arm 1 2 3",
            "disarm now",
            "fence",
        ] {
            assert!(Command::parse(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn an_expiry_before_the_deadline_is_raised_to_it() {
        assert_eq!(
            Command::parse("arm 5 3"),
            Ok(Command::Arm {
                deadline: Duration::from_nanos(5),
                expiry: Duration::from_nanos(5)
            })
        );
    }

    #[test]
    fn events_round_trip() {
        for ev in [
            Event::Ready,
            Event::Fenced {
                pid: 4242,
                late_ms: 3,
            },
            Event::Error("cannot open /dev/watchdog: No such file".into()),
        ] {
            assert_eq!(Event::parse(&ev.encode()), Ok(ev));
        }
        assert_eq!(
            Event::parse(&Event::Error("a\nb".into()).encode()),
            Ok(Event::Error("a b".into()))
        );
        assert!(Event::parse("fenced x 1").is_err());
        assert!(Event::parse("running 1 test").is_err());
    }
}

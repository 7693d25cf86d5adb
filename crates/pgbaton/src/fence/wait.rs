//! The fence process's one blocking wait: for the agent's next command on standard
//! input, or for a moment on the fence clock, whichever comes first.
//!
//! The moment is a `timerfd` on `CLOCK_BOOTTIME` (the clock the deadline is on), so
//! the wait counts a suspend of the host like the deadline does and the armed fence
//! sleeps until its deadline in one go. Where no such timer can be created, it falls
//! back to sleeping on `CLOCK_MONOTONIC` in slices of at most [`ARMED_CHECK`], so that
//! after a resume it looks at the deadline again within that time.

use super::clock;
use super::protocol::Command;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::AsFd;
use std::time::Duration;

/// Without a boot-clock timer: the longest sleep on `CLOCK_MONOTONIC`, which stops while
/// the host is suspended.
pub const ARMED_CHECK: Duration = Duration::from_millis(100);

/// The longest command line kept while waiting for its end; longer input is dropped.
const MAX_LINE: usize = 4096;

/// What the wait brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A command from the agent.
    Cmd(Command),
    /// A line that is not a command.
    Bad(String),
    /// The agent is gone (its end of the pipe closed, or reading failed).
    Gone(String),
}

/// Waits for commands on standard input and for moments on the fence clock.
pub struct Waiter {
    /// Standard input while the agent may still write to it.
    input: Option<std::io::Stdin>,
    /// Bytes read but not yet a whole line.
    partial: Vec<u8>,
    /// The boot-clock timer, if one could be created.
    timer: Option<TimerFd>,
}

impl Waiter {
    /// A waiter on this process's standard input.
    pub fn new() -> Waiter {
        let timer = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK,
        );
        if let Err(e) = &timer {
            tracing::warn!(
                "cannot create a CLOCK_BOOTTIME timer ({e}): an armed fence looks at its \
                 deadline every {} ms",
                ARMED_CHECK.as_millis()
            );
        }
        Waiter {
            input: Some(std::io::stdin()),
            partial: Vec::new(),
            timer: timer.ok(),
        }
    }

    /// Wait up to `timeout` (`None`: for input alone) and return what arrived, possibly
    /// nothing. Once the agent is gone, only the time is waited for.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Vec<Input> {
        let timeout = match (timeout, &self.input) {
            (t, Some(_)) => t,
            // Nothing left to read: nothing can end an unbounded wait.
            (t, None) => Some(t.unwrap_or(super::decide::POLL)),
        };
        let poll_timeout = match (timeout, &self.timer) {
            (None, _) => {
                self.disarm_timer();
                PollTimeout::NONE
            }
            (Some(t), Some(timer)) => {
                let at = TimeSpec::from_duration(clock::now().saturating_add(t));
                match timer.set(
                    Expiration::OneShot(at),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                ) {
                    Ok(()) => PollTimeout::NONE,
                    Err(_) => slice(t),
                }
            }
            (Some(t), None) => slice(t),
        };
        let mut fds = Vec::with_capacity(2);
        if let Some(stdin) = &self.input {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timer_at = match (&self.timer, timeout) {
            (Some(timer), Some(_)) if poll_timeout.is_none() => {
                fds.push(PollFd::new(timer.as_fd(), PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        let ready = match poll(&mut fds, poll_timeout) {
            Ok(_) => fds.iter().map(|f| f.any().unwrap_or(true)).collect(),
            // EINTR, or something odd: look at the clock and wait again.
            Err(_) => vec![false; fds.len()],
        };
        drop(fds);
        if let Some(i) = timer_at {
            if ready[i] {
                if let Some(timer) = &self.timer {
                    // Consume the expiry (non-blocking).
                    let _ = timer.wait();
                }
            }
        }
        if self.input.is_some() && ready.first().copied().unwrap_or(false) {
            self.read()
        } else {
            Vec::new()
        }
    }

    fn disarm_timer(&self) {
        if let Some(timer) = &self.timer {
            let _ = timer.unset();
        }
    }

    /// One read of standard input (poll said it would not block), split into lines.
    fn read(&mut self) -> Vec<Input> {
        let Some(stdin) = &self.input else {
            return Vec::new();
        };
        let mut buf = [0u8; 4096];
        let gone = match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) => Some("its command pipe closed".to_string()),
            Ok(n) => {
                self.partial.extend_from_slice(&buf[..n]);
                None
            }
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => None,
            Err(e) => Some(format!("reading its command pipe failed: {e}")),
        };
        let mut out = lines(&mut self.partial);
        if let Some(why) = gone {
            // A last line without its newline still counts, as with `BufRead::lines`.
            if !self.partial.is_empty() {
                out.push(parse(&std::mem::take(&mut self.partial)));
            }
            self.input = None;
            self.disarm_timer();
            out.push(Input::Gone(why));
        } else if self.partial.len() > MAX_LINE {
            let start = String::from_utf8_lossy(&self.partial[..64]).into_owned();
            self.partial.clear();
            out.push(Input::Bad(format!("{start}… (over {MAX_LINE} bytes)")));
        }
        out
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

/// Without a boot-clock timer: wait at most [`ARMED_CHECK`] on the monotonic clock.
fn slice(t: Duration) -> PollTimeout {
    let ms = t.min(ARMED_CHECK).as_micros().div_ceil(1000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Take every whole line out of `partial`.
fn lines(partial: &mut Vec<u8>) -> Vec<Input> {
    let mut out = Vec::new();
    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = partial.drain(..=end).collect();
        out.push(parse(&line[..end]));
    }
    out
}

fn parse(line: &[u8]) -> Input {
    let line = String::from_utf8_lossy(line);
    let line = line.strip_suffix('\r').unwrap_or(&line);
    match Command::parse(line) {
        Ok(c) => Input::Cmd(c),
        Err(_) => Input::Bad(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_lines_and_keeps_the_rest() {
        let mut buf = b"disarm\nbogus\r\narm 5 6\ndis".to_vec();
        let got = lines(&mut buf);
        assert_eq!(
            got,
            vec![
                Input::Cmd(Command::Disarm),
                Input::Bad("bogus".into()),
                Input::Cmd(Command::Arm {
                    deadline: Duration::from_nanos(5),
                    expiry: Duration::from_nanos(6)
                }),
            ]
        );
        assert_eq!(buf, b"dis");
    }

    #[test]
    fn a_boot_clock_timer_ends_the_wait() {
        // The test's standard input may be anything; wait on the timer alone.
        let mut w = Waiter::new();
        w.input = None;
        assert!(w.timer.is_some(), "CLOCK_BOOTTIME timerfd unavailable");
        let t = std::time::Instant::now();
        assert!(w.wait(Some(Duration::from_millis(30))).is_empty());
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn without_a_timer_it_sleeps_in_slices() {
        assert_eq!(
            slice(Duration::from_secs(5)),
            PollTimeout::try_from(100u128).unwrap()
        );
        assert_eq!(
            slice(Duration::from_micros(1500)),
            PollTimeout::try_from(2u128).unwrap()
        );
    }
}

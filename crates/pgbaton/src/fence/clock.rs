//! The one clock both the agent and the fence process measure deadlines on.
//!
//! `CLOCK_BOOTTIME` is system-wide (the agent and the fence process read the same
//! value), never jumps backwards, ignores wall-clock changes, and — unlike
//! `CLOCK_MONOTONIC` — keeps counting while the host is suspended. A suspended host
//! therefore finds its deadline passed on resume rather than extended by the suspend.

use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// Now on the fence clock (`CLOCK_BOOTTIME`), as time since boot.
///
/// Reading this clock cannot fail on Linux; should it ever fail, the fallback is a
/// very late time, which fences early (the safe direction).
pub fn now() -> Duration {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32),
        Err(_) => Duration::MAX / 2,
    }
}

/// The fencing deadline for a lease renewal whose request was sent at `sent_at` (on
/// [`now`]'s clock) and that gave the lease `ttl`: `sent_at + ttl - margin`.
///
/// The store starts the renewed lease's `ttl` no earlier than it receives the request,
/// so the lease cannot expire before `sent_at + ttl`. A margin of `ttl` or more yields
/// `sent_at` itself (fence at once), never a later time.
pub fn deadline(sent_at: Duration, ttl: Duration, margin: Duration) -> Duration {
    sent_at + ttl.saturating_sub(margin)
}

/// The earliest moment the store can expire a lease renewed at `sent_at` with `ttl`.
pub fn earliest_expiry(sent_at: Duration, ttl: Duration) -> Duration {
    sent_at + ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_sent_plus_ttl_minus_margin() {
        let s = Duration::from_secs(100);
        assert_eq!(
            deadline(s, Duration::from_secs(10), Duration::from_secs(2)),
            Duration::from_secs(108)
        );
        assert_eq!(
            deadline(s, Duration::from_millis(2500), Duration::from_secs(1)),
            Duration::from_millis(101_500)
        );
    }

    #[test]
    fn a_margin_not_below_ttl_fences_at_once() {
        let s = Duration::from_secs(100);
        assert_eq!(
            deadline(s, Duration::from_secs(2), Duration::from_secs(2)),
            s
        );
        assert_eq!(
            deadline(s, Duration::from_secs(2), Duration::from_secs(9)),
            s
        );
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now();
        let b = now();
        assert!(b >= a);
        assert!(a > Duration::ZERO);
    }
}

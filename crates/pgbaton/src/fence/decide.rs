//! The fence process's decisions, as pure functions of time and state (unit-tested).

use std::time::Duration;

/// How often the fence process looks at the clock while it fences (the deadline has
/// passed): to see the postmaster go, and to signal it again.
pub const POLL: Duration = Duration::from_millis(10);

/// How long before the watchdog device would fire the fence process fences PostgreSQL
/// itself, so that a working fence process never lets the device reset the host.
pub const DEVICE_SLACK: Duration = Duration::from_millis(300);

/// How often the device is petted at most (while petting is allowed).
pub const PET_EVERY: Duration = Duration::from_millis(100);

/// An armed deadline, as received from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Armed {
    /// When PostgreSQL must stop accepting writes.
    pub deadline: Duration,
    /// The earliest moment the store can expire the lease (`>= deadline`).
    pub expiry: Duration,
}

impl Armed {
    /// The latest moment the watchdog device may fire: halfway between the fence
    /// deadline and the lease's earliest expiry. The device must reset the host before
    /// the lease can expire, and should fire after the fence process had its chance.
    pub fn device_limit(&self) -> Duration {
        self.deadline + (self.expiry.saturating_sub(self.deadline)) / 2
    }
}

/// Whether PostgreSQL must be fenced now: armed, and the deadline has been reached.
pub fn should_fence(now: Duration, fence_at: Option<Duration>) -> bool {
    fence_at.is_some_and(|d| now >= d)
}

/// When to fence: the armed deadline, or earlier when the watchdog device (last petted
/// so that it fires at `device_fires_at`) would otherwise fire first.
pub fn fence_at(armed: Option<Armed>, device_fires_at: Option<Duration>) -> Option<Duration> {
    armed.map(|a| match device_fires_at {
        Some(f) => a.deadline.min(f.saturating_sub(DEVICE_SLACK)),
        None => a.deadline,
    })
}

/// Whether the device may be petted (or opened) now with `timeout`: only when the
/// device would then fire no later than [`Armed::device_limit`]. A frozen agent thus
/// never keeps the device from firing before the lease can expire.
pub fn may_pet(now: Duration, armed: Option<Armed>, timeout: Duration) -> bool {
    armed.is_some_and(|a| now + timeout <= a.device_limit())
}

/// Whether the fence process should exit: only once the agent is gone, and then only
/// when nothing is armed, or the deadline has passed and PostgreSQL is down.
pub fn should_exit(
    agent_gone: bool,
    now: Duration,
    fence_at: Option<Duration>,
    postgres_running: bool,
) -> bool {
    agent_gone && (fence_at.is_none() || (should_fence(now, fence_at) && !postgres_running))
}

/// How long to wait for the agent's next command, or None to wait for it alone:
/// - nothing armed: nothing can happen before the agent's next command;
/// - armed: until the deadline, or the device's next pet (`next_pet`) when that comes
///   first (the wait runs on the deadline's own clock, see [`super::wait`]);
/// - the deadline has passed (fencing): [`POLL`].
pub fn next_wake(
    now: Duration,
    fence_at: Option<Duration>,
    next_pet: Option<Duration>,
) -> Option<Duration> {
    match fence_at {
        None => None,
        Some(d) if d <= now => Some(POLL),
        Some(d) => {
            let at = next_pet.map_or(d, |p| p.min(d));
            Some(at.saturating_sub(now))
        }
    }
}

/// The device timeout (whole seconds, at least 1) the agent should ask for with a
/// lease of `ttl` and a fence `margin`: half of `ttl - margin`, so that a renewal
/// answered within about `ttl / 2` can still pet the device in time.
pub fn device_timeout(ttl: Duration, margin: Duration) -> Duration {
    Duration::from_secs((ttl.saturating_sub(margin).as_secs() / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn fences_only_when_armed_and_due() {
        assert!(!should_fence(s(100), None));
        assert!(!should_fence(s(100), Some(s(101))));
        assert!(!should_fence(
            s(100) - Duration::from_nanos(1),
            Some(s(100))
        ));
        assert!(should_fence(s(100), Some(s(100))));
        assert!(should_fence(s(200), Some(s(100))));
    }

    #[test]
    fn the_device_pulls_the_fence_earlier_never_later() {
        let a = Armed {
            deadline: s(108),
            expiry: s(110),
        };
        assert_eq!(fence_at(None, Some(s(1))), None);
        assert_eq!(fence_at(Some(a), None), Some(s(108)));
        assert_eq!(fence_at(Some(a), Some(s(109))), Some(s(108)));
        assert_eq!(fence_at(Some(a), Some(s(105))), Some(s(105) - DEVICE_SLACK));
    }

    #[test]
    fn the_device_is_petted_only_while_it_would_fire_before_expiry() {
        let a = Armed {
            deadline: s(108),
            expiry: s(110),
        };
        assert_eq!(a.device_limit(), s(109));
        assert!(may_pet(s(104), Some(a), s(4)));
        assert!(may_pet(s(105), Some(a), s(4)));
        assert!(!may_pet(s(105) + ms(1), Some(a), s(4)));
        assert!(!may_pet(s(100), None, s(4)));
        // A device that fires at the limit never outlives the lease, and a working fence
        // process fences before it fires.
        let fires = s(105) + s(4);
        assert!(fires < a.expiry);
        assert!(fence_at(Some(a), Some(fires)).is_some_and(|f| f <= a.deadline));
    }

    #[test]
    fn exits_only_when_the_agent_is_gone_and_nothing_is_left_to_enforce() {
        assert!(!should_exit(false, s(1), None, false));
        assert!(should_exit(true, s(1), None, true));
        assert!(!should_exit(true, s(1), Some(s(2)), false));
        assert!(!should_exit(true, s(3), Some(s(2)), true));
        assert!(should_exit(true, s(3), Some(s(2)), false));
    }

    #[test]
    fn sleeps_until_a_command_when_nothing_is_armed() {
        // (now, fence_at, next_pet) → how long to wait (None: for the next command only).
        let cases = [
            (s(1), None, None, None),
            (s(1), None, Some(s(2)), None),
            (s(1), Some(s(1) + ms(3)), None, Some(ms(3))),
            (s(1), Some(s(2)), None, Some(s(1))),
            (s(1), Some(s(1) + ms(50)), Some(s(1) + ms(20)), Some(ms(20))),
            (s(1), Some(s(1) + ms(20)), Some(s(1) + ms(50)), Some(ms(20))),
            (s(1), Some(s(2)), Some(s(1)), Some(Duration::ZERO)),
            (s(2), Some(s(2)), None, Some(POLL)),
            (s(3), Some(s(2)), Some(s(4)), Some(POLL)),
        ];
        for (now, fence_at, next_pet, want) in cases {
            assert_eq!(
                next_wake(now, fence_at, next_pet),
                want,
                "now {now:?} fence_at {fence_at:?} next_pet {next_pet:?}"
            );
        }
    }

    #[test]
    fn device_timeout_is_half_the_fence_window() {
        assert_eq!(device_timeout(s(10), s(2)), s(4));
        assert_eq!(device_timeout(s(30), s(5)), s(12));
        assert_eq!(device_timeout(s(2), s(1)), s(1));
        assert_eq!(device_timeout(s(2), s(5)), s(1));
    }
}

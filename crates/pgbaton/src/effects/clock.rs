//! The clocks the agent reads: the wall clock (reported in the store, compared across
//! hosts) and the fence clock (`CLOCK_BOOTTIME` on this host), kept apart so that a
//! simulated host can have a skewed or stepped wall clock.

use std::time::Duration;

/// One host's clocks.
pub trait Clock: Send + Sync {
    /// Now on the fence clock (time since boot): the clock fence deadlines use. It
    /// never goes backwards and is shared with the fence process on the same host.
    fn boot(&self) -> Duration;
    /// Milliseconds since the Unix epoch, by this host's wall clock.
    fn wall_ms(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn boot(&self) -> Duration {
        crate::fence::clock::now()
    }

    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

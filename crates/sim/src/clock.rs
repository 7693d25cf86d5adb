//! Each host's clocks on simulated time: the boot clock (fence deadlines) starts at a
//! per-host offset, and the wall clock can be skewed or stepped per host.

use crate::world::{lock, Shared};
use pgbaton::effects::Clock;
use std::time::Duration;
use tokio::time::Instant;

/// 2026-11-29T00:00:00Z in ms since the epoch: where every wall clock starts.
pub const WALL_EPOCH_MS: u64 = 1_795_910_400_000;

/// One host's clocks.
pub struct SimClock {
    world: Shared,
    host: String,
}

impl SimClock {
    /// The clocks of `host`.
    pub fn new(world: Shared, host: &str) -> SimClock {
        SimClock {
            world,
            host: host.to_string(),
        }
    }
}

impl Clock for SimClock {
    fn boot(&self) -> Duration {
        let w = lock(&self.world);
        Instant::now().duration_since(w.start) + w.hosts[&self.host].boot_offset
    }

    fn wall_ms(&self) -> u64 {
        let w = lock(&self.world);
        let t = WALL_EPOCH_MS + Instant::now().duration_since(w.start).as_millis() as u64;
        t.saturating_add_signed(w.hosts[&self.host].wall_skew_ms)
    }
}

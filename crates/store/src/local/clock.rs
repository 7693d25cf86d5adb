//! The two facts leases are measured against: CLOCK_MONOTONIC and the kernel boot id.
//!
//! CLOCK_MONOTONIC is system-wide on Linux (every process on the host reads the same
//! clock) and never jumps with wall-clock changes, so lease deadlines written by one
//! process are valid for every other process until the next reboot. The boot id tells
//! a reboot apart: deadlines written during another boot are meaningless.

use crate::{Result, StoreError};
use nix::time::{clock_gettime, ClockId};

const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// Milliseconds on CLOCK_MONOTONIC.
pub(crate) fn monotonic_ms() -> Result<u64> {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map_err(|e| StoreError::Other(format!("clock_gettime(CLOCK_MONOTONIC) failed: {e}")))?;
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    Ok(secs * 1000 + nanos / 1_000_000)
}

/// The kernel's random id of the current boot.
pub(crate) fn boot_id() -> Result<String> {
    std::fs::read_to_string(BOOT_ID_PATH)
        .map(|s| s.trim().to_string())
        .map_err(|e| StoreError::Other(format!("cannot read {BOOT_ID_PATH}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ms().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = monotonic_ms().unwrap();
        assert!(b >= a + 4, "{a} -> {b}");
    }

    #[test]
    fn boot_id_is_stable() {
        let a = boot_id().unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, boot_id().unwrap());
    }
}

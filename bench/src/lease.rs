//! When the leader's lease expires, read from the embedded local store's `state.json`
//! (deadlines there are CLOCK_MONOTONIC milliseconds, the same clock on the whole host).
//! Used to split a failover into "lease still valid" and "pgbaton's own overhead".

use nix::time::{clock_gettime, ClockId};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How long from now until the lease attached to the `leader` key expires, reading the
/// local store's state file at `state_json`. None when the file, the key or its lease is
/// missing, or the lease has already expired.
pub fn leader_lease_remaining(state_json: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(state_json).ok()?;
    let state: Value = serde_json::from_str(&text).ok()?;
    let expires_ms = leader_expiry_ms(&state)?;
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
    let now_ms =
        u64::try_from(now.tv_sec()).ok()? * 1000 + u64::try_from(now.tv_nsec()).ok()? / 1_000_000;
    expires_ms.checked_sub(now_ms).map(Duration::from_millis)
}

/// `expires_at_ms` of the lease of the `leader` key in a parsed `state.json`.
fn leader_expiry_ms(state: &Value) -> Option<u64> {
    let lease = &state["keys"]["leader"]["lease"];
    let id = match lease {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    state["leases"][id.as_str()]["expires_at_ms"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_leader_lease_deadline() {
        let state = serde_json::json!({
            "format": 1,
            "leases": {"7": {"ttl_ms": 10000, "expires_at_ms": 123456}},
            "keys": {"leader": {"value": "node1", "lease": 7}}
        });
        assert_eq!(leader_expiry_ms(&state), Some(123456));
        let no_leader = serde_json::json!({"leases": {}, "keys": {}});
        assert_eq!(leader_expiry_ms(&no_leader), None);
    }

    #[test]
    fn a_missing_file_gives_none() {
        assert_eq!(
            leader_lease_remaining(Path::new("/nonexistent/state.json")),
            None
        );
    }
}

//! Decides whether a change in the store is worth an early HA cycle.
//!
//! Members publish their LSNs every cycle; waking everyone for each of those would turn
//! the loop into a busy loop. Only changes that can alter a decision wake the agent:
//! any key other than a member key, a member joining or leaving, or a member changing
//! role, state, address or slots.

use pgbaton_core::model::{MemberStatus, PrimaryStatus, KEY_STATUS, MEMBERS_PREFIX};
use pgbaton_store::Snapshot;

/// True if `new` differs from `old` in a way that can change a decision.
pub fn significant(old: &Snapshot, new: &Snapshot) -> bool {
    // Without a leader every report matters: a failover waits for fresh positions.
    if !new.entries.contains_key(pgbaton_core::model::KEY_LEADER) && old.revision != new.revision {
        return true;
    }
    let keys_old = old.entries.keys();
    let keys_new = new.entries.keys();
    if !keys_old.eq(keys_new) {
        return true;
    }
    for (key, e) in &new.entries {
        let Some(o) = old.entries.get(key) else {
            return true;
        };
        if o.value == e.value && o.lease == e.lease {
            continue;
        }
        if key == KEY_STATUS {
            let parse = |v: &str| serde_json::from_str::<PrimaryStatus>(v).ok();
            match (parse(&o.value), parse(&e.value)) {
                (Some(a), Some(b))
                    if a.primary == b.primary
                        && a.timeline == b.timeline
                        && a.registry.keys().eq(b.registry.keys()) => {}
                _ => return true,
            }
            continue;
        }
        if !key.starts_with(MEMBERS_PREFIX) {
            return true;
        }
        let parse = |v: &str| serde_json::from_str::<MemberStatus>(v).ok();
        match (parse(&o.value), parse(&e.value)) {
            (Some(a), Some(b))
                if a.role == b.role
                    && a.state == b.state
                    && a.host == b.host
                    && a.port == b.port
                    && a.slots == b.slots
                    && a.timeline == b.timeline => {}
            _ => return true,
        }
    }
    false
}

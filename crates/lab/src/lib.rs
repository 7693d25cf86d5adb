//! pgbaton's multi-host fault lab: hosts as network namespaces on one bridge, each with an
//! etcd member, PostgreSQL and a `pgbaton agent`; faults injected alone or from a seed; a
//! Jepsen-style checker (acked writes, two writable members, time to heal).
//!
//! Root only. Every namespace, process and rule it creates carries the prefix [`net::PREFIX`],
//! is removed on drop, and leftovers of a crashed run are removed when the next one starts.

pub mod checker;
pub mod cluster;
pub mod fault;
pub mod net;
pub mod proc;
pub mod rng;
pub mod run;

/// Why the lab cannot run here, if it cannot: not root, or no `ip` command.
pub fn unsupported() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("the lab needs root (network namespaces)".into());
    }
    if !proc::have("ip") {
        return Some("the lab needs the `ip` command (iproute2)".into());
    }
    None
}

//! Deterministic simulation of a whole pgbaton cluster.
//!
//! The production agent (`pgbaton::agent::run_with`) runs unchanged, once per member,
//! on a single-threaded tokio runtime with paused (virtual) time. Every effect it has
//! goes through `pgbaton::effects`, implemented here on a simulated world:
//! [`store`] (revisions, compare-and-set, leases on simulated time, watches),
//! [`pg`] (WAL, timelines, streaming, synchronous acknowledgement, rewind, clone),
//! [`clock`] (per-host boot and wall clocks), [`fence`] (the fence process),
//! [`gate`] (SIGSTOP/SIGCONT). [`client`] commits rows, [`faults`] draws a seeded
//! schedule, [`check`] holds the invariants and [`run`] plays one seed.
//! Same seed, same trace, byte for byte.

pub mod check;
pub mod client;
pub mod clock;
pub mod faults;
pub mod fence;
pub mod gate;
pub mod pg;
pub mod regressions;
pub mod rng;
pub mod run;
pub mod store;
pub mod trace;
pub mod world;

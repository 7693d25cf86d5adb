//! The pure decision core of pgbaton.
//!
//! The agent feeds an observation in (this member's PostgreSQL, the store's view of the
//! cluster, the clock) and gets a plan back: the actions to take and the reason.
//! Nothing here touches a disk, a socket or a clock, so every rule can be tested with
//! tables of cases and in simulation.

pub mod lsn;
pub mod model;
pub mod slots;

pub use lsn::Lsn;

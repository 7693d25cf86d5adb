//! The pure decision core of pgbaton.
//!
//! The agent feeds an [`Observation`] in (this member's PostgreSQL, the store's view of
//! the cluster, the clock) and gets a [`Plan`] back: the actions to take and the reason.
//! Nothing here touches a disk, a socket or a clock, so every rule can be tested with
//! tables of cases and in simulation.

pub mod decide;
pub mod failover;
pub mod isolation;
pub mod limits;
pub mod lsn;
pub mod model;
pub mod observation;
pub mod plan;
pub mod registry;
pub mod rejoin;
pub mod slots;
pub mod sync;
pub mod takeback;
pub mod view;

pub use decide::decide;
pub use lsn::Lsn;
pub use observation::{ClusterView, Control, DataDir, Local, Observation, SlotObs, StandbyObs};
pub use plan::{Action, Plan};

//! The boundary between the agent and the world: every effect the agent has goes
//! through one of these small interfaces, so the same agent code runs in production
//! (real PostgreSQL, etcd, OS clocks, a fence process) and inside the deterministic
//! simulator (`crates/sim`), which implements each of them on a simulated world.
//!
//! | effect | interface | production |
//! |---|---|---|
//! | store | [`pgbaton_store::Store`] | local / etcd |
//! | PostgreSQL control, SQL probes, data directory | [`Pg`], [`PgSql`] | [`LocalPg`] (wraps `pgbaton_postgres::Instance`/`Sql`) |
//! | wall and fence (boot) clocks | [`Clock`] | [`SystemClock`] |
//! | the fence process | [`crate::fence::FenceProcess`], [`crate::fence::FenceSpawner`] | the `pgbaton fence-watchdog` child |
//! | background tasks | [`Spawner`] | `tokio::spawn` |
//! | a postmaster's exit | [`Pg::watch_exit`] ([`ExitWatch`]) | a pidfd; none in the simulator (the agent then polls) |
//!
//! Local durations (timeouts, "elapsed" in logs) use `tokio::time::Instant`, which is
//! the OS monotonic clock in production and the simulator's virtual clock under a
//! paused tokio runtime. The agent uses no randomness.

mod clock;
mod exit;
mod local;
mod pg;
mod spawn;

pub use clock::{Clock, SystemClock};
pub use exit::{exited, ExitWatch};
pub use local::LocalPg;
pub use pg::{Pg, PgSql};
pub use spawn::{BoxTask, Spawner, TokioSpawner};

use std::sync::Arc;

/// Everything the agent acts on, handed to it at start.
#[derive(Clone)]
pub struct Effects {
    /// The cluster-state store.
    pub store: Arc<dyn pgbaton_store::Store>,
    /// The local PostgreSQL and its data directory.
    pub pg: Arc<dyn Pg>,
    /// This host's clocks.
    pub clock: Arc<dyn Clock>,
    /// The fence, fed by the lease keeper and the main loop.
    pub fence: Arc<crate::fence::FenceFeed>,
    /// Starts the agent's background tasks (the lease keeper).
    pub spawner: Arc<dyn Spawner>,
}

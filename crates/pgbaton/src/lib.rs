//! pgbaton as a library: the agent, the CLI, the HTTP API and the fence, wired together
//! by the `pgbaton` binary (`main.rs`) and, for the agent, by the deterministic
//! simulator (`crates/sim`) through [`effects`] and [`agent::run_with`].

pub mod agent;
pub mod api;
pub mod args;
pub mod cli;
pub mod demo;
pub mod effects;
pub mod exit;
pub mod fence;
pub mod generate;
pub mod logging;
pub mod sdnotify;
pub mod storeconn;

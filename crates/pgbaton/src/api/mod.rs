//! The agent's HTTP API: health checks for load balancers, status, metrics, control.
//!
//! Every health answer comes from the in-memory [`AgentSnapshot`], never from the agent
//! loop or the store, so a busy agent or a frozen store still gets an answer within
//! milliseconds. Cluster-wide views read the store with a deadline. The endpoints are
//! documented in `docs/http-api.md`.

mod auth;
mod control;
mod error;
mod health;
mod lag;
mod merge;
mod metrics;
mod requests;
mod server;
pub mod snapshot;
mod status;
mod tls;
mod views;

#[cfg(test)]
mod tests;

pub use lag::parse_lag;
pub use merge::merge_patch;
pub use snapshot::AgentSnapshot;

use anyhow::Context;
use pgbaton_config::NodeConfig;
use pgbaton_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
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
    /// Raised by `POST /reload` once the file checks out: the agent re-reads it at its
    /// next cycle (the same flag SIGHUP raises). `None`: nobody applies reloads.
    pub reload: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Bind `api.listen` and serve in a background task for the rest of the process: HTTPS
/// when `api.tls` is set, plain HTTP otherwise.
///
/// Fails (and serves nothing) when the address cannot be bound, e.g. it is taken, or when
/// the `api.tls` files are missing, unreadable or not PEM (the error names the key and file).
pub async fn spawn(ctx: ApiContext) -> anyhow::Result<()> {
    let tls = match &ctx.cfg.api.tls {
        Some(files) => Some(tls::load(files).await?),
        None => None,
    };
    let (host, port) = ctx.cfg.api_listen();
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} for the HTTP API"))?;
    match tls {
        Some(config) => {
            tls::serve(listener, config, app(ctx))
                .with_context(|| format!("cannot serve HTTPS on {host}:{port}"))?;
            tracing::info!("HTTPS API listening on {host}:{port}");
        }
        None => {
            tracing::info!("HTTP API listening on {host}:{port}");
            serve(listener, ctx);
        }
    }
    Ok(())
}

fn app(ctx: ApiContext) -> axum::Router {
    server::router(Arc::new(server::Server {
        ctx,
        started: Instant::now(),
    }))
}

/// Serve the API on an already bound `listener` in a background task.
fn serve(listener: tokio::net::TcpListener, ctx: ApiContext) {
    let app = app(ctx);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the HTTP API stopped serving: {e}");
        }
    });
}

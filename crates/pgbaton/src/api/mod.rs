//! The agent's HTTP API: health checks for load balancers, status, metrics, control.
//!
//! Every health answer comes from the in-memory [`AgentSnapshot`], never from the agent
//! loop or the store, so a busy agent or a frozen store still gets an answer within
//! milliseconds. Cluster-wide views come from the store snapshot of the agent's last
//! cycle, never from the store itself. Connections and requests are bounded (see
//! `listener.rs` and `server.rs`); browsers are kept out (see `guard.rs`). The
//! endpoints are documented in `docs/http-api.md`, the threat model in
//! `docs/security.md`.

mod auth;
mod control;
mod error;
mod guard;
mod health;
mod lag;
mod listener;
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

/// Bind `api.listen` and serve on a thread of its own for the rest of the process: HTTPS
/// when `api.tls` is set, plain HTTP otherwise. The agent's HA loop and lease keeper
/// share the main thread; a flood of API clients must not delay them.
///
/// Fails (and serves nothing) when the address cannot be bound, e.g. it is taken, or when
/// the `api.tls` files are missing, unreadable or not PEM (the error names the key and file).
pub async fn spawn(ctx: ApiContext) -> anyhow::Result<()> {
    let tls = match &ctx.cfg.api.tls {
        Some(files) => Some(tls::load(files).await?),
        None => None,
    };
    let (host, port) = ctx.cfg.api_listen();
    if ctx.cfg.api.auth.is_none() && !pgbaton_config::is_loopback(&host) {
        tracing::warn!(
            "the HTTP API on {host}:{port} has no api.auth (api.allow_unauthenticated is set): anyone who can reach it can reconfigure the cluster and run commands as postgres on every member; see docs/security.md"
        );
    }
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} for the HTTP API"))?;
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    listener::spawn_on_own_thread(listener, tls, app(ctx), listener::Limits::default())
        .with_context(|| format!("cannot start the HTTP API thread for {host}:{port}"))?;
    tracing::info!("{scheme} API listening on {host}:{port}");
    Ok(())
}

fn app(ctx: ApiContext) -> axum::Router {
    server::router(Arc::new(server::Server {
        ctx,
        started: Instant::now(),
    }))
}

/// Serve the API on an already bound `listener` in a background task, with `limits`
/// (tests use small ones).
#[cfg(test)]
fn serve(listener: tokio::net::TcpListener, ctx: ApiContext, limits: listener::Limits) {
    listener::spawn(listener, None, app(ctx), limits);
}

//! The routing table and the shared state of the HTTP server, plus the health-check
//! handler (answered from the in-memory snapshot only, never from the store).

use super::error::ApiError;
use super::health::{evaluate, Check};
use super::lag::parse_lag;
use super::status::{status_body, StatusBody};
use super::{auth, control, guard, requests, views, AgentSnapshot, ApiContext};
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::QueryRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, post, MethodFilter};
use axum::{Json, Router};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// Longest time a handler waits for the store before answering 503.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// What every handler shares.
pub struct Server {
    /// The agent's handles.
    pub ctx: ApiContext,
    /// When the API started (stands in for the first cycle in `/liveness`).
    pub started: Instant,
}

impl Server {
    /// A copy of the agent's latest snapshot (the lock is held only for the clone).
    pub fn snapshot(&self) -> AgentSnapshot {
        self.ctx.snapshot.borrow().clone()
    }
}

/// Shared server state as handlers receive it.
pub type Shared = Arc<Server>;

/// The health-check paths and what they ask. `/` and `/master` are Patroni aliases.
pub const PROBES: &[(&str, Check)] = &[
    ("/", Check::Primary),
    ("/primary", Check::Primary),
    ("/master", Check::Primary),
    ("/leader", Check::Primary),
    ("/read-write", Check::Primary),
    ("/replica", Check::Replica),
    ("/read-only", Check::ReadOnly),
    ("/sync", Check::Sync),
    ("/synchronous", Check::Sync),
    ("/async", Check::Async),
    ("/asynchronous", Check::Async),
    ("/health", Check::Health),
    ("/liveness", Check::Liveness),
    ("/readiness", Check::Readiness),
];

/// Every route of the API, on `server`, behind these layers, outermost first:
/// [`guard::require_same_site`] (421 for a foreign `Host`, 403 for a cross-site unsafe
/// request); with `api.auth` set, [`auth::require`] (401 without the right credentials,
/// 429 after repeated failures); the body size limit, body and request timeouts; load
/// shedding (503 beyond [`MAX_IN_FLIGHT`]); and [`guard::require_json`] (415 for an
/// unsafe request that is not JSON). Every refusal comes before any handler runs.
pub fn router(server: Shared) -> Router {
    let auth_guard = auth::Guard::from_config(server.ctx.cfg.api.auth.as_ref());
    let host_guard = guard::HostGuard::from_config(&server.ctx.cfg);
    let client_ca = server
        .ctx
        .cfg
        .api
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some());
    let probe_methods = MethodFilter::GET
        .or(MethodFilter::HEAD)
        .or(MethodFilter::OPTIONS);
    let mut r = Router::new();
    for (path, _) in PROBES {
        r = r.route(path, on(probe_methods, probe));
    }
    let app = r
        .route("/status", get(views::status))
        .route("/patroni", get(views::status))
        .route("/cluster", get(views::cluster))
        .route("/history", get(views::history))
        .route("/metrics", get(views::metrics))
        .route("/config", get(views::config).patch(control::patch_config))
        .route("/reload", post(control::reload))
        .route(
            "/switchover",
            post(requests::switchover).delete(requests::cancel_switchover),
        )
        .route("/failover", post(requests::failover))
        .route("/restart", post(requests::restart))
        .route("/reinitialize", post(requests::reinitialize))
        .fallback(not_found)
        .with_state(server);
    // Layers run outside in: the last added runs first.
    let app = app
        .layer(axum::middleware::from_fn(guard::require_json))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let app = match auth_guard {
        Some(g) => app.layer(axum::middleware::from_fn_with_state(g, auth::require)),
        None => app,
    };
    let app = if client_ca {
        app.layer(axum::middleware::from_fn(auth::require_client_cert))
    } else {
        app
    };
    app.layer(axum::middleware::from_fn_with_state(
        host_guard,
        guard::require_same_site,
    ))
}

/// Requests handled at once; more are answered 503 at once (load shedding).
pub const MAX_IN_FLIGHT: usize = 256;
/// Longest time one request may take, body included (408 after).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next piece of a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body (every body is a small JSON object).
pub const MAX_BODY: usize = 64 * 1024;

async fn overloaded(_: tower::BoxError) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "the API is overloaded; retry shortly"})),
    )
}

/// A health answer's JSON: the check's verdict and the member's status.
#[derive(Serialize)]
struct ProbeBody {
    check: &'static str,
    passed: bool,
    check_reason: String,
    #[serde(flatten)]
    status: StatusBody,
}

/// The `?lag=` limit, if given; 400 when the query string or the value is bad.
pub fn lag_param(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Option<u64>, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))?;
    params
        .get("lag")
        .map(|v| parse_lag(v).map_err(ApiError::bad_request))
        .transpose()
}

async fn probe(
    State(server): State<Shared>,
    method: Method,
    uri: Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Some(check) = PROBES
        .iter()
        .find(|(p, _)| *p == uri.path())
        .map(|(_, c)| *c)
    else {
        return not_found().await.into_response();
    };
    let lag = match lag_param(query) {
        Ok(lag) => lag,
        Err(e) if method == Method::GET => return e.into_response(),
        Err(e) => return e.status().into_response(),
    };
    let snap = server.snapshot();
    let now = Instant::now();
    let verdict = evaluate(check, &snap, now, lag, server.started);
    let code = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if method != Method::GET {
        return code.into_response();
    }
    let body = ProbeBody {
        check: check.name(),
        passed: verdict.ok,
        check_reason: verdict.reason,
        status: status_body(&snap, &server.ctx.cfg.cluster, now),
    };
    (code, Json(body)).into_response()
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "no such endpoint; see docs/http-api.md"})),
    )
}

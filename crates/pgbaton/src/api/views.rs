//! Read-only endpoints, all answered from the agent's in-memory snapshot: `/status`
//! and `/metrics` from its state, `/cluster`, `/history` and `/config` from the store
//! snapshot of its last cycle. No read reaches the store, so a flood of reads cannot
//! slow the store calls the agent and its lease keeper depend on (security review F3).

use super::error::ApiError;
use super::server::{Shared, STORE_TIMEOUT};
use super::status::{status_body, StatusBody};
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pgbaton_core::model::{KEY_CONFIG, KEY_HISTORY};
use pgbaton_store::{Entry, Snapshot};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// `GET /status`: this member's full state. Always 200; see `fresh`.
pub async fn status(State(server): State<Shared>) -> Json<StatusBody> {
    let snap = server.snapshot();
    Json(status_body(&snap, &server.ctx.cfg.cluster, Instant::now()))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(server): State<Shared>) -> Response {
    let snap = server.snapshot();
    let text = super::metrics::render(&snap, &server.ctx.cfg.cluster, Instant::now());
    ([(CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /cluster`: every member, as `pgbaton list --format json` prints them.
pub async fn cluster(State(server): State<Shared>) -> Result<Response, ApiError> {
    let snap = store_snapshot(&server)?;
    Ok(Json(crate::cli::rows_of(&snap)).into_response())
}

/// `GET /history`: the promotions recorded in the store; `[]` when there are none.
pub async fn history(State(server): State<Shared>) -> Result<Json<Value>, ApiError> {
    let snap = store_snapshot(&server)?;
    match snap.entries.get(KEY_HISTORY) {
        None => Ok(Json(Value::Array(Vec::new()))),
        Some(entry) => match serde_json::from_str::<Value>(&entry.value) {
            Ok(v @ Value::Array(_)) => Ok(Json(v)),
            _ => Err(ApiError::Internal(format!(
                "the store's {KEY_HISTORY} key is not a JSON array; inspect it in the store"
            ))),
        },
    }
}

/// `GET /config`: the cluster-wide config from the store (as of the agent's last
/// cycle), with its revision as the `ETag` (send it back in `If-Match` with
/// `PATCH /config`). When the store has no config yet, this member's `bootstrap`
/// section, without an `ETag`.
pub async fn config(State(server): State<Shared>) -> Result<Response, ApiError> {
    let snap = store_snapshot(&server)?;
    match snap.entries.get(KEY_CONFIG) {
        Some(entry) => {
            let value: Value = serde_json::from_str(&entry.value).map_err(|e| {
                ApiError::Internal(format!("the store's {KEY_CONFIG} key is not JSON: {e}"))
            })?;
            let mut resp = Json(value).into_response();
            if let Ok(tag) = HeaderValue::from_str(&etag(entry.mod_revision)) {
                resp.headers_mut().insert(ETAG, tag);
            }
            Ok(resp)
        }
        None => Ok(Json(&server.ctx.cfg.bootstrap).into_response()),
    }
}

/// The store snapshot of the agent's last cycle; 503 before the first one.
fn store_snapshot(server: &Shared) -> Result<Arc<Snapshot>, ApiError> {
    server.snapshot().store.ok_or_else(|| {
        ApiError::Unavailable(
            "the agent has not read the store yet; try again in a moment".to_string(),
        )
    })
}

/// The `ETag` of a store revision.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// Read one key within [`STORE_TIMEOUT`]; 503 when the store does not answer.
pub async fn read_key(server: &Shared, key: &str) -> Result<Option<Entry>, ApiError> {
    tokio::time::timeout(STORE_TIMEOUT, server.ctx.store.get(key))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| ApiError::Unavailable(format!("cannot read {key:?} from the store: {e}")))
}

/// The 503 of a store call that ran out of time.
pub fn timed_out() -> ApiError {
    ApiError::Unavailable(format!(
        "the store did not answer within {} s; try again, or check the store",
        STORE_TIMEOUT.as_secs()
    ))
}

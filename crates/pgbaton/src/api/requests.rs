//! `POST /switchover`, `DELETE /switchover`, `POST /failover`, `POST /reinitialize` and
//! `POST /restart`: operator requests, checked and written to the store by the same
//! functions as the CLI (`crate::cli::ops`). The API answers 202 once the request is in
//! the store and does not wait for it: follow it with `GET /cluster` or `pgbaton list`.

use super::error::ApiError;
use super::server::{Shared, STORE_TIMEOUT};
use super::views::timed_out;
use crate::cli::ops::{self, RequestError, SwitchoverAsk};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pgbaton_core::model::SwitchoverRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;

/// The body of `POST /switchover` (Patroni's field names; `to` is an alias of
/// `candidate`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchoverBody {
    leader: Option<String>,
    candidate: Option<String>,
    to: Option<String>,
    scheduled_at: Option<String>,
}

/// The body of `POST /failover`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverBody {
    candidate: Option<String>,
    to: Option<String>,
    #[serde(default)]
    force: bool,
}

/// The body of `POST /reinitialize`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReinitBody {
    member: Option<String>,
    /// Accepted for Patroni compatibility; the API never asks for confirmation.
    #[serde(default)]
    #[allow(dead_code)]
    force: bool,
}

/// The body of `POST /restart`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartBody {
    member: Option<String>,
}

/// Where to follow a request's progress.
const FOLLOW: &str = "follow it with `pgbaton list` or GET /cluster";

/// `POST /switchover`: check the request like `pgbaton switchover` and write it; 202.
pub async fn switchover(State(server): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let b: SwitchoverBody = parse_body(&body, "{\"candidate\": \"node2\"}")?;
    let candidate = match (b.candidate, b.to) {
        (Some(c), Some(t)) if c != t => {
            return Err(ApiError::bad_request(format!(
                "\"candidate\" ({c:?}) and \"to\" ({t:?}) differ; give one of them"
            )))
        }
        (c, t) => c.or(t),
    };
    let scheduled_ms = b
        .scheduled_at
        .as_deref()
        .map(|s| {
            ops::parse_rfc3339(s).map_err(|e| ApiError::bad_request(format!("scheduled_at: {e}")))
        })
        .transpose()?;
    let ask = SwitchoverAsk {
        leader: b.leader,
        candidate,
        scheduled_ms,
    };
    let store = server.ctx.store.as_ref();
    let bootstrap = &server.ctx.cfg.bootstrap;
    let req = bounded(async {
        let req = ops::plan_switchover(store, bootstrap, &ask).await?;
        ops::submit(store, &req).await?;
        Ok(req)
    })
    .await?;
    let from = req.from.clone().unwrap_or_default();
    let message = match req.scheduled_ms {
        Some(ms) => format!(
            "switchover from {from} to {} scheduled at {}; cancel it with DELETE /switchover; {FOLLOW}",
            req.to,
            ops::rfc3339(ms)
        ),
        None => format!("switchover from {from} to {} requested; {FOLLOW}", req.to),
    };
    tracing::info!("{message} (through the HTTP API)");
    Ok(accepted(message, &req))
}

/// `DELETE /switchover`: cancel a pending request that has not started; 200, or 404
/// when none is pending, 409 when it is already under way.
pub async fn cancel_switchover(State(server): State<Shared>) -> Result<Response, ApiError> {
    let store = server.ctx.store.as_ref();
    let req = bounded(ops::cancel_switchover(store)).await?;
    let message = format!("the {} to {} was cancelled", kind(&req), req.to);
    tracing::info!("{message} (through the HTTP API)");
    Ok(Json(json!({"message": message, "request": req})).into_response())
}

/// `POST /failover`: check the request like `pgbaton failover` and write it; 202.
pub async fn failover(State(server): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let b: FailoverBody = parse_body(&body, "{\"candidate\": \"node2\", \"force\": false}")?;
    let to = match (b.candidate, b.to) {
        (Some(c), Some(t)) if c != t => {
            return Err(ApiError::bad_request(format!(
                "\"candidate\" ({c:?}) and \"to\" ({t:?}) differ; give one of them"
            )))
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => {
            return Err(ApiError::bad_request(
                "a failover needs \"candidate\": the member to promote, e.g. {\"candidate\": \"node2\"}",
            ))
        }
    };
    let store = server.ctx.store.as_ref();
    let bootstrap = &server.ctx.cfg.bootstrap;
    let req = bounded(async {
        let (req, _lag) = ops::plan_failover(store, bootstrap, &to, b.force).await?;
        ops::submit(store, &req).await?;
        Ok(req)
    })
    .await?;
    let message = format!(
        "failover to {to} requested{}; {FOLLOW}",
        if req.force {
            " (forced: commits it lacks are lost)"
        } else {
            ""
        }
    );
    tracing::warn!("{message} (through the HTTP API)");
    Ok(accepted(message, &req))
}

/// `POST /reinitialize`: ask `member` (default: this member) to delete its data and
/// clone again from the primary, like `pgbaton reinit`; 202.
pub async fn reinitialize(State(server): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let b: ReinitBody = parse_body(&body, "{\"member\": \"node3\"}")?;
    let name = b.member.unwrap_or_else(|| server.ctx.cfg.name.clone());
    let store = server.ctx.store.as_ref();
    bounded(async {
        ops::check_reinit(store, &name).await?;
        ops::submit_reinit(store, &name).await
    })
    .await?;
    let message = format!("reinit of {name} requested; {FOLLOW}");
    tracing::warn!("{message} (through the HTTP API)");
    let body = json!({"message": message, "member": name});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /restart`: ask `member` (default: the member whose API is called) to restart
/// its PostgreSQL in place, in the same role; 202. Its agent does it on its next cycle
/// and clears the request.
pub async fn restart(State(server): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let b: RestartBody = parse_body(&body, "{\"member\": \"node2\"}")?;
    let name = b.member.unwrap_or_else(|| server.ctx.cfg.name.clone());
    let store = server.ctx.store.as_ref();
    bounded(async {
        ops::check_restart(store, &name).await?;
        ops::submit_restart(store, &name).await
    })
    .await?;
    let message = format!("restart of {name}'s PostgreSQL requested; {FOLLOW}");
    tracing::warn!("{message} (through the HTTP API)");
    let body = json!({"message": message, "member": name});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// 202 with the message and the request as written to the store.
fn accepted(message: String, req: &SwitchoverRequest) -> Response {
    let mut body = json!({"message": message, "request": req});
    if let Some(ms) = req.scheduled_ms {
        body["scheduled_at"] = json!(ops::rfc3339(ms));
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn kind(req: &SwitchoverRequest) -> &'static str {
    match req.kind {
        pgbaton_core::model::RequestKind::Switchover => "switchover",
        pgbaton_core::model::RequestKind::Failover => "failover",
    }
}

/// Run the store part of a request within [`STORE_TIMEOUT`]; 503 when it runs out.
async fn bounded<T>(f: impl Future<Output = Result<T, RequestError>>) -> Result<T, ApiError> {
    tokio::time::timeout(STORE_TIMEOUT, f)
        .await
        .map_err(|_| timed_out())?
        .map_err(ApiError::from)
}

/// A JSON object body of shape `T`; an empty body is `{}`. 400 with the reason and an
/// `example` otherwise.
fn parse_body<T: DeserializeOwned + Default>(body: &[u8], example: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid: {e}; send a JSON object such as {example}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_strict_json_objects() {
        let b: SwitchoverBody = parse_body(b"", "{}").unwrap();
        assert!(b.candidate.is_none());
        let b: SwitchoverBody = parse_body(br#"{"leader": "node1", "to": "node2"}"#, "{}").unwrap();
        assert_eq!(b.to.as_deref(), Some("node2"));
        let e = parse_body::<SwitchoverBody>(br#"{"candidat": "node2"}"#, "{}").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("candidat"), "{e}");
        let e =
            parse_body::<FailoverBody>(br#"{"candidate": "n", "force": "yes"}"#, "{}").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(parse_body::<ReinitBody>(b"[1]", "{}").is_err());
        let b: ReinitBody = parse_body(b" \n", "{}").unwrap();
        assert!(b.member.is_none());
    }
}

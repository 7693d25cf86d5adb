//! Config endpoints that change something: `PATCH /config` (compare-and-set merge into
//! the cluster-wide config) and `POST /reload`. Operator requests are in `requests.rs`.
//! Unsafe methods need `api.auth` credentials when it is set (see `auth.rs`).

use super::error::ApiError;
use super::merge::{parse_patch, patched_config};
use super::server::{Shared, STORE_TIMEOUT};
use super::views::{etag, read_key, timed_out};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pgbaton_core::model::KEY_CONFIG;
use pgbaton_store::Expect;
use serde_json::Value;

/// `PATCH /config`: merge the JSON body into the store's `config` key.
///
/// The write is a compare-and-set on the revision read (or on the `If-Match` revision
/// the client sends, from `GET /config`'s `ETag`): a concurrent change gives 409 and
/// changes nothing. Invalid results give 400 and change nothing.
pub async fn patch_config(
    State(server): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = parse_patch(&body)?;
    let wanted = if_match(&headers)?;
    let current = read_key(&server, KEY_CONFIG).await?;
    let (base, expect) = match (&current, wanted) {
        (Some(e), Some(rev)) if e.mod_revision != rev => {
            return Err(ApiError::Conflict(format!(
                "the config changed: it is at revision {}, the request expected {rev}; GET /config and retry",
                e.mod_revision
            )))
        }
        (None, Some(rev)) => {
            return Err(ApiError::Conflict(format!(
                "the request expected config revision {rev}, but the store has no config key yet; retry without If-Match"
            )))
        }
        (Some(e), _) => {
            // Untrusted: unknown fields and restricted parameters are dropped; an
            // unusable value is refused (repair it with `pgbaton edit-config`).
            let (clean, _) = pgbaton_core::view::read_config(&e.value).map_err(|err| {
                ApiError::Conflict(format!(
                    "the store's {KEY_CONFIG} key is unusable ({err}); repair it with pgbaton edit-config"
                ))
            })?;
            let v = serde_json::to_value(&clean).map_err(|err| {
                ApiError::Internal(format!("cannot encode the config: {err}"))
            })?;
            (v, Expect::ModRevision(e.mod_revision))
        }
        (None, None) => {
            let v = serde_json::to_value(&server.ctx.cfg.bootstrap).map_err(|err| {
                ApiError::Internal(format!("cannot encode the bootstrap config: {err}"))
            })?;
            (v, Expect::Absent)
        }
    };
    let config = patched_config(base, &patch, server.ctx.cfg.watchdog.safety_margin)?;
    let text = serde_json::to_string(&config)
        .map_err(|e| ApiError::Internal(format!("cannot encode the config: {e}")))?;
    let written = tokio::time::timeout(
        STORE_TIMEOUT,
        server.ctx.store.put(KEY_CONFIG, &text, None, expect),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| {
        ApiError::Unavailable(format!(
            "cannot write the config to the store (the outcome is unknown; GET /config to check): {e}"
        ))
    })?;
    if !written {
        return Err(ApiError::Conflict(
            "the config changed while it was being patched; GET /config and retry".to_string(),
        ));
    }
    tracing::info!(
        "cluster config changed through the HTTP API: keys {:?}",
        patch
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    );
    let mut resp = Json(&config).into_response();
    // Best effort: the new revision, for a following conditional PATCH.
    if let Ok(Some(entry)) = read_key(&server, KEY_CONFIG).await {
        if entry.value == text {
            if let Ok(tag) = HeaderValue::from_str(&etag(entry.mod_revision)) {
                resp.headers_mut().insert(ETAG, tag);
            }
        }
    }
    Ok(resp)
}

/// The revision in `If-Match` (`"12"`, `W/"12"` or `12`), if sent.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(raw) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or_default().trim();
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "If-Match {text:?} is not a config revision; send the ETag of GET /config, e.g. If-Match: \"12\""
        ))
    })
}

/// `POST /reload`: re-read and validate the member's config file. Always 200 when the
/// file could be checked; the body says whether it is valid and lists the problems.
///
/// A valid file is handed to the agent (as SIGHUP does). The agent applies tags, PostgreSQL parameters and `pg_hba` lines at
/// its next cycle, and refuses (in its log) changes to keys that need a restart.
pub async fn reload(State(server): State<Shared>) -> Result<Json<Value>, ApiError> {
    let path = server.ctx.config_path.clone();
    let origin = path.display().to_string();
    let loaded = tokio::task::spawn_blocking(move || pgbaton_config::load(&path))
        .await
        .map_err(|e| ApiError::Internal(format!("the reload task failed: {e}")))?;
    let body = match loaded {
        Ok(_) => {
            let handed = match &server.ctx.reload {
                Some(flag) => {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    true
                }
                None => false,
            };
            serde_json::json!({
                "file": origin,
                "valid": true,
                "applied": handed,
                "problems": [],
                "message": if handed {
                    "the config file is valid; the agent applies it at its next cycle (see its log)"
                } else {
                    "the config file is valid; no agent runs behind this API to apply it"
                },
            })
        }
        Err(e) => {
            let problems: Vec<String> = match e.problems() {
                [] => vec![e.to_string()],
                ps => ps.iter().map(|p| p.render(&origin)).collect(),
            };
            serde_json::json!({
                "file": origin,
                "valid": false,
                "applied": false,
                "problems": problems,
                "message": "the config file has problems; nothing was changed",
            })
        }
    };
    Ok(Json(body))
}

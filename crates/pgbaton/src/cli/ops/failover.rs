//! Manual failover requests: promote a chosen member while there is no healthy primary.

use super::switchover::kind_name;
use super::{cluster_config, now_ms, pending, rows, RequestError};
use pgbaton_core::model::{ClusterConfig, RequestKind, SwitchoverPhase, SwitchoverRequest};
use pgbaton_store::Store;

/// Check a failover to `to` against the cluster in `store` and build the request to
/// write with [`super::submit`]; also returns the candidate's lag in bytes.
///
/// Refuses when a request is pending or a healthy primary holds the leader key
/// ([`RequestError::Conflict`]: use a switchover), when `to` is unknown or not a
/// running replica, and when it lags more than `maximum_lag_on_failover` unless
/// `force` accepts losing those commits.
pub async fn plan_failover(
    store: &dyn Store,
    bootstrap: &ClusterConfig,
    to: &str,
    force: bool,
) -> Result<(SwitchoverRequest, u64), RequestError> {
    if let Some((req, _)) = pending(store).await? {
        return Err(RequestError::Conflict(format!(
            "a {} to {} is pending; wait for it or cancel it",
            kind_name(req.kind),
            req.to
        )));
    }
    let rows = rows(store).await?;
    if let Some(p) = rows.iter().find(|r| r.leader && r.state == "running") {
        return Err(RequestError::Conflict(format!(
            "{} is a healthy primary: use `pgbaton switchover --to {to}` (POST /switchover) instead",
            p.name
        )));
    }
    let row = rows
        .iter()
        .find(|r| r.name == to)
        .ok_or_else(|| RequestError::Refused(format!("unknown member {to:?}")))?;
    if !matches!(row.state.as_str(), "streaming" | "in recovery") {
        return Err(RequestError::Refused(format!(
            "{to} cannot be promoted: it is {}",
            row.state
        )));
    }
    let (ccfg, _) = cluster_config(store, bootstrap).await?;
    let lag = row.lag_bytes.unwrap_or(0);
    if lag > ccfg.maximum_lag_on_failover && !force {
        return Err(RequestError::Refused(format!(
            "{to} lags {lag} bytes behind the last primary: promoting it loses those commits; \
             add --force (\"force\": true over HTTP) to accept the loss"
        )));
    }
    let req = SwitchoverRequest {
        kind: RequestKind::Failover,
        from: None,
        to: to.to_string(),
        scheduled_ms: None,
        requested_ms: now_ms(),
        force,
        phase: SwitchoverPhase::Requested,
    };
    Ok((req, lag))
}

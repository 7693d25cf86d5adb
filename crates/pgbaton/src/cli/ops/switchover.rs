//! Switchover requests: who may hand over to whom, writing the request, cancelling it.

use super::{cluster_config, now_ms, pending, rows, RequestError};
use crate::cli::list::Row;
use pgbaton_core::model::{
    ClusterConfig, RequestKind, SwitchoverPhase, SwitchoverRequest, KEY_SWITCHOVER,
};
use pgbaton_store::{Expect, Store};

/// What an operator asked for (CLI flags, or the HTTP body).
#[derive(Debug, Clone, Default)]
pub struct SwitchoverAsk {
    /// The primary the operator expects (refused when another member is primary).
    pub leader: Option<String>,
    /// The member to promote; the best streaming replica when absent.
    pub candidate: Option<String>,
    /// Not before this wall-clock time (ms since the Unix epoch); now when absent.
    pub scheduled_ms: Option<u64>,
}

/// Check `ask` against the cluster in `store` and build the request to write with
/// [`submit`]. Refuses when a request is pending, no healthy primary holds the leader
/// key, `leader` is not the primary, the cluster is paused and no candidate is named,
/// or the candidate is unknown, not streaming, or lags more than
/// `maximum_lag_on_failover`. `bootstrap` stands in for the cluster config before the
/// store has one.
pub async fn plan_switchover(
    store: &dyn Store,
    bootstrap: &ClusterConfig,
    ask: &SwitchoverAsk,
) -> Result<SwitchoverRequest, RequestError> {
    if let Some((req, _)) = pending(store).await? {
        return Err(RequestError::Conflict(format!(
            "another {} to {} is pending; cancel it first with `pgbaton switchover --cancel` (DELETE /switchover)",
            kind_name(req.kind),
            req.to
        )));
    }
    let rows = rows(store).await?;
    let (ccfg, _) = cluster_config(store, bootstrap).await?;
    let primary = rows
        .iter()
        .find(|r| r.leader && r.role == "primary" && r.state == "running")
        .ok_or_else(|| {
            RequestError::Refused(
                "no healthy primary holds the leader key: a switchover needs one (see `pgbaton failover`)"
                    .to_string(),
            )
        })?;
    if let Some(leader) = &ask.leader {
        if leader != &primary.name {
            return Err(RequestError::Refused(format!(
                "{leader} is not the primary: {} is; look with `pgbaton list`",
                primary.name
            )));
        }
    }
    if ccfg.paused && ask.candidate.is_none() {
        return Err(RequestError::Refused(
            "the cluster is paused: name the candidate (--to, or \"candidate\" over HTTP) to switch over anyway"
                .to_string(),
        ));
    }
    let to = match &ask.candidate {
        Some(name) => {
            let row = rows
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| RequestError::Refused(format!("unknown member {name:?}")))?;
            check_candidate(row, primary, ccfg.maximum_lag_on_failover)?;
            name.clone()
        }
        None => best_candidate(&rows, primary, ccfg.maximum_lag_on_failover)?,
    };
    Ok(SwitchoverRequest {
        kind: RequestKind::Switchover,
        from: Some(primary.name.clone()),
        to,
        scheduled_ms: ask.scheduled_ms,
        requested_ms: now_ms(),
        force: false,
        phase: SwitchoverPhase::Requested,
    })
}

/// `switchover` or `failover`, as people write it.
pub fn kind_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Switchover => "switchover",
        RequestKind::Failover => "failover",
    }
}

/// Why `row` cannot take over from `primary` now, if it cannot.
pub fn check_candidate(row: &Row, primary: &Row, max_lag: u64) -> Result<(), RequestError> {
    if row.name == primary.name {
        return Err(RequestError::Refused(format!(
            "{} is already the primary",
            row.name
        )));
    }
    if row.state != "streaming" {
        return Err(RequestError::Refused(format!(
            "{} cannot take over: it is {}, not streaming",
            row.name, row.state
        )));
    }
    let lag = row.lag_bytes.unwrap_or(0);
    if lag > max_lag {
        return Err(RequestError::Refused(format!(
            "{} cannot take over: it lags {lag} bytes, more than maximum_lag_on_failover ({max_lag})",
            row.name
        )));
    }
    Ok(())
}

/// The streaming replica to promote when none is named: least lag, then the highest
/// `failover_priority`, then the name; `nofailover` members are skipped.
pub fn best_candidate(rows: &[Row], primary: &Row, max_lag: u64) -> Result<String, RequestError> {
    let mut fit: Vec<&Row> = rows
        .iter()
        .filter(|r| check_candidate(r, primary, max_lag).is_ok())
        .filter(|r| !r.tags.iter().any(|t| t == "nofailover"))
        .collect();
    fit.sort_by(|a, b| {
        a.lag_bytes
            .unwrap_or(0)
            .cmp(&b.lag_bytes.unwrap_or(0))
            .then(priority(b).cmp(&priority(a)))
            .then(a.name.cmp(&b.name))
    });
    fit.first().map(|r| r.name.clone()).ok_or_else(|| {
        RequestError::Refused(
            "no member can take over: none is streaming within the lag limit".to_string(),
        )
    })
}

fn priority(r: &Row) -> i32 {
    r.tags
        .iter()
        .find_map(|t| {
            t.strip_prefix("failover_priority=")
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Write `req` into the `switchover` key, only if no request is there (compare-and-set):
/// a request made at the same moment is a [`RequestError::Conflict`].
pub async fn submit(store: &dyn Store, req: &SwitchoverRequest) -> Result<(), RequestError> {
    let value = serde_json::to_string(req)
        .map_err(|e| RequestError::Damaged(format!("cannot encode the request: {e}")))?;
    let written = store
        .put(KEY_SWITCHOVER, &value, None, Expect::Absent)
        .await
        .map_err(|e| {
            RequestError::Store(format!(
                "cannot write the request to the store (it may or may not have been written; look with `pgbaton list`): {e}"
            ))
        })?;
    if !written {
        return Err(RequestError::Conflict(
            "another request was made at the same moment; look with `pgbaton list`".to_string(),
        ));
    }
    Ok(())
}

/// Withdraw the pending request, if it has not started yet; returns what was cancelled.
pub async fn cancel_switchover(store: &dyn Store) -> Result<SwitchoverRequest, RequestError> {
    let Some((req, revision)) = pending(store).await? else {
        return Err(RequestError::NotFound(
            "no switchover is pending".to_string(),
        ));
    };
    if req.phase != SwitchoverPhase::Requested {
        return Err(RequestError::Conflict(format!(
            "the {} to {} is already under way and cannot be cancelled",
            kind_name(req.kind),
            req.to
        )));
    }
    let deleted = store
        .delete(KEY_SWITCHOVER, Expect::ModRevision(revision))
        .await
        .map_err(|e| {
            RequestError::Store(format!(
                "cannot delete the request in the store (look with `pgbaton list`): {e}"
            ))
        })?;
    if !deleted {
        return Err(RequestError::Conflict(
            "the switchover request changed meanwhile; look again with `pgbaton list`".to_string(),
        ));
    }
    Ok(req)
}

//! The rules and store writes behind the operator requests (`switchover`, `failover`,
//! `reinit`, `restart`), shared by the CLI and the HTTP API: they validate against the cluster as
//! the store shows it, write the request key with a compare-and-set, and print nothing.

mod error;
mod failover;
mod member_request;
mod reinit;
mod restart;
mod switchover;
mod when;

pub use error::RequestError;
pub use failover::plan_failover;
pub use reinit::{check_reinit, submit_reinit};
pub use restart::{check_restart, submit_restart};
pub use switchover::{cancel_switchover, plan_switchover, submit, SwitchoverAsk};
pub use when::{parse_at, parse_rfc3339, rfc3339};

use pgbaton_core::model::{ClusterConfig, SwitchoverRequest, KEY_CONFIG, KEY_SWITCHOVER};
use pgbaton_store::{Entry, Store};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Read `key`; a store failure is [`RequestError::Store`].
pub async fn read(store: &dyn Store, key: &str) -> Result<Option<Entry>, RequestError> {
    store
        .get(key)
        .await
        .map_err(|e| RequestError::Store(format!("cannot read {key:?} from the store: {e}")))
}

/// The cluster config in the store with its revision, or `bootstrap` (and no revision)
/// before the cluster has one. Unknown fields and restricted parameters in the store's
/// value are dropped, as the agents drop them.
pub async fn cluster_config(
    store: &dyn Store,
    bootstrap: &ClusterConfig,
) -> Result<(ClusterConfig, Option<i64>), RequestError> {
    match read(store, KEY_CONFIG).await? {
        // Read as the agents read it: junk dropped, bounds checked.
        Some(e) => Ok((
            pgbaton_core::view::read_config(&e.value)
                .map_err(|err| {
                    RequestError::Damaged(format!(
                        "the store's config key is unusable ({err}); repair it with pgbaton edit-config"
                    ))
                })?
                .0,
            Some(e.mod_revision),
        )),
        None => Ok((bootstrap.clone(), None)),
    }
}

/// The pending request in the `switchover` key, with its revision.
pub async fn pending(store: &dyn Store) -> Result<Option<(SwitchoverRequest, i64)>, RequestError> {
    let Some(entry) = read(store, KEY_SWITCHOVER).await? else {
        return Ok(None);
    };
    let req = serde_json::from_str(&entry.value).map_err(|e| {
        RequestError::Damaged(format!(
            "the store's {KEY_SWITCHOVER} key is unreadable ({e}); delete it in the store"
        ))
    })?;
    Ok(Some((req, entry.mod_revision)))
}

/// The members as `pgbaton list` shows them.
pub async fn rows(store: &dyn Store) -> Result<Vec<super::list::Row>, RequestError> {
    super::list::fetch(store)
        .await
        .map_err(|e| RequestError::Store(format!("cannot read the cluster from the store: {e:#}")))
}

#[cfg(test)]
mod tests;

//! Restart requests: which member's PostgreSQL may be restarted in place, and writing
//! the `restart` key its agent watches.

use super::{read, rows, RequestError};
use pgbaton_core::model::KEY_RESTART;
use pgbaton_store::{Expect, Store};

/// Check that member `name` may be restarted: it exists and its agent runs (the agent
/// carries the restart out, keeping its role).
pub async fn check_restart(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    let rows = rows(store).await?;
    let row = rows
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| RequestError::Refused(format!("unknown member {name:?}")))?;
    if row.port == 0 {
        return Err(RequestError::Refused(format!(
            "{name}'s agent is not running: start it first"
        )));
    }
    Ok(())
}

/// Write the `restart` key for `name`, only if no restart is pending (compare-and-set).
pub async fn submit_restart(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    let written = store
        .put(KEY_RESTART, name, None, Expect::Absent)
        .await
        .map_err(|e| {
            RequestError::Store(format!(
                "cannot write the restart request to the store (look with `pgbaton list`): {e}"
            ))
        })?;
    if written {
        return Ok(());
    }
    let who = read(store, KEY_RESTART)
        .await
        .ok()
        .flatten()
        .map(|e| format!(" (of {})", e.value))
        .unwrap_or_default();
    Err(RequestError::Conflict(format!(
        "another restart is in progress{who}; wait for it"
    )))
}

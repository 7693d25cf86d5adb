//! Re-clone requests: which member may be rebuilt, and writing the `reinit` key.

use super::{read, rows, RequestError};
use pgbaton_core::model::KEY_REINIT;
use pgbaton_store::{Expect, Store};

/// Check that member `name` may be re-cloned: it exists, is not the primary, and its
/// agent runs (it carries the re-clone out).
pub async fn check_reinit(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    let rows = rows(store).await?;
    let row = rows
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| RequestError::Refused(format!("unknown member {name:?}")))?;
    if row.leader {
        return Err(RequestError::Refused(format!(
            "{name} is the primary: switch over first, then reinit it"
        )));
    }
    if row.port == 0 {
        return Err(RequestError::Refused(format!(
            "{name}'s agent is not running: start it first"
        )));
    }
    Ok(())
}

/// Write the `reinit` key for `name`, only if no re-clone is pending (compare-and-set).
pub async fn submit_reinit(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    let written = store
        .put(KEY_REINIT, name, None, Expect::Absent)
        .await
        .map_err(|e| {
            RequestError::Store(format!(
                "cannot write the reinit request to the store (look with `pgbaton list`): {e}"
            ))
        })?;
    if written {
        return Ok(());
    }
    let who = read(store, KEY_REINIT)
        .await
        .ok()
        .flatten()
        .map(|e| format!(" (of {})", e.value))
        .unwrap_or_default();
    Err(RequestError::Conflict(format!(
        "another reinit is in progress{who}"
    )))
}

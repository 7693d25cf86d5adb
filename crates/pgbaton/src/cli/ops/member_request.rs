//! Requests addressed to one member through a store key (`restart`, `reinit`): the
//! member must exist and run its agent, and only one such request may be pending.

use super::{read, rows, RequestError};
use crate::cli::list::Row;
use pgbaton_store::{Expect, Store};

/// The row of member `name`, refused when it is unknown or its agent is not running.
pub async fn running_member(store: &dyn Store, name: &str) -> Result<Row, RequestError> {
    let rows = rows(store).await?;
    let row = rows
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| RequestError::Refused(format!("unknown member {name:?}")))?;
    if row.port == 0 {
        return Err(RequestError::Refused(format!(
            "{name}'s agent is not running: start it first"
        )));
    }
    Ok(row)
}

/// Write `key` = `name` only if no request of this kind is pending (compare-and-set).
/// `what` names the request in messages; `busy` ends the conflict message.
pub async fn submit(
    store: &dyn Store,
    key: &str,
    what: &str,
    name: &str,
    busy: &str,
) -> Result<(), RequestError> {
    let written = store
        .put(key, name, None, Expect::Absent)
        .await
        .map_err(|e| {
            RequestError::Store(format!(
                "cannot write the {what} request to the store (look with `pgbaton list`): {e}"
            ))
        })?;
    if written {
        return Ok(());
    }
    let who = read(store, key)
        .await
        .ok()
        .flatten()
        .map(|e| format!(" (of {})", e.value))
        .unwrap_or_default();
    Err(RequestError::Conflict(format!(
        "another {what} is in progress{who}{busy}"
    )))
}

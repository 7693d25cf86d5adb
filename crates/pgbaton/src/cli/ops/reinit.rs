//! Re-clone requests: which member may be rebuilt, and writing the `reinit` key.

use super::member_request::{running_member, submit};
use super::RequestError;
use pgbaton_core::model::KEY_REINIT;
use pgbaton_store::Store;

/// Check that member `name` may be re-cloned: it exists, is not the primary, and its
/// agent runs (it carries the re-clone out).
pub async fn check_reinit(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    let row = running_member(store, name).await?;
    if row.leader {
        return Err(RequestError::Refused(format!(
            "{name} is the primary: switch over first, then reinit it"
        )));
    }
    Ok(())
}

/// Write the `reinit` key for `name`, only if no re-clone is pending (compare-and-set).
pub async fn submit_reinit(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    submit(store, KEY_REINIT, "reinit", name, "").await
}

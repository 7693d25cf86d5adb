//! Restart requests: which member's PostgreSQL may be restarted in place, and writing
//! the `restart` key its agent watches.

use super::member_request::{running_member, submit};
use super::RequestError;
use pgbaton_core::model::KEY_RESTART;
use pgbaton_store::Store;

/// Check that member `name` may be restarted: it exists and its agent runs (the agent
/// carries the restart out, keeping its role).
pub async fn check_restart(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    running_member(store, name).await.map(|_| ())
}

/// Write the `restart` key for `name`, only if no restart is pending (compare-and-set).
pub async fn submit_restart(store: &dyn Store, name: &str) -> Result<(), RequestError> {
    submit(store, KEY_RESTART, "restart", name, "; wait for it").await
}

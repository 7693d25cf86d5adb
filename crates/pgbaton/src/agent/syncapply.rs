//! Whether the checkpointer has applied `synchronous_standby_names` (safety review
//! finding 12). Commits wait for standbys only once the checkpointer process re-read
//! the setting, and it defers that while a checkpoint is immediate or behind schedule:
//! a standby listed in the `sync` key meanwhile could miss commits that were
//! acknowledged without waiting. A `CHECKPOINT` requested after the reload starts only
//! once the checkpointer went through its loop, where it re-reads the configuration,
//! so the agent runs one in the background and lists no new synchronous standby
//! before it has finished.

use crate::effects::Pg;
use futures::FutureExt;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What the agent knows about the checkpointer's copy of the setting.
#[derive(Default)]
pub(super) struct SyncApplied {
    /// A non-empty setting is known to be applied.
    confirmed: bool,
    /// A `CHECKPOINT` requested after a non-empty setting was seen.
    task: Option<JoinHandle<Result<(), String>>>,
}

impl SyncApplied {
    /// Forget what is known: the setting became empty, or the member is no longer
    /// primary. A later non-empty setting needs a new confirmation.
    pub(super) fn reset(&mut self) {
        self.confirmed = false;
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// The primary's `SHOW synchronous_standby_names` returned `names` (so the
    /// postmaster has already signalled the checkpointer): whether the checkpointer may
    /// not have applied it yet. Starts the confirming `CHECKPOINT` when needed.
    pub(super) fn pending(&mut self, names: &str, pg: &Arc<dyn Pg>) -> bool {
        if names.is_empty() {
            self.reset();
            return false;
        }
        if self.confirmed {
            return false;
        }
        if let Some(task) = &self.task {
            if !task.is_finished() {
                return true;
            }
        }
        if let Some(task) = self.task.take() {
            match task.now_or_never() {
                Some(Ok(Ok(()))) => {
                    tracing::info!(
                        "the checkpointer applied synchronous_standby_names '{names}': \
                         commits wait for synchronous standbys"
                    );
                    self.confirmed = true;
                    return false;
                }
                Some(Ok(Err(e))) => tracing::warn!(
                    "CHECKPOINT (to make sure commits wait for synchronous standbys) \
                     failed: {e}; trying again"
                ),
                _ => {}
            }
        }
        let pg = pg.clone();
        self.task = Some(tokio::spawn(async move {
            let sql = pg.connect().await.map_err(|e| e.to_string())?;
            sql.checkpoint().await.map_err(|e| e.to_string())
        }));
        true
    }
}

impl Drop for SyncApplied {
    fn drop(&mut self) {
        self.reset();
    }
}

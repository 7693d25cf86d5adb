//! The lease keeper: a task that does nothing but keep this member's store lease alive.
//!
//! It runs apart from the main loop, so a slow PostgreSQL call or a long clone cannot
//! delay a renewal. The main loop reads the current lease (and when it was last
//! renewed) from a watch channel; a lost lease is replaced by a fresh one, and the main
//! loop re-attaches the member key (and the leader key) to it.

use crate::effects::{Clock, Spawner};
use pgbaton_store::{LeaseId, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The lease as the keeper last saw it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseState {
    /// The live lease, if the keeper holds one.
    pub lease: Option<LeaseId>,
    /// When it was last granted or renewed successfully.
    pub renewed_at: Option<Instant>,
}

/// Start the keeper with `spawner`. It stops when the returned receiver and every clone
/// are dropped, or when the returned task is aborted.
pub fn spawn(
    store: Arc<dyn Store>,
    ttl: Duration,
    fence: Arc<crate::fence::FenceFeed>,
    clock: Arc<dyn Clock>,
    spawner: &dyn Spawner,
) -> (watch::Receiver<LeaseState>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(LeaseState {
        lease: None,
        renewed_at: None,
    });
    let interval = (ttl / 4).max(Duration::from_millis(200));
    let keeper = spawner.spawn(Box::pin(async move {
        let mut lease: Option<LeaseId> = None;
        let mut holding_back = false;
        let mut fed = fence.subscribe();
        loop {
            if lease.is_some() && !fence.may_renew(clock.boot()) {
                // The main loop has not confirmed the leader key within the fence
                // deadline: let the lease expire so that a replica can take over
                // (safety review finding 2). The fence has stopped PostgreSQL.
                if !holding_back {
                    tracing::error!(
                        "the main loop has not confirmed the leader key before the fence \
                         deadline: no longer renewing the store lease, so that the leader \
                         key expires and a replica can take over"
                    );
                    holding_back = true;
                }
                tokio::select! {
                    biased;
                    _ = fed.changed() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
                if tx.is_closed() {
                    return;
                }
                continue;
            }
            if holding_back {
                tracing::info!("the main loop confirmed the leader key again: renewing the lease");
                holding_back = false;
            }
            // The fence deadline counts from when the request was sent, not answered.
            let sent = clock.boot();
            let result = match lease {
                None => store.grant_lease(ttl).await.map(|id| {
                    tracing::debug!(lease = id.0, "granted a new store lease");
                    lease = Some(id);
                }),
                Some(id) => store.keep_alive(id).await,
            };
            match result {
                Ok(()) => {
                    let id = lease.map_or(0, |l| l.0);
                    if let Err(e) = fence.renewed(sent, ttl, id) {
                        tracing::error!("cannot feed the fence process: {e}");
                    }
                    let state = LeaseState {
                        lease,
                        renewed_at: Some(Instant::now()),
                    };
                    if tx.send(state).is_err() {
                        return;
                    }
                }
                Err(StoreError::LeaseExpired(id)) => {
                    tracing::warn!(lease = id.0, "the store lease expired: taking a new one");
                    lease = None;
                    let prev = *tx.borrow();
                    if tx
                        .send(LeaseState {
                            lease: None,
                            renewed_at: prev.renewed_at,
                        })
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // Retry soon: the lease may still be saved if the store answers
                    // before it expires.
                    tracing::warn!("cannot renew the store lease: {e}");
                    fence.store_failed(sent);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    }));
    (rx, keeper)
}

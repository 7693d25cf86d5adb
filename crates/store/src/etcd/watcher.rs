//! One background watch on the cluster prefix, publishing the latest revision seen so
//! that `wait_for_change` reacts within milliseconds instead of polling.
//!
//! The watch restarts (from the last revision it saw, so nothing is missed) when its
//! stream breaks, and it counts as stalled when etcd stops answering the progress
//! requests it sends every second, which catches a hung (e.g. SIGSTOPped) endpoint long
//! before TCP or HTTP/2 keepalive would.

use super::client::Client;
use super::pool::Pool;
use super::proto::{
    prefix_end, RangeRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchRequestUnion,
};
use crate::Revision;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

/// What the watch task knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WatchState {
    /// The highest revision of a change under the prefix seen so far (or the store
    /// revision when the watch (re)started after a gap).
    pub revision: Revision,
    /// A watch stream is established and answering.
    pub healthy: bool,
}

/// How often an idle watch asks etcd for a progress answer, to notice a hung member:
/// the call timeout, but at least 1 s and at most 3 s. An idle cluster sends nothing
/// else on the stream, so this sets most of an idle agent's etcd traffic; a stalled
/// watch is given up after this plus the call timeout (and `wait_for_change` then
/// polls until a new one works).
fn progress_every(call_timeout: Duration) -> Duration {
    call_timeout.clamp(Duration::from_secs(1), Duration::from_secs(3))
}
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Run the watch loop until every receiver of `tx` is gone. Each (re)start uses the
/// pool's current endpoint; a failure moves the pool on to the next one.
pub(crate) async fn run(
    pool: Arc<Pool>,
    namespace: String,
    tx: watch::Sender<WatchState>,
    call_timeout: Duration,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let idx = pool.current();
        let attempt = watch_once(pool.client(idx), &namespace, &tx, call_timeout);
        let result = tokio::select! {
            r = attempt => r,
            _ = tx.closed() => return,
        };
        if tx.borrow().healthy {
            backoff = Duration::from_millis(20);
        }
        tx.send_modify(|s| s.healthy = false);
        if let Err(e) = result {
            pool.rotate_from(idx);
            tracing::debug!(namespace = %namespace, "etcd watch broke, restarting: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn publish(tx: &watch::Sender<WatchState>, revision: Revision) {
    tx.send_if_modified(|s| {
        if revision > s.revision {
            s.revision = revision;
            true
        } else {
            false
        }
    });
}

/// The store's current revision, read with a count-only range on the prefix.
async fn current_revision(
    client: &Client,
    namespace: &str,
    call_timeout: Duration,
) -> Result<Revision, String> {
    let req = RangeRequest {
        key: namespace.as_bytes().to_vec(),
        range_end: prefix_end(namespace.as_bytes()),
        count_only: true,
    };
    let resp = timeout(call_timeout, client.range(req))
        .await
        .map_err(|_| format!("revision read timed out after {call_timeout:?}"))?
        .map_err(|e| e.to_string())?;
    resp.header
        .map(|h| h.revision)
        .ok_or_else(|| "etcd answered without a header".to_string())
}

/// One watch stream, from creation until it breaks. `Ok` when it ended normally.
async fn watch_once(
    client: &Client,
    namespace: &str,
    tx: &watch::Sender<WatchState>,
    call_timeout: Duration,
) -> Result<(), String> {
    // Read the revision first even when resuming: it proves the endpoint answers, and it
    // renews an expired auth token (etcd refuses a watch with a stale token by
    // cancelling it as "permission denied", which the watch call itself cannot tell
    // from a real refusal).
    let rev = current_revision(client, namespace, call_timeout).await?;
    let known = tx.borrow().revision;
    let start = if known == 0 {
        publish(tx, rev);
        rev + 1
    } else {
        known + 1
    };
    let create = WatchCreateRequest {
        key: namespace.as_bytes().to_vec(),
        range_end: prefix_end(namespace.as_bytes()),
        start_revision: start,
    };
    let (mut requests, mut responses) = timeout(call_timeout, client.watch(create))
        .await
        .map_err(|_| format!("watch creation timed out after {call_timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let progress = || WatchRequest {
        request_union: Some(WatchRequestUnion::Progress(WatchProgressRequest {})),
    };
    let mut last_heard = Instant::now();
    let every = progress_every(call_timeout);
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            msg = responses.message() => {
                let Some(msg) = msg.map_err(|e| e.to_string())? else {
                    return Ok(());
                };
                last_heard = Instant::now();
                if msg.compact_revision > 0 {
                    // Events were compacted away: jump to the present (a spurious wake
                    // at worst) and restart from there.
                    let rev = current_revision(client, namespace, call_timeout).await?;
                    publish(tx, rev);
                    return Ok(());
                }
                if msg.canceled {
                    return Err(format!("watch canceled: {}", msg.cancel_reason));
                }
                if msg.created {
                    tx.send_modify(|s| s.healthy = true);
                }
                if let Some(rev) = msg.events.iter().filter_map(|e| e.kv.as_ref()).map(|kv| kv.mod_revision).max() {
                    publish(tx, rev);
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > every + call_timeout {
                    return Err(format!("watch stalled: no answer for {:?}", last_heard.elapsed()));
                }
                // The queue holds a few requests; a full one means etcd stopped reading.
                requests
                    .try_send(progress())
                    .map_err(|e| format!("watch progress request not sent: {e}"))?;
            }
        }
    }
}

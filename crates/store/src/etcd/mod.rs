//! The etcd v3 backend: the cluster namespace lives under `<prefix>/<cluster>/` in etcd,
//! leases are etcd leases, conditional writes are etcd transactions.
//!
//! Every call is bounded by the configured call timeout and goes to one endpoint at a
//! time, failing over to the next when one dies (see `pool.rs`); a background watch on the
//! prefix feeds `wait_for_change` (see `watcher.rs`). The gRPC client is our own thin one
//! (`client.rs`, messages in `proto.rs`): no generated code, so no `protoc` at build time.

mod client;
mod decode;
mod errors;
mod options;
mod pool;
mod proto;
mod tls;
mod watcher;

pub use options::{EtcdOptions, EtcdTls, DEFAULT_CALL_TIMEOUT, DEFAULT_PREFIX};

use crate::{Entry, Expect, LeaseId, Result, Revision, Snapshot, Store, StoreError};
use client::{Auth, Client};
use decode::Skipped;
use errors::{map_error, map_lease_error};
use pool::{CallError, Pool, Retry};
use proto::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, Request, RequestOp, TargetUnion,
    TxnRequest,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use watcher::WatchState;

/// How often `wait_for_change` polls while the background watch is down.
const FALLBACK_POLL: Duration = Duration::from_millis(50);
/// HTTP/2 keepalive ping interval. etcd's server rejects pings more often than every
/// 5 s (`--grpc-keepalive-min-time`), so stay above that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(6);

/// A handle on one cluster namespace in etcd. Cheap to clone; clones share the
/// connections and one background watch, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct EtcdStore {
    pool: Arc<Pool>,
    namespace: String,
    skipped: Arc<Skipped>,
    revisions: watch::Receiver<WatchState>,
    _watch_task: Arc<AbortOnDrop>,
}

/// Aborts the background watch when the last store handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("namespace", &self.namespace)
            .field("endpoints", &self.pool.endpoints())
            .finish()
    }
}

impl EtcdStore {
    /// Prepare clients for `opts` and start the background watch. Must be called inside
    /// a tokio runtime. Connections are made lazily, so this succeeds while etcd is down
    /// (calls then fail with `Unreachable`). Fails with `Other` on bad options: mixed
    /// `http://`/`https://` endpoints, `https://` without `tls` or `tls` without
    /// `https://`, and missing or unreadable TLS files (see [`EtcdTls`]).
    pub async fn connect(opts: EtcdOptions) -> Result<EtcdStore> {
        validate(&opts)?;
        let tls = opts.tls.as_ref().map(tls::tls_options).transpose()?;
        let auth = match (&opts.username, &opts.password) {
            (Some(u), Some(p)) => Some(Arc::new(Auth::new(u.clone(), p.clone()))),
            (None, None) => None,
            _ => {
                return Err(StoreError::Other(
                    "etcd username and password must be given together".into(),
                ))
            }
        };
        let clients = opts
            .endpoints
            .iter()
            .map(|url| {
                channel(url, tls.clone(), opts.call_timeout).map(|c| Client::new(c, auth.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let namespace = opts.namespace();
        let pool = Arc::new(Pool::new(opts.endpoints, clients, opts.call_timeout));
        let (tx, rx) = watch::channel(WatchState::default());
        let task = tokio::spawn(watcher::run(
            pool.clone(),
            namespace.clone(),
            tx,
            opts.call_timeout,
        ));
        Ok(EtcdStore {
            pool,
            namespace,
            skipped: Arc::default(),
            revisions: rx,
            _watch_task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The etcd key prefix of this namespace, `<prefix>/<cluster>/`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn full_key(&self, key: &str) -> Result<Vec<u8>> {
        if key.is_empty() {
            return Err(StoreError::Other("empty store key".into()));
        }
        Ok(format!("{}{key}", self.namespace).into_bytes())
    }

    /// The transaction conditions that make `expect` hold for `full`.
    fn compares(full: &[u8], expect: &Expect) -> Vec<Compare> {
        let cmp = |result, target, union| Compare {
            result,
            target,
            key: full.to_vec(),
            target_union: Some(union),
        };
        let exists = || {
            cmp(
                proto::GREATER,
                proto::CREATE,
                TargetUnion::CreateRevision(0),
            )
        };
        match expect {
            Expect::Any => vec![],
            Expect::Absent => vec![cmp(
                proto::EQUAL,
                proto::CREATE,
                TargetUnion::CreateRevision(0),
            )],
            Expect::ModRevision(r) => vec![
                exists(),
                cmp(proto::EQUAL, proto::MOD, TargetUnion::ModRevision(*r)),
            ],
            Expect::Value(v) => vec![
                exists(),
                cmp(
                    proto::EQUAL,
                    proto::VALUE,
                    TargetUnion::Value(v.as_bytes().to_vec()),
                ),
            ],
        }
    }

    /// Run `op` on `full` if `expect` holds; `what` names it in errors.
    async fn txn(
        &self,
        what: &str,
        full: &[u8],
        expect: &Expect,
        op: Request,
        lease: Option<LeaseId>,
    ) -> Result<bool> {
        let txn = TxnRequest {
            compare: Self::compares(full, expect),
            success: vec![RequestOp { request: Some(op) }],
            failure: vec![],
        };
        let resp = self
            .pool
            .call(what, Retry::OnlyUnsent, |c| c.txn(txn.clone()))
            .await
            .map_err(|e| match lease {
                Some(l) => e.into_lease(what, l),
                None => e.into_store(what),
            })?;
        Ok(resp.succeeded)
    }

    /// A linearizable range read of the whole namespace (`count_only`: just the header).
    fn namespace_range(&self, count_only: bool) -> RangeRequest {
        RangeRequest {
            key: self.namespace.as_bytes().to_vec(),
            range_end: proto::prefix_end(self.namespace.as_bytes()),
            count_only,
        }
    }
}

/// The lazily connecting gRPC channel to one endpoint.
fn channel(
    url: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
    call_timeout: Duration,
) -> Result<Channel> {
    let bad = |e: tonic::transport::Error| {
        StoreError::Other(format!(
            "invalid etcd endpoint {url:?} in store.etcd.endpoints: {e}"
        ))
    };
    // A bare HOST:PORT means plain HTTP (with TLS, `validate` demands https://).
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let mut ep = Endpoint::from_shared(full)
        .map_err(bad)?
        .connect_timeout(call_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(call_timeout)
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).map_err(bad)?;
    }
    Ok(ep.connect_lazy())
}

impl CallError {
    fn into_store(self, what: &str) -> StoreError {
        match self {
            CallError::Timeout(e) => e,
            CallError::Etcd(e) => map_error(what, e),
        }
    }

    fn into_lease(self, what: &str, lease: LeaseId) -> StoreError {
        match self {
            CallError::Timeout(e) => e,
            CallError::Etcd(e) => map_lease_error(what, lease, e),
        }
    }
}

fn validate(opts: &EtcdOptions) -> Result<()> {
    if opts.endpoints.is_empty() {
        return Err(StoreError::Other("no etcd endpoints configured".into()));
    }
    if opts.cluster.is_empty() || opts.cluster.contains('/') {
        return Err(StoreError::Other(format!(
            "invalid cluster name {:?} (must be non-empty without '/')",
            opts.cluster
        )));
    }
    let https = opts
        .endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if opts.tls.is_some() && https != opts.endpoints.len() {
        return Err(StoreError::Other(format!(
            "store.etcd.tls is set, so every etcd endpoint must be https:// (got {})",
            opts.endpoints.join(", ")
        )));
    }
    if opts.tls.is_none() && https > 0 {
        return Err(StoreError::Other(
            "https:// etcd endpoints need store.etcd.tls (at least its ca)".into(),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!(
            "etcd {} at {}",
            self.namespace,
            self.pool.endpoints().join(",")
        )
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let req = self.namespace_range(false);
        let resp = self
            .pool
            .call("snapshot", Retry::Idempotent, |c| c.range(req.clone()))
            .await
            .map_err(|e| e.into_store("snapshot"))?;
        let revision = resp
            .header
            .map(|h| h.revision)
            .ok_or_else(|| StoreError::Other("etcd range answer without header".into()))?;
        let entries = self.skipped.decode(&self.namespace, resp.kvs, true);
        Ok(Snapshot {
            revision,
            entries: entries.into_iter().map(|e| (e.key.clone(), e)).collect(),
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let req = RangeRequest {
            key: self.full_key(key)?,
            ..RangeRequest::default()
        };
        let resp = self
            .pool
            .call("get", Retry::Idempotent, |c| c.range(req.clone()))
            .await
            .map_err(|e| e.into_store("get"))?;
        Ok(self
            .skipped
            .decode(&self.namespace, resp.kvs, false)
            .into_iter()
            .next())
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: Expect,
    ) -> Result<bool> {
        let full = self.full_key(key)?;
        let op = Request::Put(PutRequest {
            key: full.clone(),
            value: value.as_bytes().to_vec(),
            lease: lease.map_or(0, |l| l.0),
        });
        self.txn("put", &full, &expect, op, lease).await
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        let full = self.full_key(key)?;
        let op = Request::DeleteRange(DeleteRangeRequest { key: full.clone() });
        self.txn("delete", &full, &expect, op, None).await
    }

    /// etcd leases have whole-second TTLs: `ttl` is rounded up (at least 1 s), and etcd
    /// may raise it further to its minimum (1.5 × election timeout).
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let resp = self
            .pool
            .call("lease grant", Retry::OnlyUnsent, |c| c.lease_grant(secs))
            .await
            .map_err(|e| e.into_store("lease grant"))?;
        if !resp.error.is_empty() {
            return Err(StoreError::Other(format!(
                "etcd lease grant refused: {}",
                resp.error
            )));
        }
        Ok(LeaseId(resp.id))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        // One keep-alive exchange on a fresh stream; TTL 0 means "lease not found".
        self.pool
            .call("lease keep-alive", Retry::Idempotent, |c| {
                c.lease_keep_alive(lease.0)
            })
            .await
            .map_err(|e| e.into_lease("lease keep-alive", lease))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let r = self
            .pool
            .call("lease revoke", Retry::Idempotent, |c| {
                c.lease_revoke(lease.0)
            })
            .await;
        match r.map_err(|e| e.into_lease("lease revoke", lease)) {
            Ok(_) | Err(StoreError::LeaseExpired(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Served from the background watch while it is healthy (no etcd round trip); while
    /// it is down, polls the store revision every 50 ms, and fails with `Unreachable`
    /// only when the last poll before `timeout` failed. Revisions are etcd's global ones:
    /// while the watch is healthy a revision greater than `after` is returned only for a
    /// change under this namespace (or after the watch had to skip compacted history);
    /// while polling, a change anywhere in etcd wakes the waiter. Either way callers
    /// must treat a wake as a hint and re-read with `snapshot`.
    async fn wait_for_change(&self, after: Revision, timeout: Duration) -> Result<Revision> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.revisions.clone();
        let mut polled_ok = false;
        let mut last_err: Option<StoreError> = None;
        loop {
            let state = *rx.borrow_and_update();
            if state.revision > after {
                return Ok(state.revision);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                if state.healthy || polled_ok {
                    return Ok(after.max(state.revision));
                }
                return Err(last_err.unwrap_or_else(|| {
                    StoreError::Unreachable(format!(
                        "etcd watch on {} is down and no poll succeeded",
                        self.namespace
                    ))
                }));
            }
            if state.healthy {
                tokio::select! {
                    r = rx.changed() => if r.is_err() {
                        // The watch task is gone (it never returns while we hold it):
                        // do not spin, just wait out the deadline.
                        tokio::time::sleep_until(deadline).await;
                    },
                    _ = tokio::time::sleep_until(deadline) => {}
                }
                continue;
            }
            let req = self.namespace_range(true);
            let poll = self
                .pool
                .call("revision poll", Retry::Idempotent, |c| c.range(req.clone()));
            match tokio::time::timeout(deadline - now, poll).await {
                Ok(Ok(resp)) => {
                    polled_ok = true;
                    let rev = resp.header.map_or(0, |h| h.revision);
                    if rev > after {
                        return Ok(rev);
                    }
                }
                Ok(Err(e)) => {
                    polled_ok = false;
                    last_err = Some(e.into_store("revision poll"));
                }
                Err(_) => polled_ok = false,
            }
            let now = tokio::time::Instant::now();
            if now < deadline {
                // Wake early if the watch comes back; a closed channel just sleeps.
                let pause = tokio::time::sleep(FALLBACK_POLL.min(deadline - now));
                tokio::pin!(pause);
                tokio::select! {
                    r = rx.changed() => if r.is_err() { pause.await },
                    _ = &mut pause => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_without_scheme_are_plain_http() {
        assert!(channel("127.0.0.1:2379", None, DEFAULT_CALL_TIMEOUT).is_ok());
        assert!(channel("http://127.0.0.1:2379", None, DEFAULT_CALL_TIMEOUT).is_ok());
        let err = channel("http://[bad", None, DEFAULT_CALL_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("store.etcd.endpoints"), "{err}");
    }
}

//! The etcd v3 backend: the cluster namespace lives under `<prefix>/<cluster>/` in etcd,
//! leases are etcd leases, conditional writes are etcd transactions.
//!
//! Every call is bounded by the configured call timeout; a background watch on the
//! prefix feeds `wait_for_change`.

mod errors;
mod options;
mod watcher;

pub use options::{EtcdOptions, EtcdTls, DEFAULT_CALL_TIMEOUT, DEFAULT_PREFIX};

use crate::{Entry, Expect, LeaseId, Result, Revision, Snapshot, Store, StoreError};
use errors::{map_error, map_lease_error};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use watcher::WatchState;

/// How often `wait_for_change` polls while the background watch is down.
const FALLBACK_POLL: Duration = Duration::from_millis(50);
/// HTTP/2 keepalive ping interval. etcd's server rejects pings more often than every
/// 5 s (`--grpc-keepalive-min-time`), so stay above that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(6);

/// A handle on one cluster namespace in etcd. Cheap to clone; clones share one
/// connection and one background watch, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    namespace: String,
    endpoints: Vec<String>,
    call_timeout: Duration,
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
            .field("endpoints", &self.endpoints)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl EtcdStore {
    /// Build a client for `opts` and start the background watch. Must be called inside a
    /// tokio runtime. Connections are made lazily, so this succeeds while etcd is down
    /// (calls then fail with `Unreachable`) unless credentials are given: logging in
    /// needs a live endpoint. Fails with `Other` on bad options, including any TLS
    /// setting or `https://` endpoint (TLS is not built in; see [`EtcdTls`]).
    pub async fn connect(opts: EtcdOptions) -> Result<EtcdStore> {
        validate(&opts)?;
        let mut copts = ConnectOptions::new()
            .with_connect_timeout(opts.call_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, opts.call_timeout);
        match (&opts.username, &opts.password) {
            (Some(u), Some(p)) => copts = copts.with_user(u.clone(), p.clone()),
            (None, None) => {}
            _ => {
                return Err(StoreError::Other(
                    "etcd username and password must be given together".into(),
                ))
            }
        }
        let client = match tokio::time::timeout(
            opts.call_timeout,
            Client::connect(&opts.endpoints, Some(copts)),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(map_error("connect", e)),
            Err(_) => {
                return Err(StoreError::Unreachable(format!(
                    "etcd connect to {:?} timed out after {:?}",
                    opts.endpoints, opts.call_timeout
                )))
            }
        };
        let namespace = opts.namespace();
        let (tx, rx) = watch::channel(WatchState::default());
        let task = tokio::spawn(watcher::run(
            client.clone(),
            namespace.clone(),
            tx,
            opts.call_timeout,
        ));
        Ok(EtcdStore {
            client,
            namespace,
            endpoints: opts.endpoints,
            call_timeout: opts.call_timeout,
            revisions: rx,
            _watch_task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The etcd key prefix of this namespace, `<prefix>/<cluster>/`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn full_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(StoreError::Other("empty store key".into()));
        }
        Ok(format!("{}{key}", self.namespace))
    }

    /// Run one etcd call under the call timeout.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> std::result::Result<T, CallError> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Etcd(e)),
            Err(_) => Err(CallError::Timeout(StoreError::Unreachable(format!(
                "etcd {what} got no answer from {:?} within {:?}",
                self.endpoints, self.call_timeout
            )))),
        }
    }

    fn entry(&self, kv: &KeyValue) -> Result<Entry> {
        let key = kv
            .key_str()
            .map_err(|e| StoreError::Other(format!("etcd key {:?} is not UTF-8: {e}", kv.key())))?;
        let rel = key.strip_prefix(&self.namespace).ok_or_else(|| {
            StoreError::Other(format!(
                "etcd returned key {key} outside {}",
                self.namespace
            ))
        })?;
        let value = kv
            .value_str()
            .map_err(|e| StoreError::Other(format!("value of etcd key {key} is not UTF-8: {e}")))?;
        Ok(Entry {
            key: rel.to_string(),
            value: value.to_string(),
            mod_revision: kv.mod_revision(),
            lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
        })
    }

    fn compares(full: &str, expect: &Expect) -> Vec<Compare> {
        let exists = || Compare::create_revision(full, CompareOp::Greater, 0);
        match expect {
            Expect::Any => vec![],
            Expect::Absent => vec![Compare::create_revision(full, CompareOp::Equal, 0)],
            Expect::ModRevision(r) => {
                vec![exists(), Compare::mod_revision(full, CompareOp::Equal, *r)]
            }
            Expect::Value(v) => vec![exists(), Compare::value(full, CompareOp::Equal, v.as_str())],
        }
    }
}

/// A call that failed either by timing out or with an etcd error still to be sorted.
enum CallError {
    Timeout(StoreError),
    Etcd(etcd_client::Error),
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
    let https = opts.endpoints.iter().any(|e| e.starts_with("https://"));
    if opts.tls.is_some() || https {
        return Err(StoreError::Other(
            "TLS to etcd is not supported by this build of pgbaton (etcd-client is built \
             without its `tls` feature); use http:// endpoints or a local TLS proxy"
                .into(),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {} at {}", self.namespace, self.endpoints.join(","))
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let mut kv = self.client.kv_client();
        let opts = GetOptions::new().with_prefix();
        let resp = self
            .call("snapshot", kv.get(self.namespace.as_str(), Some(opts)))
            .await
            .map_err(|e| e.into_store("snapshot"))?;
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Other("etcd range answer without header".into()))?;
        let mut snap = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for kv in resp.kvs() {
            let e = self.entry(kv)?;
            snap.entries.insert(e.key.clone(), e);
        }
        Ok(snap)
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let full = self.full_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self
            .call("get", kv.get(full, None))
            .await
            .map_err(|e| e.into_store("get"))?;
        resp.kvs().first().map(|kv| self.entry(kv)).transpose()
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        expect: Expect,
    ) -> Result<bool> {
        let full = self.full_key(key)?;
        let popts = lease.map(|l| PutOptions::new().with_lease(l.0));
        let txn = Txn::new()
            .when(Self::compares(&full, &expect))
            .and_then(vec![TxnOp::put(full.as_str(), value, popts)]);
        let mut kv = self.client.kv_client();
        let resp = self
            .call("put", kv.txn(txn))
            .await
            .map_err(|e| match lease {
                Some(l) => e.into_lease("put", l),
                None => e.into_store("put"),
            })?;
        Ok(resp.succeeded())
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        let full = self.full_key(key)?;
        let txn = Txn::new()
            .when(Self::compares(&full, &expect))
            .and_then(vec![TxnOp::delete(full.as_str(), None)]);
        let mut kv = self.client.kv_client();
        let resp = self
            .call("delete", kv.txn(txn))
            .await
            .map_err(|e| e.into_store("delete"))?;
        Ok(resp.succeeded())
    }

    /// etcd leases have whole-second TTLs: `ttl` is rounded up (at least 1 s), and etcd
    /// may raise it further to its minimum (1.5 × election timeout).
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let mut lc = self.client.lease_client();
        let resp = self
            .call("lease grant", lc.grant(secs, None))
            .await
            .map_err(|e| e.into_store("lease grant"))?;
        if !resp.error().is_empty() {
            return Err(StoreError::Other(format!(
                "etcd lease grant refused: {}",
                resp.error()
            )));
        }
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let mut lc = self.client.lease_client();
        // One keep-alive exchange on a fresh stream; the client checks TTL > 0 and
        // reports "lease not found" otherwise.
        let (_keeper, _stream) = self
            .call("lease keep-alive", lc.keep_alive(lease.0))
            .await
            .map_err(|e| e.into_lease("lease keep-alive", lease))?;
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut lc = self.client.lease_client();
        match self.call("lease revoke", lc.revoke(lease.0)).await {
            Ok(_) => Ok(()),
            Err(e) => match e.into_lease("lease revoke", lease) {
                StoreError::LeaseExpired(_) => Ok(()),
                other => Err(other),
            },
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
            let mut kv = self.client.kv_client();
            let opts = GetOptions::new().with_prefix().with_count_only();
            let left = deadline - now;
            match tokio::time::timeout(left, kv.get(self.namespace.as_str(), Some(opts))).await {
                Ok(Ok(resp)) => {
                    polled_ok = true;
                    let rev = resp.header().map_or(0, |h| h.revision());
                    if rev > after {
                        return Ok(rev);
                    }
                }
                Ok(Err(e)) => {
                    polled_ok = false;
                    last_err = Some(map_error("revision poll", e));
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

//! Opens the store named in a member's config (local directory or etcd).

use anyhow::{bail, Context};
use pgbaton_config::NodeConfig;
use pgbaton_store::local::LocalStore;
use pgbaton_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Open the store backend of `cfg`, with `call_timeout` as the deadline of every call.
pub async fn open(cfg: &NodeConfig, call_timeout: Duration) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(dir) = &cfg.store.local {
        let store = LocalStore::open(dir, &cfg.cluster, call_timeout)
            .with_context(|| format!("opening the local store at {}", dir.display()))?;
        return Ok(Arc::new(store));
    }
    if let Some(etcd) = &cfg.store.etcd {
        let opts = pgbaton_store::etcd::EtcdOptions {
            endpoints: etcd.endpoints.clone(),
            username: etcd.username.clone(),
            password: etcd.password.clone(),
            tls: etcd.tls.as_ref().map(|t| pgbaton_store::etcd::EtcdTls {
                ca_file: t.ca.clone(),
                cert_file: t.cert.clone(),
                key_file: t.key.clone(),
            }),
            prefix: etcd.prefix.clone(),
            cluster: cfg.cluster.clone(),
            call_timeout,
        };
        let store = pgbaton_store::etcd::EtcdStore::connect(opts)
            .await
            .with_context(|| format!("connecting to etcd at {}", etcd.endpoints.join(",")))?;
        return Ok(Arc::new(store));
    }
    bail!("the config names no store: set store.local or store.etcd")
}

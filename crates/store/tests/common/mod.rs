//! The two backends behind one test-facing trait, so the conformance suite runs unchanged
//! against both.

#![allow(dead_code)]

pub mod suite;

use pgbaton_store::etcd::{EtcdOptions, EtcdStore};
use pgbaton_store::local::LocalStore;
use pgbaton_store::testkit::EtcdCluster;
use pgbaton_store::Store;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// The default call timeout of test clients.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A store backend under test: hands out independent clients of one namespace and can
/// break itself.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The client type.
    type S: Store + Clone + 'static;

    /// A new independent client (own handle/connection) of namespace `cluster`.
    async fn client_for(&self, cluster: &str, call_timeout: Duration) -> Self::S;

    /// A new client of the default namespace.
    async fn client(&self) -> Self::S {
        self.client_for("main", CALL_TIMEOUT).await
    }

    /// Make the store unreachable until the returned guard is dropped.
    fn make_unreachable(&self) -> Box<dyn Any + Send>;

    /// How long after its nominal TTL a lease may still be alive.
    fn expiry_slack(&self) -> Duration;
}

/// The local backend in a temp dir.
pub struct LocalBackend {
    dir: tempfile::TempDir,
}

impl LocalBackend {
    pub fn new() -> LocalBackend {
        LocalBackend {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    type S = LocalStore;

    async fn client_for(&self, cluster: &str, call_timeout: Duration) -> LocalStore {
        LocalStore::open(self.dir.path(), cluster, call_timeout).unwrap()
    }

    fn make_unreachable(&self) -> Box<dyn Any + Send> {
        Box::new(LocalStore::freeze_for_tests(self.dir.path(), "main").unwrap())
    }

    fn expiry_slack(&self) -> Duration {
        // The store sweeps at the exact deadline; waiters poll every 10 ms.
        Duration::from_millis(100)
    }
}

/// A one-member etcd cluster of its own.
pub struct EtcdBackend {
    cluster: Arc<EtcdCluster>,
}

impl EtcdBackend {
    pub fn new() -> EtcdBackend {
        EtcdBackend {
            cluster: Arc::new(EtcdCluster::start(1)),
        }
    }
}

/// Resumes a paused etcd member on drop.
struct Resume(Arc<EtcdCluster>, usize);

impl Drop for Resume {
    fn drop(&mut self) {
        self.0.resume(self.1);
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    type S = EtcdStore;

    async fn client_for(&self, cluster: &str, call_timeout: Duration) -> EtcdStore {
        let mut opts = EtcdOptions::new(self.cluster.endpoints(), cluster);
        opts.call_timeout = call_timeout;
        EtcdStore::connect(opts).await.unwrap()
    }

    fn make_unreachable(&self) -> Box<dyn Any + Send> {
        self.cluster.pause(0);
        Box::new(Resume(self.cluster.clone(), 0))
    }

    fn expiry_slack(&self) -> Duration {
        // etcd's lessor looks for expired leases every 500 ms, then revokes through raft.
        Duration::from_millis(1200)
    }
}

//! Test support for pgbaton's crates (cargo feature `testkit`): real etcd clusters on
//! 127.0.0.1 in temp dirs, with failure injection (kill, pause, restart).
//!
//! Use it from another crate's tests with
//! `pgbaton-store = { workspace = true, features = ["testkit"] }` under
//! `[dev-dependencies]`. Functions here panic with a clear message on failure, since
//! they only run in tests.

mod etcd_cluster;
mod spawner;

pub use etcd_cluster::EtcdCluster;

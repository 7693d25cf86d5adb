//! Shared parts of the pgbaton benchmarks: a local cluster runner, a writer that records
//! every commit attempt, fault injection, analysis of the writer's log, and reporting.

pub mod analysis;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod etcd;
pub mod faults;
pub mod handover;
pub mod haproxy;
pub mod idle;
pub mod lease;
pub mod procs;
pub mod report;
pub mod sql;
pub mod stats;
pub mod sysinfo;
pub mod writer;

pub use error::BenchError;

/// Result type of the benchmark library.
pub type Result<T> = std::result::Result<T, BenchError>;

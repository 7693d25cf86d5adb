//! Command-line options every benchmark shares, where the pgbaton binary is found, and
//! the common `main` (Ctrl-C stops the cluster cleanly; errors exit 1).

use crate::cluster::{ClusterSpec, Timing};
use crate::Result;
use std::path::{Path, PathBuf};

/// Options shared by every benchmark program.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The pgbaton binary [default: $CARGO_TARGET_DIR/release/pgbaton, else
    /// target/release/pgbaton in the workspace].
    #[arg(long)]
    pub pgbaton: Option<PathBuf>,
    /// Put configs, data and agent logs here (a new or empty directory; kept afterwards)
    /// instead of a temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the temp dir (configs, data, agent logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Append a dated section with the results to the results file.
    #[arg(long)]
    pub append_results: bool,
    /// The results file.
    #[arg(long, default_value_os_t = crate::report::default_results_path())]
    pub results: PathBuf,
    /// HA cycle period (bootstrap.loop_wait), seconds [default: 1].
    #[arg(long)]
    pub loop_wait: Option<u64>,
    /// Store call deadline (bootstrap.retry_timeout), seconds [default: min(3, ttl - loop_wait - 1)].
    #[arg(long)]
    pub retry_timeout: Option<u64>,
    /// Fencing margin (watchdog.safety_margin), seconds [default: pgbaton's].
    #[arg(long)]
    pub safety_margin: Option<u64>,
    /// Longest wait for the cluster to become healthy (at start and between runs), seconds.
    #[arg(long, default_value_t = 120)]
    pub healthy_timeout: u64,
}

impl CommonArgs {
    /// The cluster to build with `members` members and lease `ttl`.
    pub fn spec(&self, members: usize, ttl: u64) -> Result<ClusterSpec> {
        Ok(ClusterSpec {
            members,
            timing: Timing::for_ttl(ttl, self.loop_wait, self.retry_timeout, self.safety_margin)?,
            dir: self.dir.clone(),
            keep: self.keep || self.dir.is_some(),
            pgbaton: self.pgbaton.clone().unwrap_or_else(default_pgbaton),
            etcd: Vec::new(),
        })
    }
}

/// The release binary: `$CARGO_TARGET_DIR/release/pgbaton` when that variable is set,
/// else `target/release/pgbaton` in the workspace this crate belongs to.
pub fn default_pgbaton() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target"),
    };
    target.join("release").join("pgbaton")
}

/// Run a benchmark to completion on a multi-threaded runtime. Ctrl-C drops it (which
/// stops its cluster). Exit code 0 on success, 2 for a feature pgbaton lacks, 1 for any
/// other error.
pub fn run_main<F>(bench: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = bench => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(())) => std::process::ExitCode::SUCCESS,
        Some(Err(crate::BenchError::NotImplemented(what))) => {
            eprintln!("not implemented yet: {what}");
            std::process::ExitCode::from(2)
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
        None => {
            eprintln!("interrupted; the cluster was stopped");
            std::process::ExitCode::from(130)
        }
    }
}

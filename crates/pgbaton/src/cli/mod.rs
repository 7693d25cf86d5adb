//! The operator commands that talk to the store (not to an agent): `list`, `remove`,
//! `check-config`.

mod check_config;
mod list;
mod remove;

pub use check_config::check_config;
pub use list::{fetch, list, table, Format};
pub use remove::remove;

use pgbaton_config::NodeConfig;
use pgbaton_store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Load a config file and open its store, for a one-shot command.
pub async fn open(config: &Path) -> anyhow::Result<(NodeConfig, Arc<dyn Store>)> {
    let cfg = pgbaton_config::load(config)?;
    let timeout = Duration::from_secs(cfg.bootstrap.retry_timeout.max(1));
    let store = crate::storeconn::open(&cfg, timeout).await?;
    Ok((cfg, store))
}

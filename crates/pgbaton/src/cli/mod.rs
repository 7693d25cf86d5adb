//! The operator commands. They talk to the store, not to an agent, so they work with
//! any member's config file.

mod budget;
mod check;
mod check_config;
mod cluster_config;
mod dsn;
mod edit_config;
mod history;
mod list;
mod member_ops;
pub mod ops;
mod remove;
mod request;
mod show_config;

pub use check::{check, CheckFormat, CheckLimits};
pub use check_config::check_config;
pub use dsn::{dsn, DsnArgs, DsnFormat, DsnRole};
pub use edit_config::edit_config;
pub use history::history;
pub use list::{config_error, fetch, list, rows_of, table, Format, Row};
pub use member_ops::{reload, restart};
pub use remove::remove;
pub use request::{failover, reinit, set_paused, switchover, SwitchoverArgs};
pub use show_config::{show_config, ConfigFormat};

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

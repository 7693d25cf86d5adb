//! `pgbaton show-config`: the cluster-wide config as the store holds it.

use super::cluster_config::to_yaml;
use super::ops;
use anyhow::anyhow;
use std::path::Path;

/// Output format of `show-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    /// YAML, like the `bootstrap` section of a member's file.
    Yaml,
    /// JSON, as stored.
    Json,
}

/// Print the store's cluster config. Before the cluster is bootstrapped the store has
/// none: then the file's `bootstrap` section is printed, and stderr says so.
pub async fn show_config(config: &Path, format: ConfigFormat) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let (ccfg, revision) = ops::cluster_config(store.as_ref(), &cfg.bootstrap).await?;
    match revision {
        Some(rev) => eprintln!("cluster {:?}: config at store revision {rev}", cfg.cluster),
        None => eprintln!(
            "cluster {:?}: the store has no config yet (not bootstrapped); showing the bootstrap section of {}",
            cfg.cluster,
            config.display()
        ),
    }
    match format {
        ConfigFormat::Json => println!("{}", serde_json::to_string_pretty(&ccfg)?),
        ConfigFormat::Yaml => print!("{}", to_yaml(&ccfg).map_err(|e| anyhow!(e))?),
    }
    Ok(())
}

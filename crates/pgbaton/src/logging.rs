//! Log setup for the agent (the fence process has its own, in `fence/child.rs`): text or JSON lines (`log.format`), on
//! standard error or appended to `log.file`, level from the config or RUST_LOG.
//!
//! The file is opened in append mode and written line by line by both processes, so
//! logrotate's `copytruncate` works; under systemd, leave `log.file` unset and read
//! `journalctl -u pgbaton`.

use anyhow::Context;
use pgbaton_config::{LogFormat, NodeConfig};
use std::path::Path;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

fn filter(level: &str) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            EnvFilter::try_new(format!(
                "warn,pgbaton={level},pgbaton_store={level},pgbaton_postgres={level}"
            ))
            .unwrap_or_else(|_| EnvFilter::new("info"))
        })
}

/// Install the global logger with `format`, writing to `file` (appended) or stderr.
fn install(level: &str, format: LogFormat, file: Option<&Path>) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_target(false);
    let result = match (format, file) {
        (LogFormat::Text, None) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Json, None) => builder
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (format, Some(path)) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "log.file: cannot open {} for appending (check the directory exists and \
                         is writable)",
                        path.display()
                    )
                })?;
            let f = Arc::new(f);
            match format {
                LogFormat::Text => builder.with_ansi(false).with_writer(f).try_init(),
                LogFormat::Json => builder
                    .json()
                    .with_current_span(false)
                    .with_writer(f)
                    .try_init(),
            }
        }
    };
    // A logger already installed (tests) is not an error.
    let _ = result;
    Ok(())
}

/// Install the agent's logger from its config.
pub fn init(cfg: &NodeConfig) -> anyhow::Result<()> {
    install(cfg.log_level(), cfg.log.format, cfg.log_file())?;
    tracing::info!(
        member = %cfg.name,
        version = env!("CARGO_PKG_VERSION"),
        "pgbaton agent starting"
    );
    Ok(())
}

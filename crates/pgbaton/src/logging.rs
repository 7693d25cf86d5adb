//! Log setup: human-readable lines on standard error, level from the config or RUST_LOG.

use tracing_subscriber::EnvFilter;

/// Install the global logger. `level` is the config's `log.level` (default `info`).
pub fn init(level: Option<&str>, member: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            let lvl = level.unwrap_or("info");
            EnvFilter::try_new(format!(
                "warn,pgbaton={lvl},pgbaton_store={lvl},pgbaton_postgres={lvl}"
            ))
            .unwrap_or_else(|_| EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    tracing::info!(
        member,
        version = env!("CARGO_PKG_VERSION"),
        "pgbaton agent starting"
    );
}

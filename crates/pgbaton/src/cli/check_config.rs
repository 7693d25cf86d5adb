//! `pgbaton check-config`: validate a config file and show what the agent would use.

use std::path::Path;

/// Print the effective config with passwords masked, or fail with every problem found.
pub fn check_config(config: &Path) -> anyhow::Result<()> {
    let cfg = pgbaton_config::load(config)?;
    print!("{}", pgbaton_config::render_effective(&cfg));
    eprintln!("{}: OK", config.display());
    Ok(())
}

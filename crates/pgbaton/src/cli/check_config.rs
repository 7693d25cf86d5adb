//! `pgbaton check-config`: validate a config file, show what the agent would use, and
//! what its timing means for failover.

use std::path::Path;

/// Print the effective config with passwords masked, then the failover budget of its
/// `bootstrap` timing as YAML comments (so the output is still valid YAML), or fail
/// with every problem found.
pub fn check_config(config: &Path) -> anyhow::Result<()> {
    let cfg = pgbaton_config::load(config)?;
    print!("{}", pgbaton_config::render_effective(&cfg));
    println!("#");
    for line in super::budget::budget(&cfg.bootstrap, cfg.watchdog.safety_margin) {
        println!("# {line}");
    }
    println!(
        "# (from this file's bootstrap section; a running cluster's loop_wait, failover_grace and primary_start_timeout come from the store: `pgbaton show-config`)"
    );
    eprintln!("{}: OK", config.display());
    Ok(())
}

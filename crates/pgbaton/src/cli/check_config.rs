//! `pgbaton check-config`: validate a config file, show what the agent would use, and
//! what its timing means for failover.

use super::ConfigFormat;
use std::path::Path;

/// Print the effective config with passwords masked, then the failover budget of its
/// `bootstrap` timing: as YAML comments (so the output is still valid YAML), or as one
/// JSON object `{file, valid, config, budget}`. Fails with every problem found.
pub fn check_config(config: &Path, format: ConfigFormat) -> anyhow::Result<()> {
    let cfg = pgbaton_config::load(config)?;
    let budget = super::budget::budget(&cfg.bootstrap, cfg.watchdog.safety_margin);
    let warnings = super::budget::warnings(&cfg.bootstrap, cfg.watchdog.safety_margin);
    match format {
        ConfigFormat::Json => {
            let out = serde_json::json!({
                "file": config.display().to_string(),
                "valid": true,
                "config": pgbaton_config::effective(&cfg),
                "budget": budget,
                "warnings": warnings,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ConfigFormat::Yaml => {
            print!("{}", pgbaton_config::render_effective(&cfg));
            println!("#");
            for line in budget {
                println!("# {line}");
            }
            println!(
                "# (from this file's bootstrap section; a running cluster's loop_wait, failover_grace and primary_start_timeout come from the store: `pgbaton show-config`)"
            );
        }
    }
    for w in &warnings {
        eprintln!("{}: warning: {w}", config.display());
    }
    eprintln!("{}: OK", config.display());
    Ok(())
}

//! `pgbaton edit-config --set key=value`: change the cluster-wide config in the store,
//! checked like a config file and written with a compare-and-set (like Patroni's
//! `edit-config -s`).

use super::cluster_config::{diff, parse_set};
use super::Format;
use anyhow::{anyhow, bail};
use pgbaton_core::model::{ClusterConfig, KEY_CONFIG};
use pgbaton_store::Expect;
use serde_json::Value;
use std::path::Path;

/// How often a write that lost against a concurrent change is re-applied.
const ATTEMPTS: usize = 5;

/// Apply every `--set` to the store's config, check the result (unknown keys, types,
/// the timing rule with this member's `watchdog.safety_margin`), print the diff and
/// write it only if nobody changed the config meanwhile. Nothing is written when any
/// check fails or nothing changes.
///
/// With `Format::Json` the result is one object `{cluster, changed, changes, config}`
/// on stdout instead of the diff lines.
pub async fn edit_config(config: &Path, sets: &[String], format: Format) -> anyhow::Result<()> {
    if sets.is_empty() {
        return Err(crate::exit::usage(
            "nothing to change: give at least one --set KEY=VALUE, e.g. --set loop_wait=2",
        ));
    }
    let mut patches = Vec::new();
    let mut bad = Vec::new();
    for s in sets {
        match parse_set(s) {
            Ok(p) => patches.push(p),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        return Err(crate::exit::usage(format!(
            "{}\nnothing was changed",
            bad.join("\n")
        )));
    }
    let (cfg, store) = super::open(config).await?;
    let store = store.as_ref();
    let origin = format!("cluster {:?} config", cfg.cluster);
    for _ in 0..ATTEMPTS {
        let Some(entry) = store.get(KEY_CONFIG).await? else {
            return Err(crate::exit::refused(format!(
                "the store has no config for cluster {:?} yet (it is not bootstrapped); change the bootstrap section of {} instead",
                cfg.cluster,
                config.display()
            )));
        };
        // The store's value is untrusted: unknown fields and restricted parameters are
        // dropped (and said so); an unusable value is replaced, visibly, by this
        // member's bootstrap section, so that edit-config can always repair it.
        let old: ClusterConfig = match pgbaton_core::view::read_config(&entry.value) {
            Ok((c, warnings)) => {
                for w in warnings {
                    eprintln!("note: the store's config: {w}; it is dropped by this edit");
                }
                c
            }
            Err(e) => {
                eprintln!(
                    "warning: the store's config is unusable ({e}); starting from the bootstrap section of {}",
                    config.display()
                );
                cfg.bootstrap.clone()
            }
        };
        let mut value: Value = serde_json::to_value(&old)?;
        for p in &patches {
            crate::api::merge_patch(&mut value, p);
        }
        let new: ClusterConfig = serde_json::from_value(value)
            .map_err(|e| anyhow!("{origin}: the edited config is not valid: {e}"))?;
        let problems =
            pgbaton_config::check_cluster_config_with_margin(&new, "", cfg.watchdog.safety_margin);
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(|p| p.render(&origin)).collect();
            return Err(crate::exit::usage(format!(
                "{}\nnothing was changed",
                lines.join("\n")
            )));
        }
        let changes = diff(&old, &new);
        let report = |changed: bool| -> anyhow::Result<()> {
            let out = serde_json::json!({
                "cluster": cfg.cluster,
                "changed": changed,
                "changes": changes,
                "config": new,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        };
        if changes.is_empty() {
            if format == Format::Json {
                return report(false);
            }
            println!("no change: the cluster config already has these values");
            return Ok(());
        }
        let text = serde_json::to_string(&new)?;
        if !store
            .put(
                KEY_CONFIG,
                &text,
                None,
                Expect::ModRevision(entry.mod_revision),
            )
            .await?
        {
            continue;
        }
        if format == Format::Json {
            report(true)?;
        } else {
            for line in &changes {
                println!("{line}");
            }
            println!("cluster config of {:?} updated", cfg.cluster);
        }
        if old.ttl != new.ttl || old.retry_timeout != new.retry_timeout {
            eprintln!(
                "note: each agent takes its lease ttl and store call timeout from the bootstrap \
                 section of its own config file when it starts; change them there too and \
                 restart the agents"
            );
        }
        return Ok(());
    }
    bail!("the cluster config kept changing while it was being edited; nothing was changed, try again")
}

//! `pgbaton remove NAME`: forget a member for good, so the primary drops its slot.

use pgbaton_core::model::{member_key, PrimaryStatus, KEY_STATUS};
use pgbaton_store::Expect;
use std::path::Path;

/// Mark `name` as removed in the primary's registry. Refused while its agent runs.
pub async fn remove(config: &Path, name: &str) -> anyhow::Result<()> {
    pgbaton_core::limits::check_name(name).map_err(anyhow::Error::msg)?;
    let (cfg, store) = super::open(config).await?;
    for _ in 0..10 {
        if store.get(&member_key(name)).await?.is_some() {
            return Err(crate::exit::refused(format!(
                "member {name} is still running (its key members/{name} exists); stop its \
                 agent first, then run `pgbaton remove {name}` again"
            )));
        }
        let Some(entry) = store.get(KEY_STATUS).await? else {
            return Err(crate::exit::refused(format!(
                "cluster {} has no primary status yet: nothing to remove",
                cfg.cluster
            )));
        };
        let mut status: PrimaryStatus = serde_json::from_str(&entry.value)?;
        match status.registry.get_mut(name) {
            None => {
                return Err(crate::exit::refused(format!(
                    "cluster {} has no member named {name}",
                    cfg.cluster
                )))
            }
            Some(seen) => *seen = 0,
        }
        let value = serde_json::to_string(&status)?;
        if store
            .put(
                KEY_STATUS,
                &value,
                None,
                Expect::ModRevision(entry.mod_revision),
            )
            .await?
        {
            println!(
                "member {name} removed: the primary drops its replication slot within a cycle"
            );
            return Ok(());
        }
    }
    anyhow::bail!("the primary kept rewriting its status; try again")
}

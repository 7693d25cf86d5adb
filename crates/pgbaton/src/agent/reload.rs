//! SIGHUP: re-read the member's config file and apply what can change at run time.
//!
//! Tags, PostgreSQL parameters and extra `pg_hba` lines apply at once (PostgreSQL is
//! reloaded, or restarted if a parameter needs it). The `log` section is read only at
//! start: a change to it is kept in the file and logged as waiting for a restart. The keys that say
//! who and where the member is (cluster, name, data_dir, store, addresses, OS user)
//! need an agent restart: a reload that changes them is refused as a whole.

use super::Agent;
use pgbaton_config::NodeConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// A flag raised by SIGHUP, lowered by the agent when it has reloaded.
pub fn listen() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut hup = signal(SignalKind::hangup())?;
    let raised = flag.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            raised.store(true, Ordering::SeqCst);
        }
    });
    Ok(flag)
}

/// The keys whose change needs an agent restart, if any changed.
fn fixed_keys_changed(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key: &'static str, same: bool| {
        if !same {
            changed.push(key);
        }
    };
    check("cluster", old.cluster == new.cluster);
    check("name", old.name == new.name);
    check("data_dir", old.data_dir == new.data_dir);
    check("store", old.store == new.store);
    check(
        "postgres.listen",
        old.postgres.listen == new.postgres.listen,
    );
    check(
        "postgres.connect_address",
        old.postgres.connect_address == new.postgres.connect_address,
    );
    check(
        "postgres.bin_dir",
        old.postgres.bin_dir == new.postgres.bin_dir,
    );
    check(
        "postgres.os_user",
        old.postgres.os_user == new.postgres.os_user,
    );
    check(
        "postgres.socket_dir",
        old.postgres.socket_dir == new.postgres.socket_dir,
    );
    check(
        "postgres.superuser",
        old.postgres.superuser == new.postgres.superuser,
    );
    check(
        "postgres.replication",
        old.postgres.replication == new.postgres.replication,
    );
    check("api", old.api == new.api);
    check("watchdog", old.watchdog == new.watchdog);
    changed
}

impl Agent {
    /// Re-read the config file after SIGHUP. Returns true when PostgreSQL's settings may
    /// have changed (the caller re-applies them).
    pub(super) fn reload_config(&mut self) -> bool {
        let path = self.config_path.clone();
        let new = match pgbaton_config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, the running config is kept: {e}");
                return false;
            }
        };
        let fixed = fixed_keys_changed(&self.cfg, &new);
        if !fixed.is_empty() {
            tracing::error!(
                "reload refused, the running config is kept: {} changed in {}; these need an \
                 agent restart",
                fixed.join(", "),
                path.display()
            );
            return false;
        }
        if new == self.cfg {
            tracing::info!("reload: {} is unchanged", path.display());
            return false;
        }
        if new.log != self.cfg.log {
            tracing::warn!(
                "reload: the log section of {} changed; it applies when the agent restarts",
                path.display()
            );
        }
        tracing::info!(
            "reload: applying tags, parameters and pg_hba lines from {}",
            path.display()
        );
        self.cfg = new;
        true
    }
}

//! Waiting for the store at start. After a whole-site power cut etcd may come up after
//! the agents: an unreachable store is retried with backoff (0.5 s doubling to 10 s),
//! never fatal, so systemd does not have to guess whether a restart would help. And
//! before any of that, a primary left running by the previous agent is stopped
//! ([`stop_unleased_primary`]).

use super::shutdown::Shutdown;
use crate::effects::Pg;
use pgbaton_postgres::{DataDirState, StopMode};
use pgbaton_store::{Entry, Store};
use std::time::Duration;
use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Read `key`, retrying until the store answers. `None` when a shutdown was requested
/// first; `Some(entry)` (which may itself be `None`: no such key) otherwise.
pub async fn get_retrying(
    store: &dyn Store,
    key: &str,
    shutdown: &Shutdown,
) -> Option<Option<Entry>> {
    let mut delay = FIRST_DELAY;
    let mut failures = 0u32;
    loop {
        if shutdown.requested() {
            return None;
        }
        match store.get(key).await {
            Ok(entry) => {
                if failures > 0 {
                    tracing::info!(
                        "the store answers again after {failures} failed attempts: {}",
                        store.describe()
                    );
                }
                return Some(entry);
            }
            Err(e) => {
                failures += 1;
                let why = format!(
                    "cannot reach the store ({}): {e}; retrying in {:.1} s",
                    store.describe(),
                    delay.as_secs_f64()
                );
                tracing::warn!("{why}");
                crate::sdnotify::status(&format!("waiting for the store: {e}"));
                crate::sdnotify::alive();
                shutdown.sleep_until(Instant::now() + delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

/// How long the immediate shutdown of a primary found at start is waited for.
const STOP_FOUND_PRIMARY: Duration = Duration::from_secs(10);

/// Before the agent waits for anything: a PostgreSQL left running as a primary by this
/// member's previous agent is stopped at once (immediate shutdown, as its fence would).
///
/// This agent holds no lease yet, and it may wait a long time before its first cycle
/// (for the store, then up to ttl + 1 s for the old member key to expire). Meanwhile the
/// previous agent's fence process is the primary's only protection; if it died or froze,
/// the primary would stay writable past its lease while a replica is promoted (simulator
/// finding S2). Nothing is lost: that fence would have stopped it before the old lease
/// expired anyway, and the first cycle starts it again as primary if this member still
/// may lead. Standbys are left running.
pub async fn stop_unleased_primary(pg: &dyn Pg) {
    let pid = match pg.status() {
        Ok(None) => return,
        Ok(Some(info)) if info.state.as_deref() == Some("standby") => return,
        Ok(Some(info)) => info.pid as i32,
        Err(e) => match pg.postmaster_pid() {
            Ok(Some(pid)) => {
                tracing::warn!(
                    "cannot read the postmaster's state ({e}); treating it as a primary"
                );
                pid
            }
            _ => return,
        },
    };
    if matches!(
        pg.data_dir_state(),
        Ok(DataDirState::Initialized {
            standby_signal: true,
            ..
        })
    ) {
        return;
    }
    tracing::warn!(
        postmaster = pid,
        "PostgreSQL runs as a primary, but this agent holds no lease yet (the previous agent \
         stopped without shutting down): stopping it now (immediate shutdown) rather than \
         leaving it writable on the old fence alone; it is started again as primary if this \
         member still may lead"
    );
    match pg.stop(StopMode::Immediate, STOP_FOUND_PRIMARY).await {
        Ok(_) => {}
        Err(e) => {
            tracing::error!("pg_ctl stop failed ({e}); sending the postmaster SIGQUIT");
            if let Err(e) = pg.quit_postmaster(pid) {
                tracing::error!("cannot stop PostgreSQL: {e}");
            }
        }
    }
}

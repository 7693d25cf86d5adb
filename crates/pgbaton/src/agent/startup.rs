//! Waiting for the store at start. After a whole-site power cut etcd may come up after
//! the agents: an unreachable store is retried with backoff (0.5 s doubling to 10 s),
//! never fatal, so systemd does not have to guess whether a restart would help.

use super::shutdown::Shutdown;
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

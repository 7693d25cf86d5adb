//! The client: commits one row every 20 ms through whatever the cluster exposes as a
//! writable primary (like libpq's `target_session_attrs=read-write` over every
//! member), waits for the commit to be acknowledged, and records acknowledged commits.

use crate::pg::model;
use crate::world::{lock, Acked, Shared};
use std::time::Duration;
use tokio::time::Instant;

/// How long the client waits for one acknowledgement before giving up on it.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// Run the client forever.
pub async fn run(world: Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let target = {
            let w = lock(&world);
            w.hosts
                .values()
                .find(|h| h.writable() && w.connected("client", &h.name))
                .map(|h| h.name.clone())
        };
        let Some(host) = target else { continue };
        let Some(id) = model::commit(&mut lock(&world), &host) else {
            continue;
        };
        let deadline = Instant::now() + ACK_WAIT;
        loop {
            {
                let mut w = lock(&world);
                let reachable = w.connected("client", &host);
                let state = w.hosts[&host]
                    .pending
                    .iter()
                    .find(|p| p.commit == id)
                    .map(|p| p.acked);
                match state {
                    Some(true) if reachable => {
                        let at_ms = w.now_ms();
                        w.acked.push(Acked {
                            commit: id,
                            host: host.clone(),
                            at_ms,
                        });
                        if let Some(h) = w.hosts.get_mut(&host) {
                            h.pending.retain(|p| p.commit != id);
                        }
                        break;
                    }
                    None => break,
                    _ if Instant::now() >= deadline || !reachable => {
                        if let Some(h) = w.hosts.get_mut(&host) {
                            h.pending.retain(|p| p.commit != id);
                        }
                        break;
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

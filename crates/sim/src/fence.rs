//! The simulated fence process: armed and disarmed through the agent's real
//! `FenceFeed` (so the deadline arithmetic is production code), and enforced by the
//! world's tick on the host's boot clock. It outlives a killed agent, like the real one.

use crate::world::{lock, FenceProc, Shared};
use pgbaton::fence::{FenceError, FenceProcess, FenceSpawner};
use std::time::Duration;

/// A handle on one simulated fence process.
pub struct SimFence {
    world: Shared,
    host: String,
    gen: u64,
}

impl SimFence {
    fn with<T>(&self, f: impl FnOnce(&mut FenceProc) -> T) -> Option<T> {
        let mut w = lock(&self.world);
        w.hosts
            .get_mut(&self.host)?
            .fences
            .iter_mut()
            .find(|p| p.gen == self.gen && p.alive)
            .map(f)
    }

    fn gone(&self) -> FenceError {
        FenceError::Exited(format!("simulated fence process {} is gone", self.gen))
    }
}

impl FenceProcess for SimFence {
    fn arm_until(&self, deadline: Duration, expiry: Duration) -> Result<(), FenceError> {
        self.with(|p| p.armed = Some((deadline, expiry)))
            .ok_or_else(|| self.gone())
    }
    fn disarm(&self) -> Result<(), FenceError> {
        self.with(|p| p.armed = None).ok_or_else(|| self.gone())
    }
    fn fenced_count(&self) -> u64 {
        self.with(|p| p.fenced).unwrap_or(0)
    }
    fn is_alive(&self) -> bool {
        self.with(|_| ()).is_some()
    }
    fn last_error(&self) -> Option<String> {
        (!self.is_alive()).then(|| "killed".to_string())
    }
}

/// Starts simulated fence processes on one host for one agent incarnation.
pub struct SimFenceSpawner {
    /// The world.
    pub world: Shared,
    /// The host.
    pub host: String,
    /// The agent incarnation that owns the fences it starts.
    pub owner: u64,
}

#[async_trait::async_trait]
impl FenceSpawner for SimFenceSpawner {
    async fn spawn(&self) -> Result<Box<dyn FenceProcess>, FenceError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut w = lock(&self.world);
        let gen = w.id();
        let owner = self.owner;
        if let Some(h) = w.hosts.get_mut(&self.host) {
            h.fences.push(FenceProc {
                gen,
                owner,
                alive: true,
                frozen: false,
                armed: None,
                fenced: 0,
            });
        }
        Ok(Box::new(SimFence {
            world: self.world.clone(),
            host: self.host.clone(),
            gen,
        }))
    }
}

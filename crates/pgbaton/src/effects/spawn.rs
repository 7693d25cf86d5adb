//! How the agent starts a background task. The simulator wraps each task so that it
//! can freeze (SIGSTOP) or kill the agent's tasks together with the agent.

use std::future::Future;
use std::pin::Pin;

/// A task the agent hands to a [`Spawner`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts background tasks.
pub trait Spawner: Send + Sync {
    /// Run `task` in the background. Aborting the handle stops it.
    fn spawn(&self, task: BoxTask) -> tokio::task::JoinHandle<()>;
}

/// `tokio::spawn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxTask) -> tokio::task::JoinHandle<()> {
        tokio::spawn(task)
    }
}

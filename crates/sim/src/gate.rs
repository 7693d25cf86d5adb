//! SIGSTOP and SIGCONT for simulated processes: a future wrapper that stops polling
//! its inner future while the gate is closed. Timers keep running, so a resumed agent
//! finds its deadlines passed, as a real frozen process does.

use pgbaton::effects::{BoxTask, Spawner};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A freeze switch shared by every task of one simulated process.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<GateState>>);

#[derive(Default)]
struct GateState {
    frozen: bool,
    wakers: Vec<Waker>,
}

impl Gate {
    /// SIGSTOP.
    pub fn freeze(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).frozen = true;
    }

    /// SIGCONT.
    pub fn resume(&self) {
        let wakers = {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.frozen = false;
            std::mem::take(&mut g.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Wrap `fut` so that it runs only while the gate is open.
    pub fn wrap<F: Future>(&self, fut: F) -> Gated<F> {
        Gated {
            gate: self.clone(),
            inner: Box::pin(fut),
        }
    }
}

/// A future that is polled only while its gate is open.
pub struct Gated<F> {
    gate: Gate,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut g = self.gate.0.lock().unwrap_or_else(|e| e.into_inner());
            if g.frozen {
                g.wakers.push(cx.waker().clone());
                return Poll::Pending;
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

/// Spawns an agent's background tasks behind its gate and inside its tracing span.
pub struct GatedSpawner {
    /// The agent's gate.
    pub gate: Gate,
    /// The agent's span (for the trace).
    pub span: tracing::Span,
}

impl Spawner for GatedSpawner {
    fn spawn(&self, task: BoxTask) -> tokio::task::JoinHandle<()> {
        tokio::spawn(tracing::Instrument::instrument(
            self.gate.wrap(task),
            self.span.clone(),
        ))
    }
}

//! One etcd client per endpoint and the choice of which one to use.
//!
//! etcd-client's own balancing keeps sending requests to a dead endpoint (its channel
//! does not eject members whose connections fail), so calls would fail at random while
//! one member is down. Instead every call goes to the "current" endpoint; a call that
//! could not even connect is retried on the next one within the same deadline (safe:
//! it was never sent), and any other transport failure or timeout moves "current" on
//! for the next call (writes are not retried: they may have been applied; reads and
//! lease renewals are, until the deadline).

use super::errors::{is_unreachable, not_sent};
use crate::StoreError;
use etcd_client::{Client, ConnectOptions, Error};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// Pause before going round the endpoints again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// May a failed call be sent again?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only when it certainly never reached etcd (writes).
    OnlyUnsent,
    /// Also after transient failures: repeating it is harmless.
    Idempotent,
}

/// Why a pooled call failed.
pub(crate) enum CallError {
    /// No answer within the call deadline.
    Timeout(StoreError),
    /// etcd (or the transport) answered with an error, still to be classified.
    Etcd(Error),
}

/// Clients for each endpoint, created lazily (logging in needs a live endpoint).
pub(crate) struct Pool {
    endpoints: Vec<String>,
    options: ConnectOptions,
    clients: Vec<Mutex<Option<Client>>>,
    current: AtomicUsize,
    call_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(
        endpoints: Vec<String>,
        options: ConnectOptions,
        call_timeout: Duration,
    ) -> Pool {
        let clients = endpoints.iter().map(|_| Mutex::new(None)).collect();
        Pool {
            endpoints,
            options,
            clients,
            current: AtomicUsize::new(0),
            call_timeout,
        }
    }

    /// The configured endpoints.
    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The endpoint index calls go to now.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// Move on from endpoint `idx` (unless another caller already did).
    pub(crate) fn rotate_from(&self, idx: usize) {
        let next = (idx + 1) % self.endpoints.len();
        let _ = self
            .current
            .compare_exchange(idx, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The client of endpoint `idx`, connecting it first if needed.
    pub(crate) async fn client(&self, idx: usize) -> Result<Client, Error> {
        if let Some(c) = self.slot(idx).clone() {
            return Ok(c);
        }
        let c = Client::connect([&self.endpoints[idx]], Some(self.options.clone())).await?;
        *self.slot(idx) = Some(c.clone());
        Ok(c)
    }

    fn slot(&self, idx: usize) -> std::sync::MutexGuard<'_, Option<Client>> {
        self.clients[idx].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` against the current endpoint within the call deadline, failing over as
    /// described in the module docs. With `Retry::Idempotent` (reads, renewals,
    /// revocations) a call that failed with a transient error ("leader changed",
    /// connection lost) is also retried, on the next endpoint, until the deadline.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        retry: Retry,
        f: F,
    ) -> Result<T, CallError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.call_timeout;
        let n = self.endpoints.len();
        let mut last = None;
        for attempt in 0usize.. {
            if retry == Retry::OnlyUnsent && attempt >= n {
                break;
            }
            if attempt > 0 && attempt % n == 0 {
                // Every endpoint failed once: give an election time before going round.
                tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_PAUSE)).await;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let idx = self.current();
            let once = async {
                let client = self.client(idx).await?;
                f(client).await
            };
            match timeout(left, once).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let unreachable = is_unreachable(&e);
                    if unreachable {
                        self.rotate_from(idx);
                    }
                    let again = not_sent(&e) || (retry == Retry::Idempotent && unreachable);
                    if !again {
                        return Err(CallError::Etcd(e));
                    }
                    last = Some(CallError::Etcd(e));
                }
                Err(_) => {
                    self.rotate_from(idx);
                    break;
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            CallError::Timeout(StoreError::Unreachable(format!(
                "etcd {what} got no answer from {:?} within {:?}",
                self.endpoints, self.call_timeout
            )))
        }))
    }
}

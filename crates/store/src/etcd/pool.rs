//! One etcd client per endpoint and the choice of which one to use.
//!
//! A balancing channel keeps sending requests to a dead endpoint (it does not eject
//! members whose connections fail), so calls would fail at random while one member is
//! down. Instead every call goes to the "current" endpoint; a call that
//! could not even connect is retried on the next one within the same deadline (safe:
//! it was never sent), and any other transport failure or timeout moves "current" on
//! for the next call (writes are not retried: they may have been applied; reads and
//! lease renewals are, until the deadline).

use super::client::Client;
use super::errors::{is_unreachable, not_sent, Error};
use crate::StoreError;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A client for each endpoint (each connects on first use, and again after a failure).
pub(crate) struct Pool {
    endpoints: Vec<String>,
    clients: Vec<Client>,
    current: AtomicUsize,
    call_timeout: Duration,
}

impl Pool {
    /// `clients[i]` talks to `endpoints[i]`.
    pub(crate) fn new(
        endpoints: Vec<String>,
        clients: Vec<Client>,
        call_timeout: Duration,
    ) -> Pool {
        Pool {
            endpoints,
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

    /// The client of endpoint `idx`.
    pub(crate) fn client(&self, idx: usize) -> &Client {
        &self.clients[idx]
    }

    /// Run `f` against the current endpoint within the call deadline, failing over as
    /// described in the module docs. With `Retry::Idempotent` (reads, renewals,
    /// revocations) a call that failed with a transient error ("leader changed",
    /// connection lost) is also retried, on the next endpoint, until the deadline.
    pub(crate) async fn call<'a, T, F, Fut>(
        &'a self,
        what: &str,
        retry: Retry,
        f: F,
    ) -> Result<T, CallError>
    where
        F: Fn(&'a Client) -> Fut,
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
            match timeout(left, f(self.client(idx))).await {
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

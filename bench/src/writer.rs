//! The writer: commits one numbered row every 10 ms through a multi-host connection
//! string with `target_session_attrs=read-write`, reconnecting at once on error, and
//! records the send time and the ack time or error of every attempt.

use crate::sql::TABLE;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Time between two commits of the writer.
pub const PERIOD: Duration = Duration::from_millis(10);
/// Longest wait for one insert before it counts as failed (outcome unknown).
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed connection attempt (every host refused), so the writer does
/// not spin on a CPU that the cluster needs.
pub const CONNECT_RETRY: Duration = Duration::from_millis(5);

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed: the server acknowledged the row at `at` (since the epoch); `port` is
    /// the server that took it.
    Acked {
        /// Ack time since the writer's epoch.
        at: Duration,
        /// Port of the server the writer was connected to.
        port: u16,
        /// When the session that carried it was opened, since the epoch.
        session: Duration,
    },
    /// Failed at `at`: no ack (the row may or may not be committed).
    Failed {
        /// Time the failure was seen, since the epoch.
        at: Duration,
        /// The error, shortened.
        error: String,
    },
}

/// One attempt: row `id` sent at `sent` (since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The row id (every attempt gets a new id, so a retry never hits a duplicate key).
    pub id: i64,
    /// When the insert was sent (or the connection attempt began).
    pub sent: Duration,
    /// Ack or error.
    pub outcome: Outcome,
}

/// A running writer. Call [`Writer::stop`] to end it and take its log.
pub struct Writer {
    epoch: Instant,
    log: Arc<Mutex<Vec<Attempt>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Start writing through `conninfo` (a libpq string; the table must exist). Times in
    /// the log are measured from `epoch`.
    pub fn start(conninfo: String, epoch: Instant) -> Writer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(conninfo, epoch, log.clone(), stop.clone()));
        Writer {
            epoch,
            log,
            stop,
            task,
        }
    }

    /// The time since the epoch, on the writer's clock.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Read the log so far. Keep the closure short: the writer waits for it.
    pub fn with_log<R>(&self, f: impl FnOnce(&[Attempt]) -> R) -> R {
        f(&lock(&self.log))
    }

    /// Wait until an attempt sent at or after `after` is acknowledged; returns its ack
    /// time and server port, or None at `timeout`. With `fresh_session`, only acks on a
    /// session opened at or after `after` count (after a crash, an orphaned backend of
    /// the dead postmaster may still ack a write on the old session).
    pub async fn wait_ack_after(
        &self,
        after: Duration,
        fresh_session: bool,
        timeout: Duration,
    ) -> Option<(Duration, u16)> {
        let deadline = Instant::now() + timeout;
        loop {
            let found =
                self.with_log(|log| crate::analysis::first_ack_after(log, after, fresh_session));
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stop the writer (after its current attempt) and return the whole log.
    pub async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(INSERT_TIMEOUT * 2, self.task).await;
        let log = lock(&self.log).clone();
        log
    }
}

fn lock(log: &Mutex<Vec<Attempt>>) -> MutexGuard<'_, Vec<Attempt>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection with its prepared insert and the port of its server.
struct Session {
    opened: Duration,
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
    port: u16,
}

async fn open(conninfo: &str, opened: Duration) -> Result<Session, String> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(connection);
    let port: i32 = client
        .query_one("select inet_server_port()", &[])
        .await
        .map_err(|e| format!("server port: {e}"))?
        .get(0);
    let insert = client
        .prepare(&format!("insert into {TABLE} (id) values ($1)"))
        .await
        .map_err(|e| format!("prepare: {e}"))?;
    Ok(Session {
        opened,
        client,
        insert,
        port: u16::try_from(port).unwrap_or(0),
    })
}

async fn run(
    conninfo: String,
    epoch: Instant,
    log: Arc<Mutex<Vec<Attempt>>>,
    stop: Arc<AtomicBool>,
) {
    let mut session: Option<Session> = None;
    let mut id: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        id += 1;
        let sent_at = Instant::now();
        let sent = epoch.elapsed();
        if session.is_none() {
            match tokio::time::timeout(INSERT_TIMEOUT, open(&conninfo, sent)).await {
                Ok(Ok(s)) => session = Some(s),
                Ok(Err(error)) => {
                    record_failure(&log, epoch, id, sent, error);
                    tokio::time::sleep(CONNECT_RETRY).await;
                    continue;
                }
                Err(_) => {
                    record_failure(&log, epoch, id, sent, "connect: timed out".into());
                    continue;
                }
            }
        }
        let Some(s) = session.as_ref() else { continue };
        let result =
            tokio::time::timeout(INSERT_TIMEOUT, s.client.execute(&s.insert, &[&id])).await;
        match result {
            Ok(Ok(_)) => {
                let outcome = Outcome::Acked {
                    at: epoch.elapsed(),
                    port: s.port,
                    session: s.opened,
                };
                lock(&log).push(Attempt { id, sent, outcome });
                tokio::time::sleep_until((sent_at + PERIOD).into()).await;
            }
            Ok(Err(e)) => {
                record_failure(&log, epoch, id, sent, format!("insert: {e}"));
                session = None;
            }
            Err(_) => {
                record_failure(&log, epoch, id, sent, "insert: timed out".into());
                session = None;
            }
        }
    }
}

fn record_failure(
    log: &Mutex<Vec<Attempt>>,
    epoch: Instant,
    id: i64,
    sent: Duration,
    mut error: String,
) {
    error.truncate(200);
    let outcome = Outcome::Failed {
        at: epoch.elapsed(),
        error,
    };
    lock(log).push(Attempt { id, sent, outcome });
}

/// Write `log` as CSV (`id,sent_s,outcome,at_s,port_or_error`) to `path`, for digging
/// into a run afterwards.
pub fn write_csv(log: &[Attempt], path: &std::path::Path) -> crate::Result<()> {
    let mut out = String::from("id,sent_s,outcome,at_s,port_or_error\n");
    for a in log {
        let line = match &a.outcome {
            Outcome::Acked { at, port, .. } => format!(
                "{},{:.6},ack,{:.6},{port}\n",
                a.id,
                a.sent.as_secs_f64(),
                at.as_secs_f64()
            ),
            Outcome::Failed { at, error } => format!(
                "{},{:.6},error,{:.6},\"{}\"\n",
                a.id,
                a.sent.as_secs_f64(),
                at.as_secs_f64(),
                error.replace('"', "'").replace('\n', " ")
            ),
        };
        out.push_str(&line);
    }
    std::fs::write(path, out).map_err(|e| crate::BenchError::io("write writer log", path, e))
}

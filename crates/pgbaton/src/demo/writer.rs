//! `pgbaton demo --writer`: a client that commits one row every 10 ms through the
//! multi-host connection string, so the screen shows writes going on (or not) across a
//! `pgbaton switchover` or a killed primary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the writer commits.
const EVERY: Duration = Duration::from_millis(10);

/// What the writer did so far.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Commits acknowledged.
    pub ok: u64,
    /// Attempts that failed (no primary reachable, or the commit failed), counted from
    /// the first acknowledged commit on.
    pub failed: u64,
    /// The longest time between two acknowledged commits.
    pub longest_gap: Duration,
    /// When the last commit was acknowledged.
    pub last_ok: Option<Instant>,
    /// The last error, while the writer is failing.
    pub error: Option<String>,
}

impl Stats {
    /// One line for the demo's screen.
    pub fn line(&self) -> String {
        match (self.last_ok, &self.error) {
            (None, Some(e)) => format!("Writer: waiting for a primary ({e})"),
            (None, None) => "Writer: connecting".to_string(),
            (Some(last), error) => {
                let now = match error {
                    Some(e) => format!("FAILING for {:.1} s: {e}", last.elapsed().as_secs_f64()),
                    None => "writing".to_string(),
                };
                format!(
                    "Writer (a commit every 10 ms): {} ok, {} failed, longest gap {:.2} s; {now}",
                    self.ok,
                    self.failed,
                    self.longest_gap.as_secs_f64()
                )
            }
        }
    }
}

/// Start the writer on `conninfo` (a libpq multi-host string with
/// `target_session_attrs=read-write`); the returned stats are updated as it goes.
pub fn spawn(conninfo: String) -> Arc<Mutex<Stats>> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let shared = stats.clone();
    tokio::spawn(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = commit(&conninfo, &mut client).await;
            let mut s = match shared.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            match result {
                Ok(()) => {
                    let now = Instant::now();
                    if let Some(last) = s.last_ok {
                        s.longest_gap = s.longest_gap.max(now - last);
                    }
                    s.last_ok = Some(now);
                    s.ok += 1;
                    s.error = None;
                }
                Err(e) => {
                    if s.last_ok.is_some() {
                        s.failed += 1;
                    }
                    s.error = Some(e.to_string().lines().next().unwrap_or("").to_string());
                }
            }
        }
    });
    stats
}

/// Commit one row, connecting (and creating the table) first when needed; a failure
/// drops the connection, so the next attempt finds the primary again.
async fn commit(
    conninfo: &str,
    client: &mut Option<tokio_postgres::Client>,
) -> Result<(), tokio_postgres::Error> {
    let c = match client.take().filter(|c| !c.is_closed()) {
        Some(c) => c,
        None => {
            let (c, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            c.batch_execute(
                "create table if not exists pgbaton_demo_writes \
                 (id bigserial primary key, at timestamptz not null default now())",
            )
            .await?;
            c
        }
    };
    c.execute("insert into pgbaton_demo_writes default values", &[])
        .await?;
    *client = Some(c);
    Ok(())
}

//! SQL access to the local server over its Unix socket, as the superuser.
//!
//! Methods do not time out by themselves: wrap calls in `tokio::time::timeout` when a stuck
//! server must not stall the caller.

mod probe;
mod roles;
mod slots;

use std::time::Duration;

use pgbaton_core::Lsn;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use crate::error::{Error, Result};
use crate::instance::Instance;

pub use probe::{Probe, ReplicationPeer, WalReceiver};
pub use slots::SlotInfo;

/// Default connect timeout used by [`Instance::connect`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// An open SQL session with the local server. Dropping it closes the connection.
pub struct Sql {
    client: Client,
    target: String,
    /// The agent's per-cycle queries, prepared once on this connection: each later run
    /// is one round trip to the server instead of two (prepare, then execute).
    prepared: std::sync::Mutex<Vec<(&'static str, Statement)>>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql").field("target", &self.target).finish()
    }
}

impl Instance {
    /// Connects as the superuser through the Unix socket (`host=<socket_dir> port=<port>
    /// dbname=postgres`), with a 3 s connect timeout.
    pub async fn connect(&self) -> Result<Sql> {
        self.connect_with_timeout(DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`Instance::connect`] with another connect timeout.
    pub async fn connect_with_timeout(&self, timeout: Duration) -> Result<Sql> {
        let target = format!("{}:{}", self.socket_dir.display(), self.port);
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&self.socket_dir)
            .port(self.port)
            .user(&self.superuser.user)
            .password(&self.superuser.password)
            .dbname("postgres")
            .application_name("pgbaton")
            .connect_timeout(timeout);
        let what = format!("connect to {target}");
        let (client, connection) = match tokio::time::timeout(timeout, cfg.connect(NoTls)).await {
            Ok(r) => r.map_err(|e| Error::sql(what, e))?,
            Err(_) => {
                return Err(Error::Timeout {
                    action: what,
                    timeout,
                    log_tail: String::new(),
                })
            }
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "SQL connection ended");
            }
        });
        Ok(Sql {
            client,
            target,
            prepared: std::sync::Mutex::new(Vec::new()),
        })
    }
}

impl Sql {
    /// The underlying driver client, for queries this type has no method for.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True once the connection is broken or closed; connect again.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `sql` prepared on this connection (prepared on first use, then reused).
    pub(crate) async fn prepared(&self, what: &str, sql: &'static str) -> Result<Statement> {
        let known = |p: &Vec<(&'static str, Statement)>| {
            p.iter().find(|(q, _)| *q == sql).map(|(_, s)| s.clone())
        };
        if let Some(s) = known(&self.lock_prepared()) {
            return Ok(s);
        }
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| self.err(what, e))?;
        let mut p = self.lock_prepared();
        if known(&p).is_none() {
            p.push((sql, statement.clone()));
        }
        Ok(statement)
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, Statement)>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn err(&self, what: &str, e: tokio_postgres::Error) -> Error {
        Error::sql(format!("{what} on {}", self.target), e)
    }

    /// Runs one or more statements (simple protocol, no parameters). For tests and admin tasks;
    /// never pass untrusted text.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.err("execute", e))
    }

    /// Runs a query (simple protocol) and returns every row's columns as text (`None` for NULL).
    pub async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let msgs = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| self.err("query", e))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Forces an immediate checkpoint (e.g. on a freshly promoted primary before others
    /// pg_rewind from it, or before a clean switchover shutdown).
    pub async fn checkpoint(&self) -> Result<()> {
        self.client
            .batch_execute("CHECKPOINT")
            .await
            .map_err(|e| self.err("CHECKPOINT", e))
    }

    /// `current_setting(name)`: the value the server uses now.
    pub async fn show(&self, name: &str) -> Result<String> {
        let statement = self
            .prepared("read setting", "SELECT current_setting($1)")
            .await?;
        let row = self
            .client
            .query_one(&statement, &[&name])
            .await
            .map_err(|e| self.err("read setting", e))?;
        Ok(row.get(0))
    }

    /// Settings changed in the files that only take effect after a restart
    /// (`pg_settings.pending_restart`); call after a reload.
    pub async fn pending_restart(&self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
                &[],
            )
            .await
            .map_err(|e| self.err("read pending_restart", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Parses an optional LSN column fetched as text.
pub(crate) fn opt_lsn(what: &str, v: Option<String>) -> Result<Option<Lsn>> {
    v.map(|s| {
        s.parse().map_err(|_| Error::BadValue {
            what: what.to_string(),
            value: s,
        })
    })
    .transpose()
}

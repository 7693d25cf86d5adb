//! Short-lived SQL connections to one member, for probes and the final row check.

use crate::{BenchError, Result};
use std::collections::HashSet;
use std::time::Duration;
use tokio_postgres::NoTls;

/// The table the writer fills: one row per acknowledged attempt.
pub const TABLE: &str = "bench_writes";

/// A libpq connection string for one server.
pub fn conninfo(port: u16, password: &str, connect_timeout_s: u64) -> String {
    format!(
        "host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres connect_timeout={connect_timeout_s} application_name=pgbaton-bench"
    )
}

/// Connect to `conninfo` within `timeout`; the connection task runs in the background.
pub async fn connect(
    conninfo: &str,
    target: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client> {
    let fut = tokio_postgres::connect(conninfo, NoTls);
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Ok(Err(source)) => Err(BenchError::Sql {
            target: target.to_string(),
            source,
        }),
        Err(_) => Err(BenchError::Timeout {
            what: format!("a connection to {target}"),
            after: timeout,
        }),
    }
}

/// Create the writer's table on the primary (idempotent).
pub async fn create_table(conninfo: &str, target: &str) -> Result<()> {
    let client = connect(conninfo, target, Duration::from_secs(5)).await?;
    client
        .batch_execute(&format!(
            "create table if not exists {TABLE} (id bigint primary key, at timestamptz not null default clock_timestamp())"
        ))
        .await
        .map_err(|source| BenchError::Sql {
            target: target.to_string(),
            source,
        })
}

/// Every id in the writer's table on the server at `conninfo`.
pub async fn table_ids(conninfo: &str, target: &str) -> Result<HashSet<i64>> {
    let client = connect(conninfo, target, Duration::from_secs(5)).await?;
    let rows = client
        .query(&format!("select id from {TABLE}"), &[])
        .await
        .map_err(|source| BenchError::Sql {
            target: target.to_string(),
            source,
        })?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
}

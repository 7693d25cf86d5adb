//! `switchover`, `failover`, `pause`/`resume`, `reinit`: operator requests that travel
//! through the store, so they work whichever member's config the CLI is given.

use super::list::{fetch, Row};
use super::ops::{self, SwitchoverAsk};
use anyhow::bail;
use pgbaton_config::NodeConfig;
use pgbaton_core::model::{
    SwitchoverPhase, SwitchoverRequest, KEY_CONFIG, KEY_REINIT, KEY_SWITCHOVER,
};
use pgbaton_store::{Expect, Store};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// What `pgbaton switchover` was asked.
pub struct SwitchoverArgs {
    /// The member to promote; chosen when absent.
    pub to: Option<String>,
    /// When to do it: RFC 3339 time, or `+30s` / `+5m` from now.
    pub at: Option<String>,
    /// Do not ask for confirmation.
    pub force: bool,
    /// Cancel a pending request instead.
    pub cancel: bool,
    /// How long to wait for the new primary.
    pub timeout: Duration,
}

fn confirm(question: &str, force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::exit::usage(format!(
            "{question} Not confirmed: standard input is not a terminal; add --force"
        )));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("aborted");
    }
    Ok(())
}

/// `pgbaton switchover`.
pub async fn switchover(config: &Path, args: SwitchoverArgs) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let store = store.as_ref();
    if args.cancel {
        let req = ops::cancel_switchover(store).await?;
        println!("switchover to {} cancelled", req.to);
        return Ok(());
    }
    let scheduled_ms = args.at.as_deref().map(ops::parse_at).transpose()?;
    let ask = SwitchoverAsk {
        leader: None,
        candidate: args.to.clone(),
        scheduled_ms,
    };
    let req = ops::plan_switchover(store, &cfg.bootstrap, &ask).await?;
    let from = req.from.clone().unwrap_or_default();
    let to = req.to.clone();
    let when = match args.at.as_deref() {
        Some(at) => format!(" at {at}"),
        None => " now".to_string(),
    };
    confirm(
        &format!("Switch over from {from} to {to}{when}?"),
        args.force,
    )?;
    ops::submit(store, &req).await?;
    if scheduled_ms.is_some() {
        println!(
            "switchover from {from} to {to} scheduled{when}; cancel with `pgbaton switchover --cancel`"
        );
        return Ok(());
    }
    println!("switchover from {from} to {to} requested");
    wait_for_primary(&cfg, store, &to, args.timeout).await
}

/// `pgbaton failover --to NAME [--force]`: promote a chosen member when there is no
/// healthy primary.
pub async fn failover(
    config: &Path,
    to: &str,
    force: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let store = store.as_ref();
    let (req, lag) = ops::plan_failover(store, &cfg.bootstrap, to, force).await?;
    confirm(&format!("Promote {to} (lag {lag} bytes)?"), force)?;
    ops::submit(store, &req).await?;
    println!(
        "failover to {to} requested{}",
        if force { " (forced)" } else { "" }
    );
    wait_for_primary(&cfg, store, to, timeout).await
}

/// Wait until `to` holds the leader key and accepts writes, reporting progress.
async fn wait_for_primary(
    cfg: &NodeConfig,
    store: &dyn Store,
    to: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut said = String::new();
    loop {
        let rows = fetch(store).await?;
        let request: Option<SwitchoverRequest> = store
            .get(KEY_SWITCHOVER)
            .await?
            .and_then(|e| serde_json::from_str(&e.value).ok());
        let now = match (&request, rows.iter().find(|r| r.leader)) {
            (Some(r), _) if matches!(r.phase, SwitchoverPhase::PrimaryStopped { .. }) => {
                format!("the old primary stopped cleanly; {to} is taking over")
            }
            (_, Some(l)) if l.name == to && l.state == "running" => {
                if writable(cfg, l).await {
                    println!(
                        "{to} is the primary and accepts writes ({:.2} s)",
                        t0.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                format!("{to} holds the leader key")
            }
            (None, Some(l)) if l.name != to => {
                let why = rows
                    .iter()
                    .find(|r| r.name == l.name)
                    .and_then(|r| r.note.clone())
                    .unwrap_or_default();
                return Err(crate::exit::refused(format!(
                    "the request was dropped and {} is still the primary: {why}",
                    l.name
                )));
            }
            (None, None) => "waiting for a leader".to_string(),
            _ => "waiting".to_string(),
        };
        if now != said {
            println!("{now}");
            said = now;
        }
        if t0.elapsed() > timeout {
            let notes: Vec<String> = rows
                .iter()
                .filter_map(|r| r.note.as_ref().map(|n| format!("{}: {n}", r.name)))
                .collect();
            return Err(crate::exit::timed_out(format!(
                "{to} did not become a writable primary within {timeout:?}. Members say:\n  {}",
                notes.join("\n  ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True if the member's PostgreSQL accepts a write transaction.
async fn writable(cfg: &NodeConfig, row: &Row) -> bool {
    // Built field by field: a password with spaces or quotes, or a host from the store,
    // cannot inject conninfo keywords (security review F6).
    let mut conn = tokio_postgres::Config::new();
    conn.host(&row.host)
        .port(row.port)
        .user(&cfg.postgres.superuser.username)
        .password(&cfg.postgres.superuser.password)
        .dbname("postgres")
        .connect_timeout(std::time::Duration::from_secs(2));
    let Ok((client, connection)) = conn.connect(tokio_postgres::NoTls).await else {
        return false;
    };
    tokio::spawn(connection);
    client
        .simple_query("BEGIN READ WRITE; CREATE TEMP TABLE pgbaton_probe (x int); ROLLBACK")
        .await
        .is_ok()
}

/// `pgbaton pause` / `pgbaton resume`: maintenance mode on or off.
pub async fn set_paused(config: &Path, paused: bool) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    for _ in 0..10 {
        let (mut ccfg, rev) = ops::cluster_config(store.as_ref(), &cfg.bootstrap).await?;
        if ccfg.paused == paused {
            println!(
                "the cluster is already {}",
                if paused {
                    "paused"
                } else {
                    "running automatically"
                }
            );
            return Ok(());
        }
        ccfg.paused = paused;
        let expect = rev.map(Expect::ModRevision).unwrap_or(Expect::Absent);
        if store
            .put(KEY_CONFIG, &serde_json::to_string(&ccfg)?, None, expect)
            .await?
        {
            println!(
                "{}",
                if paused {
                    "paused: no automatic failover, restart or rejoin until `pgbaton resume`"
                } else {
                    "resumed: automatic failover is on again"
                }
            );
            return Ok(());
        }
    }
    bail!("the cluster config kept changing; try again")
}

/// `pgbaton reinit NAME`: re-clone a replica from the primary.
pub async fn reinit(
    config: &Path,
    name: &str,
    force: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (_, store) = super::open(config).await?;
    let store = store.as_ref();
    ops::check_reinit(store, name).await?;
    confirm(
        &format!("Delete {name}'s data and clone it again from the primary?"),
        force,
    )?;
    ops::submit_reinit(store, name).await?;
    println!("reinit of {name} requested");
    let t0 = Instant::now();
    let mut seen_clone = false;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rows = fetch(store).await?;
        let state = rows
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.state.clone());
        if state.as_deref() == Some("creating replica") && !seen_clone {
            println!("{name} is cloning");
            seen_clone = true;
        }
        if store.get(KEY_REINIT).await?.is_none() && state.as_deref() == Some("streaming") {
            println!(
                "{name} was re-cloned and streams ({:.1} s)",
                t0.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if t0.elapsed() > timeout {
            let _ = store
                .delete(KEY_REINIT, Expect::Value(name.to_string()))
                .await;
            return Err(crate::exit::timed_out(format!(
                "{name} was not re-cloned within {timeout:?} (state: {state:?}); request withdrawn"
            )));
        }
    }
}

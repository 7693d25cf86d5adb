//! `switchover`, `failover`, `pause`/`resume`, `reinit`: operator requests that travel
//! through the store, so they work whichever member's config the CLI is given.

use super::list::{fetch, Row};
use anyhow::{bail, Context};
use pgbaton_config::NodeConfig;
use pgbaton_core::model::{
    ClusterConfig, RequestKind, SwitchoverPhase, SwitchoverRequest, KEY_CONFIG, KEY_REINIT,
    KEY_SWITCHOVER,
};
use pgbaton_store::{Expect, Store};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Read the cluster config from the store (or the bootstrap one before it exists).
async fn cluster_config(
    store: &dyn Store,
    cfg: &NodeConfig,
) -> anyhow::Result<(ClusterConfig, Option<i64>)> {
    match store.get(KEY_CONFIG).await? {
        Some(e) => Ok((
            serde_json::from_str(&e.value).context("the store's config key is unreadable")?,
            Some(e.mod_revision),
        )),
        None => Ok((cfg.bootstrap.clone(), None)),
    }
}

fn confirm(question: &str, force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} Not confirmed: standard input is not a terminal; add --force");
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

fn parse_at(at: &str) -> anyhow::Result<u64> {
    if let Some(rel) = at.strip_prefix('+') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("--at {at:?}: expected e.g. +30s or +5m"))?;
        return Ok(now_ms() + d.as_millis() as u64);
    }
    let t = humantime::parse_rfc3339_weak(at)
        .with_context(|| format!("--at {at:?}: expected e.g. 2026-11-25T21:00:00Z or +5m"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0))
}

/// `pgbaton switchover`.
pub async fn switchover(config: &Path, args: SwitchoverArgs) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let store = store.as_ref();
    let pending = store.get(KEY_SWITCHOVER).await?;
    if args.cancel {
        let Some(entry) = pending else {
            bail!("no switchover is pending");
        };
        let req: SwitchoverRequest = serde_json::from_str(&entry.value)?;
        if req.phase != SwitchoverPhase::Requested {
            bail!(
                "the switchover to {} is already under way and cannot be cancelled",
                req.to
            );
        }
        if !store
            .delete(KEY_SWITCHOVER, Expect::ModRevision(entry.mod_revision))
            .await?
        {
            bail!("the switchover request changed meanwhile; look again with `pgbaton list`");
        }
        println!("switchover to {} cancelled", req.to);
        return Ok(());
    }
    if let Some(entry) = pending {
        let req: SwitchoverRequest = serde_json::from_str(&entry.value)?;
        bail!(
            "another {:?} to {} is pending; cancel it first with `pgbaton switchover --cancel`",
            req.kind,
            req.to
        );
    }
    let rows = fetch(store).await?;
    let (ccfg, _) = cluster_config(store, &cfg).await?;
    let primary = rows
        .iter()
        .find(|r| r.leader && r.role == "primary" && r.state == "running")
        .context("no healthy primary holds the leader key: a switchover needs one (see `pgbaton failover`)")?
        .clone();
    if ccfg.paused && args.to.is_none() {
        bail!("the cluster is paused: name the candidate with --to to switch over anyway");
    }
    let to = match &args.to {
        Some(name) => {
            let row = rows
                .iter()
                .find(|r| &r.name == name)
                .with_context(|| format!("unknown member {name:?}"))?;
            check_candidate(row, &primary, ccfg.maximum_lag_on_failover)?;
            name.clone()
        }
        None => best_candidate(&rows, &primary, ccfg.maximum_lag_on_failover)?,
    };
    let scheduled_ms = args.at.as_deref().map(parse_at).transpose()?;
    let when = match args.at.as_deref() {
        Some(at) => format!(" at {at}"),
        None => " now".to_string(),
    };
    confirm(
        &format!("Switch over from {} to {to}{when}?", primary.name),
        args.force,
    )?;
    let req = SwitchoverRequest {
        kind: RequestKind::Switchover,
        from: Some(primary.name.clone()),
        to: to.clone(),
        scheduled_ms,
        requested_ms: now_ms(),
        force: false,
        phase: SwitchoverPhase::Requested,
    };
    if !store
        .put(
            KEY_SWITCHOVER,
            &serde_json::to_string(&req)?,
            None,
            Expect::Absent,
        )
        .await?
    {
        bail!("another switchover was requested at the same moment; look with `pgbaton list`");
    }
    if scheduled_ms.is_some() {
        println!(
            "switchover from {} to {to} scheduled{when}; cancel with `pgbaton switchover --cancel`",
            primary.name
        );
        return Ok(());
    }
    println!("switchover from {} to {to} requested", primary.name);
    wait_for_primary(&cfg, store, &to, args.timeout).await
}

fn check_candidate(row: &Row, primary: &Row, max_lag: u64) -> anyhow::Result<()> {
    if row.name == primary.name {
        bail!("{} is already the primary", row.name);
    }
    if row.state != "streaming" {
        bail!(
            "{} cannot take over: it is {}, not streaming",
            row.name,
            row.state
        );
    }
    let lag = row.lag_bytes.unwrap_or(0);
    if lag > max_lag {
        bail!(
            "{} cannot take over: it lags {lag} bytes, more than maximum_lag_on_failover ({max_lag})",
            row.name
        );
    }
    Ok(())
}

fn best_candidate(rows: &[Row], primary: &Row, max_lag: u64) -> anyhow::Result<String> {
    let mut fit: Vec<&Row> = rows
        .iter()
        .filter(|r| check_candidate(r, primary, max_lag).is_ok())
        .filter(|r| !r.tags.iter().any(|t| t == "nofailover"))
        .collect();
    fit.sort_by(|a, b| {
        a.lag_bytes
            .unwrap_or(0)
            .cmp(&b.lag_bytes.unwrap_or(0))
            .then(priority(b).cmp(&priority(a)))
            .then(a.name.cmp(&b.name))
    });
    fit.first()
        .map(|r| r.name.clone())
        .context("no member can take over: none is streaming within the lag limit")
}

fn priority(r: &Row) -> i32 {
    r.tags
        .iter()
        .find_map(|t| {
            t.strip_prefix("failover_priority=")
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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
    if let Some(entry) = store.get(KEY_SWITCHOVER).await? {
        let req: SwitchoverRequest = serde_json::from_str(&entry.value)?;
        bail!(
            "a {:?} to {} is pending; wait for it or cancel it",
            req.kind,
            req.to
        );
    }
    let rows = fetch(store).await?;
    if let Some(p) = rows.iter().find(|r| r.leader && r.state == "running") {
        bail!(
            "{} is a healthy primary: use `pgbaton switchover --to {to}` instead",
            p.name
        );
    }
    let row = rows
        .iter()
        .find(|r| r.name == to)
        .with_context(|| format!("unknown member {to:?}"))?;
    if !matches!(row.state.as_str(), "streaming" | "in recovery") {
        bail!("{to} cannot be promoted: it is {}", row.state);
    }
    let (ccfg, _) = cluster_config(store, &cfg).await?;
    let lag = row.lag_bytes.unwrap_or(0);
    if lag > ccfg.maximum_lag_on_failover && !force {
        bail!(
            "{to} lags {lag} bytes behind the last primary: promoting it loses those commits; \
             add --force to accept the loss"
        );
    }
    confirm(&format!("Promote {to} (lag {lag} bytes)?"), force)?;
    let req = SwitchoverRequest {
        kind: RequestKind::Failover,
        from: None,
        to: to.to_string(),
        scheduled_ms: None,
        requested_ms: now_ms(),
        force,
        phase: SwitchoverPhase::Requested,
    };
    if !store
        .put(
            KEY_SWITCHOVER,
            &serde_json::to_string(&req)?,
            None,
            Expect::Absent,
        )
        .await?
    {
        bail!("another request was made at the same moment; look with `pgbaton list`");
    }
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
                bail!(
                    "the request was dropped and {} is still the primary: {why}",
                    l.name
                );
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
            bail!(
                "{to} did not become a writable primary within {timeout:?}. Members say:\n  {}",
                notes.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True if the member's PostgreSQL accepts a write transaction.
async fn writable(cfg: &NodeConfig, row: &Row) -> bool {
    let conn = format!(
        "host={} port={} user={} password={} dbname=postgres connect_timeout=2",
        row.host, row.port, cfg.postgres.superuser.username, cfg.postgres.superuser.password
    );
    let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await
    else {
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
        let (mut ccfg, rev) = cluster_config(store.as_ref(), &cfg).await?;
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
    let rows = fetch(store).await?;
    let row = rows
        .iter()
        .find(|r| r.name == name)
        .with_context(|| format!("unknown member {name:?}"))?;
    if row.leader {
        bail!("{name} is the primary: switch over first, then reinit it");
    }
    if row.port == 0 {
        bail!("{name}'s agent is not running: start it first");
    }
    confirm(
        &format!("Delete {name}'s data and clone it again from the primary?"),
        force,
    )?;
    if !store.put(KEY_REINIT, name, None, Expect::Absent).await? {
        bail!("another reinit is in progress");
    }
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
            bail!(
                "{name} was not re-cloned within {timeout:?} (state: {state:?}); request withdrawn"
            );
        }
    }
}

//! `bench-soak`: a healthy 3-member cluster on the fast timing, under a steady pgbench
//! load and one `GET /cluster` per second per member, for a long time; counts what must
//! never happen without a fault: failovers, leader changes and fencing.

use clap::Parser;
use pgbaton_bench::cli::{run_main, CommonArgs};
use pgbaton_bench::cluster::Cluster;
use pgbaton_bench::report::{append_results, yes, Table};
use pgbaton_bench::{BenchError, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run a local cluster under load and count false failovers and fencing.
#[derive(Debug, Parser)]
#[command(name = "bench-soak", version)]
struct Args {
    /// How long, minutes.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Lease time (bootstrap.ttl), seconds: the smallest that `check-config` accepts
    /// (with loop_wait 1, retry_timeout 1 and watchdog.safety_margin 1, the defaults
    /// of this benchmark).
    #[arg(long, default_value_t = 3)]
    ttl: u64,
    /// pgbench transactions per second (rate-limited, `-R`).
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// pgbench clients.
    #[arg(long, default_value_t = 2)]
    clients: u32,
    /// The pgbench program [default: pgbench beside the PostgreSQL binaries on PATH,
    /// else /usr/lib/postgresql/15/bin/pgbench].
    #[arg(long)]
    pgbench: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> std::process::ExitCode {
    run_main(bench(Args::parse()))
}

/// What the API pollers saw.
#[derive(Default)]
struct Api {
    ok: AtomicU64,
    failed: AtomicU64,
    slowest_ms: AtomicU64,
}

/// What pgbench did over the whole soak (it is started again if it stops).
#[derive(Default, Debug)]
struct Load {
    runs: u32,
    failed_runs: u32,
    transactions: u64,
    last_error: String,
}

async fn bench(mut args: Args) -> Result<()> {
    if args.common.retry_timeout.is_none() {
        args.common.retry_timeout = Some(1);
    }
    if args.common.safety_margin.is_none() {
        args.common.safety_margin = Some(1);
    }
    let healthy = Duration::from_secs(args.common.healthy_timeout);
    let mut cluster = Cluster::create(&args.common.spec(3, args.ttl)?)?;
    eprintln!("cluster in {}", cluster.root().display());
    cluster.check_config(0).await?;
    cluster.start_all()?;
    let first = cluster.wait_healthy(healthy).await?;
    let pgbench = args.pgbench.clone().unwrap_or_else(default_pgbench);
    let conninfo = cluster.writer_conninfo();
    run_pgbench(&pgbench, &["-i", "-q", "-s", "1"], &conninfo).await?;
    let logs_before: Vec<u64> = (0..3).map(|i| cluster.log_len(i)).collect();
    let loadavg_before = loadavg();
    let stop = Arc::new(AtomicBool::new(false));
    let api = Arc::new(Api::default());
    let mut pollers = Vec::new();
    for m in cluster.members() {
        pollers.push(tokio::spawn(poll_api(
            m.api_port,
            stop.clone(),
            api.clone(),
        )));
    }
    let duration = Duration::from_secs(args.minutes * 60);
    let t0 = Instant::now();
    let load = {
        let (pgbench, conninfo, stop) = (pgbench.clone(), conninfo.clone(), stop.clone());
        let (clients, rate) = (args.clients, args.rate);
        tokio::spawn(
            async move { load(&pgbench, &conninfo, clients, rate, t0 + duration, &stop).await },
        )
    };
    let state = cluster.store_state_file();
    let mut leader_changes = 0u32;
    let mut leaderless_samples = 0u32;
    let mut last_leader = leader_name(&state);
    let mut next_report = t0 + Duration::from_secs(300);
    while t0.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = leader_name(&state);
        match (&now, &last_leader) {
            (None, _) => leaderless_samples += 1,
            (Some(n), Some(l)) if n != l => leader_changes += 1,
            (Some(_), None) => leader_changes += 1,
            _ => {}
        }
        if now.is_some() {
            last_leader = now;
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(300);
            eprintln!(
                "{} min: {leader_changes} leader changes so far",
                t0.elapsed().as_secs() / 60
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = t0.elapsed();
    let load = load.await.unwrap_or_default();
    for p in pollers {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
    }
    let loadavg_after = loadavg();
    let history = cluster
        .pgbaton(0, &["history", "--format", "json"], Duration::from_secs(20))
        .await?;
    let history: Vec<serde_json::Value> =
        serde_json::from_slice(&history.stdout).map_err(|e| BenchError::Command {
            command: "history --format json".into(),
            detail: format!("unreadable JSON: {e}"),
        })?;
    let final_primary = cluster.wait_healthy(healthy).await?;
    let mut per_member = Table::new(&[
        "member",
        "fencing (fence process)",
        "fencing (agent backstop)",
        "lease renewals failed",
        "stopped a running primary",
    ]);
    let mut fenced_total = 0;
    for (i, m) in cluster.members().iter().enumerate() {
        let log = cluster.log_since(i, logs_before[i]);
        let fenced = log.matches("fenced PostgreSQL").count();
        let backstop = log.matches("the agent stops PostgreSQL itself").count();
        let renew = log.matches("cannot renew the store lease").count();
        let demoted = log.matches("so that it cannot accept writes").count();
        fenced_total += fenced + backstop;
        per_member.row(vec![
            m.name.clone(),
            fenced.to_string(),
            backstop.to_string(),
            renew.to_string(),
            demoted.to_string(),
        ]);
    }
    let timing = cluster.timing();
    let mut t = Table::new(&["metric", "value", "target", "met"]);
    t.row(vec![
        "failovers and switchovers (history entries)".into(),
        history.len().to_string(),
        "0".into(),
        yes(history.is_empty()),
    ]);
    t.row(vec![
        "leader changes (store sampled every 200 ms)".into(),
        leader_changes.to_string(),
        "0".into(),
        yes(leader_changes == 0),
    ]);
    t.row(vec![
        "samples with no leader key".into(),
        leaderless_samples.to_string(),
        "0".into(),
        yes(leaderless_samples == 0),
    ]);
    t.row(vec![
        "fencing events".into(),
        fenced_total.to_string(),
        "0".into(),
        yes(fenced_total == 0),
    ]);
    t.row(vec![
        "primary at the end".into(),
        format!(
            "{} (at the start: {})",
            cluster.members()[final_primary].name,
            cluster.members()[first].name
        ),
        "unchanged".into(),
        yes(final_primary == first),
    ]);
    let api_ok = api.ok.load(Ordering::SeqCst);
    let api_failed = api.failed.load(Ordering::SeqCst);
    let body = format!(
        "3 members, local store, ttl {ttl} s, loop_wait {lw} s, retry_timeout {rt} s, safety_margin {sm} s (the smallest ttl `check-config` accepts); {mins:.1} min of load: pgbench ({clients} clients, rate-limited to {rate} tps, TPC-B-like, scale 1, through the multi-host string with `target_session_attrs=read-write`), and one `GET /cluster` per second on each member's API. No fault injected: every failover, leader change or fencing is a false alarm. Load average (1 min) at the start {la0}, at the end {la1}.\n\n{summary}\n{members}\npgbench: {tx} transactions in {runs} run(s), {failed} of which stopped with an error{err}. API: {api_ok} answers, {api_failed} failures or timeouts (2 s), slowest {slow} ms.\n",
        ttl = timing.ttl,
        lw = timing.loop_wait,
        rt = timing.retry_timeout,
        sm = args.common.safety_margin.unwrap_or(1),
        mins = elapsed.as_secs_f64() / 60.0,
        clients = args.clients,
        rate = args.rate,
        la0 = loadavg_before,
        la1 = loadavg_after,
        summary = t.render(),
        members = per_member.render(),
        tx = load.transactions,
        runs = load.runs,
        failed = load.failed_runs,
        err = if load.last_error.is_empty() {
            String::new()
        } else {
            format!(" (last: {})", load.last_error)
        },
        slow = api.slowest_ms.load(Ordering::SeqCst),
    );
    println!("{body}");
    if args.common.append_results {
        append_results(&args.common.results, "Soak: fast timing under load", &body)?;
        eprintln!("appended to {}", args.common.results.display());
    }
    Ok(())
}

/// The pgbench next to `psql` on PATH, else Debian's PostgreSQL 15 one.
fn default_pgbench() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("pgbench"))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin/pgbench"))
}

async fn run_pgbench(
    pgbench: &Path,
    args: &[&str],
    conninfo: &str,
) -> Result<std::process::Output> {
    let out = tokio::process::Command::new(pgbench)
        .args(args)
        .arg(conninfo)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| BenchError::io("run pgbench", pgbench, e))?;
    if !out.status.success() {
        return Err(BenchError::Command {
            command: format!("pgbench {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Keep pgbench running until `until`, starting it again when it stops early.
async fn load(
    pgbench: &Path,
    conninfo: &str,
    clients: u32,
    rate: u32,
    until: Instant,
    stop: &AtomicBool,
) -> Load {
    let mut l = Load::default();
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now()).as_secs();
        if left < 2 {
            break;
        }
        let (c, r, t) = (clients.to_string(), rate.to_string(), left.to_string());
        l.runs += 1;
        match run_pgbench(
            pgbench,
            &["-n", "-c", &c, "-j", "1", "-R", &r, "-T", &t],
            conninfo,
        )
        .await
        {
            Ok(out) => l.transactions += processed(&String::from_utf8_lossy(&out.stdout)),
            Err(e) => {
                l.failed_runs += 1;
                l.last_error = e.to_string().lines().last().unwrap_or("").to_string();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    l
}

/// "number of transactions actually processed: N" from pgbench's report.
fn processed(report: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One `GET /cluster` per second on the API at `port` until `stop`.
async fn poll_api(port: u16, stop: Arc<AtomicBool>, api: Arc<Api>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let t = Instant::now();
        let ok = tokio::time::timeout(Duration::from_secs(2), get_cluster(port))
            .await
            .unwrap_or(false);
        let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        api.slowest_ms.fetch_max(ms, Ordering::SeqCst);
        if ok {
            api.ok.fetch_add(1, Ordering::SeqCst);
        } else {
            api.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn get_cluster(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req = "GET /cluster HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    if s.read_to_end(&mut buf).await.is_err() {
        return false;
    }
    buf.starts_with(b"HTTP/1.1 200")
}

/// The holder of the `leader` key in the local store's state file.
fn leader_name(state_json: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_json).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["keys"]["leader"]["value"]
        .as_str()
        .map(str::to_string)
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_s_count() {
        let report = "transaction type: <builtin: TPC-B (sort of)>\nnumber of transactions actually processed: 8991\nnumber of failed transactions: 0 (0.000%)\n";
        assert_eq!(processed(report), 8991);
        assert_eq!(processed("nothing"), 0);
    }
}

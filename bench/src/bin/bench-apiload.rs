//! `bench-apiload`: hold thousands of idle and slow (slowloris) connections and flood the
//! primary's HTTP API with requests while a writer commits every 10 ms, and report what
//! the API served, whether the lease kept renewing on time (security review F3), and
//! whether the primary stayed primary and writable.

use clap::Parser;
use pgbaton_bench::analysis;
use pgbaton_bench::cli::{run_main, CommonArgs};
use pgbaton_bench::cluster::Cluster;
use pgbaton_bench::faults::start_writer;
use pgbaton_bench::lease::leader_lease_remaining;
use pgbaton_bench::report::{append_results, yes, Table};
use pgbaton_bench::stats::secs_opt;
use pgbaton_bench::Result;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Load the primary's API of a local cluster and watch its lease.
#[derive(Debug, Parser)]
#[command(name = "bench-apiload", version)]
struct Args {
    /// Idle connections to open (spread over many loopback source addresses, so the
    /// per-client cap does not stop them first).
    #[arg(long, default_value_t = 3000)]
    idle: usize,
    /// Slow connections: each sends one header byte per second, forever.
    #[arg(long, default_value_t = 500)]
    slow: usize,
    /// Concurrent clients sending requests back to back (one per connection).
    #[arg(long, default_value_t = 64)]
    flood: usize,
    /// How long the load lasts, seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Leave the text/plain `POST /switchover` out of the flood (to load a version
    /// that accepts it without moving the primary).
    #[arg(long)]
    no_post: bool,
    /// Lease time (bootstrap.ttl), seconds.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// Number of members.
    #[arg(long, default_value_t = 2)]
    members: usize,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> std::process::ExitCode {
    run_main(bench(Args::parse()))
}

/// What the load generators saw.
#[derive(Default)]
struct Counts {
    by_status: Mutex<BTreeMap<String, u64>>,
    idle_opened: AtomicU64,
    idle_closed_by_server: AtomicU64,
    slow_cut: AtomicU64,
}

impl Counts {
    fn add(&self, what: &str) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(what.to_string()).or_default() += 1;
        }
    }
}

async fn bench(args: Args) -> Result<()> {
    let healthy = Duration::from_secs(args.common.healthy_timeout);
    let mut cluster = Cluster::create(&args.common.spec(args.members, args.ttl)?)?;
    eprintln!("cluster in {}", cluster.root().display());
    cluster.check_config(0).await?;
    cluster.start_all()?;
    let primary = cluster.wait_healthy(healthy).await?;
    let port = cluster.members()[primary].api_port;
    let writer = start_writer(&cluster, Instant::now(), healthy).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log_before = std::fs::read_to_string(&cluster.members()[primary].log).unwrap_or_default();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let lease = watch_lease(cluster.store_state_file(), stop.clone());
    let from = writer.now();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.idle {
        tasks.push(tokio::spawn(idle(port, k, stop.clone(), counts.clone())));
    }
    for k in 0..args.slow {
        tasks.push(tokio::spawn(slow(port, k, stop.clone(), counts.clone())));
    }
    let kinds = if args.no_post { 4 } else { REQUESTS.len() };
    for k in 0..args.flood {
        tasks.push(tokio::spawn(flood(
            port,
            k,
            kinds,
            stop.clone(),
            counts.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::SeqCst);
    let elapsed = t0.elapsed();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let to = writer.now();
    let renewals = lease.await.unwrap_or_default();
    let leader_after = cluster.leader().await?;
    let log = writer.stop().await;
    let gap = analysis::longest_gap(&log, from, to);
    let failed = analysis::failures_between(&log, from, to);
    let agent_log = std::fs::read_to_string(&cluster.members()[primary].log).unwrap_or_default();
    let new_log = agent_log.get(log_before.len()..).unwrap_or("");
    let renew_errors = new_log.matches("cannot renew the store lease").count();
    let fenced = new_log.matches("fenced PostgreSQL").count();
    let interval = Duration::from_secs(args.ttl) / 4;
    let late: Vec<&Duration> = renewals
        .gaps
        .iter()
        .filter(|g| **g > interval + Duration::from_secs(1))
        .collect();

    let statuses = counts
        .by_status
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let served: u64 = statuses
        .iter()
        .filter(|(k, _)| k.starts_with('2') || k.starts_with('4'))
        .map(|(_, v)| v)
        .sum();
    let mut t = Table::new(&["answer", "requests"]);
    for (k, v) in &statuses {
        t.row(vec![k.clone(), v.to_string()]);
    }
    let max_gap = renewals.gaps.iter().max().copied();
    let body = format!(
        "{} members, local store, ttl {} s (renewal every {:.1} s); load on the primary's API ({}) for {:.1} s: {} idle connections attempted from {} loopback addresses, {} slow-header connections, {} clients sending requests back to back (GET /cluster, /primary, /metrics, /status{}, one per connection).\n\n\
| metric | value |\n| --- | --- |\n\
| requests answered (2xx/4xx) | {served} ({:.0}/s) |\n\
| idle connections accepted / closed by the server | {} / {} |\n\
| slow connections cut off | {} of {} |\n\
| lease renewals seen / late (> {:.1} s apart) | {} / {} |\n\
| longest time between renewals | {} |\n\
| \"cannot renew\" log lines / fencings | {renew_errors} / {fenced} |\n\
| primary stayed primary (leader key) | {} |\n\
| writer: longest commit gap / failed writes | {} / {failed} |\n\n{}",
        args.members,
        args.ttl,
        interval.as_secs_f64(),
        cluster.members()[primary].name,
        elapsed.as_secs_f64(),
        args.idle,
        args.idle.div_ceil(50),
        args.slow,
        args.flood,
        if args.no_post { "" } else { " and a text/plain POST /switchover" },
        served as f64 / elapsed.as_secs_f64(),
        counts.idle_opened.load(Ordering::SeqCst),
        counts.idle_closed_by_server.load(Ordering::SeqCst),
        counts.slow_cut.load(Ordering::SeqCst),
        args.slow,
        (interval + Duration::from_secs(1)).as_secs_f64(),
        renewals.gaps.len(),
        late.len(),
        secs_opt(max_gap),
        yes(leader_after == Some(primary)),
        secs_opt(gap),
        t.render(),
    );
    println!("{body}");
    if args.common.append_results {
        append_results(&args.common.results, "API under load (security F3)", &body)?;
        eprintln!("appended to {}", args.common.results.display());
    }
    cluster.stop_all();
    Ok(())
}

/// The lease renewals seen: gaps between successive increases of the leader lease's
/// remaining time, sampled every 50 ms from the local store's state file.
#[derive(Default)]
struct Renewals {
    gaps: Vec<Duration>,
}

fn watch_lease(
    state: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Renewals> {
    tokio::task::spawn_blocking(move || {
        let mut r = Renewals::default();
        let mut last_remaining: Option<Duration> = None;
        let mut last_renewal: Option<Instant> = None;
        while !stop.load(Ordering::SeqCst) {
            if let Some(rem) = leader_lease_remaining(&state) {
                if last_remaining.is_some_and(|l| rem > l + Duration::from_millis(100)) {
                    let now = Instant::now();
                    if let Some(prev) = last_renewal {
                        r.gaps.push(now - prev);
                    }
                    last_renewal = Some(now);
                }
                last_remaining = Some(rem);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    })
}

/// A loopback source address for client `k` (50 connections per address).
fn source(k: usize) -> SocketAddr {
    let n = k / 50;
    SocketAddr::from(([127, 1, (n / 250) as u8, (n % 250 + 1) as u8], 0))
}

async fn connect(port: u16, k: usize) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(source(k)).ok()?;
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::timeout(Duration::from_secs(3), socket.connect(to))
        .await
        .ok()?
        .ok()
}

async fn idle(port: u16, k: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let Some(mut s) = connect(port, k).await else {
        counts.add("connect failed");
        return;
    };
    counts.idle_opened.fetch_add(1, Ordering::SeqCst);
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(_) => {
                counts.idle_closed_by_server.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

async fn slow(port: u16, k: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let Some(mut s) = connect(port, 100_000 + k).await else {
        counts.add("connect failed");
        return;
    };
    if s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .is_err()
    {
        counts.slow_cut.fetch_add(1, Ordering::SeqCst);
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if s.write_all(b"a").await.is_err() {
            counts.slow_cut.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            counts.slow_cut.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

const REQUESTS: [&str; 5] = [
    "GET /cluster HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET /primary HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "POST /switchover HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
];

async fn flood(port: u16, k: usize, kinds: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut n = k;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let Some(mut s) = connect(port, 200_000 + k * 50).await else {
            counts.add("connect failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let req = REQUESTS[n % kinds];
        if s.write_all(req.as_bytes()).await.is_err() {
            counts.add("closed before the request");
            continue;
        }
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
        let status = match read {
            Err(_) => "no answer in 5 s".to_string(),
            Ok(_) => String::from_utf8_lossy(&raw)
                .split_whitespace()
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "closed without an answer".into()),
        };
        counts.add(&status);
    }
}

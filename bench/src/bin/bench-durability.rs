//! `bench-durability`: kill the primary node (-9, agent and PostgreSQL) N times in a row
//! under a writer, bring the dead member back each time, then check every acknowledged
//! row; reports the RTO per kill and the rows lost (must be 0 with `--synchronous`).
//! With `--synchronous` it first measures the commit latency with asynchronous
//! replication, switches the running cluster to `synchronous_mode: on` with
//! `pgbaton edit-config`, measures it again (the ratio is the cost of synchronous
//! mode, in the same run), and before each kill waits until a synchronous standby is
//! listed.

use clap::Parser;
use pgbaton_bench::analysis;
use pgbaton_bench::cli::{run_main, CommonArgs};
use pgbaton_bench::cluster::Cluster;
use pgbaton_bench::faults::{
    check_rows, crash_once, start_writer, CrashRun, Deadlines, FaultMode, RowCheck,
};
use pgbaton_bench::report::{append_results, lost_ids, Table};
use pgbaton_bench::stats::{secs, secs_opt, summarize};
use pgbaton_bench::{BenchError, Result};

/// Commit latencies with asynchronous, then synchronous replication.
struct Cost {
    asynchronous: Vec<Duration>,
    synchronous: Vec<Duration>,
}
use std::time::{Duration, Instant};

/// Repeated node crashes of whoever is primary; every acknowledged row is checked.
#[derive(Debug, Parser)]
#[command(name = "bench-durability", version)]
struct Args {
    /// Number of consecutive node crashes.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Lease time (bootstrap.ttl), seconds.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// Number of members.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Run with synchronous_mode on, and measure the commit latency cost against
    /// asynchronous replication in the same run.
    #[arg(long)]
    synchronous: bool,
    /// With --synchronous: how long each latency measurement lasts, seconds.
    #[arg(long, default_value_t = 10)]
    latency_window: u64,
    /// Steady writing on the healthy cluster before each kill, seconds.
    #[arg(long, default_value_t = 2)]
    settle: u64,
    /// Longest wait from a kill to the first accepted write, seconds [default: ttl + 30].
    #[arg(long)]
    recovery_timeout: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> std::process::ExitCode {
    run_main(bench(Args::parse()))
}

async fn bench(args: Args) -> Result<()> {
    let deadlines = Deadlines {
        recovery: Duration::from_secs(args.recovery_timeout.unwrap_or(args.ttl + 30)),
        healthy: Duration::from_secs(args.common.healthy_timeout),
        settle: Duration::from_secs(args.settle),
    };
    let mut cluster = Cluster::create(&args.common.spec(args.members, args.ttl)?)?;
    eprintln!("cluster in {}", cluster.root().display());
    cluster.check_config(0).await?;
    cluster.start_all()?;
    cluster.wait_healthy(deadlines.healthy).await?;
    let writer = start_writer(&cluster, Instant::now(), deadlines.healthy).await?;
    let cost = if args.synchronous {
        Some(synchronous_cost(&cluster, &writer, &args, deadlines.healthy).await?)
    } else {
        None
    };
    let mut runs = Vec::new();
    for k in 1..=args.kills {
        if args.synchronous {
            wait_sync_standby(&cluster, deadlines.healthy).await?;
        }
        let run = crash_once(&mut cluster, &writer, FaultMode::Node, deadlines).await?;
        eprintln!(
            "kill {k}: {}: {}; RTO {}",
            run.victim,
            run.note,
            secs_opt(run.recovery())
        );
        runs.push(run);
    }
    let log = writer.stop().await;
    pgbaton_bench::writer::write_csv(&log, &cluster.root().join("writer.csv"))?;
    let latency = analysis::latencies(&log, Duration::ZERO, Duration::MAX);
    let check = check_rows(&cluster, &log, deadlines.healthy).await?;
    let body = render(&args, &cluster, &runs, &check, &latency, cost.as_ref());
    println!("{body}");
    if args.common.append_results {
        append_results(
            &args.common.results,
            if args.synchronous {
                "Durability: repeated node crashes (synchronous_mode on)"
            } else {
                "Durability: repeated node crashes (asynchronous)"
            },
            &body,
        )?;
        eprintln!("appended to {}", args.common.results.display());
    }
    Ok(())
}

/// Measure commit latency for `latency_window` asynchronously, switch the cluster to
/// `synchronous_mode: on`, wait for a synchronous standby, and measure again.
async fn synchronous_cost(
    cluster: &Cluster,
    writer: &pgbaton_bench::writer::Writer,
    args: &Args,
    healthy: Duration,
) -> Result<Cost> {
    let window = Duration::from_secs(args.latency_window.max(1));
    let from = writer.now();
    tokio::time::sleep(window).await;
    let asynchronous = writer.with_log(|log| analysis::latencies(log, from, writer.now()));
    cluster
        .pgbaton(
            0,
            &["edit-config", "--set", "synchronous_mode=on"],
            Duration::from_secs(20),
        )
        .await?;
    wait_sync_standby(cluster, healthy).await?;
    let from = writer.now();
    tokio::time::sleep(window).await;
    let synchronous = writer.with_log(|log| analysis::latencies(log, from, writer.now()));
    Ok(Cost {
        asynchronous,
        synchronous,
    })
}

/// Wait until `pgbaton list` shows a synchronous standby (a kill before that would
/// leave no member eligible for failover).
async fn wait_sync_standby(cluster: &Cluster, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if cluster.list().await?.iter().any(|r| r.sync.is_some()) {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(BenchError::Timeout {
                what: "a synchronous standby in the sync key".into(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn median_line(name: &str, v: &[Duration]) -> Option<(String, Duration)> {
    let s = summarize(v)?;
    let mut v = v.to_vec();
    v.sort();
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    Some((
        format!(
            "commit latency ({name}) median {}, p99 {}, max {} over {} commits",
            secs(s.median),
            secs(p99),
            secs(s.max),
            s.count
        ),
        s.median,
    ))
}

fn render(
    args: &Args,
    cluster: &Cluster,
    runs: &[CrashRun],
    check: &RowCheck,
    latency: &[Duration],
    cost: Option<&Cost>,
) -> String {
    let timing = cluster.timing();
    let kills: Vec<Duration> = runs.iter().map(|r| r.killed_at).collect();
    let lost_per_kill = analysis::lost_per_fault(&check.lost, &kills);
    let mut t = Table::new(&[
        "kill",
        "member",
        "what happened",
        "RTO (kill → first write)",
        "acked rows lost",
    ]);
    for (i, r) in runs.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            r.victim.clone(),
            r.note.clone(),
            secs_opt(r.recovery()),
            lost_per_kill.get(i).copied().unwrap_or(0).to_string(),
        ]);
    }
    let rto: Vec<Duration> = runs.iter().filter_map(CrashRun::recovery).collect();
    let rto_line = summarize(&rto).map_or_else(
        || "no kill was followed by an accepted write".to_string(),
        |s| {
            format!(
                "RTO median {}, min {}, max {}",
                secs(s.median),
                secs(s.min),
                secs(s.max)
            )
        },
    );
    let lat_line = match cost {
        None => median_line("asynchronous, whole run", latency)
            .map(|(l, _)| {
                format!(
                    "; {l}; synchronous/asynchronous ratio: not measured (run with --synchronous)"
                )
            })
            .unwrap_or_default(),
        Some(c) => {
            let a = median_line("asynchronous, before the switch", &c.asynchronous);
            let y = median_line("synchronous_mode on", &c.synchronous);
            match (a, y) {
                (Some((la, ma)), Some((ly, my))) => format!(
                    "; {la}; {ly}; synchronous/asynchronous median ratio {:.2}",
                    my.as_secs_f64() / ma.as_secs_f64().max(1e-9)
                ),
                _ => "; commit latency: too few commits to compare".to_string(),
            }
        }
    };
    let replication = if cost.is_some() {
        "synchronous replication (synchronous_mode on, switched on at run time)"
    } else {
        "asynchronous replication"
    };
    format!(
        "{members} members, local store, {replication}, ttl {ttl} s, loop_wait {lw} s, retry_timeout {rt} s; {n} consecutive node crashes (`kill -9` of agent and postmaster) of whoever is primary, the dead member restarted each time.\n\n{table}\n{rto_line}{lat_line}.\n\nRows: {acked} acknowledged, {present} in the table on the final primary {primary}, {lost} acknowledged rows lost{ids}.\n",
        members = args.members,
        ttl = timing.ttl,
        lw = timing.loop_wait,
        rt = timing.retry_timeout,
        n = runs.len(),
        table = t.render(),
        acked = check.acked,
        present = check.present,
        primary = check.primary,
        lost = check.lost.len(),
        ids = lost_ids(check),
    )
}

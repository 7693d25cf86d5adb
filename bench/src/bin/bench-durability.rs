//! `bench-durability`: kill the primary node (-9, agent and PostgreSQL) N times in a row
//! under a writer, bring the dead member back each time, then check every acknowledged
//! row; reports the RTO per kill and the rows lost (issue 7: must be 0 in synchronous
//! mode, which pgbaton does not have yet).

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
    /// Run with synchronous_mode on, and measure the commit latency cost against an
    /// asynchronous cluster in the same run (not implemented in pgbaton yet).
    #[arg(long)]
    synchronous: bool,
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
    if args.synchronous {
        return Err(BenchError::NotImplemented(
            "--synchronous: pgbaton has no synchronous_mode yet (issue 7); run without it to measure asynchronous replication".into(),
        ));
    }
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
    let mut runs = Vec::new();
    for k in 1..=args.kills {
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
    let body = render(&args, &cluster, &runs, &check, &latency);
    println!("{body}");
    if args.common.append_results {
        append_results(
            &args.common.results,
            "Durability: repeated node crashes (asynchronous)",
            &body,
        )?;
        eprintln!("appended to {}", args.common.results.display());
    }
    Ok(())
}

fn render(
    args: &Args,
    cluster: &Cluster,
    runs: &[CrashRun],
    check: &RowCheck,
    latency: &[Duration],
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
    let lat_line = summarize(latency).map_or_else(String::new, |s| {
        let mut v = latency.to_vec();
        v.sort();
        let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
        format!(
            "; commit latency (asynchronous) median {}, p99 {}, max {} over {} commits; synchronous/asynchronous ratio: not measured (no synchronous mode yet)",
            secs(s.median),
            secs(p99),
            secs(s.max),
            s.count
        )
    });
    format!(
        "{members} members, local store, asynchronous replication, ttl {ttl} s, loop_wait {lw} s, retry_timeout {rt} s; {n} consecutive node crashes (`kill -9` of agent and postmaster) of whoever is primary, the dead member restarted each time.\n\n{table}\n{rto_line}{lat_line}.\n\nRows: {acked} acknowledged, {present} in the table on the final primary {primary}, {lost} acknowledged rows lost{ids}.\n",
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

//! `bench-failover`: kill the primary (node crash, or postmaster alone) under a writer and
//! measure from the kill to the first write accepted again; reports median and range,
//! overhead above ttl, and lost acknowledged rows.

use clap::Parser;
use pgbaton_bench::analysis;
use pgbaton_bench::cli::{run_main, CommonArgs};
use pgbaton_bench::cluster::Cluster;
use pgbaton_bench::faults::{
    check_rows, crash_once, start_writer, CrashRun, Deadlines, FaultMode, RowCheck,
};
use pgbaton_bench::report::{append_results, lost_ids, yes, Table};
use pgbaton_bench::stats::{secs, secs_opt, signed_secs, summarize};
use pgbaton_bench::Result;
use std::time::{Duration, Instant};

/// Crash the primary N times on a local 3-member cluster, under a writer.
#[derive(Debug, Parser)]
#[command(name = "bench-failover", version)]
struct Args {
    /// Number of crashes.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// node: kill -9 the agent and PostgreSQL together; postmaster: kill -9 the
    /// postmaster alone (restart in place expected).
    #[arg(long, value_enum, default_value_t = FaultMode::Node)]
    mode: FaultMode,
    /// Lease time (bootstrap.ttl), seconds.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// Number of members.
    #[arg(long, default_value_t = 3)]
    members: usize,
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
    let mut runs = Vec::new();
    for k in 1..=args.runs {
        let run = crash_once(&mut cluster, &writer, args.mode, deadlines).await?;
        eprintln!(
            "run {k}: {} killed: {}; first write after {}, gap {}",
            run.victim,
            run.note,
            secs_opt(run.recovery()),
            secs_opt(run.gap())
        );
        runs.push(run);
    }
    let log = writer.stop().await;
    pgbaton_bench::writer::write_csv(&log, &cluster.root().join("writer.csv"))?;
    let check = check_rows(&cluster, &log, deadlines.healthy).await?;
    let body = render(&args, &cluster, &runs, &check, deadlines);
    println!("{body}");
    if args.common.append_results {
        let title = match args.mode {
            FaultMode::Node => "Failover: node crash",
            FaultMode::Postmaster => "Failover: postmaster crash",
        };
        append_results(&args.common.results, title, &body)?;
        eprintln!("appended to {}", args.common.results.display());
    }
    Ok(())
}

fn render(
    args: &Args,
    cluster: &Cluster,
    runs: &[CrashRun],
    check: &RowCheck,
    deadlines: Deadlines,
) -> String {
    let timing = cluster.timing();
    let ttl = Duration::from_secs(timing.ttl);
    let kills: Vec<Duration> = runs.iter().map(|r| r.killed_at).collect();
    let lost_per_run = analysis::lost_per_fault(&check.lost, &kills);
    let node = args.mode == FaultMode::Node;
    // Lease and rejoin columns only mean something for a node crash.
    let keep = |c: &usize| node || ![4, 5, 6, 9, 10].contains(c);
    let headers = [
        "#",
        "killed",
        "what happened",
        "kill → first write",
        "above ttl",
        "lease expired after kill",
        "first write after lease expiry",
        "last → first write (gap)",
        "failed writes",
        "restarted member streams after",
        "rejoined with",
        "acked rows lost",
    ];
    let headers: Vec<&str> = (0..headers.len())
        .filter(keep)
        .map(|c| headers[c])
        .collect();
    let mut t = Table::new(&headers);
    for (i, r) in runs.iter().enumerate() {
        let cells = vec![
            (i + 1).to_string(),
            r.victim.clone(),
            r.note.clone(),
            secs_opt(r.recovery()),
            r.recovery()
                .map_or_else(|| "—".into(), |d| signed_secs(d, ttl)),
            secs_opt(r.lease_left),
            r.after_lease()
                .map_or_else(|| "—".into(), |(a, b)| signed_secs(a, b)),
            secs_opt(r.gap()),
            r.failed_writes.to_string(),
            if node {
                secs_opt(r.rejoin)
            } else {
                "—".into()
            },
            r.rejoin_how.clone().unwrap_or_else(|| "—".into()),
            lost_per_run.get(i).copied().unwrap_or(0).to_string(),
        ];
        t.row(
            cells
                .into_iter()
                .enumerate()
                .filter(|(c, _)| keep(c))
                .map(|(_, v)| v)
                .collect(),
        );
    }
    let recoveries: Vec<Duration> = runs.iter().filter_map(CrashRun::recovery).collect();
    let gaps: Vec<Duration> = runs.iter().filter_map(CrashRun::gap).collect();
    let missing = runs.len() - recoveries.len();
    let mut s = Table::new(&["metric", "median", "min", "max", "target", "met"]);
    if let Some(r) = summarize(&recoveries) {
        let (target, met) = if node {
            (
                "≤ ttl + 0.5 s",
                r.median <= ttl + Duration::from_millis(500),
            )
        } else {
            ("—", true)
        };
        s.row(vec![
            "kill → first write".into(),
            secs(r.median),
            secs(r.min),
            secs(r.max),
            target.into(),
            if node {
                yes(met && missing == 0)
            } else {
                String::new()
            },
        ]);
        if node {
            s.row(vec![
                "overhead above ttl".into(),
                signed_secs(r.median, ttl),
                signed_secs(r.min, ttl),
                signed_secs(r.max, ttl),
                "< 0.5 s".into(),
                yes(met && missing == 0),
            ]);
        }
    }
    let after_lease: Vec<(Duration, Duration)> =
        runs.iter().filter_map(CrashRun::after_lease).collect();
    if node && !after_lease.is_empty() {
        let mut d: Vec<f64> = after_lease
            .iter()
            .map(|(a, b)| a.as_secs_f64() - b.as_secs_f64())
            .collect();
        d.sort_by(f64::total_cmp);
        let median = if d.len() % 2 == 1 {
            d[d.len() / 2]
        } else {
            (d[d.len() / 2 - 1] + d[d.len() / 2]) / 2.0
        };
        let max = d[d.len() - 1];
        s.row(vec![
            "first write after the lease expiry".into(),
            format!("{median:+.3} s"),
            format!("{:+.3} s", d[0]),
            format!("{max:+.3} s"),
            "< 0.5 s".into(),
            yes(max < 0.5 && missing == 0),
        ]);
    }
    if let Some(g) = summarize(&gaps) {
        let (target, met) = if node {
            ("—".to_string(), String::new())
        } else {
            (
                "< 0.5 s".to_string(),
                yes(g.median < Duration::from_millis(500) && missing == 0),
            )
        };
        s.row(vec![
            "failed-writes gap (last write before → first after)".into(),
            secs(g.median),
            secs(g.min),
            secs(g.max),
            target,
            met,
        ]);
    }
    if node {
        let rejoins: Vec<Duration> = runs.iter().filter_map(|r| r.rejoin).collect();
        if let Some(j) = summarize(&rejoins) {
            s.row(vec![
                "old member restarted → streaming".into(),
                secs(j.median),
                secs(j.min),
                secs(j.max),
                "< 0.5 s without a rewind".into(),
                yes(j.max < Duration::from_millis(500) && j.count == runs.len()),
            ]);
        }
        let rewound = runs
            .iter()
            .filter(|r| r.rejoin_how.as_deref().is_some_and(|h| h != "no rewind"))
            .count();
        s.row(vec![
            "restarted member rewound or re-cloned".into(),
            format!("{rewound} of {}", runs.len()),
            String::new(),
            String::new(),
            "0 after a crash it did not diverge in".into(),
            String::new(),
        ]);
    }
    let none = if missing > 0 {
        format!(
            "\n**{missing} of {} runs: no write accepted within {:.0} s of the kill (no failover{}).**\n",
            runs.len(),
            deadlines.recovery.as_secs_f64(),
            if node { "" } else { " / no restart in place" }
        )
    } else {
        String::new()
    };
    let what = if node {
        "`kill -9` of the primary's agent (with its children) and its postmaster (with its children) at once; the killed member's agent is started again after the first write on the new primary"
    } else {
        "`kill -9` of the primary's postmaster alone; its agent keeps running"
    };
    let lease_note = if node {
        " The lease is renewed every ttl/4, so it expires between 0.75·ttl and ttl after the kill; \"lease expired after kill\" is read from the local store right after the kill, and \"first write after lease expiry\" is pgbaton's own failover time."
    } else {
        ""
    };
    format!(
        "{members} members, local store, ttl {ttl} s, loop_wait {lw} s, retry_timeout {rt} s; writer: one row every 10 ms through `target_session_attrs=read-write` (asynchronous replication); {n} runs; fault: {what}. Times are from the kill to the ack of the first write sent after it (on a new session).{lease_note}\n\n{runs}\n{summary}{none}\nRows: {acked} acknowledged, {present} in the table on the final primary {primary}, {lost} acknowledged rows lost{ids} (asynchronous replication: a node crash may lose the last commits).\n",
        members = args.members,
        ttl = timing.ttl,
        lw = timing.loop_wait,
        rt = timing.retry_timeout,
        n = runs.len(),
        runs = t.render(),
        summary = s.render(),
        acked = check.acked,
        present = check.present,
        primary = check.primary,
        lost = check.lost.len(),
        ids = lost_ids(check),
    )
}

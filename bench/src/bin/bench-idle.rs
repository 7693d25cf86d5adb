//! `bench-idle`: the idle cost of every member of a healthy 3-member cluster (local
//! store, or a one-member etcd on 127.0.0.1 with `--store etcd`): CPU % of a core,
//! wake-ups per second, read/write syscalls per second, store writes (and, on etcd,
//! requests) per second, and RSS/PSS, for the agent and its fence process.

use clap::Parser;
use pgbaton_bench::cli::{run_main, CommonArgs};
use pgbaton_bench::cluster::Cluster;
use pgbaton_bench::etcd::Etcd;
use pgbaton_bench::idle::{self, Counters, Memory};
use pgbaton_bench::report::{append_results, yes, Table};
use pgbaton_bench::{procs, BenchError, Result};
use std::time::{Duration, Instant};

/// Measure a healthy, idle cluster for a while.
#[derive(Debug, Parser)]
#[command(name = "bench-idle", version)]
struct Args {
    /// How long to measure, seconds.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Lease time (bootstrap.ttl), seconds [default: 10, or 30 with --loop-wait above 5].
    #[arg(long)]
    ttl: Option<u64>,
    /// Number of members.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Quiet time after the cluster is healthy, before measuring, seconds.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// The store: `local`, or `etcd` (a one-member etcd started on 127.0.0.1).
    #[arg(long, default_value = "local", value_parser = ["local", "etcd"])]
    store: String,
    #[command(flatten)]
    common: CommonArgs,
}

/// One measured process.
struct Proc {
    member: String,
    what: &'static str,
    pid: u32,
    before: Counters,
}

fn main() -> std::process::ExitCode {
    run_main(bench(Args::parse()))
}

async fn bench(args: Args) -> Result<()> {
    let ttl = args
        .ttl
        .unwrap_or(if args.common.loop_wait.unwrap_or(1) > 5 {
            30
        } else {
            10
        });
    let mut spec = args.common.spec(args.members, ttl)?;
    let etcd_dir = tempfile::Builder::new()
        .prefix("pgbaton-bench-etcd-")
        .tempdir()
        .map_err(|e| BenchError::io("create a temp dir in", std::env::temp_dir(), e))?;
    let etcd = match args.store.as_str() {
        "etcd" => Some(Etcd::start(etcd_dir.path())?),
        _ => None,
    };
    if let Some(e) = &etcd {
        spec.etcd = vec![e.endpoint()];
    }
    let mut cluster = Cluster::create(&spec)?;
    eprintln!("cluster in {}", cluster.root().display());
    cluster.check_config(0).await?;
    cluster.start_all()?;
    cluster
        .wait_healthy(Duration::from_secs(args.common.healthy_timeout))
        .await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let mut procs = Vec::new();
    for i in 0..cluster.members().len() {
        let member = cluster.members()[i].name.clone();
        let agent = cluster
            .agent_pid(i)
            .ok_or_else(|| BenchError::Cluster(format!("the agent of {member} is not running")))?;
        let fence = procs::descendants(agent).into_iter().find(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("fence-watchdog"))
        });
        for (what, pid) in [("agent", Some(agent)), ("fence", fence)] {
            let Some(pid) = pid else { continue };
            let before = idle::counters(pid).ok_or_else(|| {
                BenchError::Cluster(format!("{member}'s {what} (pid {pid}) is gone"))
            })?;
            procs.push(Proc {
                member: member.clone(),
                what,
                pid,
                before,
            });
        }
    }
    if let Some(pid) = etcd.as_ref().and_then(Etcd::pid) {
        procs.push(Proc {
            member: "(store)".into(),
            what: "etcd",
            pid,
            before: idle::counters(pid).unwrap_or_default(),
        });
    }
    let rev_before = revision(&cluster, etcd.as_ref());
    let started = Instant::now();
    eprintln!("measuring {} processes for {} s", procs.len(), args.seconds);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let secs = started.elapsed().as_secs_f64();
    let rev_after = revision(&cluster, etcd.as_ref());
    let mut rows = Table::new(&[
        "member",
        "process",
        "CPU % of a core",
        "wake-ups/s",
        "read+write syscalls/s",
        "RSS MiB",
        "PSS MiB",
    ]);
    let mut per_member: Vec<(String, f64, Memory)> = Vec::new();
    for p in &procs {
        let after = idle::counters(p.pid).ok_or_else(|| {
            BenchError::Cluster(format!(
                "{}'s {} (pid {}) exited while measured",
                p.member, p.what, p.pid
            ))
        })?;
        let mem = idle::memory(p.pid).unwrap_or_default();
        let (cpu, wakeups, sys) = idle::rates(p.before, after, secs);
        rows.row(vec![
            p.member.clone(),
            p.what.to_string(),
            format!("{cpu:.3}"),
            format!("{wakeups:.1}"),
            format!("{sys:.1}"),
            mib(mem.rss_kib),
            mib(mem.pss_kib),
        ]);
        if p.what == "etcd" {
            continue;
        }
        match per_member.iter_mut().find(|(m, _, _)| *m == p.member) {
            Some((_, c, m)) => {
                *c += cpu;
                m.rss_kib += mem.rss_kib;
                m.pss_kib += mem.pss_kib;
            }
            None => per_member.push((p.member.clone(), cpu, mem)),
        }
    }
    let timing = cluster.timing();
    let target = if timing.loop_wait >= 10 { 0.05 } else { 0.2 };
    let mut totals = Table::new(&[
        "member",
        "CPU % of a core (agent + fence)",
        "RSS MiB",
        "PSS MiB",
        "target",
        "met",
    ]);
    for (m, cpu, mem) in &per_member {
        totals.row(vec![
            m.clone(),
            format!("{cpu:.3}"),
            mib(mem.rss_kib),
            mib(mem.pss_kib),
            format!("≤ {target} %"),
            yes(*cpu <= target),
        ]);
    }
    let rate = |f: fn(&(u64, u64)) -> u64| match (rev_before, rev_after) {
        (Some(a), Some(b)) => format!("{:.2}", f(&b).saturating_sub(f(&a)) as f64 / secs),
        _ => "unknown".into(),
    };
    let writes = rate(|c| c.0);
    let store = match &etcd {
        Some(_) => format!(
            "a one-member etcd on 127.0.0.1 (its own process is the `(store)` row, shared by all members). Store requests per second, whole cluster (etcd's `grpc_server_handled_total`: unary calls; a watch stream counts once, when it ends): {}. Store writes (revisions) per second, whole cluster: {writes}",
            rate(|c| c.1)
        ),
        None => format!("local store. Store writes (state revisions) per second, whole cluster: {writes}"),
    };
    let body = format!(
        "{n} members, ttl {ttl} s, loop_wait {lw} s, retry_timeout {rt} s; idle (no client), measured over {secs:.0} s after the cluster was healthy for {settle} s. CPU is utime + stime from `/proc/<pid>/stat` (per process, so other load on the machine does not count); wake-ups are voluntary + nonvoluntary context switches summed over `/proc/<pid>/task/*`; syscalls are `syscr + syscw` of `/proc/<pid>/io`; memory from `smaps_rollup` at the end. Store: {store}.\n\n{rows}\n{totals}",
        n = args.members,
        ttl = timing.ttl,
        lw = timing.loop_wait,
        rt = timing.retry_timeout,
        settle = args.settle,
        rows = rows.render(),
        totals = totals.render(),
    );
    println!("{body}");
    if args.common.append_results {
        append_results(&args.common.results, "Idle cost", &body)?;
    }
    cluster.stop_all();
    Ok(())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// (store revision, requests answered so far): the local store's state revision (no
/// request count: it has no server), or etcd's revision and gRPC calls.
fn revision(cluster: &Cluster, etcd: Option<&Etcd>) -> Option<(u64, u64)> {
    if let Some(e) = etcd {
        let (calls, rev) = e.counters().ok()?;
        return Some((rev, calls));
    }
    let text = std::fs::read_to_string(cluster.store_state_file()).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((v["revision"].as_u64()?, 0))
}

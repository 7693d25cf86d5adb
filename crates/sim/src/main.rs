//! `pgbaton-sim`: run seeded simulations of a whole cluster and report invariant
//! violations with a readable trace. `--seed N` replays one seed exactly.

use clap::Parser;
use pgbaton_sim::faults::Kind;
use pgbaton_sim::run::{run, Options, Outcome};
use pgbaton_sim::world::Broken;
use std::process::ExitCode;
use std::time::Instant;

/// Deterministic simulation of a pgbaton cluster running the production agent.
#[derive(Parser)]
#[command(name = "pgbaton-sim", version, about)]
struct Cli {
    /// Replay exactly this seed and print its whole trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Play one scripted regression schedule (finding1 ... finding5, finding9, finding12) and print its trace.
    #[arg(long)]
    regression: Option<String>,
    /// Run this many seeds (a campaign), starting at --first.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of a campaign.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Fault kinds, comma separated: all, none, agent-kill, agent-freeze, fence,
    /// pg-crash, network, clock, receiver, disk.
    #[arg(long, default_value = "all")]
    faults: String,
    /// synchronous_mode: off, on or quorum.
    #[arg(long, default_value = "on")]
    sync: String,
    /// synchronous_mode_strict.
    #[arg(long)]
    strict: bool,
    /// Members.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Seconds of random faults per seed.
    #[arg(long, default_value_t = 30)]
    fault_secs: u64,
    /// Break a rule on purpose (skip-fence) to see the checker catch it.
    #[arg(long)]
    broken: Option<String>,
    /// Keep the agents' DEBUG lines in the trace.
    #[arg(long)]
    debug: bool,
    /// Stop a campaign at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
    /// Worker threads for a campaign (each runs whole seeds on its own).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

fn options(cli: &Cli, seed: u64) -> Result<Options, String> {
    let mut kinds = Vec::new();
    for w in cli.faults.split(',') {
        kinds.extend(Kind::parse(w.trim()).ok_or_else(|| {
            format!("--faults: unknown fault kind {w:?} (try all, none, network, agent-kill, ...)")
        })?);
    }
    kinds.sort();
    kinds.dedup();
    if !["off", "on", "quorum"].contains(&cli.sync.as_str()) {
        return Err(format!("--sync: {:?} is not off, on or quorum", cli.sync));
    }
    let broken = match cli.broken.as_deref() {
        None => Broken::None,
        Some("skip-fence") => Broken::SkipFence,
        Some(o) => return Err(format!("--broken: unknown rule {o:?} (skip-fence)")),
    };
    Ok(Options {
        seed,
        members: cli.members,
        sync: cli.sync.clone(),
        strict: cli.strict,
        kinds,
        fault_ms: cli.fault_secs * 1000,
        broken,
        debug: cli.debug,
        ..Options::default()
    })
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`; the
/// machine may be shared, so throughput is reported per wall second and per CPU second.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn summary(o: &Outcome) -> String {
    format!(
        "seed {}: {} ({} faults, {} acked commits, {:.1} simulated s{}{})",
        o.seed,
        if o.violations.is_empty() {
            "ok"
        } else {
            "FAILED"
        },
        o.faults,
        o.acked,
        o.sim_ms as f64 / 1000.0,
        o.converged_ms
            .map(|c| format!(", converged {c} ms after repair"))
            .unwrap_or_default(),
        if o.lost_async > 0 {
            format!(", {} async commits dropped", o.lost_async)
        } else {
            String::new()
        }
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.seed.is_some() || cli.regression.is_some() {
        let o = match &cli.regression {
            Some(name) => match pgbaton_sim::regressions::options(name) {
                Some(o) => Ok(o),
                None => Err(format!(
                    "--regression: unknown schedule {name:?} (one of {})",
                    pgbaton_sim::regressions::ALL.join(", ")
                )),
            },
            None => options(&cli, cli.seed.unwrap_or(1)),
        };
        let o = match o {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let out = run(&o);
        for l in &out.trace {
            println!("{l}");
        }
        println!("{}", summary(&out));
        for v in &out.violations {
            println!("VIOLATION: {v}");
        }
        return if out.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Err(e) = options(&cli, 0) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(cli.first);
    let end = cli.first + cli.seeds;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new((0u64, 0u64, Vec::<Outcome>::new()));
    std::thread::scope(|s| {
        for _ in 0..cli.jobs.max(1) {
            s.spawn(|| loop {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seed >= end {
                    return;
                }
                let Ok(o) = options(&cli, seed) else { return };
                let out = run(&o);
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                r.0 += 1;
                r.1 += out.sim_ms;
                if !out.violations.is_empty() {
                    eprintln!("{}", summary(&out));
                    for v in &out.violations {
                        eprintln!("  VIOLATION: {v}");
                    }
                    eprintln!(
                        "  replay: pgbaton-sim --seed {seed} --faults {} --sync {}{}",
                        cli.faults,
                        cli.sync,
                        if cli.strict { " --strict" } else { "" }
                    );
                    if cli.fail_fast {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    r.2.push(out);
                }
                if r.0.is_multiple_of(100) {
                    let wall = started.elapsed().as_secs_f64();
                    eprintln!(
                        "{} seeds, {} failed, {:.1} seeds/s, {:.0} simulated s per wall s",
                        r.0,
                        r.2.len(),
                        r.0 as f64 / wall,
                        r.1 as f64 / 1000.0 / wall
                    );
                }
            });
        }
    });
    let r = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().max(0.01);
    let sim = r.1 as f64 / 1000.0;
    println!(
        "{} seeds ({} jobs), {} failed, {:.1} s wall, {:.1} s CPU, {:.0} simulated s: \
         {:.2} seeds/s, {:.0} simulated s per wall s, {:.0} simulated s per CPU s",
        r.0,
        cli.jobs,
        r.2.len(),
        wall,
        cpu,
        sim,
        r.0 as f64 / wall,
        sim / wall,
        sim / cpu
    );
    let mut failed: Vec<u64> = r.2.iter().map(|o| o.seed).collect();
    failed.sort();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

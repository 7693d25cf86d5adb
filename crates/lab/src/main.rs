//! `pgbaton-lab`: run a campaign of fault runs on namespace hosts and print one table.

use anyhow::Result;
use clap::Parser;
use pgbaton_lab::cluster::{Lab, Mode, Options};
use pgbaton_lab::fault::Kind;
use pgbaton_lab::run::{self, Report};
use std::path::PathBuf;
use std::time::Duration;

/// Fault campaign on 3 namespace hosts (root only).
#[derive(Parser)]
#[command(name = "pgbaton-lab")]
struct Args {
    /// Number of runs (split across the modes).
    #[arg(long, default_value_t = 5)]
    runs: u64,
    /// Seed of the first run; run k uses seed + k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only this fault kind (default: every kind in turn, in shuffled rounds from the
    /// seed, so that a campaign of N runs covers each kind N / 15 times).
    #[arg(long)]
    fault: Option<String>,
    /// Replication modes, comma-separated: async, on, quorum, strict.
    #[arg(long, default_value = "on")]
    mode: String,
    /// Lease ttl in seconds.
    #[arg(long, default_value_t = 6)]
    ttl: u64,
    /// Where the logs of failed runs go.
    #[arg(long, default_value = "/tmp/pgbaton-lab-failures")]
    failures: PathBuf,
    /// Also keep the logs of runs that passed (under the same directory).
    #[arg(long)]
    keep_logs: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(why) = pgbaton_lab::unsupported() {
        anyhow::bail!("{why}");
    }
    let kind = a.fault.as_deref().map(Kind::parse).transpose()?;
    let modes = a
        .mode
        .split(',')
        .map(Mode::parse)
        .collect::<Result<Vec<_>>>()?;
    let deck = pgbaton_lab::fault::schedule(a.seed, a.runs as usize);
    let mut reports: Vec<Report> = Vec::new();
    for (m, &mode) in modes.iter().enumerate() {
        let share =
            a.runs / modes.len() as u64 + u64::from((m as u64) < a.runs % modes.len() as u64);
        let opts = Options {
            hosts: 3,
            mode,
            ttl: a.ttl,
            retry_timeout: 2,
            faketime: std::path::Path::new(pgbaton_lab::cluster::LIBFAKETIME).exists(),
        };
        let mut lab: Option<Lab> = None;
        for k in 0..share {
            let seed = a.seed + reports.len() as u64;
            if lab.is_none() {
                let l = Lab::start(opts.clone())?;
                run::bootstrap(&l, Duration::from_secs(120)).await?;
                lab = Some(l);
            }
            let Some(l) = lab.as_mut() else { continue };
            let kind = kind.or_else(|| deck.get(reports.len()).copied());
            let r = run::one(l, seed, kind, Duration::from_secs(90)).await;
            println!(
                "run {:>3} mode {:<6} seed {:<6} {:<22} primary {:<7} acked {:>5} lost {:>4}{} split {:>3} heal {:>6} {}",
                k + 1,
                mode.name(),
                seed,
                r.fault,
                r.primaries(),
                r.acked,
                r.lost,
                r.lost_window
                    .map(|w| format!(" ({:.1}s)", w.as_secs_f64()))
                    .unwrap_or_default(),
                r.split_brain,
                r.heal.map(|h| format!("{:.1}s", h.as_secs_f64())).unwrap_or("-".into()),
                r.failure.as_deref().unwrap_or("ok")
            );
            if r.failure.is_some() || a.keep_logs {
                let to = a.failures.join(format!("seed-{seed}"));
                let _ = l.save_logs(&to);
                println!("    logs: {}", to.display());
            }
            if r.failure.is_some() {
                lab = None; // rebuild from scratch for the next run
            }
            reports.push(r);
        }
    }
    print!("{}", pgbaton_lab::run::table(&reports));
    if reports.iter().any(|r| r.failure.is_some()) {
        std::process::exit(1);
    }
    Ok(())
}

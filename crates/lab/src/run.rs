//! One lab run: wait for a healthy cluster, record while a fault is injected and healed,
//! wait for the heal, and judge.

use crate::checker::{self, connect, socket_config, Recorder};
use crate::cluster::{Lab, Mode};
use crate::fault::{Fault, Kind};
use crate::rng::Rng;
use anyhow::{bail, Result};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The longest a healed cluster may take to have one primary and every other member
/// streaming again (issue 11: a partitioned old primary streams within 10 s of the heal).
pub const HEAL_LIMIT: Duration = Duration::from_secs(10);

/// The verdict of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub mode: Mode,
    pub fault: String,
    pub kind: Option<Kind>,
    pub acked: usize,
    pub lost: usize,
    /// From the fault's injection to the acknowledgement of the last lost row: how long
    /// the old primary accepted writes that were then lost.
    pub lost_window: Option<Duration>,
    pub split_brain: usize,
    /// From the heal to one primary with every other member streaming.
    pub heal: Option<Duration>,
    /// Why the run failed, if it did.
    pub failure: Option<String>,
    /// Primary before the fault and after the heal (host index).
    pub primaries: (Option<usize>, Option<usize>),
}

impl Report {
    /// "h1→h2" (a failover) or "h1" (none), "-" when unknown.
    pub fn primaries(&self) -> String {
        let name = |p: Option<usize>| p.map(|p| format!("h{}", p + 1)).unwrap_or("-".into());
        match self.primaries {
            (a, b) if a == b => name(a),
            (a, b) => format!("{}→{}", name(a), name(b)),
        }
    }
}

/// Whether each member is a primary (`Some(true)`), a replica (`Some(false)`) or unreachable.
pub async fn roles(lab: &Lab) -> Vec<Option<bool>> {
    let mut out = Vec::new();
    for i in 0..lab.opts.hosts {
        let r = match connect(&socket_config(&lab.socket_dir(i)), Duration::from_secs(1)).await {
            Some(c) => tokio::time::timeout(
                Duration::from_secs(1),
                c.query_one("select not pg_is_in_recovery()", &[]),
            )
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|row| row.get::<_, bool>(0)),
            None => None,
        };
        out.push(r);
    }
    out
}

/// The single primary, when every other member streams from it.
pub async fn healthy(lab: &Lab) -> Option<usize> {
    let r = roles(lab).await;
    let primaries: Vec<usize> = (0..r.len()).filter(|&i| r[i] == Some(true)).collect();
    if primaries.len() != 1 || r.iter().any(|x| x.is_none()) {
        return None;
    }
    let p = primaries[0];
    let c = connect(&socket_config(&lab.socket_dir(p)), Duration::from_secs(1)).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(1),
        c.query_one(
            "select count(*) from pg_stat_replication where state = 'streaming'",
            &[],
        ),
    )
    .await
    .ok()?
    .ok()?;
    (row.get::<_, i64>(0) as usize == lab.opts.hosts - 1).then_some(p)
}

/// Poll [`healthy`] every 100 ms until `within`.
pub async fn wait_healthy(lab: &Lab, within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(p) = healthy(lab).await {
            return Some(p);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Wait for the first healthy cluster and create the checker's tables.
pub async fn bootstrap(lab: &Lab, within: Duration) -> Result<()> {
    let Some(p) = wait_healthy(lab, within).await else {
        bail!(
            "the cluster was not healthy within {within:?} (logs in {})",
            lab.dir.display()
        );
    };
    let Some(c) = connect(&socket_config(&lab.socket_dir(p)), Duration::from_secs(2)).await else {
        bail!("cannot connect to the primary h{}", p + 1);
    };
    c.batch_execute(
        "create table if not exists lab_w(id bigint primary key);
         create table if not exists lab_p(m int, t timestamptz default now());",
    )
    .await?;
    Ok(())
}

/// Run one fault from `seed` (of `kind`, or random) and judge it.
pub async fn one(lab: &mut Lab, seed: u64, kind: Option<Kind>, heal_within: Duration) -> Report {
    let mut rep = Report {
        seed,
        mode: lab.opts.mode,
        fault: "-".into(),
        kind,
        acked: 0,
        lost: 0,
        lost_window: None,
        split_brain: 0,
        heal: None,
        failure: None,
        primaries: (None, None),
    };
    let Some(primary) = wait_healthy(lab, Duration::from_secs(60)).await else {
        rep.failure = Some("not healthy before the fault".into());
        return rep;
    };
    rep.primaries.0 = Some(primary);
    let reclones_before = lab.reclones();
    let mut rng = Rng::new(seed);
    let mut fault = Fault::pick(&mut rng, kind, primary, lab.opts.hosts, lab.opts.ttl);
    rep.kind = Some(fault.kind);
    let t0 = Instant::now();
    // Unique across runs on the same cluster: the wall clock in µs at the start.
    let first_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let sockets = (0..lab.opts.hosts).map(|i| lab.socket_dir(i)).collect();
    let rec = Recorder::start(lab.opts.hosts, sockets, first_id, t0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let injected_at = t0.elapsed();
    let applied = tokio::task::block_in_place(|| fault.apply(lab));
    rep.fault = fault.describe();
    if let Err(e) = applied {
        rep.failure = Some(format!("fault not applied: {e:#}"));
        let _ = rec.finish();
        return rep;
    }
    let healed_at = Instant::now();
    let final_primary = wait_healthy(lab, heal_within).await;
    rep.heal = final_primary.map(|_| healed_at.elapsed());
    rep.primaries.1 = final_primary;
    // Let the writer reach the (new) primary again before stopping it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = match rec.finish() {
        Ok(r) => r,
        Err(e) => {
            rep.failure = Some(format!("checker: {e:#}"));
            return rep;
        }
    };
    rep.acked = records.acks.len();
    rep.split_brain = checker::split_brain(&records.probes);
    let mut problems = Vec::new();
    match final_primary {
        None => problems.push(format!("not healed within {heal_within:?}")),
        Some(p) => match final_ids(lab, p, first_id, heal_within).await {
            Ok((p, present)) => {
                rep.primaries.1 = Some(p);
                let lost = checker::lost(&records.acks, &present);
                rep.lost = lost.len();
                let lost: HashSet<i64> = lost.into_iter().collect();
                rep.lost_window = records
                    .acks
                    .iter()
                    .filter(|(id, _)| lost.contains(id))
                    .map(|&(_, at)| at.saturating_sub(injected_at))
                    .max();
            }
            Err(e) => problems.push(format!("cannot read the final primary: {e:#}")),
        },
    }
    if let Some(h) = rep.heal.filter(|h| *h > HEAL_LIMIT) {
        problems.push(format!(
            "healed in {:.1}s, more than {HEAL_LIMIT:?}",
            h.as_secs_f64()
        ));
    }
    let recloned: Vec<String> = lab
        .reclones()
        .iter()
        .zip(&reclones_before)
        .enumerate()
        .filter(|(_, (a, b))| a > b)
        .map(|(i, _)| format!("h{}", i + 1))
        .collect();
    if !recloned.is_empty() {
        problems.push(format!("re-cloned: {}", recloned.join(", ")));
    }
    if rep.split_brain > 0 {
        problems.push(format!("{} split-brain instants", rep.split_brain));
    }
    if rep.lost > 0 && lab.opts.mode != Mode::Async {
        problems.push(format!("{} acked rows lost", rep.lost));
    }
    if !lab.agents_alive() {
        problems.push("an agent exited".into());
    }
    if !problems.is_empty() {
        rep.failure = Some(problems.join("; "));
    }
    rep
}

/// Writer ids at or above `first_id` on the final primary `p`; if it is gone (a second
/// failover right after the heal: seed 247, a flapping link, left etcd without a leader
/// for longer than the ttl), wait for the cluster to heal again and read the new primary.
async fn final_ids(
    lab: &Lab,
    mut p: usize,
    first_id: i64,
    within: Duration,
) -> Result<(usize, HashSet<i64>)> {
    let deadline = Instant::now() + within;
    loop {
        match present_ids(lab, p, first_id).await {
            Ok(ids) => return Ok((p, ids)),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_healthy(lab, left).await {
            Some(q) => p = q,
            None => bail!("no healthy primary again within {within:?}"),
        }
    }
}

/// Writer ids at or above `first_id` on member `p`.
async fn present_ids(lab: &Lab, p: usize, first_id: i64) -> Result<HashSet<i64>> {
    let Some(c) = connect(&socket_config(&lab.socket_dir(p)), Duration::from_secs(2)).await else {
        bail!("no connection to h{}", p + 1);
    };
    let rows = c
        .query("select id from lab_w where id >= $1", &[&first_id])
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
}

/// The campaign table: runs, faults, split-brain instants, acked rows lost by mode, heal
/// time median/max, failed runs with their seed.
pub fn table(reports: &[Report]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "runs: {}", reports.len());
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for r in reports {
        let name = r.kind.map(|k| k.name()).unwrap_or("-");
        match kinds.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => kinds.push((name, 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(n, c)| format!("{n} {c}")).collect();
    let _ = writeln!(s, "faults injected: {}", kinds.join(", "));
    let failovers = reports
        .iter()
        .filter(|r| r.primaries.1.is_some() && r.primaries.0 != r.primaries.1)
        .count();
    let _ = writeln!(s, "runs with a failover: {failovers}");
    let split: usize = reports.iter().map(|r| r.split_brain).sum();
    let _ = writeln!(s, "split-brain instants: {split}");
    for mode in [Mode::Async, Mode::On, Mode::Quorum, Mode::Strict] {
        let of: Vec<&Report> = reports.iter().filter(|r| r.mode == mode).collect();
        if of.is_empty() {
            continue;
        }
        let lost: usize = of.iter().map(|r| r.lost).sum();
        let acked: usize = of.iter().map(|r| r.acked).sum();
        let max = of.iter().map(|r| r.lost).max().unwrap_or(0);
        let window = of
            .iter()
            .filter_map(|r| r.lost_window)
            .max()
            .map(|w| {
                format!(
                    ", lost writes up to {:.1}s after the fault",
                    w.as_secs_f64()
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "acked rows lost ({}): {lost} of {acked} over {} runs (max {max} per run{window})",
            mode.name(),
            of.len()
        );
    }
    let mut heals: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.heal.map(|h| h.as_secs_f64()))
        .collect();
    heals.sort_by(|a, b| a.total_cmp(b));
    if !heals.is_empty() {
        let _ = writeln!(
            s,
            "heal time: median {:.1}s, max {:.1}s",
            heals[heals.len() / 2],
            heals[heals.len() - 1]
        );
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.failure
                .as_ref()
                .map(|f| format!("  seed {} ({}, {}): {f}", r.seed, r.mode.name(), r.fault))
        })
        .collect();
    let _ = writeln!(s, "failed runs: {}", failed.len());
    for f in failed {
        let _ = writeln!(s, "{f}");
    }
    s
}

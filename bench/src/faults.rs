//! Fault injection shared by the failover and durability benchmarks: kill the
//! primary's node (agent and PostgreSQL, -9) or its postmaster alone, measure until the
//! writer commits again, and bring the member back.

use crate::analysis;
use crate::cluster::Cluster;
use crate::lease;
use crate::procs;
use crate::sql;
use crate::writer::{Attempt, Writer};
use crate::{BenchError, Result};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Which fault to inject into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultMode {
    /// `kill -9` of the agent (and its children) together with the postmaster (and its
    /// children): a node crash. A replica must take over.
    Node,
    /// `kill -9` of the postmaster only; the agent stays and should restart it in place.
    Postmaster,
}

/// What one fault did.
#[derive(Debug, Clone)]
pub struct CrashRun {
    /// The member that was primary and was hit.
    pub victim: String,
    /// When the kill was sent (writer clock).
    pub killed_at: Duration,
    /// The last ack before the kill.
    pub last_ack_before: Option<Duration>,
    /// The first ack of a write sent after the kill, and the member that took it.
    pub first_ack_after: Option<(Duration, String)>,
    /// Writes that failed between the kill and the first ack after it.
    pub failed_writes: usize,
    /// Node mode: how long after the kill the leader's lease was due to expire (read
    /// from the local store right after the kill).
    pub lease_left: Option<Duration>,
    /// Node mode: from restarting the victim's agent to its WAL receiver streaming.
    pub rejoin: Option<Duration>,
    /// Node mode: how the victim rejoined, from its agent log ("no rewind", "pg_rewind
    /// 0.61 s", "re-cloned").
    pub rejoin_how: Option<String>,
    /// What happened, in words ("failover to node2", "restarted in place", "no failover
    /// within 40 s", ...).
    pub note: String,
}

impl CrashRun {
    /// From the kill to the first write accepted afterwards.
    pub fn recovery(&self) -> Option<Duration> {
        self.first_ack_after
            .as_ref()
            .map(|(at, _)| at.saturating_sub(self.killed_at))
    }

    /// (kill → first write, kill → lease expiry): their difference is pgbaton's own
    /// failover time once the lease has run out.
    /// Positive when the first write came after the expiry (the normal case).
    pub fn after_lease(&self) -> Option<(Duration, Duration)> {
        Some((self.recovery()?, self.lease_left?))
    }

    /// From the last acknowledged write before the kill to the first one after it.
    pub fn gap(&self) -> Option<Duration> {
        match (self.last_ack_before, &self.first_ack_after) {
            (Some(before), Some((after, _))) => Some(after.saturating_sub(before)),
            _ => None,
        }
    }
}

/// How long each phase of a fault may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the kill to the first write accepted again.
    pub recovery: Duration,
    /// For the cluster to be healthy again (and for the victim to stream).
    pub healthy: Duration,
    /// Steady writing on the healthy cluster before each fault.
    pub settle: Duration,
}

/// Hit the current primary with `mode`, measure until the writer commits again (or
/// `deadlines.recovery` passes), bring the member back and wait until the cluster is
/// healthy. The writer must be running.
pub async fn crash_once(
    cluster: &mut Cluster,
    writer: &Writer,
    mode: FaultMode,
    deadlines: Deadlines,
) -> Result<CrashRun> {
    let p = cluster.wait_healthy(deadlines.healthy).await?;
    tokio::time::sleep(deadlines.settle).await;
    let victim = cluster.members()[p].name.clone();
    let port = cluster.members()[p].pg_port;
    wait_writes_on(writer, port, &victim).await?;
    let Some(postmaster) = procs::postmaster_pid(&cluster.members()[p].data_dir) else {
        return Err(BenchError::Cluster(format!(
            "{victim} is primary but no postmaster.pid names a live process"
        )));
    };
    let mut pids = vec![postmaster];
    if mode == FaultMode::Node {
        pids.extend(procs::descendants(postmaster));
        if let Some(agent) = cluster.agent_pid(p) {
            pids.push(agent);
            pids.extend(procs::descendants(agent));
        }
    }
    let killed_at = writer.now();
    procs::signal_all(&pids, Signal::SIGKILL);
    let lease_left = match mode {
        FaultMode::Node => lease::leader_lease_remaining(&cluster.store_state_file()),
        FaultMode::Postmaster => None,
    };
    if mode == FaultMode::Node {
        cluster.reap(p).await?;
    }
    let ack = writer
        .wait_ack_after(killed_at, true, deadlines.recovery)
        .await;
    let last_ack_before = writer.with_log(|log| analysis::last_ack_before(log, killed_at));
    let mut run = CrashRun {
        victim: victim.clone(),
        killed_at,
        last_ack_before,
        first_ack_after: None,
        failed_writes: 0,
        lease_left,
        rejoin: None,
        rejoin_how: None,
        note: String::new(),
    };
    match ack {
        Some((at, ack_port)) => {
            let name = cluster.index_of_port(ack_port).map_or_else(
                || format!("port {ack_port}"),
                |i| cluster.members()[i].name.clone(),
            );
            run.failed_writes =
                writer.with_log(|log| analysis::failures_between(log, killed_at, at));
            run.note = if ack_port == port {
                "restarted in place".to_string()
            } else {
                format!("failover to {name}")
            };
            run.first_ack_after = Some((at, name));
        }
        None => {
            run.note = format!(
                "no write accepted within {:.0} s of the kill (no failover / no restart)",
                deadlines.recovery.as_secs_f64()
            );
        }
    }
    if mode == FaultMode::Node {
        let log_from = cluster.log_len(p);
        cluster.start(p)?;
        let started = Instant::now();
        let new_primary = run
            .first_ack_after
            .as_ref()
            .and_then(|(_, n)| cluster.index_of(n))
            .filter(|&i| i != p);
        if let Some(np) = new_primary {
            match cluster.wait_streaming(p, np, deadlines.healthy).await {
                Ok(at) => {
                    run.rejoin = Some(at.duration_since(started));
                    run.rejoin_how = Some(rejoin_how(&cluster.log_since(p, log_from)));
                }
                Err(e) => run
                    .note
                    .push_str(&format!("; {victim} did not rejoin: {e}")),
            }
        }
    }
    cluster.wait_healthy(deadlines.healthy).await?;
    Ok(run)
}

/// How a restarted member came back, from what its agent logged since the restart:
/// "pg_rewind X s" (the time pgbaton logged for it), "re-cloned", or "no rewind".
pub fn rejoin_how(log: &str) -> String {
    if let Some(line) = log.lines().find(|l| l.contains("pg_rewind from")) {
        let secs = line
            .split_once("finished in ")
            .and_then(|(_, r)| r.split_once(" s"))
            .map(|(v, _)| v.trim().to_string());
        return match secs {
            Some(v) => format!("pg_rewind {v} s"),
            None => "pg_rewind failed".to_string(),
        };
    }
    if log.contains("re-cloning") || log.contains("cloning from") {
        return "re-cloned".to_string();
    }
    "no rewind".to_string()
}

/// Wait until the writer commits on the server at `port` (the primary `name`).
async fn wait_writes_on(writer: &Writer, port: u16, name: &str) -> Result<()> {
    let timeout = Duration::from_secs(20);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let now = writer.now();
        if let Some((_, p)) = writer
            .wait_ack_after(now, false, Duration::from_secs(2))
            .await
        {
            if p == port {
                return Ok(());
            }
        }
    }
    Err(BenchError::Timeout {
        what: format!("the writer to commit on the primary {name}"),
        after: timeout,
    })
}

/// The result of checking every acknowledged row against the final primary.
#[derive(Debug, Clone)]
pub struct RowCheck {
    /// The member that was checked.
    pub primary: String,
    /// Rows the writer saw acknowledged.
    pub acked: usize,
    /// Rows in the table.
    pub present: usize,
    /// Acknowledged ids missing from the table, with their ack times.
    pub lost: Vec<(i64, Duration)>,
}

/// Check every acknowledged row of `log` against the table on the current primary.
pub async fn check_rows(cluster: &Cluster, log: &[Attempt], healthy: Duration) -> Result<RowCheck> {
    let p = cluster.wait_healthy(healthy).await?;
    let name = cluster.members()[p].name.clone();
    let present = sql::table_ids(&cluster.conninfo(p), &name).await?;
    Ok(RowCheck {
        primary: name,
        acked: analysis::acked_ids(log).len(),
        present: present.len(),
        lost: analysis::lost(log, &present),
    })
}

/// Create the table and start the writer on a healthy cluster; returns once it commits.
pub async fn start_writer(cluster: &Cluster, epoch: Instant, healthy: Duration) -> Result<Writer> {
    start_writer_through(cluster, cluster.writer_conninfo(), epoch, healthy).await
}

/// [`start_writer`] through `conninfo` (e.g. HAProxy's read-write port).
pub async fn start_writer_through(
    cluster: &Cluster,
    conninfo: String,
    epoch: Instant,
    healthy: Duration,
) -> Result<Writer> {
    let p = cluster.wait_healthy(healthy).await?;
    let name = cluster.members()[p].name.clone();
    sql::create_table(&cluster.conninfo(p), &name).await?;
    let writer = Writer::start(conninfo, epoch);
    let port = cluster.members()[p].pg_port;
    wait_writes_on(&writer, port, &name).await?;
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::rejoin_how;

    #[test]
    fn tells_how_a_member_rejoined_from_its_log() {
        let rewound =
            "x INFO rewinding from node1\nx INFO pg_rewind from node1 finished in 2.31 s: Done!\n";
        assert_eq!(rejoin_how(rewound), "pg_rewind 2.31 s");
        let followed = "x INFO PostgreSQL was not shut down cleanly: its last WAL record (timeline 1) starts at 0/4029EA0\n";
        assert_eq!(rejoin_how(followed), "no rewind");
        let failed = "x WARN pg_rewind from node1 failed (boom); re-cloning instead\n";
        assert_eq!(rejoin_how(failed), "pg_rewind failed");
    }
}

//! Jepsen-style checker: a writer through the libpq multi-host string
//! (`target_session_attrs=read-write`) from the client namespace, a probe per member
//! writing straight to it every 20 ms over its Unix socket (reachable whatever the
//! network does), and the verdicts computed from what they recorded.

use crate::cluster::SUPERUSER_PASSWORD;
use crate::net::{host_addr, CLIENT_NS};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config, NoTls};

/// Interval between probe writes.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// What the writer and the probes saw.
#[derive(Debug, Default)]
pub struct Records {
    /// Acknowledged writer ids with the monotonic time of the ack.
    pub acks: Vec<(i64, Duration)>,
    /// Per member: (sent, acked) monotonic times of each acknowledged probe write.
    pub probes: Vec<Vec<(Duration, Duration)>>,
}

/// Writer and probes running in their own thread, in the client namespace.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<Records>>>,
}

/// A superuser connection config to member `i`'s Unix socket.
pub fn socket_config(socket_dir: &std::path::Path) -> Config {
    let mut c = Config::new();
    c.host_path(socket_dir)
        .port(5432)
        .user("postgres")
        .password(SUPERUSER_PASSWORD)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(1));
    c
}

/// Connect with a deadline; the connection task runs on the current runtime.
pub async fn connect(cfg: &Config, within: Duration) -> Option<Client> {
    match tokio::time::timeout(within, cfg.connect(NoTls)).await {
        Ok(Ok((client, conn))) => {
            tokio::spawn(conn);
            Some(client)
        }
        _ => None,
    }
}

impl Recorder {
    /// Start the writer (ids from `first_id`) and one probe per socket dir; times are
    /// measured from `t0`.
    pub fn start(hosts: usize, sockets: Vec<PathBuf>, first_id: i64, t0: Instant) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || -> Result<Records> {
            let ns = std::fs::File::open(format!("/var/run/netns/{CLIENT_NS}"))
                .context("open the client namespace")?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("enter the client namespace")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let probes = sockets
                    .into_iter()
                    .enumerate()
                    .map(|(i, dir)| tokio::spawn(probe(i, dir, s.clone(), t0)))
                    .collect::<Vec<_>>();
                let acks = writer(hosts, first_id, s.clone(), t0).await;
                let mut rec = Records {
                    acks,
                    probes: Vec::new(),
                };
                for p in probes {
                    rec.probes.push(p.await.unwrap_or_default());
                }
                Ok(rec)
            })
        });
        Recorder {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and collect.
    pub fn finish(mut self) -> Result<Records> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => anyhow::bail!("the recorder thread panicked"),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Insert unique ids through the multi-host string until told to stop.
async fn writer(
    hosts: usize,
    first_id: i64,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> Vec<(i64, Duration)> {
    let list: Vec<String> = (0..hosts).map(host_addr).collect();
    let text = format!(
        "host={} port=5432 user=postgres password={SUPERUSER_PASSWORD} dbname=postgres target_session_attrs=read-write connect_timeout=2",
        list.join(",")
    );
    let cfg: Config = match text.parse() {
        Ok(c) => c,
        Err(_) => return Vec::new(),
    };
    let mut acks = Vec::new();
    let mut client: Option<Client> = None;
    let mut id = first_id;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_ref() else {
            client = connect(&cfg, Duration::from_secs(6)).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        id += 1;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
        let sql = c.execute("insert into lab_w(id) values ($1)", &params);
        match tokio::time::timeout(Duration::from_secs(3), sql).await {
            Ok(Ok(_)) => acks.push((id, t0.elapsed())),
            _ => client = None,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acks
}

/// Write to member `member` over its socket every 20 ms; keep the acknowledged ones.
async fn probe(
    member: usize,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> Vec<(Duration, Duration)> {
    let cfg = socket_config(&dir);
    let mut out = Vec::new();
    let mut client: Option<Client> = None;
    let m = member as i32;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(c) = client.as_ref() else {
            client = connect(&cfg, Duration::from_secs(1)).await;
            continue;
        };
        let sent = t0.elapsed();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&m];
        let sql = c.execute("insert into lab_p(m) values ($1)", &params);
        match tokio::time::timeout(Duration::from_secs(1), sql).await {
            Ok(Ok(_)) => out.push((sent, t0.elapsed())),
            Ok(Err(e)) if e.as_db_error().is_some() => {} // read-only: a replica
            _ => client = None,
        }
    }
    out
}

/// Acknowledged probe writes of one member that overlap in time an acknowledged probe
/// write of another member: instants with two members accepting writes.
pub fn split_brain(probes: &[Vec<(Duration, Duration)>]) -> usize {
    let mut count = 0;
    for (a, pa) in probes.iter().enumerate() {
        for pb in probes.iter().skip(a + 1) {
            let mut j = 0;
            for &(s, e) in pa {
                while j < pb.len() && pb[j].1 < s {
                    j += 1;
                }
                if pb.get(j).is_some_and(|&(s2, _)| s2 <= e) {
                    count += 1;
                }
            }
        }
    }
    count
}

/// Acked ids missing from `present`.
pub fn lost(acks: &[(i64, Duration)], present: &std::collections::HashSet<i64>) -> Vec<i64> {
    acks.iter()
        .map(|&(id, _)| id)
        .filter(|id| !present.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(a: u64, b: u64) -> (Duration, Duration) {
        (Duration::from_millis(a), Duration::from_millis(b))
    }

    #[test]
    fn overlapping_acks_of_two_members_count_as_split_brain() {
        let p = vec![
            vec![ms(0, 5), ms(20, 25), ms(40, 45)],
            vec![ms(46, 50), ms(22, 30)],
        ];
        let mut p2 = p.clone();
        p2[1].sort();
        assert_eq!(split_brain(&p2), 1);
        assert_eq!(split_brain(&[vec![ms(0, 5)], vec![ms(6, 9)], vec![]]), 0);
    }
}

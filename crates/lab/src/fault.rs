//! Faults: what each does to one host, how it heals, and a seeded choice of one.

use crate::cluster::Lab;
use crate::net::{etcd_addr, host_addr, host_ns, CLIENT_NS};
use crate::proc::{self, run_in};
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// A process a signal fault aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Agent,
    Fence,
    Postmaster,
}

/// Kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The host drops everything to and from the other hosts (clients still reach it).
    Partition,
    /// The host is cut from the other hosts' etcd members (both ways), not from replication.
    EtcdCut,
    /// The reverse: cut from the other hosts' PostgreSQL and API, not from etcd.
    ReplicaCut,
    /// The host receives nothing from the other hosts (its INPUT only).
    OneWay,
    /// The etcd leader's host is cut from the other etcd members.
    EtcdLeader,
    /// The host's link goes down and up every second.
    Flap,
    /// The host's etcd member is killed (restarted at the heal).
    EtcdKill,
    Stop(Target),
    Kill(Target),
    /// The host's wall clock (agent and what it starts) moves by ±30 s.
    Skew,
    /// The filesystem of the host's data directory and pg_wal is full.
    WalFull,
}

/// Every kind, in the order of `--fault` names.
pub const ALL: &[Kind] = &[
    Kind::Partition,
    Kind::EtcdCut,
    Kind::ReplicaCut,
    Kind::OneWay,
    Kind::EtcdLeader,
    Kind::Flap,
    Kind::EtcdKill,
    Kind::Stop(Target::Agent),
    Kind::Stop(Target::Fence),
    Kind::Stop(Target::Postmaster),
    Kind::Kill(Target::Agent),
    Kind::Kill(Target::Fence),
    Kind::Kill(Target::Postmaster),
    Kind::Skew,
    Kind::WalFull,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::EtcdCut => "etcd-cut",
            Kind::ReplicaCut => "replica-cut",
            Kind::OneWay => "one-way",
            Kind::EtcdLeader => "etcd-leader",
            Kind::Flap => "flap",
            Kind::EtcdKill => "etcd-kill",
            Kind::Stop(Target::Agent) => "stop-agent",
            Kind::Stop(Target::Fence) => "stop-fence",
            Kind::Stop(Target::Postmaster) => "stop-postmaster",
            Kind::Kill(Target::Agent) => "kill-agent",
            Kind::Kill(Target::Fence) => "kill-fence",
            Kind::Kill(Target::Postmaster) => "kill-postmaster",
            Kind::Skew => "skew",
            Kind::WalFull => "wal-full",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        match ALL.iter().find(|k| k.name() == s) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown fault {s:?}; one of: {}",
                ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// One fault on one host.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: Kind,
    pub host: usize,
    /// Clock offset for [`Kind::Skew`].
    pub skew: &'static str,
    pub hold: Duration,
}

impl Fault {
    /// A fault from `rng`: the given kind or a random one, on the primary (2 in 3) or a
    /// replica, held for 2-3 × ttl.
    pub fn pick(
        rng: &mut Rng,
        kind: Option<Kind>,
        primary: usize,
        hosts: usize,
        ttl: u64,
    ) -> Fault {
        let kind = kind.unwrap_or_else(|| ALL[rng.below(ALL.len())]);
        let host = if rng.below(3) < 2 {
            primary
        } else {
            (primary + 1 + rng.below(hosts - 1)) % hosts
        };
        let skew = if rng.below(2) == 0 { "+30s" } else { "-30s" };
        let hold = Duration::from_secs(2 * ttl + rng.below(ttl as usize + 1) as u64);
        Fault {
            kind,
            host,
            skew,
            hold,
        }
    }

    /// What it is, for tables and logs.
    pub fn describe(&self) -> String {
        let mut s = format!("{} h{}", self.kind.name(), self.host + 1);
        if self.kind == Kind::Skew {
            s.push(' ');
            s.push_str(self.skew);
        }
        s
    }

    /// Inject it, hold it for `hold`, heal it.
    pub fn apply(&mut self, lab: &mut Lab) -> Result<()> {
        if self.kind == Kind::EtcdLeader {
            self.host = etcd_leader(lab)?;
        }
        self.inject(lab)?;
        let until = Instant::now() + self.hold;
        if self.kind == Kind::Flap {
            let mut up = true;
            while Instant::now() < until {
                up = !up;
                lab.net.link(self.host, up)?;
                std::thread::sleep(Duration::from_secs(1));
            }
        } else {
            std::thread::sleep(self.hold);
        }
        self.heal(lab)
    }

    fn inject(&self, lab: &mut Lab) -> Result<()> {
        let h = self.host;
        let others: Vec<usize> = (0..lab.opts.hosts).filter(|&k| k != h).collect();
        let net = &lab.net;
        match self.kind {
            Kind::Partition => {
                for &o in &others {
                    for (a, b) in [(host_addr(o), host_addr(h)), (etcd_addr(o), etcd_addr(h))] {
                        net.drop_to(&host_ns(h), &a)?;
                        net.drop_to(&host_ns(o), &b)?;
                    }
                }
            }
            Kind::EtcdCut | Kind::EtcdLeader => {
                for &o in &others {
                    net.drop_to(&host_ns(h), &etcd_addr(o))?;
                    net.drop_to(&host_ns(o), &etcd_addr(h))?;
                }
            }
            Kind::ReplicaCut => {
                for &o in &others {
                    net.drop_to(&host_ns(h), &host_addr(o))?;
                    net.drop_to(&host_ns(o), &host_addr(h))?;
                }
            }
            Kind::OneWay => {
                for &o in &others {
                    net.drop_to(&host_ns(o), &host_addr(h))?;
                    net.drop_to(&host_ns(o), &etcd_addr(h))?;
                }
            }
            Kind::Flap => {}
            Kind::EtcdKill => Lab::kill_child(&mut lab.etcd[h]),
            Kind::Stop(t) => proc::signal(target_pid(lab, h, t)?, Signal::SIGSTOP),
            Kind::Kill(Target::Agent) => Lab::kill_child(&mut lab.agents[h]),
            Kind::Kill(t) => proc::signal(target_pid(lab, h, t)?, Signal::SIGKILL),
            Kind::Skew => lab.set_skew(h, self.skew)?,
            Kind::WalFull => fill(&lab.data_fs(h))?,
        }
        Ok(())
    }

    fn heal(&self, lab: &mut Lab) -> Result<()> {
        let h = self.host;
        lab.net.heal_all()?;
        match self.kind {
            Kind::EtcdKill => lab.start_etcd(h, false)?,
            Kind::Kill(Target::Agent) => lab.start_agent(h)?,
            Kind::Skew => lab.set_skew(h, "+0s")?,
            Kind::WalFull => {
                for f in [FILLER, FILLER_TAIL] {
                    std::fs::remove_file(lab.data_fs(h).join(f))
                        .with_context(|| format!("remove {f} from the full filesystem"))?;
                }
            }
            Kind::Stop(_) => {
                // The stopped process may have been replaced meanwhile: wake everything.
                let mut pids = Vec::new();
                if let Some(a) = lab.agent_pid(h) {
                    pids.push(a);
                    pids.extend(proc::descendants(a));
                }
                pids.extend(lab.postmaster_pid(h));
                pids.extend(stopped_in(&host_ns(h)));
                for p in pids {
                    proc::signal(p, Signal::SIGCONT);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The files that fill a host's data filesystem.
const FILLER: &str = "filler";
const FILLER_TAIL: &str = "filler.tail";

/// Fill the filesystem at `fs` (every free block): one big preallocated file, then the
/// rest written until the filesystem says it is full (PostgreSQL keeps writing meanwhile,
/// so preallocating exactly the free space can fail: seed 1033).
fn fill(fs: &std::path::Path) -> Result<()> {
    let st = nix::sys::statvfs::statvfs(fs).context("statvfs of the data filesystem")?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let file = fs.join(FILLER).display().to_string();
    let bulk = free.saturating_sub(16 << 20).to_string();
    proc::run(&["fallocate", "-l", &bulk, &file])?;
    let tail = format!("of={}", fs.join(FILLER_TAIL).display());
    // dd stops with "No space left on device": that is the point.
    let _ = proc::run(&["dd", "if=/dev/zero", &tail, "bs=64k"]);
    let st = nix::sys::statvfs::statvfs(fs).context("statvfs of the data filesystem")?;
    let left = st.blocks_available() as u64 * st.fragment_size() as u64;
    if left > 1 << 20 {
        bail!(
            "the data filesystem {} still has {left} bytes free",
            fs.display()
        );
    }
    Ok(())
}

/// A schedule of `runs` fault kinds from `seed`: shuffled rounds of every kind, so that
/// each kind comes up `runs / ALL.len()` times at least.
pub fn schedule(seed: u64, runs: usize) -> Vec<Kind> {
    let mut rng = Rng::new(seed ^ 0x5eed_1ab5);
    let mut out = Vec::with_capacity(runs);
    while out.len() < runs {
        let mut round: Vec<Kind> = ALL.to_vec();
        for k in (1..round.len()).rev() {
            round.swap(k, rng.below(k + 1));
        }
        out.extend(round);
    }
    out.truncate(runs);
    out
}

/// Pids inside `ns` (to SIGCONT whatever a fault stopped).
fn stopped_in(ns: &str) -> Vec<u32> {
    proc::run(&["ip", "netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn target_pid(lab: &Lab, h: usize, t: Target) -> Result<u32> {
    match t {
        Target::Agent => lab.agent_pid(h),
        Target::Fence => lab.fence_pid(h),
        Target::Postmaster => lab.postmaster_pid(h),
    }
    .with_context(|| format!("no {t:?} process on h{}", h + 1))
}

/// The host whose etcd member leads, asked from the client namespace.
pub fn etcd_leader(lab: &Lab) -> Result<usize> {
    let eps: Vec<String> = (0..lab.opts.hosts)
        .map(|k| format!("http://{}:2379", etcd_addr(k)))
        .collect();
    let out = run_in(
        CLIENT_NS,
        &[
            "env",
            "ETCDCTL_API=3",
            "etcdctl",
            "--dial-timeout=2s",
            "--command-timeout=3s",
            "--endpoints",
            &eps.join(","),
            "endpoint",
            "status",
            "-w",
            "json",
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).context("etcdctl endpoint status")?;
    for st in v.as_array().into_iter().flatten() {
        let s = &st["Status"];
        if s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"] {
            if let Some(k) = eps.iter().position(|e| st["Endpoint"].as_str() == Some(e)) {
                return Ok(k);
            }
        }
    }
    bail!("no etcd leader in {out}")
}

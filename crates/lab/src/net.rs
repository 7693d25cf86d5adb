//! Hosts as network namespaces: a bridge in its own namespace, one veth pair per host,
//! a client namespace, and packet drops between them (iptables, or blackhole routes when
//! iptables is missing). Nothing touches the machine's own interfaces.

use crate::proc::{have, run, run_in};
use anyhow::Result;

/// Prefix of every namespace the lab creates.
pub const PREFIX: &str = "pbl-";
/// The bridge's namespace.
pub const BRIDGE_NS: &str = "pbl-br";
/// The clients' namespace (writer).
pub const CLIENT_NS: &str = "pbl-cl";
/// The clients' address.
pub const CLIENT_ADDR: &str = "10.77.0.100";
/// The clients' address on the etcd subnet (etcdctl).
pub const CLIENT_ETCD_ADDR: &str = "10.77.1.100";

/// Namespace of host `i` (0-based).
pub fn host_ns(i: usize) -> String {
    format!("{PREFIX}h{}", i + 1)
}

/// PostgreSQL and API address of host `i`.
pub fn host_addr(i: usize) -> String {
    format!("10.77.0.{}", 11 + i)
}

/// etcd address of host `i` (a second address on the same link, so that etcd traffic can
/// be cut without cutting replication).
pub fn etcd_addr(i: usize) -> String {
    format!("10.77.1.{}", 11 + i)
}

/// Remove every namespace named with [`PREFIX`] and kill what runs inside it.
pub fn cleanup_leftovers() {
    let list = run(&["ip", "netns", "list"]).unwrap_or_default();
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if !name.starts_with(PREFIX) {
            continue;
        }
        kill_inside(name);
        let _ = run(&["ip", "netns", "del", name]);
    }
}

/// `kill -9` every process inside namespace `ns` (SIGCONT first, for stopped ones).
pub fn kill_inside(ns: &str) {
    let pids = run(&["ip", "netns", "pids", ns]).unwrap_or_default();
    for p in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        crate::proc::signal(p, nix::sys::signal::Signal::SIGCONT);
        crate::proc::signal(p, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The namespaces and links of one lab.
pub struct Net {
    pub hosts: usize,
    iptables: bool,
}

impl Net {
    /// Create the bridge, `hosts` host namespaces and the client namespace.
    pub fn create(hosts: usize) -> Result<Net> {
        cleanup_leftovers();
        let net = Net {
            hosts,
            iptables: have("iptables"),
        };
        run(&["ip", "netns", "add", BRIDGE_NS])?;
        let br = |args: &[&str]| -> Result<String> {
            let mut a = vec!["ip", "-n", BRIDGE_NS];
            a.extend_from_slice(args);
            run(&a)
        };
        br(&["link", "add", "br0", "type", "bridge"])?;
        br(&["link", "set", "br0", "up"])?;
        br(&["link", "set", "lo", "up"])?;
        let mut ends: Vec<(String, Vec<String>)> = (0..hosts)
            .map(|i| (host_ns(i), vec![host_addr(i), etcd_addr(i)]))
            .collect();
        ends.push((
            CLIENT_NS.to_string(),
            vec![CLIENT_ADDR.to_string(), CLIENT_ETCD_ADDR.to_string()],
        ));
        for (k, (ns, addrs)) in ends.iter().enumerate() {
            run(&["ip", "netns", "add", ns])?;
            let port = format!("p{k}");
            br(&[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])?;
            br(&["link", "set", &port, "master", "br0", "up"])?;
            // Keep addresses while a flapping link is down (IPv4 keeps them anyway).
            let _ = run_in(
                ns,
                &["sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1"],
            );
            for a in addrs {
                let cidr = format!("{a}/24");
                run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            }
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Drop every packet namespace `ns` sends to `addr`.
    pub fn drop_to(&self, ns: &str, addr: &str) -> Result<()> {
        if self.iptables {
            run_in(
                ns,
                &["iptables", "-w", "-A", "OUTPUT", "-d", addr, "-j", "DROP"],
            )?;
        } else {
            let dst = format!("{addr}/32");
            run(&["ip", "-n", ns, "route", "add", "blackhole", &dst])?;
        }
        Ok(())
    }

    /// Remove every drop rule in every namespace.
    pub fn heal_all(&self) -> Result<()> {
        for i in 0..self.hosts {
            let ns = host_ns(i);
            if self.iptables {
                run_in(&ns, &["iptables", "-w", "-F", "OUTPUT"])?;
            } else {
                let _ = run(&["ip", "-n", &ns, "route", "flush", "type", "blackhole"]);
            }
            let _ = run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        Ok(())
    }

    /// Bring host `i`'s link down or up.
    pub fn link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        run(&["ip", "-n", &host_ns(i), "link", "set", "eth0", state])?;
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        cleanup_leftovers();
    }
}

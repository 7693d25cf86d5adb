//! HAProxy in front of a benchmark cluster, with the shipped `docs/haproxy.cfg`: its
//! ports and `server` lines are replaced by the cluster's, nothing else, so the
//! benchmark measures the config users copy.

use crate::cluster::{free_port, Cluster, SUPERUSER_PASSWORD};
use crate::{BenchError, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped example config.
pub const DOCS_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/haproxy.cfg");

/// A running HAProxy (killed when dropped).
pub struct Haproxy {
    child: Child,
    /// The read-write port (the example's 5000).
    pub rw_port: u16,
    socket: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` (an HAProxy config like docs/haproxy.cfg) for this cluster: the two `bind`
/// ports replaced, every `server` line replaced by one per member (PostgreSQL address,
/// `check port` = its API port), and a stats socket added.
pub fn render(
    text: &str,
    members: &[(String, u16, u16)],
    rw: u16,
    ro: u16,
    socket: &Path,
) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("server ") {
            continue;
        }
        if t == "global" {
            out.push_str(&format!("global\n    stats socket {}\n", socket.display()));
            continue;
        }
        let line = line
            .replace("127.0.0.1:5000", &format!("127.0.0.1:{rw}"))
            .replace("127.0.0.1:5001", &format!("127.0.0.1:{ro}"));
        out.push_str(&line);
        out.push('\n');
        if t.starts_with("default-server ") {
            for (name, pg, api) in members {
                out.push_str(&format!(
                    "    server {name} 127.0.0.1:{pg} check port {api}\n"
                ));
            }
        }
    }
    out
}

impl Haproxy {
    /// Start `binary` with `config` (like docs/haproxy.cfg) rewritten for `cluster`
    /// (config and socket in the cluster directory) and wait until its health checks
    /// have settled.
    pub async fn start(
        binary: &Path,
        config: &Path,
        cluster: &Cluster,
        timeout: Duration,
    ) -> Result<Haproxy> {
        let text =
            std::fs::read_to_string(config).map_err(|e| BenchError::io("read", config, e))?;
        let members: Vec<(String, u16, u16)> = cluster
            .members()
            .iter()
            .map(|m| (m.name.clone(), m.pg_port, m.api_port))
            .collect();
        let (rw, ro) = (free_port()?, free_port()?);
        let socket = cluster.root().join("haproxy.sock");
        let cfg = cluster.root().join("haproxy.cfg");
        std::fs::write(&cfg, render(&text, &members, rw, ro, &socket))
            .map_err(|e| BenchError::io("write", &cfg, e))?;
        let log = cluster.root().join("haproxy.log");
        let out = std::fs::File::create(&log).map_err(|e| BenchError::io("create", &log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("dup", &log, e))?;
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                what: format!("{} -db -f {}", binary.display(), cfg.display()),
                source,
            })?;
        let h = Haproxy {
            child,
            rw_port: rw,
            socket,
        };
        h.wait_settled(timeout).await?;
        Ok(h)
    }

    /// The writer's connection string through the read-write port (no
    /// `target_session_attrs`: HAProxy alone decides where writes go).
    pub fn writer_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres connect_timeout=2 application_name=pgbaton-bench-writer",
            self.rw_port
        )
    }

    /// Wait until every server has finished a health check and follows it (UP after a
    /// pass, DOWN after a failure): before that HAProxy counts every server as UP.
    async fn wait_settled(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.settled() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: "HAProxy's health checks to settle".into(),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn settled(&self) -> bool {
        let Some(rows) = show_stat(&self.socket) else {
            return false;
        };
        let servers: Vec<_> = rows
            .iter()
            .filter(|r| {
                r.get("svname")
                    .is_some_and(|s| s != "FRONTEND" && s != "BACKEND")
            })
            .collect();
        !servers.is_empty()
            && servers.iter().all(|r| {
                matches!(
                    (
                        r.get("check_status").map(String::as_str),
                        r.get("status").map(String::as_str)
                    ),
                    (Some("L7OK"), Some("UP")) | (Some("L7STS"), Some("DOWN"))
                )
            })
    }
}

/// `show stat` on HAProxy's stats socket: one map per proxy/server row.
fn show_stat(socket: &Path) -> Option<Vec<std::collections::HashMap<String, String>>> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()?
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_string)
        .collect();
    Some(
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split(',').map(str::to_string))
                    .collect()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_config_is_rewritten_for_the_cluster() {
        let text = std::fs::read_to_string(DOCS_CONFIG).expect("docs/haproxy.cfg");
        let members = vec![
            ("node1".to_string(), 41001, 42001),
            ("node2".to_string(), 41002, 42002),
        ];
        let out = render(&text, &members, 15000, 15001, Path::new("/tmp/h.sock"));
        assert!(out.contains("bind 127.0.0.1:15000"), "{out}");
        assert!(out.contains("bind 127.0.0.1:15001"), "{out}");
        assert!(out.contains("stats socket /tmp/h.sock"), "{out}");
        assert_eq!(
            out.matches("server node1 127.0.0.1:41001 check port 42001")
                .count(),
            2
        );
        assert_eq!(
            out.matches("server node2 127.0.0.1:41002 check port 42002")
                .count(),
            2
        );
        assert!(!out.contains("55003"), "{out}");
    }
}

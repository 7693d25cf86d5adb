//! A one-member etcd on 127.0.0.1 for benchmarks on the etcd store: started in the
//! cluster directory, stopped (SIGTERM, then SIGKILL) when dropped, and its gRPC
//! request counters read from its `/metrics` endpoint.

use crate::cluster::free_port;
use crate::{BenchError, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer `/health` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running etcd.
pub struct Etcd {
    child: Option<Child>,
    client_port: u16,
    log: PathBuf,
}

impl Etcd {
    /// Start `etcd` (from `$PATH`) with its data and log under `dir`, on free ports of
    /// 127.0.0.1, and wait until it answers `/health`.
    pub fn start(dir: &Path) -> Result<Etcd> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let data = dir.join("etcd.data");
        let log = dir.join("etcd.log");
        let out = std::fs::File::create(&log).map_err(|e| BenchError::io("create", &log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("dup", &log, e))?;
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .arg("--name=bench")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=bench={peer}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                what: "etcd (apt-get install -y etcd-server)".into(),
                source,
            })?;
        let etcd = Etcd {
            child: Some(child),
            client_port,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !etcd.get("/health").is_ok_and(|b| b.contains("true")) {
            if Instant::now() > deadline {
                return Err(BenchError::Cluster(format!(
                    "etcd did not become healthy within {START_TIMEOUT:?}; see {}",
                    etcd.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(etcd)
    }

    /// The client URL, for the members' `store.etcd.endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// etcd's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// gRPC calls etcd has answered so far (`grpc_server_handled_total`, all methods;
    /// a watch stream counts once, when it ends), and the store revision
    /// (`etcd_debugging_mvcc_current_revision`).
    pub fn counters(&self) -> Result<(u64, u64)> {
        let text = self.get("/metrics")?;
        Ok((
            metric_sum(&text, "grpc_server_handled_total"),
            metric_sum(&text, "etcd_debugging_mvcc_current_revision"),
        ))
    }

    /// One HTTP/1.0 GET on the client port; the body.
    fn get(&self, path: &str) -> Result<String> {
        let addr = format!("127.0.0.1:{}", self.client_port);
        let io = |e| BenchError::io("GET from etcd at", &addr, e);
        let mut s = std::net::TcpStream::connect(&addr).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(io)?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(io)?;
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::procs::signal_all(&[child.id()], nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The sum of every sample of metric `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_of_one_metric() {
        let text = "# HELP x\ngrpc_server_handled_total{grpc_method=\"Range\"} 10\n\
                    grpc_server_handled_total{grpc_method=\"Put\"} 2.5e+01\n\
                    grpc_server_handled_total_other 7\n\
                    etcd_debugging_mvcc_current_revision 42\n";
        assert_eq!(metric_sum(text, "grpc_server_handled_total"), 35);
        assert_eq!(metric_sum(text, "etcd_debugging_mvcc_current_revision"), 42);
    }
}

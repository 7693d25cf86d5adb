//! The single-member etcd that `pgbaton demo --store etcd` runs when no endpoints are
//! given: loopback ports, data in `<demo dir>/etcd`, log in `<demo dir>/logs/etcd.log`.

use super::error::DemoError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// etcd's client port on 127.0.0.1, below the kernel's ephemeral range (32768+) so
/// that no outgoing connection can take it. Fixed, because the member configs keep it.
pub const CLIENT_PORT: u16 = 22379;
/// etcd's peer port on 127.0.0.1 (kept in etcd's own data dir).
pub const PEER_PORT: u16 = 22380;
/// The client and peer ports of demo dirs made before the ports moved (they lie in
/// the ephemeral range); such a dir keeps them, since its configs and etcd data do.
const LEGACY_PORTS: Ports = Ports {
    client: 52379,
    peer: 52380,
};

/// The ports of the demo's own etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Client port.
    pub client: u16,
    /// Peer port.
    pub peer: u16,
}

/// The ports of the demo's etcd in `dir`: the legacy ones when its configs name them.
pub fn ports(dir: &Path) -> Ports {
    let legacy = format!("http://127.0.0.1:{}", LEGACY_PORTS.client);
    let names_legacy = std::fs::read_to_string(dir.join("node1.yaml"))
        .is_ok_and(|t| t.contains(&format!("\"{legacy}\"")));
    if names_legacy {
        LEGACY_PORTS
    } else {
        Ports {
            client: CLIENT_PORT,
            peer: PEER_PORT,
        }
    }
}
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The client URLs of the demo's own etcd, as written into the member configs.
pub fn endpoints(ports: Ports) -> Vec<String> {
    vec![format!("http://127.0.0.1:{}", ports.client)]
}

/// A running etcd child process. Call [`LocalEtcd::stop`] when done (after the agents);
/// if the demo process dies, the kernel sends etcd SIGTERM.
pub struct LocalEtcd {
    child: Child,
    log: PathBuf,
    ports: Ports,
}

impl LocalEtcd {
    /// Start etcd for the demo in `dir` and wait until it answers `/health`.
    pub async fn start(dir: &Path, ports: Ports) -> Result<LocalEtcd, DemoError> {
        let binary = find_etcd()?;
        for port in [ports.client, ports.peer] {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|source| DemoError::EtcdPortInUse { port, source })?;
        }
        let log = dir.join("logs").join("etcd.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(DemoError::io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(DemoError::io(format!("opening {}", log.display())))?;
        let client = endpoints(ports).join(",");
        let peer = format!("http://127.0.0.1:{}", ports.peer);
        let mut cmd = Command::new(&binary);
        cmd.args(["--name", "demo", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("demo={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "pgbaton-demo"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: Ctrl-C in the terminal reaches only the demo, which
            // stops etcd after the agents, so they can release their keys.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(arch) = unsupported_arch() {
            cmd.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        // SAFETY: prctl is async-signal-safe and touches only the child process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(DemoError::io(format!("starting {}", binary.display())))?;
        let mut etcd = LocalEtcd { child, log, ports };
        if let Err(e) = etcd.wait_healthy().await {
            etcd.stop().await;
            return Err(e);
        }
        Ok(etcd)
    }

    /// The etcd log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    async fn wait_healthy(&mut self) -> Result<(), DemoError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            if healthy(self.ports.client).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!("was not healthy within {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `Ok` while etcd runs; the failure (with its exit status) once it has exited.
    pub fn check_running(&mut self) -> Result<(), DemoError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failed(format!("exited ({status})"))),
            Err(e) => Err(self.failed(format!("cannot be checked: {e}"))),
        }
    }

    fn failed(&self, what: String) -> DemoError {
        DemoError::EtcdFailed {
            what,
            log: self.log.clone(),
        }
    }

    /// SIGTERM etcd and wait for it to exit; SIGKILL it after 10 s.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(_) => println!("stopped etcd"),
            Err(_) => {
                let _ = self.child.kill().await;
                println!("killed etcd (it did not stop within {STOP_TIMEOUT:?})");
            }
        }
    }
}

/// `etcd` on PATH, else `/usr/bin/etcd`.
fn find_etcd() -> Result<PathBuf, DemoError> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
        .ok_or(DemoError::EtcdNotFound)
}

/// Whether etcd answers `GET /health` with `"health":"true"`.
async fn healthy(port: u16) -> bool {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(body)) => body.contains("\"health\":\"true\""),
        _ => false,
    }
}

/// etcd refuses to run on architectures other than amd64/arm64/ppc64le/s390x unless
/// `ETCD_UNSUPPORTED_ARCH` names the current one.
fn unsupported_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" | "aarch64" | "powerpc64" | "s390x" => None,
        "arm" => Some("arm"),
        "x86" => Some("386"),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_dirs_get_ports_below_the_ephemeral_range_old_dirs_keep_theirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let new = ports(tmp.path());
        assert!(new.client < 32768 && new.peer < 32768, "{new:?}");
        std::fs::write(
            tmp.path().join("node1.yaml"),
            "store:\n  etcd:\n    endpoints: [\"http://127.0.0.1:52379\"]\n",
        )
        .expect("write");
        assert_eq!(ports(tmp.path()), LEGACY_PORTS);
    }
}

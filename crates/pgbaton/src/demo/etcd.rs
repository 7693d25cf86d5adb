//! The single-member etcd that `pgbaton demo --store etcd` runs when no endpoints are
//! given: loopback ports, data in `<demo dir>/etcd`, log in `<demo dir>/logs/etcd.log`.

use super::error::DemoError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// etcd's client port on 127.0.0.1. Fixed, because the member configs keep it.
pub const CLIENT_PORT: u16 = 52379;
/// etcd's peer port on 127.0.0.1 (kept in etcd's own data dir).
pub const PEER_PORT: u16 = 52380;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The client URLs of the demo's own etcd, as written into the member configs.
pub fn endpoints() -> Vec<String> {
    vec![format!("http://127.0.0.1:{CLIENT_PORT}")]
}

/// A running etcd child process. Call [`LocalEtcd::stop`] when done (after the agents);
/// if the demo process dies, the kernel sends etcd SIGTERM.
pub struct LocalEtcd {
    child: Child,
    log: PathBuf,
}

impl LocalEtcd {
    /// Start etcd for the demo in `dir` and wait until it answers `/health`.
    pub async fn start(dir: &Path) -> Result<LocalEtcd, DemoError> {
        let binary = find_etcd()?;
        for port in [CLIENT_PORT, PEER_PORT] {
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
        let client = endpoints().join(",");
        let peer = format!("http://127.0.0.1:{PEER_PORT}");
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
        let mut etcd = LocalEtcd { child, log };
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
            if healthy().await {
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
async fn healthy() -> bool {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", CLIENT_PORT)).await?;
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

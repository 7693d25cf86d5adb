//! [`EtcdCluster`]: real etcd processes on free 127.0.0.1 ports, for tests.

use super::spawner::Spawner;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const INSTALL_HINT: &str = "etcd not found: install it with `apt-get install -y etcd-server`";

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members in a temp dir. Every process is
/// killed, and the dir removed, on drop (and the kernel kills them if the test process
/// dies). Members log to `<dir>/<name>.log`. Methods take `&self`, so the cluster can be
/// shared (e.g. in an `Arc`) between test tasks.
pub struct EtcdCluster {
    members: Mutex<Vec<Member>>,
    binary: PathBuf,
    initial_cluster: String,
    token: String,
    // Declared after `members` so children are killed before the spawner thread ends
    // (Drop kills them explicitly anyway) and before the dir is removed.
    spawner: Spawner,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Start `members` etcd processes and wait until every one reports healthy.
    /// Panics with the reason (and the tail of the etcd log) when that fails, including
    /// "etcd not found: install it with `apt-get install -y etcd-server`".
    pub fn start(members: usize) -> EtcdCluster {
        match EtcdCluster::try_start(members) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`EtcdCluster::start`], but returns the failure instead of panicking.
    pub fn try_start(members: usize) -> Result<EtcdCluster, String> {
        if members == 0 {
            return Err("an etcd cluster needs at least one member".into());
        }
        let binary = find_etcd()?;
        let mut last_err = String::new();
        // A free port may be taken between our probe and etcd's bind: retry.
        for _ in 0..3 {
            match EtcdCluster::start_once(&binary, members) {
                Ok(c) => return Ok(c),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn start_once(binary: &Path, n: usize) -> Result<EtcdCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("pgbaton-etcd-")
            .tempdir()
            .map_err(|e| format!("cannot create temp dir: {e}"))?;
        let ports = free_ports(2 * n)?;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "pgbaton-test-{}",
            dir.path()
                .file_name()
                .map_or_else(String::new, |s| s.to_string_lossy().to_string())
        );
        let cluster = EtcdCluster {
            members: Mutex::new(members),
            binary: binary.to_path_buf(),
            initial_cluster,
            token,
            spawner: Spawner::new().map_err(|e| format!("cannot start spawner thread: {e}"))?,
            dir,
        };
        for i in 0..n {
            cluster.spawn_member(i)?;
        }
        for i in 0..n {
            cluster.wait_healthy(i, START_TIMEOUT)?;
        }
        Ok(cluster)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_member(&self, i: usize) -> Result<(), String> {
        let mut members = self.lock();
        let m = &mut members[i];
        let log_path = self.dir.path().join(format!("{}.log", m.name));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot dup {}: {e}", log_path.display()))?;
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let data_dir = self.dir.path().join(format!("{}.etcd", m.name));
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections and a 1 s minimum lease TTL keep tests quick.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        if let Some(arch) = unsupported_arch() {
            cmd.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let child = self
            .spawner
            .spawn(cmd)
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        m.child = Some(child);
        Ok(())
    }

    /// Wait until member `i` answers `/health` with `true`. Errors with the log tail
    /// when it exits or `timeout` passes.
    pub fn wait_healthy(&self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let port = self.lock()[i].client_port;
        loop {
            if let Some(status) = self.exit_status(i) {
                return Err(format!(
                    "etcd member {i} exited during startup ({status}); log:\n{}",
                    self.log_tail(i)
                ));
            }
            if health_ok(port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "etcd member {i} not healthy after {timeout:?}; log:\n{}",
                    self.log_tail(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exit_status(&self, i: usize) -> Option<String> {
        let mut members = self.lock();
        let child = members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// The client URLs of all members (killed ones included), e.g. `http://127.0.0.1:40123`.
    pub fn endpoints(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.lock()[i].client_port)
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of member `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.lock()[i].name))
    }

    fn log_tail(&self, i: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.log_path(i)) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn signal(&self, i: usize, sig: Signal) {
        let members = self.lock();
        let Some(child) = members[i].child.as_ref() else {
            panic!("etcd member {i} is not running");
        };
        let pid = Pid::from_raw(child.id() as i32);
        if let Err(e) = kill(pid, sig) {
            panic!("cannot send {sig} to etcd member {i} (pid {pid}): {e}");
        }
    }

    /// Kill member `i` with SIGKILL and reap it. Its data dir stays for [`Self::restart`].
    pub fn kill(&self, i: usize) {
        let mut members = self.lock();
        if let Some(mut child) = members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze member `i` (SIGSTOP): its sockets stay open but it answers nothing.
    pub fn pause(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    /// Undo [`Self::pause`] (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    /// Run `etcdctl` (API v3) with `args` against member `i`, e.g. `["put", key, value]`
    /// (raw bytes allowed, `--user=NAME:PASSWORD` too). Panics with its stderr when it
    /// fails, or with an install hint when it is missing.
    pub fn etcdctl<S: AsRef<std::ffi::OsStr>>(&self, i: usize, args: &[S]) {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint(i)))
            .args(args)
            .output()
            .expect("run etcdctl (apt-get install -y etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl {:?} failed: {}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start a killed member `i` again on its old ports and data dir, and wait until it
    /// is healthy. Panics when it does not come back.
    pub fn restart(&self, i: usize) {
        self.kill(i);
        if let Err(e) = self
            .spawn_member(i)
            .and_then(|()| self.wait_healthy(i, START_TIMEOUT))
        {
            panic!("{e}");
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in self.lock().iter_mut() {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `$PGBATON_ETCD`, `etcd` on PATH, or `/usr/bin/etcd`.
fn find_etcd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PGBATON_ETCD") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
        .ok_or_else(|| INSTALL_HINT.to_string())
}

/// etcd refuses to run on architectures other than amd64/arm64/ppc64le/s390x unless
/// `ETCD_UNSUPPORTED_ARCH` names the current one.
fn unsupported_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" | "aarch64" | "powerpc64" | "s390x" => None,
        other => Some(other),
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (free when probed; taken again shortly).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot bind a free port on 127.0.0.1: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read a bound port: {e}"))
}

/// `GET /health` on the client port answers `"health":"true"`.
fn health_ok(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

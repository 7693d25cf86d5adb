//! The fence process against a real PostgreSQL 15: it stops PostgreSQL at the armed
//! deadline and not before, feeding keeps it running, disarming stops it for good, and a
//! frozen (SIGSTOP) or killed (SIGKILL) agent cannot keep PostgreSQL writable.
//!
//! The agent side is the real [`fence::Fence`] (this file compiles the module's source);
//! the fence process is the real `pgbaton fence-watchdog`. The "agent" that gets frozen
//! or killed is this test binary re-run as a feeder process (see [`feeder_main`]).

// The test uses only part of the module.
#[allow(dead_code, unused_imports)]
#[path = "../src/fence/mod.rs"]
mod fence;

use fence::{Fence, FenceOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pgbaton_config::WatchdogMode;
use pgbaton_postgres::{find_bin_dir, Credentials, InitdbOptions, Instance, OsUser, StopMode};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far after the deadline PostgreSQL must be gone.
const GRACE: Duration = Duration::from_millis(100);
/// The feeder's arm period and how far ahead it arms.
const FEED_EVERY: Duration = Duration::from_millis(100);
const FEED_AHEAD: Duration = Duration::from_millis(1000);

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A PostgreSQL primary in a temp dir, stopped (immediate) when dropped.
struct Pg {
    inst: Instance,
    _root: tempfile::TempDir,
}

impl Pg {
    fn pid(&self) -> i32 {
        let info = self.inst.status().expect("status").expect("running");
        i32::try_from(info.pid).expect("pid")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.inst.signal_stop(StopMode::Immediate) {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && matches!(self.inst.status(), Ok(Some(_))) {
                std::thread::sleep(ms(20));
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn instance(base: &Path) -> Instance {
    Instance {
        bin_dir: find_bin_dir().expect("PostgreSQL binaries"),
        data_dir: base.join("data"),
        run_as: OsUser::run_as_policy("postgres").expect("os user"),
        listen_addresses: "127.0.0.1".into(),
        port: free_port(),
        socket_dir: base.join("run"),
        superuser: Credentials {
            user: "postgres".into(),
            password: "fence-test".into(),
        },
        log_file: base.join("postgresql.log"),
    }
}

/// An initdb'd data directory, made once per test binary and copied for each test.
fn template() -> PathBuf {
    static TEMPLATE: Mutex<Option<(tempfile::TempDir, PathBuf)>> = Mutex::new(None);
    let mut guard = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, data)) = guard.as_ref() {
        return data.clone();
    }
    let root = tempfile::Builder::new()
        .prefix("pgbaton-fence-tpl-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let inst = instance(root.path());
    block_on(inst.initdb(&InitdbOptions {
        no_sync: true,
        ..InitdbOptions::default()
    }))
    .expect("initdb");
    let data = inst.data_dir.clone();
    *guard = Some((root, data.clone()));
    data
}

fn start_pg() -> Pg {
    let tpl = template();
    let root = tempfile::Builder::new()
        .prefix("pgbaton-fence-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let inst = instance(root.path());
    let st = Command::new("cp")
        .arg("-a")
        .arg(&tpl)
        .arg(&inst.data_dir)
        .status()
        .expect("cp");
    assert!(st.success(), "copying the template data dir failed");
    let settings: BTreeMap<String, String> = [
        ("fsync", "off"),
        ("shared_buffers", "16MB"),
        ("max_connections", "20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    inst.prepare_config(&settings, None).expect("config");
    assert!(block_on(inst.start(Duration::from_secs(30))).expect("start"));
    Pg { inst, _root: root }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Polls `pid` every 2 ms until it is gone (returns when, on the fence clock) or
/// `until` (fence clock) passes.
fn wait_gone(pid: i32, until: Duration) -> Option<Duration> {
    loop {
        let now = fence::now();
        if !alive(pid) {
            return Some(now);
        }
        if now > until {
            return None;
        }
        std::thread::sleep(ms(2));
    }
}

/// Polls `check` until true, failing with `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(ms(10));
    }
}

fn options(data_dir: &Path, log: &Path) -> FenceOptions {
    FenceOptions {
        program: PathBuf::from(env!("CARGO_BIN_EXE_pgbaton")),
        data_dir: data_dir.to_path_buf(),
        member: "node1".into(),
        log: Some(log.to_path_buf()),
        log_format: pgbaton_config::LogFormat::Text,
        watchdog_mode: WatchdogMode::Off,
        watchdog_device: PathBuf::from("/nonexistent/watchdog"),
        watchdog_timeout: Duration::from_secs(1),
        safety_margin: Duration::from_secs(1),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Asserts that the postmaster `pid` is alive until `deadline` and gone by
/// `deadline + GRACE + slack`.
fn assert_fenced_in_window(pid: i32, deadline: Duration, slack: Duration, log: &Path) {
    let gone = wait_gone(pid, deadline + GRACE + slack + Duration::from_secs(5));
    let gone = gone.unwrap_or_else(|| panic!("PostgreSQL was never fenced\n{}", read(log)));
    eprintln!(
        "PostgreSQL (pid {pid}) gone {:?} after the deadline",
        gone.saturating_sub(deadline)
    );
    assert!(
        gone >= deadline,
        "PostgreSQL was stopped {:?} BEFORE the deadline",
        deadline - gone
    );
    assert!(
        gone <= deadline + GRACE + slack,
        "PostgreSQL was gone only {:?} after the deadline\n{}",
        gone - deadline,
        read(log)
    );
}

#[test]
fn fences_at_the_deadline_and_not_before() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let fence = Fence::spawn(options(&pg.inst.data_dir, &log)).expect("spawn");
    let pid = pg.pid();
    let deadline = fence::now() + Duration::from_secs(1);
    fence
        .arm_until(deadline, deadline + Duration::from_secs(1))
        .expect("arm");
    assert_fenced_in_window(pid, deadline, Duration::ZERO, &log);
    wait_until("the fenced event", Duration::from_secs(2), || {
        fence.fenced_count() == 1
    });
    let text = read(&log);
    assert!(
        text.contains(&format!(
            "fenced PostgreSQL (pid {pid}): lease deadline passed"
        )),
        "{text}"
    );
    // The agent goes away: the deadline has passed and PostgreSQL is down, so the fence
    // process has nothing left to do and exits.
    let child = i32::try_from(fence.pid()).expect("pid");
    drop(fence);
    assert!(
        wait_gone(child, fence::now() + Duration::from_secs(2)).is_some(),
        "the fence process did not exit\n{}",
        read(&log)
    );
}

#[test]
fn feeding_keeps_postgres_running_and_disarming_never_fences() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let fence = Fence::spawn(options(&pg.inst.data_dir, &log)).expect("spawn");
    let pid = pg.pid();
    // ttl 1.5 s and margin 1 s: each arm fences 0.5 s after it was sent unless fed.
    let ttl = ms(1500);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let sent = fence::now();
        let deadline = fence.arm(sent, ttl).expect("arm");
        assert_eq!(deadline, sent + ms(500));
        std::thread::sleep(ms(100));
        assert!(alive(pid), "fenced while fed\n{}", read(&log));
    }
    fence.disarm().expect("disarm");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(pid), "fenced after disarm\n{}", read(&log));
    assert_eq!(fence.fenced_count(), 0);
    let child = i32::try_from(fence.pid()).expect("pid");
    drop(fence);
    assert!(
        wait_gone(child, fence::now() + Duration::from_secs(1)).is_some(),
        "a disarmed fence process did not exit with its agent"
    );
    assert!(alive(pid));
}

#[test]
fn a_required_watchdog_device_that_is_missing_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let mut opts = options(dir.path(), &log);
    opts.watchdog_mode = WatchdogMode::Required;
    let err = Fence::spawn(opts.clone()).expect_err("required without a device");
    let msg = err.to_string();
    assert!(
        msg.contains("refused to start")
            && msg.contains("required")
            && msg.contains("/nonexistent/watchdog"),
        "{msg}"
    );
    opts.watchdog_mode = WatchdogMode::Automatic;
    let fence = Fence::spawn(opts).expect("automatic works without a device");
    assert!(fence.is_alive());
    drop(fence);
    assert!(read(&log).contains("fencing without it"), "{}", read(&log));
}

#[test]
fn a_pid_file_naming_another_process_is_never_signalled() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let mut victim = Command::new("sleep").arg("30").spawn().expect("sleep");
    let vpid = i32::try_from(victim.id()).expect("pid");
    std::fs::write(dir.path().join("postmaster.pid"), format!("{vpid}\n")).expect("pid file");
    let fence = Fence::spawn(options(dir.path(), &log)).expect("spawn");
    let now = fence::now();
    fence.arm_until(now, now).expect("arm");
    wait_until("the nothing-to-fence note", Duration::from_secs(2), || {
        read(&log).contains("nothing to fence")
    });
    assert!(
        alive(vpid),
        "a process that is not the postmaster was killed"
    );
    assert_eq!(fence.fenced_count(), 0);
    drop(fence);
    let _ = victim.kill();
    let _ = victim.wait();
}

/// A feeder ("agent") process: this test binary re-run with `FENCE_FEEDER_*` set.
struct Feeder {
    child: Child,
    lines: mpsc::Receiver<String>,
    last_deadline: Option<Duration>,
    watchdog: Option<i32>,
}

impl Feeder {
    fn start(data_dir: &Path, log: &Path, mode: &str) -> Feeder {
        let mut child = Command::new(std::env::current_exe().expect("test exe"))
            .args([
                "feeder_main",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FENCE_FEEDER_DATA_DIR", data_dir)
            .env("FENCE_FEEDER_LOG", log)
            .env("FENCE_FEEDER_MODE", mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("feeder");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may put "test feeder_main ... " before the first report.
                if let Some((_, rest)) = line.split_once("feeder: ") {
                    if tx.send(rest.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        Feeder {
            child,
            lines,
            last_deadline: None,
            watchdog: None,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }

    /// Reads the feeder's reports until `pred` holds for one (or `timeout` passes).
    fn read_until(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("the feeder did not report in time"),
            };
            if let Some(n) = line.strip_prefix("armed ") {
                self.last_deadline = n.parse().ok().map(Duration::from_nanos);
            } else if let Some(n) = line.strip_prefix("watchdog ") {
                self.watchdog = n.parse().ok();
            }
            if pred(&line) {
                return;
            }
        }
    }

    /// Drains what the feeder already reported.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(n) = line.strip_prefix("armed ") {
                self.last_deadline = n.parse().ok().map(Duration::from_nanos);
            }
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entry point of the feeder process (does nothing in a normal test run). Modes:
/// `feed` arms `FEED_AHEAD` ahead every `FEED_EVERY`; `feed-then-disarm` does so ten
/// times, then disarms and idles.
#[test]
#[ignore = "run by the other tests as a separate feeder process"]
fn feeder_main() {
    let (Ok(data_dir), Ok(log), Ok(mode)) = (
        std::env::var("FENCE_FEEDER_DATA_DIR"),
        std::env::var("FENCE_FEEDER_LOG"),
        std::env::var("FENCE_FEEDER_MODE"),
    ) else {
        return;
    };
    let fence = Fence::spawn(options(Path::new(&data_dir), Path::new(&log))).expect("spawn");
    println!("feeder: watchdog {}", fence.pid());
    let mut n = 0u32;
    loop {
        let deadline = fence::now() + FEED_AHEAD;
        fence
            .arm_until(deadline, deadline + Duration::from_secs(1))
            .expect("arm");
        println!("feeder: armed {}", deadline.as_nanos());
        n += 1;
        if mode == "feed-then-disarm" && n == 10 {
            fence.disarm().expect("disarm");
            println!("feeder: disarmed");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        std::thread::sleep(FEED_EVERY);
    }
}

#[test]
fn a_frozen_agent_is_fenced_at_its_last_deadline() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let pid = pg.pid();
    let mut feeder = Feeder::start(&pg.inst.data_dir, &log, "feed");
    feeder.read_until(Duration::from_secs(10), |l| l.starts_with("armed"));
    // Fed for well over FEED_AHEAD: still running.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(pid), "fenced while fed\n{}", read(&log));
    kill(feeder.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    std::thread::sleep(ms(50));
    feeder.drain();
    let last = feeder.last_deadline.expect("a deadline");
    // The feeder may have armed once more without reporting it before it stopped.
    assert_fenced_in_window(pid, last, FEED_EVERY, &log);
    assert!(read(&log).contains("fenced PostgreSQL"), "{}", read(&log));
}

#[test]
fn a_killed_agent_is_fenced_and_the_fence_process_then_exits() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let pid = pg.pid();
    let mut feeder = Feeder::start(&pg.inst.data_dir, &log, "feed");
    feeder.read_until(Duration::from_secs(10), |l| l.starts_with("armed"));
    let watchdog = feeder.watchdog.expect("watchdog pid");
    std::thread::sleep(ms(500));
    kill(feeder.pid(), Signal::SIGKILL).expect("SIGKILL");
    let _ = feeder.child.wait();
    feeder.drain();
    let last = feeder.last_deadline.expect("a deadline");
    assert!(alive(watchdog), "the fence process died with its agent");
    assert_fenced_in_window(pid, last, FEED_EVERY, &log);
    assert!(
        wait_gone(watchdog, fence::now() + Duration::from_secs(2)).is_some(),
        "the fence process did not exit after fencing\n{}",
        read(&log)
    );
}

#[test]
fn a_killed_disarmed_agent_lets_the_fence_process_exit_without_fencing() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let pid = pg.pid();
    let mut feeder = Feeder::start(&pg.inst.data_dir, &log, "feed-then-disarm");
    feeder.read_until(Duration::from_secs(10), |l| l == "disarmed");
    let watchdog = feeder.watchdog.expect("watchdog pid");
    let last = feeder.last_deadline.expect("a deadline");
    kill(feeder.pid(), Signal::SIGKILL).expect("SIGKILL");
    assert!(
        wait_gone(watchdog, fence::now() + Duration::from_secs(1)).is_some(),
        "a disarmed fence process outlived its agent\n{}",
        read(&log)
    );
    // Past the last armed deadline: still running.
    while fence::now() < last + ms(300) {
        std::thread::sleep(ms(50));
    }
    assert!(alive(pid), "fenced although disarmed\n{}", read(&log));
}

#[test]
fn a_hung_main_loop_is_fenced_although_the_lease_is_still_renewed() {
    let pg = start_pg();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("fence.log");
    let fence = Fence::spawn(options(&pg.inst.data_dir, &log)).expect("spawn");
    let spawner = std::sync::Arc::new(fence::OsFenceSpawner(options(&pg.inst.data_dir, &log)));
    let feed = fence::FenceFeed::new(Box::new(fence), spawner, Duration::from_secs(1));
    let pid = pg.pid();
    let ttl = ms(2000);
    // Renewed, but not leading yet: nothing armed.
    feed.renewed(fence::now(), ttl, 1).expect("renewed");
    assert!(feed.is_alive());
    // The main loop confirms once, then "hangs"; the lease keeper goes on renewing.
    let confirmed = fence::now();
    feed.confirmed_leader(confirmed, 1).expect("confirmed");
    let deadline = confirmed + ttl - Duration::from_secs(1);
    while fence::now() + ms(150) < deadline {
        feed.renewed(fence::now(), ttl, 1).expect("renewed");
        std::thread::sleep(ms(100));
    }
    assert_fenced_in_window(pid, deadline, Duration::ZERO, &log);
    wait_until("the fenced event", Duration::from_secs(2), || {
        feed.fenced_count() == 1
    });
    // A replaced fence process keeps the count and is re-armed at once.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(feed.respawn())
        .expect("respawn");
    assert!(feed.is_alive());
    assert_eq!(feed.fenced_count(), 1);
}

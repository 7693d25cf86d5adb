//! End-to-end: the agent speaks systemd's notify protocol (Type=notify) to a
//! `NOTIFY_SOCKET` of the test's own, since these machines run no systemd as PID 1.
//! A real agent on the local store sends READY=1 once its HA loop runs, WATCHDOG=1
//! pings at half the `WATCHDOG_USEC` interval, and STOPPING=1 on SIGTERM; PostgreSQL
//! (built with systemd support) must not inherit the socket and speak in its name.

mod common;

use common::{StoreKind, TestCluster};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every datagram received so far, in order.
type Received = Arc<Mutex<Vec<String>>>;

fn listen(sock: UnixDatagram) -> Received {
    let got: Received = Arc::default();
    let out = got.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => out
                    .lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&buf[..n]).to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    got
}

fn count(got: &Received, line: &str) -> usize {
    got.lock()
        .expect("lock")
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

async fn wait_count(got: &Received, line: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while count(got, line) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} {line} within {timeout:?}; received: {:?}",
            got.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_watchdog_and_stopping_reach_notify_socket() {
    let mut c = TestCluster::new(1, StoreKind::Local);
    let path = c.dir.path().join("notify.sock");
    let got = listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    // World-writable like systemd's own, so PostgreSQL (run as postgres) could use it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    c.start_with_env(
        0,
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("1000000")),
        ],
    );
    wait_count(&got, "READY=1", 1, Duration::from_secs(60)).await;
    c.wait_healthy(Duration::from_secs(90)).await;

    // Pings keep coming at about twice a second while the member runs.
    let before = count(&got, "WATCHDOG=1");
    wait_count(&got, "WATCHDOG=1", before + 4, Duration::from_secs(5)).await;

    // PostgreSQL runs now; had it inherited NOTIFY_SOCKET, it would have sent its own
    // READY=1 by now.
    assert_eq!(count(&got, "READY=1"), 1, "{:?}", got.lock().expect("lock"));
    let status = c.stop(0);
    assert!(status.success(), "agent exit: {status:?}\n{}", c.log(0));
    wait_count(&got, "STOPPING=1", 1, Duration::from_secs(5)).await;
}

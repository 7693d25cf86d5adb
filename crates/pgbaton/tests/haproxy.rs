//! End-to-end: real HAProxy with the example config from docs/haproxy.cfg routes the
//! read-write port to the primary, and to the new primary after a switchover.
//!
//! Until a server's first health check has run, HAProxy counts it as up (see the docs
//! config), so the test reads HAProxy's stats socket and asserts routing only once
//! every check has settled.

mod common;

use common::{free_port, wait_for, StoreKind, TestCluster, SUPERUSER_PASSWORD};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The docs example with this cluster's ports in place of the example ones, plus a
/// stats socket at `socket`.
fn config(c: &TestCluster, rw: u16, ro: u16, socket: &Path) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/haproxy.cfg"
    ))
    .expect("docs/haproxy.cfg");
    text = text.replace("127.0.0.1:5000", &format!("127.0.0.1:{rw}"));
    text = text.replace("127.0.0.1:5001", &format!("127.0.0.1:{ro}"));
    text = text.replacen(
        "global\n",
        &format!("global\n    stats socket {}\n", socket.display()),
        1,
    );
    for (i, n) in c.nodes.iter().enumerate() {
        text = text.replace(
            &format!("127.0.0.1:5500{}", i + 1),
            &format!("127.0.0.1:{}", n.pg_port),
        );
        text = text.replace(
            &format!("port 5800{}", i + 1),
            &format!("port {}", n.api_port),
        );
    }
    text
}

/// The port of the PostgreSQL that a fresh connection through `port` reaches.
async fn reached(port: u16) -> Option<u16> {
    let conn = format!(
        "host=127.0.0.1 port={port} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres connect_timeout=2"
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    let row = client
        .query_one("select inet_server_port()", &[])
        .await
        .ok()?;
    row.get::<_, Option<i32>>(0)
        .and_then(|p| u16::try_from(p).ok())
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

/// Wait until every server of both proxies has finished a health check and its state
/// follows it: UP after a passed check (L7OK), DOWN after a failed one.
async fn wait_checks_settled(socket: &Path) {
    wait_for("HAProxy's health checks to settle", UP, || async {
        let rows = show_stat(socket)?;
        let servers: Vec<_> = rows
            .iter()
            .filter(|r| r["svname"] != "FRONTEND" && r["svname"] != "BACKEND")
            .collect();
        let settled = !servers.is_empty()
            && servers.iter().all(|r| {
                matches!(
                    (r["check_status"].as_str(), r["status"].as_str()),
                    ("L7OK", "UP") | ("L7STS", "DOWN")
                )
            });
        settled.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_routes_writes_to_the_primary_across_a_switchover() {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("haproxy not found: install it with `apt-get install -y haproxy`");
    let mut c = TestCluster::new(3, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let (rw, ro) = (free_port(), free_port());
    let cfg = c.dir.path().join("haproxy.cfg");
    let socket = c.dir.path().join("haproxy.sock");
    std::fs::write(&cfg, config(&c, rw, ro, &socket)).expect("write haproxy.cfg");
    let check = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "the docs example is not valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _proxy = Haproxy(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    let primary_port = c.nodes[p].pg_port;
    wait_checks_settled(&socket).await;
    // Settled: every new connection goes where it belongs.
    for _ in 0..6 {
        assert_eq!(reached(rw).await, Some(primary_port), "read-write port");
        let replica = reached(ro).await.expect("the read-only port answers");
        assert_ne!(replica, primary_port, "read-only port");
    }

    let to = (0..3).find(|&i| i != p).expect("replica");
    let out = c.pgbaton(
        p,
        &["switchover", "--to", &c.nodes[to].name.clone(), "--force"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_port = c.nodes[to].pg_port;
    wait_for(
        "the read-write port to reach the new primary",
        UP,
        || async { (reached(rw).await? == new_port).then_some(()) },
    )
    .await;
}

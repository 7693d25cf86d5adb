//! Hostile HTTP: browser-borne requests (foreign `Host`, `Origin`, `Sec-Fetch-Site`,
//! non-JSON bodies), bad methods and bodies, slow and idle clients, and floods of
//! connections. Each is refused with a clear answer, or cut off, and changes nothing in
//! the store (security review F2, F3).

use super::client::{get, request, request_from};
use super::http::{start_limited, start_with, three_members, Harness};
use super::primary;
use crate::api::listener::Limits;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn open_api() -> Harness {
    let h = start_with(primary(Instant::now()), |_| {}).await;
    three_members(&h).await;
    h
}

/// The store's revision: unchanged means nothing was written.
async fn revision(h: &Harness) -> i64 {
    h.store.snapshot().await.expect("snapshot").revision
}

/// The unsafe requests an attacker would want, each valid when sent properly.
const UNSAFE: [(&str, &str, Option<&str>); 6] = [
    (
        "PATCH",
        "/config",
        Some(r#"{"parameters": {"work_mem": "8MB"}}"#),
    ),
    ("POST", "/switchover", Some(r#"{"candidate": "node2"}"#)),
    ("POST", "/failover", Some(r#"{"candidate": "node2"}"#)),
    ("POST", "/restart", None),
    ("POST", "/reinitialize", Some(r#"{"member": "node2"}"#)),
    ("DELETE", "/switchover", None),
];

#[tokio::test]
async fn a_foreign_host_gets_421_for_every_method() {
    let h = open_api().await;
    let before = revision(&h).await;
    for host in [
        "rebind.evil.example",
        "evil.example:8008",
        "localhost.evil.example",
    ] {
        let r = raw(
            h.port,
            &format!("GET /config HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 421"), "{host}: {r}");
        assert!(r.contains("api.allowed_hosts"), "{r}");
        for (method, path, body) in UNSAFE {
            let body = body.unwrap_or("{}");
            let r = raw(
                h.port,
                &format!(
                    "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await;
            assert!(r.starts_with("HTTP/1.1 421"), "{method} {path}: {r}");
        }
    }
    // Our own names and any IP literal are fine.
    for host in ["localhost:8008", "127.0.0.1", "[::1]:58008", "10.9.8.7"] {
        let r = raw(
            h.port,
            &format!("GET /status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{host}: {r}");
    }
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn allowed_hosts_are_accepted() {
    let h = start_with(primary(Instant::now()), |cfg| {
        cfg.api.allowed_hosts = vec!["pg-api.example.com".into()];
    })
    .await;
    let r = raw(
        h.port,
        "GET /status HTTP/1.1\r\nHost: PG-API.example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn cross_site_unsafe_requests_get_403_and_change_nothing() {
    let h = open_api().await;
    let before = revision(&h).await;
    for header in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "http://127.0.0.1.evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        for (method, path, body) in UNSAFE {
            let r = request(h.port, method, path, &[header], body).await;
            assert_eq!(r.status, 403, "{method} {path} {header:?}: {}", r.body);
            assert!(r.json()["error"]
                .as_str()
                .unwrap_or_default()
                .contains("cross-site"));
        }
    }
    // A same-origin request (as the API's own address) passes.
    let r = request(
        h.port,
        "POST",
        "/reload",
        &[("Origin", "http://127.0.0.1")],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn unsafe_requests_that_are_not_json_get_415_and_change_nothing() {
    let h = open_api().await;
    let before = revision(&h).await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ] {
        for (method, path, body) in UNSAFE {
            let body = body.unwrap_or("");
            let ct = if content_type.is_empty() {
                String::new()
            } else {
                format!("Content-Type: {content_type}\r\n")
            };
            let r = raw(
                h.port,
                &format!(
                    "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await;
            assert!(
                r.starts_with("HTTP/1.1 415"),
                "{method} {path} {content_type:?}: {r}"
            );
            assert!(r.contains("application/json"), "{r}");
        }
    }
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn bad_methods_bodies_and_headers_are_refused_and_change_nothing() {
    let h = open_api().await;
    let before = revision(&h).await;
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(100 * 1024));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("PUT", "/config", Some("{}"), 405),
        ("TRACE", "/status", None, 405),
        ("POST", "/status", Some("{}"), 405),
        ("PATCH", "/config", Some(big.as_str()), 413),
        ("PATCH", "/config", Some(deep.as_str()), 400),
        ("PATCH", "/config", Some("\u{0}\u{1}"), 400),
        (
            "PATCH",
            "/config",
            Some(r#"{"ttl": 18446744073709551615}"#),
            400,
        ),
        ("PATCH", "/config", Some(r#"{"ttl": -1}"#), 400),
        (
            "PATCH",
            "/config",
            Some(r#"{"parameters": {"archive_command": "id > /tmp/pwn-%f"}}"#),
            400,
        ),
        (
            "PATCH",
            "/config",
            Some(r#"{"parameters": {"include": "/etc/shadow"}}"#),
            400,
        ),
        (
            "PATCH",
            "/config",
            Some(r#"{"parameters": {"1x": "y"}}"#),
            400,
        ),
        (
            "POST",
            "/switchover",
            Some(r#"{"candidate": "x\r\nInjected: 1"}"#),
            412,
        ),
        ("POST", "/switchover", Some("[]"), 400),
        ("POST", "/failover", Some(r#"{"candidate": 5}"#), 400),
    ];
    for (method, path, body, code) in cases {
        let r = request(h.port, method, path, &[], body).await;
        let shown = body.map(|b| &b[..b.len().min(60)]);
        assert_eq!(r.status, code, "{method} {path} {shown:?}: {}", r.body);
    }
    // Garbage on the wire: 400, or the connection is closed.
    for wire in ["GET / HTTP/9.9\r\n\r\n", "\u{1}\u{2}\u{3}\r\n\r\n"] {
        let r = raw(h.port, wire).await;
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 400"),
            "{wire:?}: {r}"
        );
    }
    // Content-Length and Transfer-Encoding together (request smuggling): the chunked
    // body counts and the connection is closed after the answer.
    let r = raw(
        h.port,
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert_eq!(r.matches("HTTP/1.1 200").count(), 1, "{r}");
    assert!(r.contains("connection: close"), "{r}");
    let huge_header = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let r = raw(h.port, &huge_header).await;
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 431"),
        "{}",
        &r[..r.len().min(80)]
    );
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn a_client_that_sends_its_header_slowly_is_cut_off() {
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let h = start_limited(primary(Instant::now()), |_| {}, limits).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    let t0 = Instant::now();
    s.write_all(b"GET /status HTTP/1.1\r\n")
        .await
        .expect("write");
    // One header byte every 100 ms, forever: the header never completes.
    let mut closed = false;
    while t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            closed = true;
            let _ = n;
            break;
        }
    }
    assert!(closed, "still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(700),
        ..Limits::default()
    };
    let h = start_limited(primary(Instant::now()), |_| {}, limits).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .expect("connect");
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_caps_are_closed_and_others_still_served() {
    let limits = Limits {
        max_connections: 40,
        max_per_client: 10,
        ..Limits::default()
    };
    let h = start_limited(primary(Instant::now()), |_| {}, limits).await;
    // One client opens 30 idle connections: only 10 are kept.
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", h.port))
                .await
                .expect("connect"),
        );
    }
    let mut open = 0;
    for s in &mut held {
        let mut buf = [0u8; 1];
        // Still open (nothing to read) or closed by the server.
        let read = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
        if read.is_err() {
            open += 1;
        }
    }
    assert_eq!(open, 10);
    // Another client address is still served.
    let r = request_from("127.0.5.1", h.port, "GET", "/primary", &[], None).await;
    assert_eq!(r.status, 200);
    drop(held);
    // Once they are gone, the first client is served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = tokio::time::timeout(Duration::from_secs(1), get(h.port, "/primary")).await;
        if matches!(r, Ok(ref r) if r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "not served again");
    }
}

/// Send raw bytes and read the whole answer (empty when the server just closed).
async fn raw(port: u16, wire: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = s.write_all(wire.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn idle_clients_make_room_when_the_api_is_crowded() {
    let limits = Limits {
        max_connections: 20,
        max_per_client: 64,
        ..Limits::default()
    };
    let h = start_limited(primary(Instant::now()), |_| {}, limits).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", h.port))
                .await
                .expect("connect"),
        );
    }
    // Every slot is taken by a silent client; within a few seconds they are let go
    // (long before the 30 s idle timeout) and a health check is served again.
    let t0 = Instant::now();
    loop {
        let r = raw(
            h.port,
            "GET /primary HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(6), "never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(t0.elapsed() < Duration::from_secs(6));
    drop(held);
}

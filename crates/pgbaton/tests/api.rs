//! End-to-end: the HTTP API of real agents (a primary and a streaming replica on real
//! PostgreSQL 15 and the local store) answers the health checks, metrics, cluster view
//! and config edits truthfully.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UP: Duration = Duration::from_secs(90);
const API_READY: Duration = Duration::from_secs(60);

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 request (one per connection). `None` when nothing answers.
async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<Reply> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !["GET", "HEAD", "OPTIONS"].contains(&method) {
        req.push_str("Content-Type: application/json\r\n");
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "this client does not decode chunked bodies"
    );
    Some(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

async fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], None)
        .await
        .unwrap_or_else(|| panic!("no answer from 127.0.0.1:{port}{path}"))
}

/// Wait until `GET path` answers `code`.
async fn wait_status(port: u16, path: &str, code: u16) {
    wait_for(
        &format!("GET {path} on port {port} to answer {code}"),
        API_READY,
        || async {
            let r = request(port, "GET", path, &[], None).await?;
            (r.status == code).then_some(())
        },
    )
    .await;
}

/// The value of the one sample of `metric` in Prometheus `text`.
fn sample(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_and_a_replica_answer_truthfully() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    // One after the other, so the test does not depend on the bootstrap race.
    c.start(0);
    wait_status(c.nodes[0].api_port, "/primary", 200).await;
    // A bootstrapping member is not a replica yet.
    assert_eq!(get(c.nodes[0].api_port, "/replica").await.status, 503);
    c.start(1);
    let p = c.wait_healthy(UP).await;
    assert_eq!(p, 0, "the first member stays primary");
    let r = 1 - p;
    let (pp, rp) = (c.nodes[p].api_port, c.nodes[r].api_port);
    wait_status(rp, "/replica", 200).await;

    // Health checks on the primary.
    for (path, code) in [
        ("/primary", 200),
        ("/read-write", 200),
        ("/leader", 200),
        ("/replica", 503),
        ("/read-only", 200),
        ("/health", 200),
        ("/liveness", 200),
        ("/readiness", 200),
        ("/sync", 503),
        ("/async", 503),
    ] {
        assert_eq!(get(pp, path).await.status, code, "primary {path}");
    }
    let body = get(pp, "/primary").await.json();
    assert_eq!(body["name"], c.nodes[p].name.as_str());
    assert_eq!(body["role"], "primary");
    assert_eq!(body["leader"], true);
    assert!(
        body["lease_seconds_left"].as_f64().unwrap_or_default() > 0.0,
        "{body}"
    );
    // HEAD and OPTIONS: only the status code.
    for method in ["HEAD", "OPTIONS"] {
        let reply = request(pp, method, "/primary", &[], None)
            .await
            .expect("answer");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, ""),
            "{method} /primary"
        );
        let reply = request(rp, method, "/primary", &[], None)
            .await
            .expect("answer");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, ""),
            "{method} /primary on the replica"
        );
    }

    // Health checks on the replica.
    for (path, code) in [
        ("/primary", 503),
        ("/read-write", 503),
        ("/replica", 200),
        ("/replica?lag=1GB", 200),
        ("/read-only", 200),
        ("/health", 200),
        ("/readiness", 200),
        ("/sync", 503),
        ("/async", 200),
    ] {
        assert_eq!(get(rp, path).await.status, code, "replica {path}");
    }
    let bad = get(rp, "/replica?lag=abc").await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("abc"));

    // Metrics match the cluster.
    let rows = c.list(p);
    let labels = |i: usize| format!("{{cluster=\"test\",member=\"{}\"}}", c.nodes[i].name);
    let m = get(pp, "/metrics").await;
    assert!(m
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    assert_eq!(
        sample(&m.body, &format!("pgbaton_postgres_up{}", labels(p))),
        Some(1.0),
        "{}",
        m.body
    );
    assert_eq!(
        sample(&m.body, &format!("pgbaton_leader{}", labels(p))),
        Some(1.0)
    );
    let tl = rows[p]["timeline"].as_f64();
    assert_eq!(
        sample(&m.body, &format!("pgbaton_timeline{}", labels(p))),
        tl
    );
    assert!(m.body.contains(&format!(
        "pgbaton_role{{cluster=\"test\",member=\"{}\",role=\"primary\"}} 1",
        c.nodes[p].name
    )));
    let m = get(rp, "/metrics").await;
    assert_eq!(
        sample(&m.body, &format!("pgbaton_leader{}", labels(r))),
        Some(0.0)
    );
    assert!(
        sample(&m.body, &format!("pgbaton_lag_bytes{}", labels(r))).is_some(),
        "{}",
        m.body
    );

    // The cluster view from either member.
    let view = get(rp, "/cluster").await.json();
    let names: Vec<&str> = view
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["node1", "node2"]);
    assert_eq!(get(pp, "/history").await.status, 200);
    assert_eq!(get(pp, "/status").await.json()["fresh"], true);

    // PATCH /config: a round trip, then 409 on a stale revision.
    let before = get(pp, "/config").await.json();
    let first = request(
        pp,
        "PATCH",
        "/config",
        &[],
        Some(r#"{"maximum_lag_on_failover": 2097152}"#),
    )
    .await
    .expect("answer");
    assert_eq!(first.status, 200, "{}", first.body);
    let tag1 = first.header("etag").expect("etag").to_string();
    // Reads come from each agent's last store snapshot: the change shows within a cycle.
    let seen = config_showing(rp, "maximum_lag_on_failover", 2097152).await;
    assert_eq!(seen.json()["maximum_lag_on_failover"], 2097152);
    assert_eq!(seen.json()["ttl"], before["ttl"]);
    assert_eq!(seen.header("etag"), Some(tag1.as_str()));
    let second = request(
        pp,
        "PATCH",
        "/config",
        &[("If-Match", &tag1)],
        Some(r#"{"maximum_lag_on_failover": 3145728}"#),
    )
    .await
    .expect("answer");
    assert_eq!(second.status, 200, "{}", second.body);
    let stale = request(
        rp,
        "PATCH",
        "/config",
        &[("If-Match", &tag1)],
        Some(r#"{"maximum_lag_on_failover": 1}"#),
    )
    .await
    .expect("answer");
    assert_eq!(stale.status, 409, "{}", stale.body);
    config_showing(pp, "maximum_lag_on_failover", 3145728).await;
    let unsafe_cfg = request(pp, "PATCH", "/config", &[], Some(r#"{"ttl": 2}"#))
        .await
        .expect("answer");
    assert_eq!(unsafe_cfg.status, 400, "{}", unsafe_cfg.body);

    // SIGTERM: the agents exit and the API goes away with them.
    for i in [r, p] {
        let status = c.stop(i);
        assert!(
            status.success(),
            "agent {} exited with {status}",
            c.nodes[i].name
        );
        assert!(request(c.nodes[i].api_port, "GET", "/health", &[], None)
            .await
            .is_none());
    }
}

/// `GET /config` on `port`, once it shows `key` = `value` (agents answer from the store
/// snapshot of their last cycle, and a config change wakes them at once).
async fn config_showing(port: u16, key: &str, value: u64) -> Reply {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(port, "/config").await;
        if r.json()[key] == value {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET /config never showed {key} = {value}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

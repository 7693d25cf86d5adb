//! End-to-end: control through the HTTP API and the config commands, on real agents,
//! PostgreSQL 15 and the local store. A switchover asked over HTTP happens; refused
//! requests change nothing; `edit-config` round-trips and refuses unsafe timing;
//! `check-config` prints the failover budget.

mod common;

use common::{postmaster_pid, wait_for, StoreKind, TestCluster};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UP: Duration = Duration::from_secs(90);

/// One HTTP answer: status and JSON body.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A minimal HTTP/1.1 request (one per connection); panics when nothing answers.
async fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the API on {port}: {e}"));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the API answers within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Reply {
        status,
        body: body.to_string(),
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The store's cluster config, through `pgbaton show-config --format json`.
fn shown_config(c: &TestCluster) -> Value {
    let out = c.pgbaton(0, &["show-config", "--format", "json"]);
    assert!(out.status.success(), "show-config: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("show-config prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn control_over_http_and_config_edits() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    let (primary, replica) = (c.nodes[p].name.clone(), c.nodes[r].name.clone());
    let api = c.nodes[p].api_port;

    // Refused requests: the right code, a message, and nothing changes.
    let refused = [
        (
            "/switchover",
            r#"{"candidate": "nosuch"}"#.to_string(),
            412,
            "unknown member",
        ),
        (
            "/switchover",
            format!(r#"{{"candidate": "{primary}"}}"#),
            412,
            "already the primary",
        ),
        (
            "/switchover",
            format!(r#"{{"leader": "{replica}"}}"#),
            412,
            "is not the primary",
        ),
        (
            "/switchover",
            r#"{"candidate": "#.to_string(),
            400,
            "not valid",
        ),
        (
            "/switchover",
            format!(r#"{{"to": "{replica}", "scheduled_at": "soon"}}"#),
            400,
            "RFC 3339",
        ),
        (
            "/failover",
            format!(r#"{{"candidate": "{replica}"}}"#),
            409,
            "healthy primary",
        ),
        ("/failover", "{}".to_string(), 400, "candidate"),
        (
            "/reinitialize",
            format!(r#"{{"member": "{primary}"}}"#),
            412,
            "is the primary",
        ),
        (
            "/restart",
            r#"{"member": "nosuch"}"#.to_string(),
            412,
            "unknown member",
        ),
    ];
    for (path, body, code, needle) in &refused {
        let reply = request(api, "POST", path, Some(body)).await;
        assert_eq!(reply.status, *code, "POST {path} {body}: {}", reply.body);
        assert!(
            reply.error().contains(needle),
            "POST {path} {body}: {}",
            reply.body
        );
    }
    let cluster = request(api, "GET", "/cluster", None).await.json();
    let leaders: Vec<&str> = cluster
        .as_array()
        .expect("rows")
        .iter()
        .filter(|m| m["leader"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(
        leaders,
        [primary.as_str()],
        "a refused request changed nothing"
    );
    assert_eq!(c.leader().as_deref(), Some(primary.as_str()));

    // A scheduled switchover is pending until cancelled.
    let reply = request(
        api,
        "POST",
        "/switchover",
        Some(&format!(
            r#"{{"candidate": "{replica}", "scheduled_at": "2999-01-01T00:00:00Z"}}"#
        )),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let again = request(api, "POST", "/switchover", Some("{}")).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let cancel = request(api, "DELETE", "/switchover", None).await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);

    // A switchover asked through the replica's own API: 202 at once, then it happens.
    let reply = request(
        c.nodes[r].api_port,
        "POST",
        "/switchover",
        Some(&format!(r#"{{"leader": "{primary}", "to": "{replica}"}}"#)),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("pgbaton list"));
    wait_for(&format!("{replica} to lead"), UP, || async {
        (c.leader().as_deref() == Some(replica.as_str())).then_some(())
    })
    .await;
    assert_eq!(
        c.wait_healthy(UP).await,
        r,
        "{replica} is the primary, {primary} streams"
    );

    // show-config / edit-config round trip.
    let out = c.pgbaton(0, &["show-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("loop_wait: 1"), "{}", stdout(&out));
    let out = c.pgbaton(0, &["edit-config", "--set", "loop_wait=2"]);
    assert!(out.status.success(), "edit-config: {}", stderr(&out));
    assert!(
        stdout(&out).contains("-loop_wait: 1\n+loop_wait: 2"),
        "the diff: {}",
        stdout(&out)
    );
    assert_eq!(shown_config(&c)["loop_wait"], 2);
    // The API answers from the agent's last store snapshot: the edit shows within a cycle.
    wait_for("GET /config showing loop_wait 2", UP, || async {
        (request(api, "GET", "/config", None).await.json()["loop_wait"] == 2).then_some(())
    })
    .await;
    // Unsafe timing and unknown keys are refused, naming the key and the fix.
    let out = c.pgbaton(0, &["edit-config", "--set", "ttl=4"]);
    assert!(!out.status.success(), "ttl 4 with loop_wait 2 was accepted");
    let err = stderr(&out);
    assert!(
        err.contains("ttl: loop_wait (2) + retry_timeout (2) + watchdog.safety_margin (2) = 6 is more than ttl (4)")
            && err.contains("raise ttl to at least 6")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let out = c.pgbaton(0, &["edit-config", "--set", "loop_wiat=3"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean \"loop_wait\""),
        "{}",
        stderr(&out)
    );
    let after = shown_config(&c);
    assert_eq!(
        (after["ttl"].as_u64(), after["loop_wait"].as_u64()),
        (Some(6), Some(2))
    );
    // The cluster keeps working with the new loop_wait.
    assert_eq!(c.wait_healthy(UP).await, r);

    // POST /restart on the old primary's own API restarts its PostgreSQL in place.
    let before = postmaster_pid(&c.nodes[p].data_dir).expect("PostgreSQL runs");
    let reply = request(api, "POST", "/restart", None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    wait_for("a new postmaster", UP, || async {
        let now = postmaster_pid(&c.nodes[p].data_dir)?;
        (now != before).then_some(())
    })
    .await;
    assert_eq!(c.wait_healthy(UP).await, r, "a restart keeps the roles");
}

#[test]
fn check_config_prints_the_failover_budget_and_refuses_unsafe_timing() {
    let c = TestCluster::new(1, StoreKind::Local);
    let out = c.pgbaton(0, &["check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "# Failover budget (ttl 6 s, loop_wait 1 s, retry_timeout 2 s, watchdog.safety_margin 2 s",
        "leader key expires at most 6 s after the last renewal",
        "stops PostgreSQL 4 s after its last renewal",
        "Failover after a node crash: about 6.5 s at worst",
        "restarted in place within primary_start_timeout (5 s)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    c.set_timing(0, 4, 1, 2);
    let out = c.pgbaton(0, &["check-config"]);
    assert!(
        !out.status.success(),
        "ttl 4, loop_wait 1, retry_timeout 2 accepted"
    );
    let err = stderr(&out);
    assert!(
        err.contains("node1.yaml: bootstrap.ttl: loop_wait (1) + retry_timeout (2) + watchdog.safety_margin (2) = 5 is more than ttl (4)")
            && err.contains("raise ttl to at least 6"),
        "{err}"
    );
}

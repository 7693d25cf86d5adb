//! End-to-end: the agent survives its environment. A store that is down when the agent
//! starts (etcd booting after a power cut) is waited for, not fatal; `log.file` and
//! `log.format: json` apply to the agent and its fence process.

mod common;

use common::{wait_for, StoreKind, TestCluster};
use pgbaton_store::testkit::EtcdCluster;
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn agent_started_before_etcd_waits_for_it() {
    let etcd = EtcdCluster::start(1);
    etcd.kill(0);
    let mut c = TestCluster::with_etcd(1, etcd);
    c.start(0);
    // It says why it waits, and keeps waiting.
    wait_for("two failed store attempts in the log", UP, || async {
        (c.log(0).matches("cannot reach the store").count() >= 2).then_some(())
    })
    .await;
    let exited = c.nodes[0]
        .agent
        .as_mut()
        .expect("agent")
        .try_wait()
        .expect("wait");
    assert!(
        exited.is_none(),
        "the agent exited ({exited:?}) while the store was down:\n{}",
        c.log(0)
    );
    c.etcd.as_ref().expect("etcd").restart(0);
    c.wait_healthy(UP).await;
    assert!(c.log(0).contains("the store answers again"), "{}", c.log(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn log_file_gets_json_lines_from_agent_and_fence() {
    let mut c = TestCluster::new(1, StoreKind::Local);
    let file = c.dir.path().join("logs").join("pgbaton.log");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    c.append_config(
        0,
        &format!("log:\n  format: json\n  file: {}\n", file.display()),
    );
    c.start(0);
    c.wait_healthy(UP).await;
    let text = std::fs::read_to_string(&file).expect("log.file exists");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"pgbaton agent starting"),
        "no agent start line in {text}"
    );
    assert!(
        lines
            .iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string()),
        "{text}"
    );
    // The fence process writes there too, in the same format.
    assert!(
        messages.iter().any(|m| m.contains("fence")),
        "no fence line in {text}"
    );
    // Nothing went to stderr but what the harness itself might print.
    assert!(
        !c.log(0).contains("pgbaton agent starting"),
        "the agent still logs to stderr:\n{}",
        c.log(0)
    );
}

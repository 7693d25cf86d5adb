//! End-to-end: day-to-day operations on a running member: restart on request, and a
//! SIGHUP reload of the config file.

mod common;

use common::{postmaster_pid, wait_for, StoreKind, TestCluster};
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn restart_request_restarts_postgres_in_place() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    for i in [r, p] {
        let before = postmaster_pid(&c.nodes[i].data_dir).expect("running");
        let name = c.nodes[i].name.clone();
        let out = c.pgbaton(p, &["restart", &name]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for("a new postmaster", UP, || async {
            let now = postmaster_pid(&c.nodes[i].data_dir)?;
            (now != before).then_some(())
        })
        .await;
        assert_eq!(c.wait_healthy(UP).await, p, "the primary changed");
    }
    assert!(c.log(p).contains("restarted on operator request"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_tags_and_parameters() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;
    for i in [p, r] {
        let path = c.nodes[i].config.clone();
        let text = std::fs::read_to_string(&path).expect("config");
        let text = text.replace("fsync: off}", "fsync: off, work_mem: 7MB}")
            + "tags: {noloadbalance: true}\n";
        std::fs::write(&path, text).expect("write");
        if i == p {
            // Through the member's API, as `pgbaton reload` does it.
            let out = c.pgbaton(r, &["reload", &c.nodes[p].name.clone()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            c.signal_agent(i, nix::sys::signal::Signal::SIGHUP);
        }
    }
    for i in [p, r] {
        wait_for("the new work_mem", UP, || async {
            (c.query_one(i, "show work_mem").await.as_deref() == Some("7MB")).then_some(())
        })
        .await;
    }
    wait_for("the new tag in list", UP, || async {
        let rows = c.list(0);
        rows.iter()
            .all(|row| {
                row["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "noloadbalance"))
            })
            .then_some(())
    })
    .await;
    // A change that needs an agent restart is refused as a whole.
    let path = c.nodes[r].config.clone();
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("name: node", "name: renamed")).expect("write");
    c.signal_agent(r, nix::sys::signal::Signal::SIGHUP);
    wait_for("the refusal in the log", UP, || async {
        c.log(r).contains("reload refused").then_some(())
    })
    .await;
    assert_eq!(c.wait_healthy(UP).await, p);
}

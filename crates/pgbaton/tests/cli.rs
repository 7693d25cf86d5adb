//! End-to-end: the command-line conventions scripts rely on. Help with examples and
//! exit codes; the config file from `-c`, `$PGBATON_CONFIG` or the default path;
//! distinct exit codes (usage 2, refused 65, store unreachable 69, timed out 75, bad
//! config 78); `dsn` strings that reach the right member; `check` with Nagios codes.

mod common;

use common::{free_port, wait_for, StoreKind, TestCluster, SUPERUSER_PASSWORD};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

fn pgbaton(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgbaton"));
    c.args(args)
        .env_remove("PGBATON_CONFIG")
        .env_remove("RUST_BACKTRACE");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run pgbaton")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = run(&mut pgbaton(&["--help"]));
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for needle in [
        "Examples:",
        "Exit codes:",
        "PGBATON_CONFIG",
        "/etc/pgbaton/pgbaton.yaml",
        "78  bad config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    for cmd in [
        "list",
        "switchover",
        "dsn",
        "check",
        "check-config",
        "history",
    ] {
        let out = run(&mut pgbaton(&[cmd, "--help"]));
        assert!(
            stdout(&out).contains("Example"),
            "{cmd} --help has no example:\n{}",
            text(&out)
        );
    }
}

#[test]
fn config_path_from_flag_env_or_default_and_exit_codes_without_a_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let good = dir.path().join("node1.yaml");
    std::fs::write(
        &good,
        format!(
            "cluster: c\nname: node1\ndata_dir: {}\nstore:\n  local: {}\npostgres:\n  listen: 127.0.0.1:5999\n  superuser: {{username: postgres, password: a}}\n  replication: {{username: replicator, password: b}}\napi:\n  listen: 127.0.0.1:{}\n",
            dir.path().join("data").display(),
            store.display(),
            free_port()
        ),
    )
    .expect("write");

    // -c, then the environment.
    let out = run(pgbaton(&["check-config", "-c"]).arg(&good));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = run(pgbaton(&["check-config", "--format", "json"]).env("PGBATON_CONFIG", &good));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["valid"], true);
    assert_eq!(json["config"]["name"], "node1");
    assert_eq!(
        json["config"]["postgres"]["superuser"]["password"],
        "********"
    );
    assert!(json["budget"].as_array().is_some_and(|b| !b.is_empty()));

    // The default path, when neither is given.
    if !Path::new("/etc/pgbaton/pgbaton.yaml").exists() {
        let out = run(&mut pgbaton(&["list"]));
        assert_eq!(code(&out), 78, "{}", text(&out));
        assert!(
            text(&out).contains("/etc/pgbaton/pgbaton.yaml"),
            "{}",
            text(&out)
        );
    }

    // A bad config: 78, naming the key.
    let bad = dir.path().join("bad.yaml");
    let body = std::fs::read_to_string(&good).expect("read") + "log: {format: xml}\n";
    std::fs::write(&bad, body).expect("write");
    let out = run(pgbaton(&["check-config", "-c"]).arg(&bad));
    assert_eq!(code(&out), 78, "{}", text(&out));
    assert!(text(&out).contains("xml"), "{}", text(&out));

    // Usage: 2.
    let out = run(&mut pgbaton(&["list", "--format", "yaml"]));
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = run(pgbaton(&["edit-config", "-c"]).arg(&good));
    assert_eq!(code(&out), 2, "{}", text(&out));

    // An unreachable store: 69, and UNKNOWN (3) from `check`.
    let down = dir.path().join("down.yaml");
    let body = std::fs::read_to_string(&good).expect("read").replace(
        &format!("  local: {}\n", store.display()),
        &format!(
            "  etcd:\n    endpoints: [\"http://127.0.0.1:{}\"]\n",
            free_port()
        ),
    ) + "bootstrap:\n  ttl: 6\n  loop_wait: 1\n  retry_timeout: 1\n";
    std::fs::write(&down, body).expect("write");
    let out = run(pgbaton(&["list", "-c"]).arg(&down));
    assert_eq!(code(&out), 69, "{}", text(&out));
    let out = run(pgbaton(&["check", "-c"]).arg(&down));
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        stdout(&out).starts_with("PGBATON UNKNOWN - "),
        "{}",
        text(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 1, "{}", text(&out));
}

/// `check` through member `i`'s config: exit code and output.
fn check(c: &TestCluster, i: usize) -> (i32, String) {
    let out = c.pgbaton(i, &["check"]);
    (code(&out), stdout(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn dsn_check_and_refusals_on_a_real_cluster() {
    let mut c = TestCluster::new(2, StoreKind::Local);
    c.start_all();
    let p = c.wait_healthy(UP).await;
    let r = 1 - p;

    // dsn: each role's string reaches a member in that role.
    for (role, in_recovery) in [("primary", "f"), ("replica", "t")] {
        let out = c.pgbaton(0, &["dsn", "--role", role, "--user", "postgres"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let dsn = stdout(&out).trim().to_string();
        let attrs = if role == "primary" {
            "read-write"
        } else {
            "standby"
        };
        assert!(
            dsn.ends_with(&format!("target_session_attrs={attrs}")),
            "{dsn}"
        );
        // Through libpq itself (psql), which knows every target_session_attrs value.
        let out = Command::new("/usr/lib/postgresql/15/bin/psql")
            .args([&dsn, "-Atc", "SELECT pg_is_in_recovery()"])
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .expect("run psql");
        assert_eq!(
            stdout(&out).trim(),
            in_recovery,
            "{role}: {dsn}\n{}",
            text(&out)
        );
    }
    let out = c.pgbaton(0, &["dsn", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dsn JSON");
    assert_eq!(json["hosts"][0]["name"], c.nodes[p].name.as_str());
    assert!(json["uri"]
        .as_str()
        .is_some_and(|u| u.starts_with("postgresql://")));

    // check: healthy is OK, one line with perfdata; JSON too.
    let (status, line) = check(&c, 0);
    assert_eq!(status, 0, "{line}");
    assert!(
        line.starts_with(&format!("PGBATON OK - primary {}", c.nodes[p].name)),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains(" | streaming=1;"), "{line}");
    let out = c.pgbaton(0, &["check", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check JSON");
    assert_eq!(json["status"], "OK");

    // edit-config in JSON: the new config and whether it changed.
    for changed in [true, false] {
        let out = c.pgbaton(
            0,
            &["edit-config", "--set", "loop_wait=2", "--format", "json"],
        );
        assert_eq!(code(&out), 0, "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(json["changed"], changed, "{json}");
        assert_eq!(json["config"]["loop_wait"], 2, "{json}");
    }

    // Refused by the cluster's state: 65; nothing changes.
    let out = c.pgbaton(0, &["switchover", "--to", "nosuch", "--force"]);
    assert_eq!(code(&out), 65, "{}", text(&out));
    let out = c.pgbaton(0, &["remove", &c.nodes[r].name]);
    assert_eq!(code(&out), 65, "{}", text(&out));

    // Timed out: 75 (the restart was asked for and goes on).
    let out = c.pgbaton(0, &["restart", &c.nodes[r].name, "--timeout", "0"]);
    assert_eq!(code(&out), 75, "{}", text(&out));
    c.wait_healthy(UP).await;

    // A replica down: WARNING. Then no primary: CRITICAL.
    c.stop(r);
    let line = wait_for("check says WARNING", UP, || async {
        let (status, line) = check(&c, p);
        (status == 1).then_some(line)
    })
    .await;
    assert!(line.starts_with("PGBATON WARNING - "), "{line}");
    assert!(line.contains(&c.nodes[r].name), "{line}");
    c.stop(p);
    let line = wait_for("check says CRITICAL", UP, || async {
        let (status, line) = check(&c, p);
        (status == 2).then_some(line)
    })
    .await;
    assert!(
        line.starts_with("PGBATON CRITICAL - no running primary"),
        "{line}"
    );
}

//! The config file as users write it: the documented examples parse, and every kind of
//! mistake is reported with the file, the key and a fix.

use pgbaton_config::{parse, ConfigError, NodeConfig, WatchdogMode};
use std::path::PathBuf;

const SPEC_EXAMPLE: &str = r#"cluster: acme                 # cluster name; the namespace in the store
name: node1                   # unique member name
data_dir: /srv/pg/node1       # PGDATA of this member
store:
  local: /srv/pgbaton-store   # embedded single-host store (a directory)
postgres:
  listen: 127.0.0.1:55001     # host:port PostgreSQL listens on
  # connect_address: 10.0.0.5:5432   # how others reach it; defaults to listen
  # bin_dir: /usr/lib/postgresql/15/bin  # default: found automatically
  # os_user: postgres         # who runs PostgreSQL when the agent is root
  superuser:   {username: postgres,   password: secret1}
  replication: {username: replicator, password: secret2}
  parameters: {max_connections: 100}  # extra postgresql.conf settings
api:
  listen: 127.0.0.1:58001     # the agent's HTTP address (health etc., later issues)
"#;

const ETCD_STORE: &str = r#"store:
  etcd:
    endpoints: ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
    # username / password / tls: {ca, cert, key} / prefix: /pgbaton
"#;

fn ok(text: &str) -> NodeConfig {
    match parse(text, "node1.yaml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// The whole error text, after checking that every line names the file.
fn err(text: &str) -> String {
    match parse(text, "node1.yaml") {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => {
            let msg = e.to_string();
            for line in msg.lines() {
                assert!(
                    line.starts_with("node1.yaml:"),
                    "line without file name: {line}"
                );
            }
            assert_eq!(msg.lines().count(), e.problems().len());
            msg
        }
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in:\n{msg}");
    }
}

/// The spec example with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(SPEC_EXAMPLE.contains(from), "{from:?} not in the example");
    SPEC_EXAMPLE.replacen(from, to, 1)
}

#[test]
fn spec_example_parses_as_written() {
    let c = ok(SPEC_EXAMPLE);
    assert_eq!(c.cluster, "acme");
    assert_eq!(c.name, "node1");
    assert_eq!(c.data_dir, PathBuf::from("/srv/pg/node1"));
    assert_eq!(c.store.local, Some(PathBuf::from("/srv/pgbaton-store")));
    assert_eq!(c.store.etcd, None);
    assert_eq!(c.postgres.listen, "127.0.0.1:55001");
    assert_eq!(c.postgres.superuser.username, "postgres");
    assert_eq!(c.postgres.superuser.password, "secret1");
    assert_eq!(c.postgres.replication.username, "replicator");
    assert_eq!(c.postgres.replication.password, "secret2");
    assert_eq!(
        c.postgres.parameters.get("max_connections"),
        Some(&serde_json::json!(100))
    );
    assert_eq!(c.api.listen, "127.0.0.1:58001");
    assert_eq!(c.bootstrap, pgbaton_config::ClusterConfig::default());
    assert_eq!(c.tags, pgbaton_config::Tags::default());
    assert_eq!(c.pg_listen(), ("127.0.0.1".to_string(), 55001));
    assert_eq!(c.pg_connect(), ("127.0.0.1".to_string(), 55001));
    assert_eq!(c.api_listen(), ("127.0.0.1".to_string(), 58001));
    assert_eq!(c.api_url(), "http://127.0.0.1:58001");
    assert_eq!(c.os_user_name(), "postgres");
    assert_eq!(c.socket_dir(), PathBuf::from("/tmp"));
    assert_eq!(c.log_level(), "info");
    assert_eq!(c.log_file(), None);
}

#[test]
fn etcd_form_parses() {
    let text = SPEC_EXAMPLE.replace(
        "store:\n  local: /srv/pgbaton-store   # embedded single-host store (a directory)\n",
        ETCD_STORE,
    );
    let c = ok(&text);
    assert_eq!(c.store.local, None);
    let etcd = c.store.etcd.expect("etcd");
    assert_eq!(
        etcd.endpoints,
        ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
    );
    assert_eq!(etcd.prefix, "/pgbaton");
    assert_eq!(etcd.username, None);
}

#[test]
fn full_etcd_form_with_everything_optional() {
    let text = SPEC_EXAMPLE.replace(
        "store:\n  local: /srv/pgbaton-store   # embedded single-host store (a directory)\n",
        "store:\n  etcd:\n    endpoints: [\"https://10.0.0.1:2379\"]\n    username: pgb\n    password: \"0001\"\n    tls: {ca: /etc/ca.pem, cert: /etc/c.pem, key: /etc/k.pem}\n    prefix: /service\n",
    ) + "tags: {nofailover: true, failover_priority: 3}\nbootstrap: {ttl: 20, loop_wait: 2, retry_timeout: 5, parameters: {wal_log_hints: true}}\nlog: {level: debug, file: /var/log/pgbaton.log}\n";
    let c = ok(&text);
    let etcd = c.store.etcd.as_ref().expect("etcd");
    assert_eq!(etcd.password.as_deref(), Some("0001"));
    assert_eq!(etcd.prefix, "/service");
    assert!(c.tags.nofailover);
    assert_eq!(c.tags.failover_priority, 3);
    assert_eq!(c.bootstrap.ttl, 20);
    assert_eq!(c.bootstrap.primary_start_timeout, 5); // default kept
    assert_eq!(c.log_level(), "debug");
}

#[test]
fn numeric_looking_passwords_stay_text() {
    let c = ok(&edit("password: secret1", "password: 0001"));
    assert_eq!(c.postgres.superuser.password, "0001");
}

#[test]
fn missing_required_key() {
    let msg = err(&edit(
        "  superuser:   {username: postgres,   password: secret1}\n",
        "",
    ));
    assert_has(
        &msg,
        &["node1.yaml: missing required key \"postgres.superuser\""],
    );
    let msg = err(&edit(
        "name: node1                   # unique member name\n",
        "",
    ));
    assert_has(&msg, &["node1.yaml: missing required key \"name\""]);
    let msg = err(&edit(
        "{username: replicator, password: secret2}",
        "{username: replicator}",
    ));
    assert_has(
        &msg,
        &["missing required key \"postgres.replication.password\""],
    );
}

#[test]
fn unknown_top_level_key() {
    let msg = err(&edit("postgres:\n", "postgress:\n"));
    assert_has(
        &msg,
        &[
            "node1.yaml:6:1: unknown key \"postgress\" (expected one of: cluster, name, data_dir, store, postgres, api, tags, bootstrap, log, watchdog)",
            "did you mean \"postgres\"?",
        ],
    );
}

#[test]
fn unknown_nested_keys_are_all_reported() {
    let text = edit("{username: postgres,", "{usrname: postgres,")
        + "tags: {nofailvoer: true}\nbootstrap: {tll: 5}\n";
    let msg = err(&text);
    assert_has(
        &msg,
        &[
            "node1.yaml:11:17: unknown key \"postgres.superuser.usrname\" (expected one of: username, password)",
            "did you mean \"username\"?",
            "node1.yaml:16:8: unknown key \"tags.nofailvoer\"",
            "node1.yaml:17:13: unknown key \"bootstrap.tll\"",
            "did you mean \"ttl\"?",
        ],
    );
}

#[test]
fn bad_address() {
    let msg = err(&edit("listen: 127.0.0.1:55001", "listen: 127.0.0.1"));
    assert_has(
        &msg,
        &["node1.yaml: postgres.listen: \"127.0.0.1\" is not a host:port address (e.g. 127.0.0.1:5432"],
    );
    let msg = err(&edit("listen: 127.0.0.1:58001", "listen: '::1:58001'"));
    assert_has(
        &msg,
        &["node1.yaml: api.listen: ", "brackets, e.g. [::1]:5432"],
    );
}

#[test]
fn bad_port() {
    let msg = err(&edit("listen: 127.0.0.1:55001", "listen: 127.0.0.1:70000"));
    assert_has(
        &msg,
        &["node1.yaml: postgres.listen: \"127.0.0.1:70000\": port 70000 is out of range; use a port from 1 to 65535"],
    );
    let msg = err(&edit("listen: 127.0.0.1:58001", "listen: 127.0.0.1:55001"));
    assert_has(&msg, &["node1.yaml: api.listen: uses port 55001, like postgres.listen; give the API its own port"]);
}

#[test]
fn wildcard_listen_needs_connect_address() {
    let msg = err(&edit("listen: 127.0.0.1:55001", "listen: 0.0.0.0:55001"));
    assert_has(
        &msg,
        &[
            "node1.yaml: postgres.listen: ",
            "set postgres.connect_address",
        ],
    );
    let c = ok(&edit(
        "  # connect_address: 10.0.0.5:5432",
        "  connect_address: 10.0.0.5:5432",
    )
    .replacen("listen: 127.0.0.1:55001", "listen: 0.0.0.0:55001", 1)
    .replacen(
        "listen: 127.0.0.1:58001",
        "listen: '[::]:58001'\n  allow_unauthenticated: true",
        1,
    ));
    assert_eq!(c.pg_connect(), ("10.0.0.5".to_string(), 5432));
    assert_eq!(c.pg_listen(), ("0.0.0.0".to_string(), 55001));
    assert_eq!(c.api_url(), "http://10.0.0.5:58001");
}

#[test]
fn relative_data_dir() {
    let msg = err(&edit("data_dir: /srv/pg/node1", "data_dir: pg/node1"));
    assert_has(
        &msg,
        &["node1.yaml: data_dir: \"pg/node1\" is a relative path; give an absolute path"],
    );
}

#[test]
fn neither_store_backend() {
    let msg =
        err(&edit("  local: /srv/pgbaton-store", "  {}").replace("store:\n  {}", "store: {}"));
    assert_has(
        &msg,
        &[
            "node1.yaml: store: no store is set; set store.local",
            "store.etcd.endpoints",
        ],
    );
}

#[test]
fn both_store_backends() {
    let msg = err(&edit(
        "  local: /srv/pgbaton-store",
        "  local: /srv/pgbaton-store\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}",
    ));
    assert_has(
        &msg,
        &["node1.yaml: store: both store.local and store.etcd are set; keep exactly one"],
    );
}

#[test]
fn bad_etcd_endpoints() {
    let msg = err(&edit(
        "  local: /srv/pgbaton-store",
        "  etcd: {endpoints: [\"127.0.0.1:2379\", \"http://127.0.0.1\"]}",
    ));
    assert_has(
        &msg,
        &[
            "node1.yaml: store.etcd.endpoints[0]: \"127.0.0.1:2379\" is not an etcd URL; write http://HOST:PORT",
            "node1.yaml: store.etcd.endpoints[1]: \"http://127.0.0.1\": ",
        ],
    );
    let msg = err(&edit(
        "  local: /srv/pgbaton-store",
        "  etcd: {endpoints: []}",
    ));
    assert_has(
        &msg,
        &["node1.yaml: store.etcd.endpoints: is empty; list etcd's client URLs"],
    );
}

#[test]
fn bad_names() {
    let msg = err(&edit("name: node1", "name: \"node 1\"").replacen(
        "cluster: acme",
        "cluster: \"-acme\"",
        1,
    ));
    assert_has(
        &msg,
        &[
            "node1.yaml: name: \"node 1\" contains ' '; use 1 to 63 letters, digits, '.', '_' or '-'",
            "node1.yaml: cluster: \"-acme\" starts with '-'",
        ],
    );
    let long = "n".repeat(64);
    let msg = err(&edit("name: node1", &format!("name: {long}")));
    assert_has(&msg, &["node1.yaml: name: ", "is 64 characters long"]);
    let msg = err(&edit("name: node1", "name: \"\""));
    assert_has(&msg, &["node1.yaml: name: is empty;"]);
}

#[test]
fn forbidden_parameter() {
    let msg = err(&edit(
        "{max_connections: 100}",
        "{max_connections: 100, port: 5433, primary_conninfo: x}",
    ));
    assert_has(
        &msg,
        &[
            "node1.yaml: postgres.parameters.port: pgbaton manages port itself; set the port in postgres.listen",
            "node1.yaml: postgres.parameters.primary_conninfo: pgbaton manages primary_conninfo itself",
        ],
    );
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{parameters: {{shared_buffers: [1]}}}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: bootstrap.parameters.shared_buffers: must be a string, number or boolean"],
    );
}

#[test]
fn unsafe_timing() {
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{ttl: 10, loop_wait: 5, retry_timeout: 5}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: bootstrap.ttl: loop_wait (5) + retry_timeout (5) + watchdog.safety_margin (2) = 12 is more than ttl (10)", "raise ttl to at least 12"],
    );
    // The member's own fencing margin counts.
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{ttl: 6, loop_wait: 1, retry_timeout: 2}}\nwatchdog: {{safety_margin: 4}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: bootstrap.ttl: loop_wait (1) + retry_timeout (2) + watchdog.safety_margin (4) = 7 is more than ttl (6)", "raise ttl to at least 8"],
    );
    // The lease renewal (every ttl / 4) must fit too.
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{ttl: 9, loop_wait: 1, retry_timeout: 5}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: bootstrap.ttl: ttl / 4 (2.25) + retry_timeout (5) + watchdog.safety_margin (2) is more than ttl (9)", "raise ttl to at least 10"],
    );
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{ttl: 5, retry_timeout: 5}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: bootstrap.retry_timeout: 5 must be less than ttl (5)"],
    );
    let msg = err(&format!(
        "{SPEC_EXAMPLE}bootstrap: {{ttl: 1, loop_wait: 0}}\n"
    ));
    assert_has(
        &msg,
        &[
            "node1.yaml: bootstrap.ttl: 1 is too small; use at least 2",
            "node1.yaml: bootstrap.loop_wait: 0 is too small; use at least 1",
        ],
    );
}

#[test]
fn the_tightest_safe_timings_pass() {
    for (ttl, lw, rt, margin) in [
        (6, 1, 2, 2),
        (7, 1, 2, 3),
        (3, 1, 1, 1),
        (10, 1, 3, 2),
        (10, 5, 3, 2),
        (4, 1, 1, 2),
    ] {
        let text = format!(
            "{SPEC_EXAMPLE}bootstrap: {{ttl: {ttl}, loop_wait: {lw}, retry_timeout: {rt}}}\nwatchdog: {{safety_margin: {margin}}}\n"
        );
        pgbaton_config::parse(&text, "node1.yaml").unwrap_or_else(|e| {
            panic!("ttl {ttl}, loop_wait {lw}, retry_timeout {rt}, margin {margin}: {e}")
        });
        assert!(pgbaton_config::min_safe_ttl(lw, rt, margin) <= ttl);
    }
    assert_eq!(pgbaton_config::min_safe_ttl(1, 5, 2), 10);
    assert_eq!(pgbaton_config::min_safe_ttl(5, 5, 2), 12);
}

#[test]
fn empty_credentials() {
    let msg = err(&edit("password: secret2", "password: \"\""));
    assert_has(
        &msg,
        &["node1.yaml: postgres.replication.password: is empty; give a password"],
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let msg = err(&format!("{SPEC_EXAMPLE}bootstrap: {{ttl: soon}}\n"));
    assert_has(&msg, &["node1.yaml:16:", "bootstrap.ttl: "]);
    let msg = err(&edit("data_dir: /srv/pg/node1", "data_dir: [a]"));
    assert_has(&msg, &["node1.yaml:3:", "data_dir: "]);
}

#[test]
fn yaml_syntax_error_has_a_location() {
    let msg = err(&edit("{max_connections: 100}", "{max_connections: 100"));
    assert!(msg.starts_with("node1.yaml:"), "{msg}");
    let loc = msg.split(':').nth(1).unwrap_or("");
    assert!(loc.parse::<usize>().is_ok(), "no line number in {msg}");
}

#[test]
fn duplicate_key() {
    let msg = err(&format!("{SPEC_EXAMPLE}name: node2\n"));
    assert_has(
        &msg,
        &["node1.yaml:16:1: duplicate key \"name\"; keep only one"],
    );
}

#[test]
fn several_problems_at_once() {
    let text = edit("data_dir: /srv/pg/node1", "data_dir: rel")
        .replacen("listen: 127.0.0.1:55001", "listen: nope", 1)
        .replacen("{max_connections: 100}", "{hba_file: /x}", 1);
    let msg = err(&text);
    assert_eq!(msg.lines().count(), 3, "{msg}");
    assert_has(
        &msg,
        &[
            "data_dir:",
            "postgres.listen:",
            "postgres.parameters.hba_file:",
            "postgres.pg_hba",
        ],
    );
}

#[test]
fn empty_file() {
    let msg = err("# nothing here\n");
    assert_has(&msg, &["node1.yaml: the file is empty"]);
}

#[test]
fn load_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node1.yaml");
    match pgbaton_config::load(&path) {
        Err(ConfigError::Read { origin, .. }) => assert!(origin.ends_with("node1.yaml")),
        other => panic!("expected a read error, got {other:?}"),
    }
    std::fs::write(&path, edit("name: node1", "name: 'a b'")).expect("write");
    let msg = pgbaton_config::load(&path)
        .expect_err("invalid")
        .to_string();
    assert!(
        msg.starts_with(&format!("{}: name: ", path.display())),
        "{msg}"
    );
    std::fs::write(&path, SPEC_EXAMPLE).expect("write");
    assert_eq!(pgbaton_config::load(&path).expect("valid").name, "node1");
}

#[test]
fn unknown_tag_and_bad_value_are_reported_together() {
    let text = edit("name: node1", "name: node/1") + "tags: {nosycn: true}\n";
    let msg = err(&text);
    assert_has(
        &msg,
        &[
            "node1.yaml:16:8: unknown key \"tags.nosycn\"",
            "node1.yaml: name: \"node/1\" contains '/'",
        ],
    );
}

#[test]
fn watchdog_defaults_and_every_mode() {
    let c = ok(SPEC_EXAMPLE);
    assert_eq!(c.watchdog.mode, WatchdogMode::Off);
    assert_eq!(c.watchdog.device, PathBuf::from("/dev/watchdog"));
    assert_eq!(c.watchdog.safety_margin, 2);
    for (text, mode) in [
        ("off", WatchdogMode::Off),
        ("\"off\"", WatchdogMode::Off),
        ("automatic", WatchdogMode::Automatic),
        ("required", WatchdogMode::Required),
    ] {
        let c = ok(&format!(
            "{SPEC_EXAMPLE}watchdog:\n  mode: {text}\n  device: /dev/watchdog1\n  safety_margin: 3\n"
        ));
        assert_eq!(c.watchdog.mode, mode, "{text}");
        assert_eq!(c.watchdog.device, PathBuf::from("/dev/watchdog1"));
        assert_eq!(c.watchdog.safety_margin, 3);
    }
}

#[test]
fn watchdog_mistakes() {
    let msg = err(&format!("{SPEC_EXAMPLE}watchdog: {{mode: sometimes}}\n"));
    assert_has(&msg, &["node1.yaml:", "watchdog.mode"]);
    let msg = err(&format!("{SPEC_EXAMPLE}watchdog: {{safety_margin: 0}}\n"));
    assert_has(
        &msg,
        &["node1.yaml: watchdog.safety_margin: 0 is too small; use at least 1"],
    );
    let msg = err(&format!(
        "{SPEC_EXAMPLE}watchdog: {{safety_margin: 10}}\nbootstrap: {{ttl: 10}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: watchdog.safety_margin: 10 must be less than bootstrap.ttl (10)"],
    );
    let msg = err(&format!(
        "{SPEC_EXAMPLE}watchdog: {{device: dev/watchdog}}\n"
    ));
    assert_has(
        &msg,
        &["node1.yaml: watchdog.device: \"dev/watchdog\" is a relative path"],
    );
    let msg = err(&format!("{SPEC_EXAMPLE}watchdog: {{margin: 1}}\n"));
    assert_has(&msg, &["unknown key \"watchdog.margin\""]);
}

//! Hostile config YAML: every unsafe setting is refused with an error that names the
//! file, the key and the fix (security review F1, F4, F5).

use pgbaton_config::parse;

const HEAD: &str = r#"cluster: acme
name: node1
data_dir: /srv/pg/node1
store:
  local: /srv/pgbaton-store
postgres:
  listen: 127.0.0.1:55001
  superuser:   {username: postgres,   password: secret1}
  replication: {username: replicator, password: secret2}
"#;

fn config(api: &str, rest: &str) -> String {
    format!("{HEAD}api:\n{api}{rest}")
}

fn err(text: &str) -> String {
    match parse(text, "node1.yaml") {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_reachable_api_without_auth_is_refused() {
    for listen in [
        "0.0.0.0:8008",
        "10.0.0.5:8008",
        "db1.example.com:8008",
        "[::]:8008",
    ] {
        let msg = err(&config(&format!("  listen: \"{listen}\"\n"), ""));
        assert!(msg.starts_with("node1.yaml"), "{msg}");
        assert!(msg.contains("api.listen"), "{msg}");
        assert!(msg.contains("api.auth"), "{msg}");
        assert!(msg.contains("api.allow_unauthenticated"), "{msg}");
    }
    // Loopback needs no auth.
    for listen in [
        "127.0.0.1:8008",
        "127.3.2.1:8008",
        "[::1]:8008",
        "localhost:8008",
    ] {
        parse(
            &config(&format!("  listen: \"{listen}\"\n"), ""),
            "node1.yaml",
        )
        .unwrap_or_else(|e| panic!("{listen}: {e}"));
    }
    // With auth, or with the explicit opt-out, it is accepted.
    parse(
        &config(
            "  listen: 0.0.0.0:8008\n  auth: {username: admin, password: pw}\n",
            "",
        ),
        "node1.yaml",
    )
    .expect("auth set");
    let c = parse(
        &config(
            "  listen: 0.0.0.0:8008\n  allow_unauthenticated: true\n",
            "",
        ),
        "node1.yaml",
    )
    .expect("opt-out set");
    assert!(c.api.allow_unauthenticated);
    // Client certificates count as authentication.
    parse(
        &config(
            "  listen: 0.0.0.0:8008\n  tls: {cert: /etc/pgbaton/api.crt, key: /etc/pgbaton/api.key, client_ca: /etc/pgbaton/ca.pem}\n",
            "",
        ),
        "node1.yaml",
    )
    .expect("client_ca set");
}

#[test]
fn allowed_hosts_must_be_host_names() {
    let c = parse(
        &config(
            "  listen: 127.0.0.1:8008\n  allowed_hosts: [pg.example.com, 10.0.0.9]\n",
            "",
        ),
        "node1.yaml",
    )
    .expect("names");
    assert_eq!(c.api.allowed_hosts, ["pg.example.com", "10.0.0.9"]);
    let msg = err(&config(
        "  listen: 127.0.0.1:8008\n  allowed_hosts: [\"evil.example/x\", \"\"]\n",
        "",
    ));
    assert!(msg.contains("api.allowed_hosts[0]"), "{msg}");
    assert!(msg.contains("api.allowed_hosts[1]"), "{msg}");
}

#[test]
fn command_library_and_include_parameters_are_refused_in_bootstrap() {
    for name in [
        "archive_command",
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "ssl_passphrase_command",
        "shared_preload_libraries",
        "session_preload_libraries",
        "local_preload_libraries",
        "dynamic_library_path",
        "include",
        "include_dir",
        "include_if_exists",
        "jit_provider",
        "Archive_Library",
    ] {
        let msg = err(&config(
            "  listen: 127.0.0.1:8008\n",
            &format!("bootstrap:\n  parameters:\n    {name}: 'x'\n"),
        ));
        assert!(
            msg.contains(&format!("bootstrap.parameters.{name}")),
            "{name}: {msg}"
        );
        assert!(msg.contains("postgres.parameters"), "{name}: {msg}");
    }
}

#[test]
fn restricted_parameters_are_allowed_in_the_members_own_file() {
    let text = format!(
        "{}api:\n  listen: 127.0.0.1:8008\n",
        HEAD.replace(
            "  replication: {username: replicator, password: secret2}\n",
            "  replication: {username: replicator, password: secret2}\n  parameters: {archive_mode: 'on', archive_command: '/bin/true', shared_preload_libraries: pg_stat_statements}\n",
        )
    );
    let c = parse(&text, "node1.yaml").expect("root-owned file may set them");
    assert!(c.postgres.parameters.contains_key("archive_command"));
}

#[test]
fn huge_timings_are_refused_not_overflowed() {
    let msg = err(&config(
        "  listen: 127.0.0.1:8008\n",
        "bootstrap:\n  ttl: 18446744073709551615\n  loop_wait: 9300000000000000000\n  retry_timeout: 18446744073709551615\n",
    ));
    assert!(msg.contains("bootstrap.ttl"), "{msg}");
    assert!(msg.contains("at most"), "{msg}");
    assert!(msg.contains("bootstrap.loop_wait"), "{msg}");
}

#[test]
fn a_hostname_pg_hba_cannot_use_is_refused() {
    let text = HEAD.replace(
        "  listen: 127.0.0.1:55001\n",
        "  listen: 0.0.0.0:55001\n  connect_address: db_3.lan:55001\n",
    );
    let msg = err(&format!("{text}api:\n  listen: 127.0.0.1:8008\n"));
    assert!(msg.contains("postgres.connect_address"), "{msg}");
    assert!(msg.contains("db_3.lan"), "{msg}");
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
            (b'a' + i as u8) as char,
            (b'a' + i as u8) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
            (b'a' + i as u8 - 1) as char,
        ));
    }
    assert!(parse(&bomb, "bomb.yaml").is_err());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse(&deep, "deep.yaml").is_err());
}

#[test]
fn postgres_never_runs_as_root() {
    let text = HEAD.replace(
        "  listen: 127.0.0.1:55001\n",
        "  listen: 127.0.0.1:55001\n  os_user: root\n",
    );
    let msg = err(&format!("{text}api:\n  listen: 127.0.0.1:8008\n"));
    assert!(msg.contains("postgres.os_user"), "{msg}");
    assert!(msg.contains("root"), "{msg}");
}

#[test]
fn passwords_never_print() {
    let c = parse(
        &config(
            "  listen: 127.0.0.1:8008\n  auth: {username: admin, password: api-pw-77}\n",
            "",
        ),
        "node1.yaml",
    )
    .expect("valid");
    let shown = format!("{c:?} {c:#?}");
    for secret in ["secret1", "secret2", "api-pw-77"] {
        assert!(!shown.contains(secret), "{secret} printed");
    }
    assert!(shown.contains("<hidden>"));
}

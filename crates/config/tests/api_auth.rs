//! `api.auth`: the optional basic-auth credentials of the HTTP API parse, are checked,
//! and never show up in the effective config; `api.tls` parses and is checked too.

use pgbaton_config::{parse, render_effective, REDACTED};

const BASE: &str = r#"cluster: acme
name: node1
data_dir: /srv/pg/node1
store:
  local: /srv/pgbaton-store
postgres:
  listen: 127.0.0.1:55001
  superuser:   {username: postgres,   password: secret1}
  replication: {username: replicator, password: secret2}
api:
  listen: 127.0.0.1:58001
"#;

fn with_api_lines(lines: &str) -> String {
    format!("{BASE}{lines}")
}

fn err(text: &str) -> String {
    match parse(text, "node1.yaml") {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn auth_is_optional_and_parses_when_given() {
    let c = parse(BASE, "node1.yaml").expect("valid without auth");
    assert!(c.api.auth.is_none());
    let c = parse(
        &with_api_lines("  auth: {username: admin, password: \"0042\"}\n"),
        "node1.yaml",
    )
    .expect("valid with auth");
    let auth = c.api.auth.expect("auth set");
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("admin", "0042")
    );
}

#[test]
fn empty_or_unusable_credentials_are_rejected() {
    let msg = err(&with_api_lines(
        "  auth: {username: \"\", password: \"\"}\n",
    ));
    assert!(msg.contains("api.auth.username: is empty"), "{msg}");
    assert!(msg.contains("api.auth.password: is empty"), "{msg}");
    let msg = err(&with_api_lines(
        "  auth: {username: \"a:b\", password: pw}\n",
    ));
    assert!(
        msg.contains("api.auth.username") && msg.contains("':'"),
        "{msg}"
    );
    let msg = err(&with_api_lines("  auth: {username: admin}\n"));
    assert!(msg.contains("password"), "{msg}");
}

#[test]
fn unknown_keys_under_api_are_named() {
    let msg = err(&with_api_lines("  auth: {username: admin, pasword: pw}\n"));
    assert!(msg.contains("unknown key \"api.auth.pasword\""), "{msg}");
    let msg = err(&with_api_lines("  tsl: {cert: /c, key: /k}\n"));
    assert!(msg.contains("unknown key \"api.tsl\""), "{msg}");
}

#[test]
fn effective_config_hides_the_api_password() {
    let text = with_api_lines("  auth: {username: admin, password: api-secret}\n");
    let c = parse(&text, "node1.yaml").expect("valid");
    let out = render_effective(&c);
    assert!(!out.contains("api-secret"), "{out}");
    assert!(out.contains("username: admin"), "{out}");
    assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
    let back = parse(&out.replace(REDACTED, "x"), "effective.yaml").expect("parses back");
    assert_eq!(back.api.auth.map(|a| a.password), Some("x".to_string()));
}

#[test]
fn api_tls_is_optional_parses_and_switches_the_url_to_https() {
    let c = parse(BASE, "node1.yaml").expect("valid without tls");
    assert!(c.api.tls.is_none());
    assert_eq!(c.api_url(), "http://127.0.0.1:58001");
    let c = parse(
        &with_api_lines("  tls: {cert: /etc/pgbaton/api.crt, key: /etc/pgbaton/api.key}\n"),
        "node1.yaml",
    )
    .expect("valid with tls");
    let tls = c.api.tls.clone().expect("tls set");
    assert_eq!(tls.cert, std::path::PathBuf::from("/etc/pgbaton/api.crt"));
    assert_eq!(tls.key, std::path::PathBuf::from("/etc/pgbaton/api.key"));
    assert_eq!(c.api_url(), "https://127.0.0.1:58001");
}

#[test]
fn api_tls_paths_must_be_absolute_and_both_given() {
    let e = err(&with_api_lines("  tls: {cert: api.crt, key: /etc/k.pem}\n"));
    assert!(e.contains("api.tls.cert"), "{e}");
    assert!(e.contains("relative path"), "{e}");
    let e = err(&with_api_lines("  tls: {cert: /etc/c.pem}\n"));
    assert!(e.contains("key"), "{e}");
}

#[test]
fn api_tls_unknown_key_is_reported_with_its_path() {
    let e = err(&with_api_lines(
        "  tls: {cert: /etc/c.pem, key: /etc/k.pem, ca: /etc/ca.pem}\n",
    ));
    assert!(e.contains("api.tls.ca"), "{e}");
}

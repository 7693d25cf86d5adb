//! The texts this crate writes: the effective config hides passwords and fills in
//! defaults; the example file parses back to what was asked for.

use pgbaton_config::{
    parse, render_effective, render_example, render_example_etcd, NodeConfig, REDACTED,
};
use std::path::Path;

fn example(cluster: &str, name: &str) -> NodeConfig {
    let text = render_example(
        cluster,
        name,
        Path::new("/srv/demo/node2"),
        Path::new("/srv/demo/store dir"),
        55002,
        58002,
    );
    match parse(&text, "node2.yaml") {
        Ok(c) => c,
        Err(e) => panic!("example does not parse:\n{e}\n{text}"),
    }
}

#[test]
fn example_round_trips_through_parse() {
    let c = example("demo", "node2");
    assert_eq!(c.cluster, "demo");
    assert_eq!(c.name, "node2");
    assert_eq!(c.data_dir, Path::new("/srv/demo/node2"));
    assert_eq!(
        c.store.local.as_deref(),
        Some(Path::new("/srv/demo/store dir"))
    );
    assert_eq!(c.pg_listen(), ("127.0.0.1".to_string(), 55002));
    assert_eq!(c.api_listen(), ("127.0.0.1".to_string(), 58002));
    assert!(!c.postgres.superuser.password.is_empty());
}

#[test]
fn example_quotes_names_that_look_like_other_types() {
    let c = example("123", "true");
    assert_eq!(c.cluster, "123");
    assert_eq!(c.name, "true");
}

#[test]
fn effective_config_hides_passwords_and_fills_defaults() {
    let text = render_example(
        "demo",
        "node1",
        Path::new("/d"),
        Path::new("/s"),
        5432,
        8008,
    )
    .replace(
        "  local: /s    # embedded single-host store (a directory)\n",
        "  etcd: {endpoints: [\"http://127.0.0.1:2379\"], username: root, password: etcdpw}\n",
    );
    let c = parse(&text, "node1.yaml").expect("valid");
    let out = render_effective(&c);
    for secret in [
        c.postgres.superuser.password.as_str(),
        c.postgres.replication.password.as_str(),
        "etcdpw",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
    for part in [
        "connect_address: 127.0.0.1:5432",
        "os_user: postgres",
        "socket_dir: /tmp",
        "level: info",
        "ttl: 10",
        "prefix: /pgbaton",
        "safety_margin: 2",
    ] {
        assert!(out.contains(part), "{part} missing:\n{out}");
    }
    // Stable: same input, same text; and the keys come in the documented order.
    assert_eq!(out, render_effective(&c));
    let pos = |k: &str| out.find(k).unwrap_or(usize::MAX);
    assert!(pos("\ncluster:") < pos("\nname:"));
    assert!(pos("\nstore:") < pos("\npostgres:"));
    assert!(pos("\napi:") < pos("\nbootstrap:"));
}

#[test]
fn effective_config_is_itself_a_valid_config_once_passwords_are_back() {
    let c = example("demo", "node2");
    let out = render_effective(&c).replace(REDACTED, "x");
    let back = parse(&out, "effective.yaml").expect("effective config parses");
    assert_eq!(back.cluster, c.cluster);
    assert_eq!(back.pg_connect(), c.pg_connect());
    assert_eq!(back.bootstrap, c.bootstrap);
}

#[test]
fn etcd_example_round_trips_through_parse() {
    let endpoints = vec![
        "http://127.0.0.1:2379".to_string(),
        "http://10.0.0.2:2379".to_string(),
    ];
    let text = render_example_etcd(
        "demo",
        "node3",
        Path::new("/srv/demo/node3"),
        &endpoints,
        55003,
        58003,
    );
    let c = match parse(&text, "node3.yaml") {
        Ok(c) => c,
        Err(e) => panic!("etcd example does not parse:\n{e}\n{text}"),
    };
    assert_eq!(c.cluster, "demo");
    assert_eq!(c.name, "node3");
    assert_eq!(c.data_dir, Path::new("/srv/demo/node3"));
    assert!(c.store.local.is_none(), "{text}");
    let etcd = c.store.etcd.as_ref().expect("store.etcd is set");
    assert_eq!(etcd.endpoints, endpoints);
    assert_eq!(etcd.prefix, pgbaton_config::default_prefix());
    assert!(etcd.username.is_none() && etcd.password.is_none());
    assert_eq!(c.pg_listen(), ("127.0.0.1".to_string(), 55003));
    assert_eq!(c.api_listen(), ("127.0.0.1".to_string(), 58003));
    // Everything outside the store section is the same as in the local example.
    let local = render_example(
        "demo",
        "node3",
        Path::new("/srv/demo/node3"),
        Path::new("/s"),
        55003,
        58003,
    );
    let tail = |t: &str| t[t.find("\npostgres:").unwrap_or(0)..].to_string();
    assert_eq!(tail(&text), tail(&local));
}

#[test]
fn effective_config_parses_back_with_the_watchdog_section() {
    let c = example("demo", "node1");
    let out = render_effective(&c);
    assert!(out.contains("watchdog:"), "{out}");
    let back = parse(&out, "effective.yaml").expect("the effective config parses");
    assert_eq!(back.watchdog, c.watchdog);
}

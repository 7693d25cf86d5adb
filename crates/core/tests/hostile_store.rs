//! Store values written by a malicious or broken member: each bad key is ignored and
//! reported, the rest of the snapshot still counts, and a bad `config` key never
//! reverts the cluster to a file's `bootstrap` (security review F4, F5, safety finding 10).

use pgbaton_core::model::{ClusterConfig, SynchronousMode};
use pgbaton_core::view::{cluster_view, read_config, RawEntry};

fn entry<'a>(key: &'a str, value: &'a str) -> RawEntry<'a> {
    RawEntry {
        key,
        value,
        mod_revision: 7,
        lease: None,
    }
}

fn member(name: &str, host: &str, port: u32) -> String {
    format!(
        r#"{{"name":"{name}","host":"{host}","port":{port},"role":"replica","state":"stopped"}}"#
    )
}

/// The config the agents run with before the bad write.
fn last_good() -> ClusterConfig {
    ClusterConfig {
        paused: true,
        synchronous_mode: SynchronousMode::On,
        synchronous_mode_strict: true,
        ..ClusterConfig::default()
    }
}

#[test]
fn bad_member_keys_are_ignored_one_by_one() {
    let good = member("n1", "127.0.0.1", 5432);
    let bad = [
        ("members/x", member("x", "a b", 1)),
        ("members/y", member("y", "db_3.lan", 5432)),
        ("members/z", member("z", "0.0.0.0/0", 5432)),
        ("members/w", member("w", "127.0.0.1", 0)),
        ("members/v", member("other", "127.0.0.1", 5432)),
        ("members/bad name", member("bad name", "127.0.0.1", 5432)),
        ("members/u", member("u", "all", 5432)),
        (
            "members/t",
            r#"{"name":"t","host":"h","port":1,"role":"replica","state":"stopped","slots":["Robert'); drop"]}"#
                .to_string(),
        ),
        (
            "members/s",
            r#"{"name":"s","host":"h","port":1,"role":"replica","state":"stopped","api_url":"http://h:1/\r\nX: y"}"#
                .to_string(),
        ),
        ("members/r", "\u{0}\u{ffff}".to_string()),
    ];
    let mut entries = vec![entry("members/n1", &good), entry("leader", "n1")];
    entries.extend(bad.iter().map(|(k, v)| entry(k, v)));
    let (view, problems) = cluster_view(entries, &last_good());
    assert_eq!(view.members.keys().collect::<Vec<_>>(), ["n1"]);
    assert_eq!(view.leader.as_deref(), Some("n1"));
    assert_eq!(problems.len(), bad.len(), "{problems:#?}");
    for (key, _) in &bad {
        assert!(
            problems.iter().any(|p| p.contains(&format!("{key:?}"))),
            "{key}: {problems:#?}"
        );
    }
}

#[test]
fn a_config_with_an_extra_field_keeps_paused_and_synchronous_mode() {
    let written = r#"{"paused":true,"synchronous_mode":"on","synchronous_mode_strict":true,"x":1}"#;
    let (view, problems) = cluster_view([entry("config", written)], &ClusterConfig::default());
    assert!(view.config.paused);
    assert_eq!(view.config.synchronous_mode, SynchronousMode::On);
    assert!(view.config.synchronous_mode_strict);
    assert_eq!(view.config_error, None);
    assert!(problems.iter().any(|p| p.contains("\"x\"")), "{problems:?}");
}

#[test]
fn an_unusable_config_keeps_the_last_good_one_and_says_so() {
    for written in [
        r#"{"paused":"#,
        r#"[1,2]"#,
        r#"{"ttl":"ten"}"#,
        r#"{"ttl":18446744073709551615}"#,
        r#"{"loop_wait":9300000000000000000,"ttl":18446744073709551615}"#,
        r#"{"ttl":0}"#,
        r#"{"synchronous_node_count":4294967295}"#,
    ] {
        let (view, problems) = cluster_view([entry("config", written)], &last_good());
        assert_eq!(view.config, last_good(), "{written}");
        let err = view.config_error.as_deref().expect("config_error set");
        assert!(err.contains("last good"), "{err}");
        assert_eq!(problems.len(), 1, "{written}: {problems:?}");
    }
}

#[test]
fn restricted_and_malformed_parameters_from_the_store_are_not_applied() {
    let written = r#"{"parameters":{"archive_mode":"on","archive_command":"id > /tmp/pwn-%f","Shared_Preload_Libraries":"evil","include":"/etc/shadow","1x":"y","work_mem":"8MB","a b":1,"obj":{"x":1}}}"#;
    let (c, warnings) = read_config(written).expect("usable");
    let names: Vec<_> = c.parameters.keys().map(String::as_str).collect();
    assert_eq!(names, ["archive_mode", "work_mem"]);
    assert_eq!(warnings.len(), 6, "{warnings:#?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("archive_command") && w.contains("postgres.parameters")));
}

#[test]
fn status_hosts_that_pg_hba_cannot_hold_are_dropped() {
    let status = r#"{"primary":"n1","lsn":"0/3000000","timeline":1,"updated_ms":1,"hosts":{"n2":"10.0.0.2","n3":"0.0.0.0/0","n4":"all","bad name":"10.0.0.4"}}"#;
    let (view, problems) = cluster_view([entry("status", status)], &ClusterConfig::default());
    let hosts = &view.status.expect("status kept").hosts;
    assert_eq!(hosts.keys().collect::<Vec<_>>(), ["n2"]);
    assert_eq!(problems.len(), 3, "{problems:?}");
}

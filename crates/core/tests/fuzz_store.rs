//! Fuzzing of store-value decoding (proptest; stable Rust). Whatever a member or an
//! operator with store access writes, building the cluster view never panics, every
//! member it keeps is valid, and every config it accepts is within bounds.
//!
//! A short run is part of `cargo test`; run longer with
//! `PROPTEST_CASES=200000 cargo test -p pgbaton-core --test fuzz_store`.

use pgbaton_core::limits::{check_member, config_problems, is_restricted};
use pgbaton_core::model::ClusterConfig;
use pgbaton_core::view::{cluster_view, read_config, RawEntry};
use proptest::prelude::*;

const KEYS: [&str; 9] = [
    "config",
    "leader",
    "initialize",
    "status",
    "switchover",
    "history",
    "sync",
    "members/a",
    "members/b c",
];

/// JSON-ish text: fragments of real values, glued and cut at random.
fn jsonish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"name\"",
        "\"a\"",
        "\"host\"",
        "\"127.0.0.1\"",
        "\"a b\"",
        "\"db_1\"",
        "\"port\"",
        "0",
        "5432",
        "70000",
        "-1",
        "1e400",
        "18446744073709551615",
        "\"role\"",
        "\"replica\"",
        "\"state\"",
        "\"stopped\"",
        "\"ttl\"",
        "\"loop_wait\"",
        "\"paused\"",
        "true",
        "null",
        "\"parameters\"",
        "\"archive_command\"",
        "\"slots\"",
        "\"api_url\"",
        "\"http://x:1\"",
        "\"\\u0000\"",
        "\"synchronous_mode\"",
        "\"on\"",
        "\"x\"",
    ]);
    prop_oneof![
        prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat()),
        any::<String>(),
        "[ -~]{0,200}",
    ]
}

/// A member value with fields drawn from good and bad ones.
fn member_value() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "b", "a b", "", "x\ny", "-a"]),
        prop::sample::select(vec![
            "127.0.0.1",
            "::1",
            "db-1.lan",
            "db_1.lan",
            "a b",
            "0.0.0.0/0",
            "all",
            "",
            "1.2.3",
        ]),
        prop::sample::select(vec![0u32, 1, 5432, 65535]),
        prop::sample::select(vec!["", "http://h:1", "ftp://x", "http://h:1/\r\nX: y"]),
        prop::collection::vec(prop::sample::select(vec!["a", "B", "x y", "ok_1"]), 0..3),
    )
        .prop_map(|(name, host, port, api, slots)| {
            serde_json::json!({
                "name": name, "host": host, "port": port, "api_url": api,
                "role": "replica", "state": "stopped", "slots": slots,
            })
            .to_string()
        })
}

proptest! {
    #[test]
    fn any_snapshot_builds_a_view_without_panicking(
        values in prop::collection::vec((prop::sample::select(KEYS.to_vec()), jsonish()), 0..12),
        members in prop::collection::vec(member_value(), 0..4),
    ) {
        let mut entries: Vec<(String, String)> = values
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (i, m) in members.into_iter().enumerate() {
            let name = ["a", "b", "a b", ""][i % 4];
            entries.push((format!("members/{name}"), m));
        }
        let raw: Vec<RawEntry> = entries
            .iter()
            .map(|(k, v)| RawEntry { key: k, value: v, mod_revision: 1, lease: None })
            .collect();
        let last_good = ClusterConfig::default();
        let (view, _problems) = cluster_view(raw, &last_good);
        for (name, m) in &view.members {
            prop_assert!(check_member(name, m).is_ok(), "{name}: {m:?}");
        }
        prop_assert!(config_problems(&view.config).is_empty(), "{:?}", view.config);
        prop_assert!(view.config.parameters.keys().all(|k| !is_restricted(k)));
        if view.config_error.is_some() {
            prop_assert_eq!(&view.config, &last_good);
        }
    }

    #[test]
    fn any_config_value_is_read_or_refused(text in jsonish()) {
        if let Ok((c, _)) = read_config(&text) {
            prop_assert!(config_problems(&c).is_empty());
            prop_assert!(c.parameters.keys().all(|k| !is_restricted(k)));
        }
    }
}

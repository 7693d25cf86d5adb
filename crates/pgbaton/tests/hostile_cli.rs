//! Hostile command-line arguments: each is refused with a clear error, exit status
//! non-zero, and the store is left exactly as it was (security review F1, F5, F15).
//! Also: `edit-config` can repair a store config that carries junk.

use pgbaton_store::local::LocalStore;
use pgbaton_store::{Expect, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    store: LocalStore,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let text = pgbaton_config::render_example(
        "acme",
        "n1",
        &dir.path().join("data"),
        &store_dir,
        25432,
        28008,
    );
    let config = dir.path().join("n1.yaml");
    std::fs::write(&config, text).expect("write config");
    let store = LocalStore::open(&store_dir, "acme", Duration::from_secs(3)).expect("store");
    let cc = serde_json::to_string(&pgbaton_config::ClusterConfig::default()).expect("json");
    assert!(store
        .put("config", &cc, None, Expect::Absent)
        .await
        .expect("put"));
    Setup {
        _dir: dir,
        config,
        store,
    }
}

fn pgbaton(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgbaton"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run pgbaton");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn revision(s: &Setup) -> i64 {
    s.store.snapshot().await.expect("snapshot").revision
}

#[tokio::test]
async fn hostile_arguments_are_refused_and_change_nothing() {
    let s = setup().await;
    let before = revision(&s).await;
    let cases: [(&[&str], &str); 10] = [
        (
            &[
                "edit-config",
                "--set",
                "parameters.archive_command=id > /tmp/pwn-%f",
            ],
            "postgres.parameters",
        ),
        (
            &[
                "edit-config",
                "--set",
                "parameters.shared_preload_libraries=evil",
            ],
            "postgres.parameters",
        ),
        (
            &["edit-config", "--set", "parameters.include=/etc/shadow"],
            "postgres.parameters",
        ),
        (
            &["edit-config", "--set", "ttl=18446744073709551615"],
            "at most",
        ),
        (&["edit-config", "--set", "loop_wait=-1"], "loop_wait"),
        (&["edit-config", "--set", "parameters.1x=y"], "setting name"),
        (&["edit-config", "--set", "no_such_key=1"], "no_such_key"),
        (&["reinit", "--force", "a b\nc"], "a b"),
        (&["switchover", "--to", "../../etc", "--force"], "primary"),
        (&["remove", "x\u{1b}[31m"], "not a member name"),
    ];
    for (args, needle) in cases {
        let (ok, text) = pgbaton(&s.config, args);
        assert!(!ok, "{args:?} succeeded: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        assert_eq!(revision(&s).await, before, "{args:?} changed the store");
    }
}

#[tokio::test]
async fn edit_config_repairs_a_store_config_with_junk() {
    let s = setup().await;
    let junk =
        r#"{"paused":true,"x_junk":1,"parameters":{"archive_command":"id","work_mem":"8MB"}}"#;
    assert!(s
        .store
        .put("config", junk, None, Expect::Any)
        .await
        .expect("put"));
    let (ok, text) = pgbaton(&s.config, &["edit-config", "--set", "loop_wait=2"]);
    assert!(ok, "{text}");
    assert!(text.contains("x_junk"), "{text}");
    let value = s
        .store
        .get("config")
        .await
        .expect("get")
        .expect("key")
        .value;
    let v: serde_json::Value = serde_json::from_str(&value).expect("json");
    assert_eq!(v["paused"], true);
    assert_eq!(v["loop_wait"], 2);
    assert!(v.get("x_junk").is_none());
    assert!(v["parameters"].get("archive_command").is_none());
    assert_eq!(v["parameters"]["work_mem"], "8MB");
}

//! Files pgbaton creates as root are private (umask 077; security review F8): the local
//! store's directory, lock file and state file cannot be read, or flocked, by other
//! local users, whatever umask the agent was started with.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_local_store_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let text = pgbaton_config::render_example(
        "acme",
        "n1",
        &dir.path().join("data"),
        &store,
        25432,
        28008,
    );
    let config = dir.path().join("n1.yaml");
    std::fs::write(&config, text).expect("write config");
    // A permissive umask, as a careless unit file or shell might leave.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec {} list -c {}",
            env!("CARGO_BIN_EXE_pgbaton"),
            config.display()
        ))
        .output()
        .expect("run pgbaton list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = store.join("acme");
    assert_eq!(mode(&store), 0o700, "store directory");
    assert_eq!(mode(&ns), 0o700, "cluster directory");
    for entry in std::fs::read_dir(&ns).expect("read_dir") {
        let p = entry.expect("entry").path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is open to others", p.display());
    }
    assert!(ns.join("lock").exists(), "the lock file was created");
}

//! Checks against the real machine: PostgreSQL 15's programs and the `postgres` user.

use pgbaton_config::{check_environment, parse, render_example, NodeConfig};
use std::path::{Path, PathBuf};

fn config(bin_dir: Option<&Path>, os_user: Option<&str>, data_dir: &Path) -> NodeConfig {
    let text = render_example("demo", "node1", data_dir, Path::new("/srv/s"), 5432, 8008);
    let mut c = parse(&text, "node1.yaml").expect("example parses");
    c.postgres.bin_dir = bin_dir.map(PathBuf::from);
    c.postgres.os_user = os_user.map(str::to_string);
    c
}

#[test]
fn real_postgres_install_passes() {
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    let problems = check_environment(&config(Some(bin), None, Path::new("/srv/nonexistent/pg")));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn wrong_bin_dir_and_file_as_data_dir_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let c = config(Some(dir.path()), Some("no-such-user-pgbaton"), &file);
    let problems = check_environment(&c);
    let text: Vec<String> = problems.iter().map(|p| p.render("node1.yaml")).collect();
    let all = text.join("\n");
    assert!(
        all.contains("node1.yaml: postgres.bin_dir: ") && all.contains("lacks postgres, pg_ctl"),
        "{all}"
    );
    assert!(
        all.contains("node1.yaml: data_dir: ") && all.contains("is not a directory"),
        "{all}"
    );
    let euid_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if euid_root {
        assert!(
            all.contains("node1.yaml: postgres.os_user: OS user \"no-such-user-pgbaton\""),
            "{all}"
        );
    }
    let c = config(Some(&dir.path().join("missing")), None, Path::new("/srv/x"));
    let problems = check_environment(&c);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("is not a directory"));
}

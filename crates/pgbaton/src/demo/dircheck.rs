//! The demo directory must be the demo's own: the demo runs as root and starts the
//! programs its configs name, so a directory someone else made (e.g. in /var/tmp) or can
//! write to would let them run code as root (security review F9).

use anyhow::bail;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The file that marks a directory as made by `pgbaton demo`.
pub const MARKER: &str = ".pgbaton-demo";

/// Accept `dir` when it does not exist yet, or when it is a real directory (not a link)
/// owned by this user, writable by nobody else, and either empty or marked as made by
/// an earlier demo. Call [`mark`] once the directory exists.
pub fn check(dir: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot inspect the demo directory {}: {e}", dir.display()),
    };
    let fix = "remove it, or pass another --dir";
    if !meta.is_dir() {
        bail!(
            "the demo directory {} is not a directory (a symbolic link?); {fix}",
            dir.display()
        );
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the demo directory {} belongs to uid {}, not to you (uid {me}): its configs could run anything as you; {fix}",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "the demo directory {} can be written by other users (mode {:o}): they could change the configs it runs; {fix}",
            dir.display(),
            meta.mode() & 0o7777
        );
    }
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty && !dir.join(MARKER).is_file() {
        bail!(
            "the demo directory {} exists but was not made by pgbaton demo; {fix}",
            dir.display()
        );
    }
    Ok(())
}

/// Mark `dir` as made by the demo.
pub fn mark(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(MARKER);
    if !path.exists() {
        std::fs::write(&path, "made by pgbaton demo\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_own_private_marked_or_empty_directories() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("demo");
        check(&d).expect("missing is fine");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        check(&d).expect("empty and private");
        std::fs::write(d.join("node1.yaml"), "x").expect("write");
        let e = check(&d).expect_err("unmarked");
        assert!(e.to_string().contains("not made by pgbaton demo"), "{e}");
        mark(&d).expect("mark");
        check(&d).expect("marked");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = check(&d).expect_err("world-writable");
        assert!(e.to_string().contains("written by other users"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        nix::unistd::chown(&d, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        let e = check(&d).expect_err("foreign owner");
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).expect("symlink");
        let e = check(&link).expect_err("a link");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}

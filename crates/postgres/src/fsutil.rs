//! Small file-system helpers: atomic rewrites with owner and mode, owned directories, log tails.

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::osuser::OsUser;

/// Replaces `path` with `content` atomically (temp file + fsync + rename) unless it already holds
/// exactly that content. The file gets `mode` and, when given, `owner`. Returns whether it changed.
pub(crate) fn write_if_changed(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<&OsUser>,
) -> Result<bool> {
    // Compare without following a link (the rename below replaces a link itself).
    if let Ok(Some(old)) = read_optional(path) {
        if old.as_bytes() == content {
            return Ok(false);
        }
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.pgbaton-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    let result = (|| {
        f.write_all(content)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set mode of", &tmp, e))?;
        if let Some(u) = owner {
            u.chown(&tmp)?;
        }
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

/// Creates directory `path` (and missing parents, which keep default mode and root ownership)
/// with `mode`, owned by `owner` when given. An existing directory is left as it is.
/// Returns whether it was created.
pub(crate) fn create_dir_owned(path: &Path, mode: u32, owner: Option<&OsUser>) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(Error::io(
                "use as a directory",
                path,
                std::io::Error::new(ErrorKind::AlreadyExists, "exists and is not a directory"),
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspect", path, e)),
    }
    if let Some(parent) = path.parent() {
        create_parents(parent)?;
    }
    fs::create_dir(path).map_err(|e| Error::io("create directory", path, e))?;
    set_mode_owner(path, mode, owner)?;
    Ok(true)
}

/// Creates `dir` and its missing ancestors as root-owned 0755 directories (whatever the
/// umask): the PostgreSQL user must traverse them, and must not be able to write there
/// (it could plant links where root writes).
fn create_parents(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_parents(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("set mode of", dir, e)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", dir, e)),
    }
}

/// Sets the mode and (when given) owner of an existing path.
pub(crate) fn set_mode_owner(path: &Path, mode: u32, owner: Option<&OsUser>) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    if let Some(u) = owner {
        u.chown(path)?;
    }
    Ok(())
}

/// Removes a file; a missing file is fine. Returns whether something was removed.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Opens an existing regular file for reading without following a symbolic link in its
/// last component: the PostgreSQL user owns the data directory and could plant a link
/// to a file only root may read (security review F7).
pub(crate) fn open_nofollow(path: &Path) -> std::io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::new(
                    ErrorKind::InvalidInput,
                    "is a symbolic link; pgbaton does not follow links where the PostgreSQL user can write (replace it with a regular file)",
                )
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "is not a regular file",
        ));
    }
    Ok(f)
}

/// Reads a file as text; a missing file reads as `None`. A symbolic link or anything
/// but a regular file is an error.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        open_nofollow(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Creates `path` (mode 0600, owned by `owner` when given) if it does not exist, without
/// following a symbolic link planted there; mode and owner are set through the open file.
pub(crate) fn create_private_file(path: &Path, owner: Option<&OsUser>) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => return Ok(()),
        Ok(_) => {
            return Err(Error::io(
                "use as a file",
                path,
                std::io::Error::new(
                    ErrorKind::InvalidInput,
                    "exists and is not a regular file (a symbolic link?); remove it",
                ),
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspect", path, e)),
    }
    let f = fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("set mode of", path, e))?;
    if let Some(u) = owner {
        nix::unistd::fchown(
            &f,
            Some(nix::unistd::Uid::from_raw(u.uid)),
            Some(nix::unistd::Gid::from_raw(u.gid)),
        )
        .map_err(|e| Error::io("change owner of", path, e.into()))?;
    }
    Ok(())
}

/// The last `max_lines` lines (from at most the last 8 KiB) of a file, or a note why there are none.
/// Never fails: it is used to decorate other errors.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 8192;
    let read = || -> std::io::Result<String> {
        let mut f = open_nofollow(path)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(MAX_BYTES);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(max_lines);
            lines[from..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod symlink_tests {
    use super::*;

    #[test]
    fn links_planted_where_root_reads_or_writes_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let secret = d.path().join("shadow");
        fs::write(&secret, "root:secret-hash").expect("write");
        let link = d.path().join("postgresql.conf");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        let e = read_optional(&link).expect_err("a link is not read");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!tail(&link, 5).contains("secret-hash"));
        // Rewriting replaces the link itself, never the file it points to.
        assert!(write_if_changed(&link, b"x = 1\n", 0o600, None).expect("write"));
        assert_eq!(
            fs::read_to_string(&secret).expect("read"),
            "root:secret-hash"
        );

        let dangling = d.path().join("data.log");
        let target = d.path().join("etc-cron-job");
        std::os::unix::fs::symlink(&target, &dangling).expect("symlink");
        let e = create_private_file(&dangling, None).expect_err("a link is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(!target.exists(), "root created the link's target");

        let plain = d.path().join("plain.log");
        create_private_file(&plain, None).expect("create");
        assert_eq!(
            fs::metadata(&plain).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        create_private_file(&plain, None).expect("an existing file is kept");
    }
}

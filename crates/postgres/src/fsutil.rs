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
    match fs::read(path) {
        Ok(old) if old == content => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", path, e)),
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
        fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    fs::create_dir(path).map_err(|e| Error::io("create directory", path, e))?;
    set_mode_owner(path, mode, owner)?;
    Ok(true)
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

/// Reads a file as text; a missing file reads as `None`.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The last `max_lines` lines (from at most the last 8 KiB) of a file, or a note why there are none.
/// Never fails: it is used to decorate other errors.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 8192;
    let read = || -> std::io::Result<String> {
        let mut f = fs::File::open(path)?;
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

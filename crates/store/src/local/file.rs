//! Crash-safe reading and writing of `state.json`.
//!
//! A write goes to a fresh temp file in the same directory, is fsynced, renamed over
//! `state.json` (atomic on POSIX) and the directory is fsynced. A reader therefore sees
//! either the old or the new state, never a torn one, even without the lock; a crash
//! leaves at most a stray temp file, which the next writer removes (writers hold the lock,
//! so no temp file can be in use then).

use super::state::{State, FORMAT};
use crate::{Result, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the state file inside a cluster directory.
pub(crate) const STATE_FILE: &str = "state.json";
/// Prefix of the temp files a writer creates next to the state file.
pub(crate) const TEMP_PREFIX: &str = "state.json.tmp.";

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Read the state, or `None` when no state file exists yet. A file that does not parse
/// is an error naming the file: data is never silently reset.
pub(crate) fn read_state(cluster_dir: &Path) -> Result<Option<State>> {
    let path = cluster_dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Other(format!(
                "cannot read state file {}: {e}",
                path.display()
            )))
        }
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| {
        StoreError::Other(format!(
            "corrupt state file {}: {e} (not touching it; inspect or move it away)",
            path.display()
        ))
    })?;
    if state.format != FORMAT {
        return Err(StoreError::Other(format!(
            "state file {} has format {}, this pgbaton understands {FORMAT}",
            path.display(),
            state.format
        )));
    }
    Ok(Some(state))
}

/// Replace the state file atomically and durably. The caller must hold the lock.
pub(crate) fn write_state(cluster_dir: &Path, state: &State) -> Result<()> {
    remove_stray_temps(cluster_dir)?;
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| StoreError::Other(format!("cannot encode local store state: {e}")))?;
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = cluster_dir.join(format!("{TEMP_PREFIX}{}.{seq}", std::process::id()));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Other(format!("cannot {what} {}: {e}", p.display()))
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", &tmp, e))?;
    f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
    f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    drop(f);
    let path = cluster_dir.join(STATE_FILE);
    fs::rename(&tmp, &path).map_err(|e| io("rename temp file onto", &path, e))?;
    File::open(cluster_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync directory", cluster_dir, e))
}

/// Delete temp files left by writers that crashed. The caller must hold the lock.
fn remove_stray_temps(cluster_dir: &Path) -> Result<()> {
    let entries = fs::read_dir(cluster_dir)
        .map_err(|e| StoreError::Other(format!("cannot list {}: {e}", cluster_dir.display())))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let p = entry.path();
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != ErrorKind::NotFound {
                    return Err(StoreError::Other(format!(
                        "cannot remove stray temp file {}: {e}",
                        p.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_and_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_state(dir.path()).unwrap().is_none());
        fs::write(dir.path().join(format!("{TEMP_PREFIX}999.0")), "half").unwrap();
        let s = State::fresh("boot");
        write_state(dir.path(), &s).unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), Some(s));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_string()]);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "{\"revision\": 3").unwrap();
        let err = read_state(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Other(_)));
        assert!(err.to_string().contains(STATE_FILE), "{err}");
    }
}

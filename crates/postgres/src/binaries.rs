//! Finding the directory that holds the PostgreSQL programs (postgres, pg_ctl, initdb, ...).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The Debian/Ubuntu layout root: `/usr/lib/postgresql/<major>/bin`.
pub const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Finds the PostgreSQL binaries: the highest-numbered `/usr/lib/postgresql/<major>/bin` that
/// contains `postgres`, else the first directory on `PATH` that contains `pg_ctl`.
/// The error names everything that was searched.
pub fn find_bin_dir() -> Result<PathBuf> {
    find_bin_dir_in(Path::new(DEBIAN_ROOT), std::env::var_os("PATH"))
}

/// [`find_bin_dir`] with an explicit versioned root and `PATH` value (for tests and odd layouts).
pub fn find_bin_dir_in(versioned_root: &Path, path_env: Option<OsString>) -> Result<PathBuf> {
    let mut candidates: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(versioned_root) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = parse_version(&name) else {
                continue;
            };
            let bin = entry.path().join("bin");
            if is_executable(&bin.join("postgres")) {
                candidates.push((version, bin));
            }
        }
    }
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    if let Some(path) = &path_env {
        for dir in std::env::split_paths(path) {
            if is_executable(&dir.join("pg_ctl")) {
                return Ok(dir);
            }
        }
    }
    Err(Error::BinDirNotFound {
        searched: format!(
            "{}/*/bin for `postgres`, and PATH ({}) for `pg_ctl`",
            versioned_root.display(),
            path_env
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unset".into())
        ),
    })
}

/// "15" -> [15], "9.6" -> [9, 6]; anything else is not a version directory.
fn parse_version(name: &str) -> Option<Vec<u64>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch_exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn picks_highest_version() {
        let d = tempfile::tempdir().unwrap();
        touch_exe(&d.path().join("9.6/bin/postgres"));
        touch_exe(&d.path().join("15/bin/postgres"));
        touch_exe(&d.path().join("13/bin/postgres"));
        std::fs::create_dir_all(d.path().join("17/bin")).unwrap(); // no postgres inside
        let bin = find_bin_dir_in(d.path(), None).unwrap();
        assert_eq!(bin, d.path().join("15/bin"));
    }

    #[test]
    fn falls_back_to_path_and_names_search() {
        let d = tempfile::tempdir().unwrap();
        touch_exe(&d.path().join("p2/pg_ctl"));
        let path = std::env::join_paths([d.path().join("p1"), d.path().join("p2")]).unwrap();
        let bin = find_bin_dir_in(&d.path().join("none"), Some(path)).unwrap();
        assert_eq!(bin, d.path().join("p2"));
        let e = find_bin_dir_in(&d.path().join("none"), Some("/nonexistent".into())).unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }

    #[test]
    fn finds_the_real_one() {
        // PostgreSQL 15 is installed on the build machines.
        if Path::new("/usr/lib/postgresql/15/bin/postgres").exists() {
            assert!(find_bin_dir().unwrap().ends_with("bin"));
        }
    }
}

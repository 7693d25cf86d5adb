//! What is in the data directory, and creating it safely (never touching foreign files).

use std::io::ErrorKind;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;

/// What the data directory currently holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirState {
    /// The path does not exist.
    Missing,
    /// An empty directory: ready for initdb or a base backup.
    Empty,
    /// A PostgreSQL cluster (`PG_VERSION` and `global/pg_control` exist).
    Initialized {
        /// `standby.signal` exists: it will start as a standby.
        standby_signal: bool,
        /// `recovery.signal` exists: it will start in targeted recovery.
        recovery_signal: bool,
        /// Content of `PG_VERSION`, e.g. `"15"`.
        pg_version: String,
    },
    /// Something else with `entries` entries: pgbaton must not touch it.
    NotAPostgresDir {
        /// Number of directory entries.
        entries: usize,
    },
}

impl Instance {
    /// Inspects the data directory without changing anything.
    pub fn data_dir_state(&self) -> Result<DataDirState> {
        let dir = &self.data_dir;
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(DataDirState::Missing),
            Err(e) => return Err(Error::io("list data directory", dir, e)),
        };
        let entries = rd.count();
        if entries == 0 {
            return Ok(DataDirState::Empty);
        }
        let version = fsutil::read_optional(&dir.join("PG_VERSION"))?;
        match version {
            Some(v) if dir.join("global/pg_control").is_file() => Ok(DataDirState::Initialized {
                standby_signal: dir.join("standby.signal").exists(),
                recovery_signal: dir.join("recovery.signal").exists(),
                pg_version: v.trim().to_string(),
            }),
            _ => Ok(DataDirState::NotAPostgresDir { entries }),
        }
    }

    /// Makes sure the data directory exists and can be used: a missing one is created (mode
    /// 0700, owned by the OS user); an empty one gets that mode and owner; an initialized one is
    /// left as it is; a foreign non-empty one is an error ([`Error::NotAPostgresDir`]) and is
    /// not touched. Returns the state found before any change.
    pub fn ensure_data_dir(&self) -> Result<DataDirState> {
        let state = self.data_dir_state()?;
        match &state {
            DataDirState::Missing => {
                fsutil::create_dir_owned(&self.data_dir, 0o700, self.run_as.as_ref())?;
            }
            DataDirState::Empty => {
                fsutil::set_mode_owner(&self.data_dir, 0o700, self.run_as.as_ref())?;
            }
            DataDirState::Initialized { .. } => {}
            DataDirState::NotAPostgresDir { entries } => {
                return Err(Error::NotAPostgresDir {
                    path: self.data_dir.clone(),
                    entries: *entries,
                })
            }
        }
        Ok(state)
    }

    /// Removes everything inside an initialized data directory so it can be cloned again.
    /// Refuses while a postmaster runs and refuses a directory that is not a PostgreSQL
    /// cluster. The directory itself (owner, mode) stays. Tablespace links under `pg_tblspc`
    /// are removed, not their targets.
    pub fn wipe_data_dir(&self) -> Result<()> {
        match self.data_dir_state()? {
            DataDirState::Missing | DataDirState::Empty => return Ok(()),
            DataDirState::NotAPostgresDir { entries } => {
                return Err(Error::NotAPostgresDir {
                    path: self.data_dir.clone(),
                    entries,
                })
            }
            DataDirState::Initialized { .. } => {}
        }
        if let Some(pm) = self.status()? {
            return Err(Error::io(
                "wipe data directory",
                &self.data_dir,
                std::io::Error::other(format!("PostgreSQL is running (pid {})", pm.pid)),
            ));
        }
        let rd = std::fs::read_dir(&self.data_dir)
            .map_err(|e| Error::io("list data directory", &self.data_dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list data directory", &self.data_dir, e))?;
            let path = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(|e| Error::io("inspect", &path, e))?
                .is_dir();
            let r = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            r.map_err(|e| Error::io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Fails unless the data directory is missing or empty; creates it owned by the OS user.
    /// Used before initdb and base backups.
    pub(crate) fn ensure_empty_data_dir(&self, action: &'static str) -> Result<()> {
        match self.ensure_data_dir()? {
            DataDirState::Missing | DataDirState::Empty => Ok(()),
            DataDirState::Initialized { .. } => Err(Error::AlreadyInitialized {
                path: self.data_dir.clone(),
                action,
            }),
            DataDirState::NotAPostgresDir { entries } => Err(Error::NotAPostgresDir {
                path: self.data_dir.clone(),
                entries,
            }),
        }
    }
}

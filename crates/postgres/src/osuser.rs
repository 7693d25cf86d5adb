//! The OS user PostgreSQL runs as, and how its programs are started under that user.
//!
//! Policy: when pgbaton runs as root (euid 0), every PostgreSQL program runs as the configured
//! user (usually `postgres`) and every directory or file pgbaton creates for PostgreSQL is
//! owned by it. When pgbaton is not root, everything runs as pgbaton's own user.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::error::{Error, Result};

/// A resolved OS account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (set as `HOME` for the programs we run).
    pub home: PathBuf,
    /// All groups of the user (primary and supplementary), installed with `setgroups`.
    pub groups: Vec<u32>,
}

impl OsUser {
    /// Looks a user up by name in the system user database.
    pub fn lookup(name: &str) -> Result<OsUser> {
        let fail = |reason: String| Error::OsUser {
            name: name.to_string(),
            reason,
        };
        let user = User::from_name(name)
            .map_err(|e| fail(format!("lookup failed: {e}")))?
            .ok_or_else(|| fail("no such user".to_string()))?;
        let cname = std::ffi::CString::new(name)
            .map_err(|_| fail("name contains a NUL byte".to_string()))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![user.gid.as_raw()]);
        Ok(OsUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            groups,
        })
    }

    /// Applies the run-as policy: `Some(user)` when this process is root, `None` (run as
    /// ourselves) otherwise. Fails only when root and the user does not exist.
    pub fn run_as_policy(name: &str) -> Result<Option<OsUser>> {
        if nix::unistd::geteuid().is_root() {
            OsUser::lookup(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Changes the owner of `path` (not following symlinks) to this user and its primary group.
    pub fn chown(&self, path: &Path) -> Result<()> {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::io("change owner of", path, e.into()))
    }

    /// Makes `cmd` run as this user: groups, gid and uid are switched in the child just before
    /// `exec`; `HOME`, `USER` and `LOGNAME` are set.
    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        let uid = self.uid;
        let gid = self.gid;
        let groups: Vec<libc::gid_t> = self.groups.clone();
        cmd.env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        // SAFETY: the closure only calls async-signal-safe libc functions (setgroups, setgid,
        // setuid) on data prepared before fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len() as _, groups.as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setgid(gid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root() {
        let root = OsUser::lookup("root").unwrap();
        assert_eq!(root.uid, 0);
        assert!(root.groups.contains(&0));
    }

    #[test]
    fn unknown_user_is_an_error() {
        let e = OsUser::lookup("no-such-user-pgbaton").unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
    }
}

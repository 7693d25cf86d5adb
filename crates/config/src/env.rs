//! Checks of the machine a config will run on (files, OS user), kept apart from the
//! pure validation so that `parse` can run anywhere.

use crate::error::Problem;
use crate::types::NodeConfig;
use std::path::Path;

/// The PostgreSQL programs pgbaton runs, all part of the server package.
pub const REQUIRED_PROGRAMS: &[&str] =
    &["postgres", "pg_ctl", "initdb", "pg_basebackup", "pg_rewind"];

/// Checks what the config refers to on this machine: `postgres.bin_dir` (if set) exists
/// and holds [`REQUIRED_PROGRAMS`]; `data_dir`, `postgres.socket_dir` and `store.local`
/// are directories if they exist; the etcd and API TLS files exist; and, when this process runs
/// as root, the OS user `postgres.os_user` exists (looked up in `/etc/passwd`, so users
/// from LDAP/NSS are not seen; the caller may treat that problem as a warning).
///
/// Reads only; returns every problem found (empty when all is well).
pub fn check_environment(cfg: &NodeConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(bin) = &cfg.postgres.bin_dir {
        if !bin.is_dir() {
            out.push(Problem::at(
                "postgres.bin_dir",
                format!("{} is not a directory; point it at PostgreSQL's programs (e.g. /usr/lib/postgresql/15/bin) or remove it", bin.display()),
            ));
        } else {
            let missing: Vec<_> = REQUIRED_PROGRAMS
                .iter()
                .filter(|p| !bin.join(p).is_file())
                .copied()
                .collect();
            if !missing.is_empty() {
                out.push(Problem::at(
                    "postgres.bin_dir",
                    format!("{} lacks {}; point it at the directory holding PostgreSQL's server programs", bin.display(), missing.join(", ")),
                ));
            }
        }
    }
    let dirs = [
        ("data_dir", Some(cfg.data_dir.as_path())),
        ("postgres.socket_dir", cfg.postgres.socket_dir.as_deref()),
        ("store.local", cfg.store.local.as_deref()),
    ];
    for (key, dir) in dirs {
        if let Some(dir) = dir {
            if dir.exists() && !dir.is_dir() {
                out.push(Problem::at(
                    key,
                    format!(
                        "{} exists but is not a directory; choose another path",
                        dir.display()
                    ),
                ));
            }
        }
    }
    if let Some(tls) = cfg.store.etcd.as_ref().and_then(|e| e.tls.as_ref()) {
        for (name, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(p) = path {
                if !p.is_file() {
                    out.push(Problem::at(
                        format!("store.etcd.tls.{name}"),
                        format!("{} does not exist or is not a file", p.display()),
                    ));
                }
            }
        }
    }
    if let Some(tls) = &cfg.api.tls {
        for (name, p) in [("cert", &tls.cert), ("key", &tls.key)] {
            if !p.is_file() {
                out.push(Problem::at(
                    format!("api.tls.{name}"),
                    format!("{} does not exist or is not a file", p.display()),
                ));
            }
        }
    }
    if running_as_root() {
        let user = cfg.os_user_name();
        match passwd_has_user(Path::new("/etc/passwd"), user) {
            Ok(true) => {}
            Ok(false) => out.push(Problem::at(
                "postgres.os_user",
                format!("OS user {user:?} is not in /etc/passwd; create it or set postgres.os_user to the user that owns PostgreSQL"),
            )),
            Err(e) => out.push(Problem::at(
                "postgres.os_user",
                format!("cannot read /etc/passwd to look up {user:?}: {e}"),
            )),
        }
    }
    out
}

/// Whether this process's effective user id is 0, read from `/proc/self/status`
/// (assumed true when that cannot be read, so the user check still runs).
fn running_as_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(true)
}

fn passwd_has_user(passwd: &Path, user: &str) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(passwd)?;
    Ok(text.lines().any(|l| l.split(':').next() == Some(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("passwd");
        std::fs::write(
            &f,
            "root:x:0:0::/root:/bin/sh\npostgres:x:101:104::/var/lib/postgresql:/bin/bash\n",
        )?;
        assert!(passwd_has_user(&f, "postgres")?);
        assert!(!passwd_has_user(&f, "postgre")?);
        Ok(())
    }
}

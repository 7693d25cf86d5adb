//! `Instance`: where one local PostgreSQL lives and how its programs are run.

use std::fmt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::osuser::OsUser;

/// A user name and password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Role name.
    pub user: String,
    /// Clear-text password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// One local PostgreSQL instance (a data directory plus how to run and reach it).
///
/// Build it with a struct literal. `listen_addresses`, `port` and `socket_dir` are written into
/// the managed config file by [`Instance::write_managed_conf`], so they are what the server
/// actually uses; do not also set them elsewhere.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Directory with `postgres`, `pg_ctl`, `initdb`, ... (see [`crate::find_bin_dir`]).
    pub bin_dir: PathBuf,
    /// The data directory (`PGDATA`).
    pub data_dir: PathBuf,
    /// The OS user PostgreSQL runs as, `None` to run as this process's user
    /// (see [`OsUser::run_as_policy`]).
    pub run_as: Option<OsUser>,
    /// Value for `listen_addresses`, e.g. `"127.0.0.1"`, `"10.0.0.5,127.0.0.1"` or `"*"`.
    pub listen_addresses: String,
    /// TCP port, also the Unix socket's number.
    pub port: u16,
    /// Directory for the Unix socket (`unix_socket_directories`); pgbaton connects through it.
    /// Give each instance on a host its own directory when they share ports across namespaces.
    pub socket_dir: PathBuf,
    /// The bootstrap superuser, used for local SQL connections.
    pub superuser: Credentials,
    /// Server log file passed to `pg_ctl start -l`; created owned by the OS user if missing.
    /// Keep it outside the data directory so base backups and rewinds do not carry it.
    pub log_file: PathBuf,
}

impl Instance {
    /// Path of one PostgreSQL program in [`Instance::bin_dir`].
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Path of a file inside the data directory.
    pub fn data_file(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// The last `lines` lines of the server log, or a note why there are none. Never fails.
    pub fn log_tail(&self, lines: usize) -> String {
        fsutil::tail(&self.log_file, lines)
    }

    /// Creates the socket directory if it is missing (mode 0755, owned by the OS user).
    /// An existing directory is left as it is.
    pub fn ensure_socket_dir(&self) -> Result<()> {
        fsutil::create_dir_owned(&self.socket_dir, 0o755, self.run_as.as_ref()).map(|_| ())
    }

    /// Creates the server log file if it is missing, owned by the OS user (mode 0600), so that
    /// `pg_ctl` running as that user can append to it. Parent directories must exist.
    /// A symbolic link there (which the OS user may plant) is refused, never followed.
    pub fn ensure_log_file(&self) -> Result<()> {
        fsutil::create_private_file(&self.log_file, self.run_as.as_ref())
    }

    /// A command for PostgreSQL program `name`: runs as the OS user, `PG*` variables removed,
    /// `LC_ALL=C` (English, parseable messages), cwd `/`, own process group (so signals aimed
    /// at pgbaton's terminal do not reach the postmaster), killed if the future is dropped.
    pub(crate) fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.program(name));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(u) = &self.run_as {
            u.apply(&mut cmd);
        }
        cmd
    }

    /// Runs `cmd` to completion (within `timeout` if given) and checks its exit status.
    /// With `with_log`, errors carry the tail of the server log.
    pub(crate) async fn run(
        &self,
        action: &str,
        program: &str,
        mut cmd: Command,
        timeout: Option<Duration>,
        with_log: bool,
    ) -> Result<Output> {
        let log = |this: &Self| {
            if with_log {
                this.log_tail(20)
            } else {
                String::new()
            }
        };
        let fut = cmd.output();
        let out = match timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Error::Timeout {
                        action: action.to_string(),
                        timeout: t,
                        log_tail: log(self),
                    })
                }
            },
            None => fut.await,
        }
        .map_err(|source| Error::Spawn {
            program: self.program(program),
            source,
        })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Command {
                action: action.to_string(),
                program: program.to_string(),
                status: out.status.to_string(),
                output: output_text(&out),
                log_tail: log(self),
            })
        }
    }
}

/// stderr, then stdout, trimmed; for error messages.
pub(crate) fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !stdout.is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&stdout);
    }
    s
}

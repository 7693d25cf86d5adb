//! Creating a new cluster with `initdb` (checksums on, SCRAM auth, password never on a command line).

use std::io::Write;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;

/// Options for [`Instance::initdb`].
#[derive(Debug, Clone)]
pub struct InitdbOptions {
    /// `--locale`; default `"C"` (valid with UTF8 everywhere). `"C.UTF-8"` is also common.
    pub locale: String,
    /// `-E`; default `"UTF8"`.
    pub encoding: String,
    /// `--no-sync`: skip fsync (tests only; a crash right after may corrupt the cluster).
    pub no_sync: bool,
    /// Extra arguments appended verbatim (must not contain secrets).
    pub extra_args: Vec<String>,
    /// Give up (and kill initdb) after this long.
    pub timeout: Duration,
}

impl Default for InitdbOptions {
    fn default() -> Self {
        InitdbOptions {
            locale: "C".into(),
            encoding: "UTF8".into(),
            no_sync: false,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(300),
        }
    }
}

impl Instance {
    /// Runs `initdb` into the (missing or empty) data directory with data checksums, the
    /// instance's superuser and password (through a 0600 temp file owned by the OS user),
    /// `scram-sha-256` for local and host auth.
    ///
    /// Refuses a directory that holds anything. Afterwards the caller writes pg_hba.conf and the
    /// managed config, then starts the server.
    pub async fn initdb(&self, opts: &InitdbOptions) -> Result<()> {
        self.ensure_empty_data_dir("initdb")?;
        let pwfile = tempfile::Builder::new()
            .prefix(".pgbaton-pw-")
            .tempfile()
            .map_err(|e| Error::io("create password file in", std::env::temp_dir(), e))?;
        // tempfile creates the file with mode 0600.
        let pw_path = pwfile.path().to_path_buf();
        pwfile
            .as_file()
            .write_all(format!("{}\n", self.superuser.password).as_bytes())
            .map_err(|e| Error::io("write", &pw_path, e))?;
        if let Some(u) = &self.run_as {
            u.chown(&pw_path)?;
        }
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("--data-checksums")
            .arg("-U")
            .arg(&self.superuser.user)
            .arg(format!("--pwfile={}", pw_path.display()))
            .arg("--auth-local=scram-sha-256")
            .arg("--auth-host=scram-sha-256")
            .arg("-E")
            .arg(&opts.encoding)
            .arg(format!("--locale={}", opts.locale));
        if opts.no_sync {
            cmd.arg("--no-sync");
        }
        cmd.args(&opts.extra_args);
        let result = self
            .run("initdb", "initdb", cmd, Some(opts.timeout), false)
            .await;
        drop(pwfile);
        if result.is_err() {
            // initdb removes what it created on failure; make sure the dir is usable again.
            let _ = fsutil::set_mode_owner(&self.data_dir, 0o700, self.run_as.as_ref());
        }
        result.map(|_| ())
    }
}

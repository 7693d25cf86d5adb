//! Re-syncing an old primary to a new one with `pg_rewind`, so it can follow without a re-clone.

use std::time::Duration;

use crate::conninfo::ConnTarget;
use crate::error::{Error, Result};
use crate::instance::{output_text, Instance};

/// What `pg_rewind` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewindReport {
    /// `false` when pg_rewind said "no rewind required" (the histories had not diverged).
    pub rewound: bool,
    /// pg_rewind's messages (e.g. "servers diverged at WAL location 0/3000148 on timeline 1").
    pub output: String,
}

impl Instance {
    /// Runs `pg_rewind -D <data> --source-server=<conninfo dbname=postgres>` (with `-n` when
    /// `dry_run`). The server must be stopped; if it was not shut down cleanly, pg_rewind first
    /// runs crash recovery itself. `source.user` must be a superuser (or have the pg_rewind
    /// grants). Run a `CHECKPOINT` on a freshly promoted source first so its control file shows
    /// the new timeline.
    ///
    /// pg_rewind copies the source's config files; call [`Instance::prepare_config`] with a
    /// [`crate::StandbyTarget`] before starting, or the node comes up as a second primary.
    /// If it fails, re-clone (wipe and [`Instance::basebackup`]).
    pub async fn rewind(
        &self,
        source: &ConnTarget,
        dry_run: bool,
        timeout: Duration,
    ) -> Result<RewindReport> {
        if let Some(pm) = self.status()? {
            return Err(Error::Command {
                action: "pg_rewind".into(),
                program: "pg_rewind".into(),
                status: "not run".into(),
                output: format!("the server is running (pid {}); stop it first", pm.pid),
                log_tail: String::new(),
            });
        }
        let conninfo = source.conninfo_with(&[("dbname", "postgres".to_string())])?;
        let mut cmd = self.command("pg_rewind");
        cmd.env("PGPASSFILE", &source.passfile)
            .arg("-D")
            .arg(&self.data_dir)
            .arg(format!("--source-server={conninfo}"));
        if dry_run {
            cmd.arg("-n");
        }
        let action = format!(
            "rewind {} from {}:{}",
            self.data_dir.display(),
            source.host,
            source.port
        );
        let out = self
            .run(&action, "pg_rewind", cmd, Some(timeout), false)
            .await?;
        let output = output_text(&out);
        Ok(RewindReport {
            rewound: !output.contains("no rewind required"),
            output,
        })
    }
}

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

impl RewindReport {
    /// pg_rewind's result in one line for the log: where the servers diverged, from which
    /// checkpoint it rewound, how much it copied, and whether it finished ("Done!"). The
    /// raw output also holds crash recovery's own chatter (e.g. `backend>`), which says
    /// nothing about the rewind and is left out.
    pub fn summary(&self) -> String {
        summarize(&self.output)
    }
}

/// The lines of pg_rewind's output that report what it did, without the `pg_rewind: `
/// prefix, joined with "; ". The progress meter (`--progress`, rewritten with `\r`) gives
/// its last figure, the amount copied.
fn summarize(output: &str) -> String {
    const KEEP: [&str; 6] = [
        "servers diverged at",
        "rewinding from last common checkpoint",
        "no rewind required",
        "source and target cluster are on the same timeline",
        "executing \"",
        "Done!",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut copied: Option<String> = None;
    for piece in output.split(['\n', '\r']) {
        let line = piece.trim();
        let line = line.strip_prefix("pg_rewind: ").unwrap_or(line);
        if line.ends_with("copied") && line.contains("kB") {
            copied = Some(line.to_string());
        } else if line.starts_with("executing \"") {
            parts.push("crash recovery of the target ran first".to_string());
        } else if KEEP.iter().any(|k| line.starts_with(k)) && !parts.iter().any(|p| p == line) {
            if line == "Done!" {
                if let Some(c) = copied.take() {
                    parts.push(c);
                }
            }
            parts.push(line.to_string());
        }
    }
    if let Some(c) = copied {
        parts.push(c);
    }
    if parts.is_empty() {
        "pg_rewind reported nothing".to_string()
    } else {
        parts.join("; ")
    }
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
        // A postmaster killed a moment ago leaves its pid file (naming a zombie not yet
        // reaped) and server processes still attached to its shared memory; pg_rewind's
        // crash recovery would refuse to start on either (fault lab seed 2030).
        let killed = self.kill_orphans(Duration::from_secs(5)).await;
        if killed > 0 {
            tracing::info!("killed {killed} server processes left by a dead postmaster");
        }
        self.clear_stale_pid_file()?;
        let conninfo = source.conninfo_with(&[("dbname", "postgres".to_string())])?;
        let mut cmd = self.command("pg_rewind");
        cmd.env("PGPASSFILE", &source.passfile)
            .arg("-D")
            .arg(&self.data_dir)
            .arg(format!("--source-server={conninfo}"));
        // The progress meter's last figure is the amount copied, for the log.
        cmd.arg("--progress");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reports_the_result_not_the_last_line() {
        let cases = [
            (
                "pg_rewind: executing \"/usr/lib/postgresql/15/bin/postgres\" for target server to complete crash recovery\n\
                 \nPostgreSQL stand-alone backend 15.8\nbackend> \n\
                 pg_rewind: servers diverged at WAL location 0/3000148 on timeline 1\n\
                 pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\n\
                 pg_rewind: reading source file list\npg_rewind: reading target file list\n\
                 pg_rewind: reading WAL in target\npg_rewind: need to copy 52 MB (total source directory size is 71 MB)\n\
                 0/53468 kB (0%) copied\r53468/53468 kB (100%) copied\n\
                 pg_rewind: creating backup label and updating control file\n\
                 pg_rewind: syncing target data directory\npg_rewind: Done!\nbackend>",
                "crash recovery of the target ran first; servers diverged at WAL location 0/3000148 on timeline 1; rewinding from last common checkpoint at 0/2000060 on timeline 1; 53468/53468 kB (100%) copied; Done!",
            ),
            (
                "pg_rewind: servers diverged at WAL location 0/3000148 on timeline 1\npg_rewind: no rewind required\n",
                "servers diverged at WAL location 0/3000148 on timeline 1; no rewind required",
            ),
            (
                "pg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required\n",
                "source and target cluster are on the same timeline; no rewind required",
            ),
            ("backend>", "pg_rewind reported nothing"),
        ];
        for (output, want) in cases {
            let r = RewindReport {
                rewound: true,
                output: output.to_string(),
            };
            assert_eq!(r.summary(), want);
        }
    }
}

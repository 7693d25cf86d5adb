//! Where the WAL of a crashed data directory ends: `pg_waldump` reads `pg_wal` from the
//! last checkpoint to the first invalid record, as crash recovery would, without
//! starting the server (which would write past that end).

use crate::error::{Error, Result};
use crate::instance::Instance;
use pgbaton_core::Lsn;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The start of the last record that `pg_waldump` printed, when its error output
/// confirms it as the last valid one ("error in WAL record at X" with the same X).
/// Anything else (no record, another error, a disagreement) is `None`: unknown.
pub fn parse_waldump_end(last_record_line: Option<&str>, stderr: &str) -> Option<Lsn> {
    let line = last_record_line?;
    let (_, rest) = line.split_once(" lsn: ")?;
    let last: Lsn = rest.split(',').next()?.trim().parse().ok()?;
    let (_, err) = stderr.split_once("error in WAL record at ")?;
    let confirmed: Lsn = err.split(':').next()?.trim().parse().ok()?;
    (confirmed == last).then_some(last)
}

/// Whether `pg_wal` (its file names: segments, `.partial` and `.history` files) holds
/// anything of a timeline newer than `tli`: then the WAL may continue on that timeline,
/// and reading `tli` alone cannot tell where it ends.
pub fn newer_timeline_in(names: &[String], tli: u32) -> bool {
    names.iter().any(|n| {
        let hex = n
            .get(..8)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let wal = n.len() >= 24 && n.as_bytes()[..24].iter().all(u8::is_ascii_hexdigit);
        match hex {
            Some(h) if wal || n.ends_with(".history") => {
                u32::from_str_radix(h, 16).is_ok_and(|t| t > tli)
            }
            _ => false,
        }
    })
}

impl Instance {
    /// For a stopped data directory whose WAL on timeline `tli` continues after the
    /// checkpoint at `from`: where its last valid record starts. `None` when that cannot
    /// be told for sure (WAL of a newer timeline present, `pg_waldump` failed in another
    /// way or took longer than `timeout`). Memory stays bounded: only the last line of
    /// the listing is kept.
    pub async fn last_wal_record(
        &self,
        tli: u32,
        from: Lsn,
        timeout: Duration,
    ) -> Result<Option<Lsn>> {
        let wal_dir = self.data_dir.join("pg_wal");
        let names = list_names(&wal_dir)?;
        if newer_timeline_in(&names, tli) {
            return Ok(None);
        }
        let mut cmd = self.command("pg_waldump");
        cmd.arg("--path")
            .arg(&wal_dir)
            .arg("--timeline")
            .arg(tli.to_string())
            .arg("--start")
            .arg(from.to_string());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: self.program("pg_waldump"),
            source,
        })?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Ok(None);
        };
        let read = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut last = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(" lsn: ") {
                    last = Some(line);
                }
            }
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err).await;
            let _ = child.wait().await;
            (last, err)
        };
        match tokio::time::timeout(timeout, read).await {
            Ok((last, err)) => {
                let end = parse_waldump_end(last.as_deref(), &err);
                if end.is_none() {
                    tracing::debug!("pg_waldump did not find the end of the WAL: {}", err.trim());
                }
                Ok(end)
            }
            Err(_) => Ok(None),
        }
    }
}

fn list_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "rmgr: Transaction len (rec/tot):    405/   405, tx:        724, lsn: 0/01526058, prev 0/01526018, desc: COMMIT 2026-11-29";

    #[test]
    fn the_last_record_is_confirmed_by_the_error() {
        let err = "pg_waldump: error: error in WAL record at 0/1526058: invalid record length at 0/15261F0: wanted 24, got 0\n";
        assert_eq!(parse_waldump_end(Some(LINE), err), Some(Lsn(0x0152_6058)));
    }

    #[test]
    fn anything_else_is_unknown() {
        let other = "pg_waldump: error: error in WAL record at 0/1526018: invalid record length";
        assert_eq!(parse_waldump_end(Some(LINE), other), None);
        let missing = "pg_waldump: error: could not find file \"000000010000000000000002\"";
        assert_eq!(parse_waldump_end(Some(LINE), missing), None);
        assert_eq!(
            parse_waldump_end(None, "error in WAL record at 0/1: x"),
            None
        );
        assert_eq!(
            parse_waldump_end(Some("garbage"), "error in WAL record at 0/1: x"),
            None
        );
    }

    #[test]
    fn newer_timelines_are_seen_in_segment_and_history_names() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let own = names(&[
            "000000010000000000000003",
            "archive_status",
            "00000001.history",
        ]);
        assert!(!newer_timeline_in(&own, 1));
        assert!(newer_timeline_in(&names(&["00000002.history"]), 1));
        assert!(newer_timeline_in(&names(&["000000020000000000000003"]), 1));
        assert!(newer_timeline_in(
            &names(&["00000002000000000000000A.partial"]),
            1
        ));
        assert!(!newer_timeline_in(&names(&["000000020000000000000003"]), 2));
        assert!(newer_timeline_in(&names(&["0000000B.history"]), 10));
    }
}

//! Timeline history files (`pg_wal/0000000N.history`): where each timeline branched off.

use crate::error::{Error, Result};
use crate::instance::Instance;
use pgbaton_core::Lsn;

/// Parse a timeline history file: `(parent timeline, switch point)` per line, oldest
/// first. Comment and blank lines are skipped; malformed lines are errors.
pub fn parse_timeline_history(text: &str) -> std::result::Result<Vec<(u32, Lsn)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            return Err(format!("bad timeline history line {line:?}"));
        };
        let tli = tli
            .parse::<u32>()
            .map_err(|_| format!("bad timeline in {line:?}"))?;
        let lsn = lsn.parse::<Lsn>().map_err(|e| e.to_string())?;
        out.push((tli, lsn));
    }
    Ok(out)
}

impl Instance {
    /// Where timeline `tli` began: the end of its parent timeline, from the history
    /// file in `pg_wal`. `None` for timeline 1 or when the file is missing.
    pub fn timeline_switch_point(&self, tli: u32) -> Result<Option<Lsn>> {
        if tli <= 1 {
            return Ok(None);
        }
        let path = self
            .data_dir
            .join("pg_wal")
            .join(format!("{tli:08X}.history"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read timeline history", &path, e)),
        };
        let entries = parse_timeline_history(&text)
            .map_err(|m| Error::io("parse timeline history", &path, std::io::Error::other(m)))?;
        Ok(entries.last().map(|(_, lsn)| *lsn))
    }

    /// The newest timeline that has a history file in `pg_wal` (1 when none has).
    pub fn newest_timeline_file(&self) -> Result<u32> {
        let dir = self.data_dir.join("pg_wal");
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut newest = 1;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(tli) = history_file_timeline(&entry.file_name().to_string_lossy()) {
                newest = newest.max(tli);
            }
        }
        Ok(newest)
    }

    /// Keep a promotion from choosing timeline `tli`: write a history file for it that
    /// holds only a comment, unless one exists. PostgreSQL names a new timeline one past
    /// the newest consecutive history file it finds, so held numbers are skipped. pgbaton
    /// holds the numbers that another member reserved in the store and may have used.
    /// Returns whether it wrote the file.
    pub fn hold_timeline(&self, tli: u32) -> Result<bool> {
        let path = self
            .data_dir
            .join("pg_wal")
            .join(format!("{tli:08X}.history"));
        match std::fs::symlink_metadata(&path) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspect", &path, e)),
        }
        let text = format!(
            "# timeline {tli} was reserved by another pgbaton member; this file, written by \
             pgbaton, keeps this server from creating a second timeline {tli}\n"
        );
        crate::fsutil::write_if_changed(&path, text.as_bytes(), 0o600, self.run_as.as_ref())
    }
}

/// The timeline of a history file name (`0000000A.history` → 10).
fn history_file_timeline(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".history")?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_history_files() {
        let text = "1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n";
        let h = parse_timeline_history(text).unwrap();
        assert_eq!(
            h,
            vec![
                (1, "0/3000148".parse().unwrap()),
                (2, "0/5000000".parse().unwrap())
            ]
        );
        assert!(parse_timeline_history("x y").is_err());
    }

    #[test]
    fn reads_timelines_from_history_file_names() {
        assert_eq!(history_file_timeline("0000000A.history"), Some(10));
        assert_eq!(history_file_timeline("00000002.history"), Some(2));
        assert_eq!(history_file_timeline("000000020000000000000003"), None);
        assert_eq!(history_file_timeline("0000002.history"), None);
        assert_eq!(history_file_timeline(".00000002.history.pgbaton-tmp"), None);
    }
}

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
}

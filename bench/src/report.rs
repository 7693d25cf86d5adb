//! Markdown output: tables for the terminal, and dated sections appended to RESULTS.md.

use crate::{sysinfo, BenchError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A Markdown table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row with one cell per header (a mismatch is a bug in the caller, caught by
    /// a debug assertion; in release builds cells are padded or dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(
            cells.len(),
            self.headers.len(),
            "row/header length mismatch"
        );
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as Markdown, ending in a newline.
    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.headers);
        out.push_str(&line(&vec!["---".to_string(); self.headers.len()]));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// The default results file: `bench/RESULTS.md` in the source tree.
pub fn default_results_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md")
}

/// Append a dated section `## {title}` with the machine facts, the command line and
/// `body` to `path` (created when missing).
pub fn append_results(path: &Path, title: &str, body: &str) -> Result<()> {
    let info = sysinfo::collect();
    let command: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
            } else {
                a
            }
        })
        .collect();
    let section = format!(
        "\n## {title} ({date})\n\n- machine: {kernel}, {cpu}, {cores} cores\n- command: `{command}`\n\n{body}",
        date = info.date,
        kernel = info.kernel,
        cpu = info.cpu,
        cores = info.cores,
        command = command.join(" "),
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| BenchError::io("open results file", path, e))?;
    file.write_all(section.as_bytes())
        .map_err(|e| BenchError::io("append to results file", path, e))
}

/// `yes`, or a bold `no`, for a "target met" column.
pub fn yes(ok: bool) -> String {
    if ok { "yes" } else { "**no**" }.to_string()
}

/// The first lost ids as ` (ids 1, 2, …)`, or nothing when none was lost.
pub fn lost_ids(check: &crate::faults::RowCheck) -> String {
    if check.lost.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = check
        .lost
        .iter()
        .take(20)
        .map(|(id, _)| id.to_string())
        .collect();
    format!(
        " (ids {}{})",
        ids.join(", "),
        if check.lost.len() > 20 { ", …" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_and_appends_a_section() {
        let mut t = Table::new(&["run", "gap"]);
        t.row(vec!["1".into(), "0.100 s".into()]);
        t.row(vec!["2".into(), String::new()]);
        assert_eq!(
            t.render(),
            "| run | gap |\n| --- | --- |\n| 1 | 0.100 s |\n| 2 |  |\n"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("R.md");
        append_results(&path, "Switchover", &t.render()).expect("append");
        append_results(&path, "Failover", "x\n").expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("## Switchover ("));
        assert!(text.contains("## Failover ("));
        assert!(text.contains("cores"));
        assert!(text.contains("| 1 | 0.100 s |"));
    }
}

//! What the demo's screen shows: the member table, whether the cluster has converged
//! (who is cloning, who waits and why, who streams and how far behind), the writer,
//! and commands to try.

use super::writer::Stats;
use crate::cli::Row;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the screen shows besides the rows read from the store.
pub struct Screen<'a> {
    /// The demo dir.
    pub dir: &'a Path,
    /// The first member's config, for the commands to try.
    pub first: &'a Path,
    /// The line about the store.
    pub store: String,
    /// Every member's name.
    pub names: Vec<String>,
    /// A libpq string that reaches the primary.
    pub conninfo: String,
    /// When the demo started.
    pub started: Instant,
    /// The writer's stats, with `--writer`.
    pub writer: Option<Arc<Mutex<Stats>>>,
}

impl Screen<'_> {
    /// The whole screen for `rows`; `converged_after` keeps how long the cluster took
    /// to converge the first time it did.
    pub fn render(&self, rows: &[Row], converged_after: &mut Option<Duration>) -> String {
        let (done, line) = convergence(&self.names, rows);
        if done && converged_after.is_none() {
            *converged_after = Some(self.started.elapsed());
        }
        let mut text = String::from("\x1b[2J\x1b[H");
        text.push_str(&crate::cli::table(super::configs::CLUSTER, rows));
        text.push('\n');
        text.push_str(&line);
        if let Some(t) = converged_after {
            text.push_str(&format!(
                " (first converged {:.1} s after start)",
                t.as_secs_f64()
            ));
        }
        text.push('\n');
        if let Some(w) = &self.writer {
            let stats = match w.lock() {
                Ok(s) => s.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            text.push_str(&stats.line());
            text.push('\n');
        }
        text.push_str(&format!(
            "\n{store}\nTry, in another terminal:\n  \
             pgbaton list -c {cfg}\n  \
             psql '{conn}' -c 'select * from pg_stat_replication'   # the primary, wherever it is\n  \
             pgbaton switchover -c {cfg} --force      # hand the primary role to the best replica\n  \
             pgbaton history -c {cfg}\n  \
             tail -f {logs}/node1.log\n\
             Configs, data and logs: {dir}\nPress Ctrl-C to stop the cluster.\n",
            store = self.store,
            cfg = self.first.display(),
            conn = self.conninfo,
            logs = self.dir.join("logs").display(),
            dir = self.dir.display(),
        ));
        text
    }
}

/// Whether every member of `names` is where it should be (one running primary, every
/// other member streaming), and one line saying so or what each member still does.
pub fn convergence(names: &[String], rows: &[Row]) -> (bool, String) {
    let primaries: Vec<&Row> = rows
        .iter()
        .filter(|r| r.role == "primary" && r.state == "running")
        .collect();
    let mut pending = Vec::new();
    let mut max_lag = 0u64;
    for name in names {
        let Some(r) = rows.iter().find(|r| &r.name == name) else {
            pending.push(format!("{name}: not registered yet"));
            continue;
        };
        let healthy = match (r.role.as_str(), r.state.as_str()) {
            ("primary", "running") => primaries.len() == 1,
            ("replica", "streaming") => true,
            _ => false,
        };
        if healthy {
            max_lag = max_lag.max(r.lag_bytes.unwrap_or(0));
            continue;
        }
        let doing = match r.state.as_str() {
            "creating replica" => "cloning from the primary".to_string(),
            "initializing" => "running initdb".to_string(),
            "rewinding" => "running pg_rewind".to_string(),
            other => other.to_string(),
        };
        match &r.note {
            Some(note) if !note.is_empty() => pending.push(format!("{name}: {doing} ({note})")),
            _ => pending.push(format!("{name}: {doing}")),
        }
    }
    if pending.is_empty() && primaries.len() == 1 {
        let line = format!(
            "Converged: {} is the primary, {} replica(s) streaming, max lag {} B",
            primaries[0].name,
            names.len() - 1,
            max_lag
        );
        return (true, line);
    }
    if primaries.len() > 1 {
        pending.insert(
            0,
            format!("{} members report running as primary", primaries.len()),
        );
    }
    (false, format!("Converging: {}", pending.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, role: &str, state: &str, note: Option<&str>) -> Row {
        Row {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 1,
            role: role.into(),
            state: state.into(),
            timeline: Some(1),
            lsn: None,
            lag_bytes: (role == "replica").then_some(0),
            tags: Vec::new(),
            leader: role == "primary",
            sync: None,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn says_who_is_cloning_and_who_waits_until_all_stream() {
        let names: Vec<String> = ["node1", "node2", "node3"].map(String::from).to_vec();
        let rows = vec![
            row("node1", "primary", "running", None),
            row("node2", "replica", "creating replica", None),
        ];
        let (done, line) = convergence(&names, &rows);
        assert!(!done);
        assert!(line.contains("node2: cloning from the primary"), "{line}");
        assert!(line.contains("node3: not registered yet"), "{line}");
        let rows = vec![
            row("node1", "primary", "running", None),
            row("node2", "replica", "streaming", None),
            row("node3", "replica", "streaming", None),
        ];
        let (done, line) = convergence(&names, &rows);
        assert!(done, "{line}");
        assert!(
            line.contains("node1 is the primary, 2 replica(s) streaming"),
            "{line}"
        );
    }
}

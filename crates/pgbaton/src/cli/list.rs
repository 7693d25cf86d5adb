//! `pgbaton list`: the members as a table, or as JSON for scripts.

use pgbaton_core::model::{MemberStatus, PgState, Role, KEY_LEADER, KEY_STATUS};
use pgbaton_core::model::{PrimaryStatus, SyncState, KEY_SYNC};
use pgbaton_store::{Snapshot, Store};
use serde::Serialize;
use std::path::Path;

/// Output format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// A JSON array for scripts.
    Json,
}

/// One row of `pgbaton list --format json`. Scripts rely on these keys.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Member name.
    pub name: String,
    /// Host its PostgreSQL is reached at.
    pub host: String,
    /// Port its PostgreSQL is reached at.
    pub port: u16,
    /// `primary` or `replica`.
    pub role: String,
    /// e.g. `running`, `streaming`, `stopped`, `starting`, `creating replica`.
    pub state: String,
    /// Timeline.
    pub timeline: Option<u32>,
    /// WAL position (write position on the primary, replay position on replicas).
    pub lsn: Option<String>,
    /// Bytes behind the primary; null for the primary.
    pub lag_bytes: Option<u64>,
    /// Tags set on the member.
    pub tags: Vec<String>,
    /// Whether the member holds the leader key.
    pub leader: bool,
    /// `sync` (mode `on`) or `quorum` when the `sync` key lists it; null otherwise.
    pub sync: Option<String>,
    /// Why the member is doing what it does.
    pub note: Option<String>,
}

/// Build the rows from the store's member keys, plus registered members that are away.
pub fn rows(
    members: &[MemberStatus],
    leader: Option<&str>,
    status: Option<&PrimaryStatus>,
    sync: Option<&SyncState>,
) -> Vec<Row> {
    let sync_of = |name: &str| {
        let s =
            sync.filter(|s| s.holders() > 0 && s.lists(name) && leader == Some(s.leader.as_str()))?;
        Some(if s.quorum.is_some() { "quorum" } else { "sync" }.to_string())
    };
    let mut rows: Vec<Row> = members
        .iter()
        .map(|m| {
            let is_leader = leader == Some(m.name.as_str());
            let primary = is_leader || m.role == Role::Primary;
            Row {
                name: m.name.clone(),
                host: m.host.clone(),
                port: m.port,
                role: if primary { "primary" } else { "replica" }.into(),
                state: m.state.as_str().into(),
                timeline: m.timeline,
                lsn: m.lsn.map(|l| l.to_string()),
                lag_bytes: if primary { None } else { m.lag_bytes },
                tags: tag_list(m),
                leader: is_leader,
                sync: sync_of(&m.name),
                note: m.note.clone(),
            }
        })
        .collect();
    if let Some(status) = status {
        for name in status.registry.keys() {
            if rows.iter().all(|r| &r.name != name) {
                rows.push(Row {
                    name: name.clone(),
                    host: String::new(),
                    port: 0,
                    role: "replica".into(),
                    state: PgState::Stopped.as_str().into(),
                    timeline: None,
                    lsn: None,
                    lag_bytes: None,
                    tags: Vec::new(),
                    leader: false,
                    sync: None,
                    note: Some("agent not running; its slot is kept".into()),
                });
            }
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

fn tag_list(m: &MemberStatus) -> Vec<String> {
    let mut t = Vec::new();
    if m.tags.nofailover {
        t.push("nofailover".to_string());
    }
    if m.tags.nosync {
        t.push("nosync".to_string());
    }
    if m.tags.noloadbalance {
        t.push("noloadbalance".to_string());
    }
    if m.tags.failover_priority != 0 {
        t.push(format!("failover_priority={}", m.tags.failover_priority));
    }
    t
}

/// Render rows as an aligned text table.
pub fn table(cluster: &str, rows: &[Row]) -> String {
    let header = [
        "Member", "Host", "Role", "State", "TL", "LSN", "Lag", "Tags",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                if r.port == 0 {
                    "-".into()
                } else {
                    format!("{}:{}", r.host, r.port)
                },
                match (&r.sync, r.leader) {
                    (_, true) => format!("{} *", r.role),
                    (Some(s), false) => format!("{} ({s})", r.role),
                    (None, false) => r.role.clone(),
                },
                r.state.clone(),
                r.timeline
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.lsn.clone().unwrap_or_else(|| "-".into()),
                r.lag_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                r.tags.join(","),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cols: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!("Cluster: {cluster}\n");
    out.push_str(&line(header.to_vec()));
    for row in &cells {
        out.push_str(&line(row.iter().map(|s| s.as_str()).collect()));
    }
    for (name, note) in why(rows) {
        out.push_str(&format!("{name}: {note}\n"));
    }
    out
}

/// The notes worth a line under the table: every member's when no member leads (why
/// nobody took over), and any "no failover: ..." explanation.
fn why(rows: &[Row]) -> Vec<(&str, &str)> {
    let leaderless = !rows.iter().any(|r| r.leader);
    rows.iter()
        .filter_map(|r| Some((r.name.as_str(), r.note.as_deref()?)))
        .filter(|(_, note)| leaderless || note.contains("no failover"))
        .collect()
}

fn human_bytes(b: u64) -> String {
    match b {
        0..=9_999 => format!("{b} B"),
        10_000..=9_999_999 => format!("{} kB", b / 1024),
        _ => format!("{} MB", b / (1024 * 1024)),
    }
}

/// Read the members from the store.
pub async fn fetch(store: &dyn Store) -> anyhow::Result<Vec<Row>> {
    Ok(rows_of(&store.snapshot().await?))
}

/// The rows of a store snapshot. Member keys that fail validation (see
/// [`pgbaton_core::limits::check_member`]) are left out, as the agents leave them out.
pub fn rows_of(snap: &Snapshot) -> Vec<Row> {
    let members: Vec<MemberStatus> = snap
        .entries
        .iter()
        .filter_map(|(k, e)| {
            let name = k.strip_prefix(pgbaton_core::model::MEMBERS_PREFIX)?;
            let m: MemberStatus = serde_json::from_str(&e.value).ok()?;
            pgbaton_core::limits::check_member(name, &m).ok()?;
            Some(m)
        })
        .collect();
    let status: Option<PrimaryStatus> = snap
        .value(KEY_STATUS)
        .and_then(|v| serde_json::from_str(v).ok());
    let sync: Option<SyncState> = snap
        .value(KEY_SYNC)
        .and_then(|v| serde_json::from_str(v).ok());
    rows(
        &members,
        snap.value(KEY_LEADER),
        status.as_ref(),
        sync.as_ref(),
    )
}

/// Why the store's `config` key cannot be used, if it cannot (agents then keep their
/// last good config).
pub fn config_error(snap: &Snapshot) -> Option<String> {
    let value = snap.value(pgbaton_core::model::KEY_CONFIG)?;
    pgbaton_core::view::read_config(value).err()
}

/// Read the cluster from the store and print it.
pub async fn list(config: &Path, format: Format) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let snap = store.snapshot().await?;
    let rows = rows_of(&snap);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table => {
            print!("{}", table(&cfg.cluster, &rows));
            let config = snap.value(pgbaton_core::model::KEY_CONFIG);
            let paused = config
                .and_then(|v| pgbaton_core::view::read_config(v).ok())
                .is_some_and(|(c, _)| c.paused);
            if paused {
                println!("Maintenance mode: paused (no automatic failover, restart or rejoin; `pgbaton resume` ends it)");
            }
        }
    }
    if let Some(err) = config_error(&snap) {
        eprintln!("Cluster config error: the store's config key is unusable ({err}); the agents keep their last good config; fix it with `pgbaton edit-config`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, leader: bool, note: &str) -> Row {
        Row {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 5432,
            role: if leader { "primary" } else { "replica" }.into(),
            state: "streaming".into(),
            timeline: Some(1),
            lsn: None,
            lag_bytes: Some(0),
            tags: vec![],
            leader,
            sync: None,
            note: Some(note.into()),
        }
    }

    #[test]
    fn the_table_says_why_there_is_no_failover() {
        let healthy = [row("a", true, "leading"), row("b", false, "following a")];
        assert!(!table("c", &healthy).contains("following a"));
        let headless = [
            row("b", false, "no failover: b lags 40 MB > 1 MB limit"),
            row("c", false, "waiting for the leader key"),
        ];
        let t = table("c", &headless);
        assert!(
            t.contains("\nb: no failover: b lags 40 MB > 1 MB limit\n"),
            "{t}"
        );
        assert!(t.contains("\nc: waiting for the leader key\n"), "{t}");
    }
}

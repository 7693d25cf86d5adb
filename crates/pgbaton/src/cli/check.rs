//! `pgbaton check`: one line of cluster health with Nagios/Icinga exit codes, for
//! monitoring systems that run a command rather than scrape metrics.

use super::list::Row;
use pgbaton_core::model::KEY_CONFIG;
use serde::Serialize;
use std::path::Path;

/// Output of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// The one Nagios line: `PGBATON OK - ... | perfdata`.
    Text,
    /// The same as a JSON object.
    Json,
}

/// The lag limits of `check`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct CheckLimits {
    /// Above this a replica's lag is a WARNING.
    pub warning: u64,
    /// Above this it is CRITICAL.
    pub critical: u64,
}

/// A Nagios status; its number is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// 0.
    Ok,
    /// 1.
    Warning,
    /// 2.
    Critical,
    /// 3: the check itself could not run (bad config, store unreachable).
    Unknown,
}

impl Status {
    /// The exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// The verdict on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The worst finding.
    pub status: Status,
    /// What was found, most serious first.
    pub summary: String,
    /// The member holding the leader key, if it runs.
    pub primary: Option<String>,
    /// Replicas that stream, out of all replicas registered.
    pub streaming: usize,
    /// Replicas registered (running or not).
    pub replicas: usize,
    /// The largest replica lag in bytes.
    pub max_lag_bytes: u64,
    /// Whether the cluster is in maintenance mode.
    pub paused: bool,
}

/// Judge the cluster from its rows: CRITICAL without a running primary or with a
/// replica lagging past `critical`; WARNING when a replica does not stream, lags past
/// `warning`, or the cluster is paused.
pub fn judge(rows: &[Row], paused: bool, limits: CheckLimits) -> Verdict {
    let primary = rows
        .iter()
        .find(|r| r.leader && r.state == "running")
        .map(|r| r.name.clone());
    let replicas: Vec<&Row> = rows.iter().filter(|r| !r.leader).collect();
    let streaming = replicas.iter().filter(|r| r.state == "streaming").count();
    let max_lag = replicas
        .iter()
        .filter_map(|r| r.lag_bytes)
        .max()
        .unwrap_or(0);
    let mut findings: Vec<(Status, String)> = Vec::new();
    match &primary {
        Some(p) => findings.push((Status::Ok, format!("primary {p}"))),
        None => findings.push((Status::Critical, "no running primary".into())),
    }
    for r in replicas.iter().filter(|r| r.state != "streaming") {
        findings.push((Status::Warning, format!("{} is {}", r.name, r.state)));
    }
    findings.push((
        if max_lag > limits.critical {
            Status::Critical
        } else if max_lag > limits.warning {
            Status::Warning
        } else {
            Status::Ok
        },
        format!(
            "{streaming}/{} replicas streaming, max lag {max_lag} B",
            replicas.len()
        ),
    ));
    if paused {
        findings.push((Status::Warning, "paused (no automatic failover)".into()));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let status = findings.first().map(|f| f.0).unwrap_or(Status::Ok);
    Verdict {
        status,
        summary: findings
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>()
            .join(", "),
        primary,
        streaming,
        replicas: replicas.len(),
        max_lag_bytes: max_lag,
        paused,
    }
}

/// The Nagios line, with performance data after `|`.
pub fn line(v: &Verdict, limits: CheckLimits) -> String {
    format!(
        "PGBATON {} - {} | streaming={};;;0;{} max_lag={}B;{};{};0",
        v.status.label(),
        v.summary,
        v.streaming,
        v.replicas,
        v.max_lag_bytes,
        limits.warning,
        limits.critical
    )
}

async fn verdict(config: &Path, limits: CheckLimits) -> anyhow::Result<Verdict> {
    let (_, store) = super::open(config).await?;
    let rows = super::fetch(store.as_ref()).await?;
    let paused = store
        .get(KEY_CONFIG)
        .await?
        .and_then(|e| pgbaton_core::view::read_config(&e.value).ok())
        .is_some_and(|(c, _)| c.paused);
    Ok(judge(&rows, paused, limits))
}

/// Run the check, print one line (or JSON), and return the Nagios exit code. A check
/// that cannot run (bad config, store unreachable) is UNKNOWN (3).
pub async fn check(config: &Path, limits: CheckLimits, format: CheckFormat) -> u8 {
    let (status, text, json) = match verdict(config, limits).await {
        Ok(v) => (v.status, line(&v, limits), serde_json::to_value(&v).ok()),
        Err(e) => {
            let summary = format!("{e:#}").replace('\n', " ");
            (
                Status::Unknown,
                format!("PGBATON UNKNOWN - {summary}"),
                Some(serde_json::json!({"status": "UNKNOWN", "summary": summary})),
            )
        }
    };
    match format {
        CheckFormat::Text => println!("{text}"),
        CheckFormat::Json => println!(
            "{}",
            json.map(|j| j.to_string()).unwrap_or_else(|| text.clone())
        ),
    }
    status.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CheckLimits = CheckLimits {
        warning: 100,
        critical: 1000,
    };

    fn row(name: &str, leader: bool, state: &str, lag: Option<u64>) -> Row {
        Row {
            name: name.into(),
            host: "h".into(),
            port: 1,
            role: if leader { "primary" } else { "replica" }.into(),
            state: state.into(),
            timeline: None,
            lsn: None,
            lag_bytes: lag,
            tags: vec![],
            leader,
            sync: None,
            note: None,
        }
    }

    #[test]
    fn verdicts() {
        let healthy = [
            row("a", true, "running", None),
            row("b", false, "streaming", Some(10)),
        ];
        let v = judge(&healthy, false, LIMITS);
        assert_eq!(v.status, Status::Ok);
        assert_eq!(
            line(&v, LIMITS),
            "PGBATON OK - primary a, 1/1 replicas streaming, max lag 10 B | streaming=1;;;0;1 max_lag=10B;100;1000;0"
        );
        let lagging = [
            row("a", true, "running", None),
            row("b", false, "streaming", Some(500)),
        ];
        assert_eq!(judge(&lagging, false, LIMITS).status, Status::Warning);
        assert_eq!(judge(&healthy, true, LIMITS).status, Status::Warning);
        let stopped = [
            row("a", true, "running", None),
            row("b", false, "stopped", None),
        ];
        let v = judge(&stopped, false, LIMITS);
        assert_eq!(v.status, Status::Warning);
        assert!(v.summary.starts_with("b is stopped"), "{}", v.summary);
        let headless = [row("b", false, "streaming", Some(2000))];
        let v = judge(&headless, false, LIMITS);
        assert_eq!(v.status, Status::Critical);
        assert!(v.summary.starts_with("no running primary"), "{}", v.summary);
    }
}

//! `GET /metrics`: this member's state in the Prometheus text exposition format
//! (version 0.0.4), written by hand; every sample carries `cluster` and `member` labels.

use super::health::{holds_live_lease, snapshot_age};
use super::status::role_name;
use super::AgentSnapshot;
use std::fmt::Write;
use std::time::Instant;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Render the metrics of `snap` at `now`. Values that are unknown (e.g. the lag of a
/// primary, the timeline of a stopped member) are left out rather than faked.
pub fn render(snap: &AgentSnapshot, cluster: &str, now: Instant) -> String {
    let labels = format!(
        "cluster=\"{}\",member=\"{}\"",
        escape(cluster),
        escape(&snap.name)
    );
    let mut out = String::new();
    let member = snap.member.as_ref();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };

    header(
        &mut out,
        "pgbaton_role",
        "gauge",
        "1 for the member's current role (primary, replica or unknown), 0 for the others.",
    );
    let role = role_name(snap);
    for r in ["primary", "replica", "unknown"] {
        let _ = writeln!(
            out,
            "pgbaton_role{{{labels},role=\"{r}\"}} {}",
            flag(role == r)
        );
    }
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name}{{{labels}}} {}", number(v));
        }
    };
    gauge(
        "pgbaton_postgres_up",
        "1 when PostgreSQL is running and answering SQL.",
        Some(flag(snap.pg_running)),
    );
    gauge(
        "pgbaton_cluster_config_error",
        "1 when the store's config key is unusable and the agent keeps its last good config (see pgbaton list).",
        snap.store
            .as_ref()
            .map(|s| flag(crate::cli::config_error(s).is_some())),
    );
    gauge(
        "pgbaton_postgres_streaming",
        "1 when the WAL receiver is streaming.",
        Some(flag(snap.streaming)),
    );
    gauge(
        "pgbaton_timeline",
        "PostgreSQL timeline.",
        member.and_then(|m| m.timeline).map(f64::from),
    );
    gauge(
        "pgbaton_lsn_bytes",
        "WAL position in bytes (write position on the primary, replay position on a replica).",
        member.and_then(|m| m.lsn).map(|l| l.0 as f64),
    );
    gauge(
        "pgbaton_received_lsn_bytes",
        "Replica: last received WAL position in bytes.",
        member.and_then(|m| m.received_lsn).map(|l| l.0 as f64),
    );
    gauge(
        "pgbaton_replayed_lsn_bytes",
        "Replica: last replayed WAL position in bytes.",
        member.and_then(|m| m.replayed_lsn).map(|l| l.0 as f64),
    );
    gauge(
        "pgbaton_lag_bytes",
        "Replica: bytes behind the primary's last published position.",
        member.and_then(|m| m.lag_bytes).map(|l| l as f64),
    );
    gauge(
        "pgbaton_leader",
        "1 when this member holds the leader key on an unexpired lease.",
        Some(flag(holds_live_lease(snap, now))),
    );
    gauge(
        "pgbaton_lease_seconds_left",
        "Seconds left on the leader lease (0 when not the leader).",
        Some(snap.lease_seconds_left(now).unwrap_or(0.0)),
    );
    gauge(
        "pgbaton_cycle_duration_seconds",
        "Duration of the last HA cycle.",
        Some(snap.last_cycle_ms as f64 / 1000.0),
    );
    gauge(
        "pgbaton_last_cycle_age_seconds",
        "Seconds since the last HA cycle finished.",
        snapshot_age(snap, now).map(|d| d.as_secs_f64()),
    );
    gauge(
        "pgbaton_paused",
        "1 when the cluster is in maintenance mode.",
        Some(flag(snap.cluster_config.paused)),
    );

    for (name, help, value) in [
        (
            "pgbaton_promotions_seen_total",
            "Failovers and switchovers seen (promotions recorded in history).",
            snap.promotions_seen,
        ),
        (
            "pgbaton_fencing_actions_total",
            "Fencing actions taken by this member.",
            snap.fencing_actions,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A sample value: integers without a fraction, others with millisecond precision.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{:.3}", v)
    }
}

/// Escape a label value: backslash, double quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! `/metrics` text: valid Prometheus exposition format, values matching the snapshot.

use super::super::metrics::render;
use super::{primary, replica};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Parse Prometheus text strictly: every sample's family is declared with HELP and
/// TYPE first, names and labels are well formed, values are numbers. Returns
/// `(name{labels}, value)` pairs.
pub fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let name_ok = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !name_ok(name) || !helped.insert(name.to_string()) {
                return Err(format!("bad or repeated HELP: {line}"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if !name_ok(name) || !["gauge", "counter"].contains(&kind) || parts.next().is_some() {
                return Err(format!("bad TYPE: {line}"));
            }
            if !typed.insert(name.to_string()) {
                return Err(format!("repeated TYPE: {line}"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line: {line:?}"));
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
            let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
            let (name, labels) = series.split_once('{').ok_or(format!("no labels: {line}"))?;
            if !name_ok(name) || !typed.contains(name) {
                return Err(format!("undeclared or bad name: {line}"));
            }
            let labels = labels
                .strip_suffix('}')
                .ok_or(format!("unclosed labels: {line}"))?;
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').ok_or(format!("bad label: {line}"))?;
                if !(name_ok(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"')) {
                    return Err(format!("bad label {pair}: {line}"));
                }
            }
            if out.insert(series.to_string(), value).is_some() {
                return Err(format!("duplicate series: {line}"));
            }
        }
    }
    Ok(out)
}

#[test]
fn a_primary_s_metrics_parse_and_match() {
    let now = Instant::now();
    let mut s = primary(now);
    s.promotions_seen = 2;
    s.fencing_actions = 1;
    let text = render(&s, "demo", now);
    let m = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let l = r#"cluster="demo",member="node1""#;
    assert_eq!(m[&format!("pgbaton_role{{{l},role=\"primary\"}}")], 1.0);
    assert_eq!(m[&format!("pgbaton_role{{{l},role=\"replica\"}}")], 0.0);
    assert_eq!(m[&format!("pgbaton_postgres_up{{{l}}}")], 1.0);
    assert_eq!(m[&format!("pgbaton_timeline{{{l}}}")], 3.0);
    assert_eq!(m[&format!("pgbaton_lsn_bytes{{{l}}}")], 0x3000148 as f64);
    assert_eq!(m[&format!("pgbaton_leader{{{l}}}")], 1.0);
    let left = m[&format!("pgbaton_lease_seconds_left{{{l}}}")];
    assert!(left > 8.0 && left <= 9.0, "{left}");
    assert_eq!(m[&format!("pgbaton_cycle_duration_seconds{{{l}}}")], 0.012);
    assert_eq!(m[&format!("pgbaton_promotions_seen_total{{{l}}}")], 2.0);
    assert_eq!(m[&format!("pgbaton_fencing_actions_total{{{l}}}")], 1.0);
    assert!(
        !m.contains_key(&format!("pgbaton_lag_bytes{{{l}}}")),
        "a primary has no lag"
    );
}

#[test]
fn a_replica_s_metrics_and_escaped_labels() {
    let now = Instant::now();
    let mut s = replica(now, 4096);
    s.name = "we\"ird\\name".into();
    let text = render(&s, "c\nx", now);
    let m = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let l = r#"cluster="c\nx",member="we\"ird\\name""#;
    assert_eq!(m[&format!("pgbaton_lag_bytes{{{l}}}")], 4096.0);
    assert_eq!(m[&format!("pgbaton_leader{{{l}}}")], 0.0);
    assert_eq!(m[&format!("pgbaton_lease_seconds_left{{{l}}}")], 0.0);
    assert_eq!(m[&format!("pgbaton_role{{{l},role=\"replica\"}}")], 1.0);
}

#[test]
fn before_the_first_cycle_unknowns_are_left_out() {
    let now = Instant::now();
    let s = crate::api::AgentSnapshot::initial("n", Default::default());
    let text = render(&s, "c", now);
    let m = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        m[r#"pgbaton_role{cluster="c",member="n",role="unknown"}"#],
        1.0
    );
    assert_eq!(m[r#"pgbaton_postgres_up{cluster="c",member="n"}"#], 0.0);
    assert!(!text.contains("pgbaton_timeline"));
    assert!(!text.contains("pgbaton_last_cycle_age_seconds"));
}

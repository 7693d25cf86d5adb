//! The invariants, checked at the moment the world changes (a server becomes writable,
//! a timeline is created, WAL is thrown away) and on every tick. A violation is
//! recorded with the simulated time; the run then fails and prints its trace.

use crate::world::World;
use std::collections::BTreeSet;

/// `host`'s PostgreSQL just became writable (started as primary or promoted).
pub fn became_writable(w: &mut World, host: &str) {
    let others: Vec<String> = w
        .hosts
        .values()
        .filter(|h| h.name != host && h.writable())
        .map(|h| h.name.clone())
        .collect();
    if !others.is_empty() {
        w.violation(format!(
            "two writable primaries: {host} became writable while {} accepts writes",
            others.join(", ")
        ));
    }
    if !w.sync_mode {
        return;
    }
    let Some(dir) = w.hosts.get(host).and_then(|h| h.data()) else {
        return;
    };
    let have: BTreeSet<u64> = dir.commits().collect();
    let missing: Vec<u64> = w
        .acked
        .iter()
        .filter(|a| !have.contains(&a.commit))
        .map(|a| a.commit)
        .collect();
    if !missing.is_empty() {
        w.violation(format!(
            "synchronous mode: new primary {host} lacks {} acknowledged commits (first {:?})",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
}

/// At most one writable server at every tick.
pub fn tick(w: &mut World) {
    let writable: Vec<String> = w
        .hosts
        .values()
        .filter(|h| h.writable())
        .map(|h| h.name.clone())
        .collect();
    if writable.len() > 1 && !w.violations.iter().any(|v| v.starts_with("two writable")) {
        w.violation(format!("two writable primaries: {}", writable.join(", ")));
    }
}

/// A promotion on `host` created timeline `tli` of cluster `sysid`.
pub fn new_timeline(w: &mut World, sysid: u64, tli: u32, host: &str) {
    let who = format!("{host} at {}", w.now_ms());
    if let Some(before) = w.timelines.get(&(sysid, tli)) {
        let before = before.clone();
        w.violation(format!(
            "timeline {tli} created twice with different histories: by {before} and by {who}"
        ));
    } else {
        w.timelines.insert((sysid, tli), who);
    }
}

/// `host` is about to throw away the commits `lost` from its directory `dir` (rewind,
/// removal). In synchronous mode, none of them may be an acknowledged commit held in
/// no other directory.
pub fn discarding(w: &mut World, host: &str, dir: &std::path::Path, what: &str, lost: &[u64]) {
    if lost.is_empty() {
        return;
    }
    let lost: BTreeSet<u64> = lost.iter().copied().collect();
    let elsewhere: BTreeSet<u64> = w
        .hosts
        .values()
        .flat_map(|h| {
            h.dirs
                .iter()
                .filter(move |(p, _)| !(h.name == host && p.as_path() == dir))
                .flat_map(|(_, d)| d.commits())
        })
        .filter(|c| lost.contains(c))
        .collect();
    let only_here: Vec<u64> = w
        .acked
        .iter()
        .map(|a| a.commit)
        .filter(|c| lost.contains(c) && !elsewhere.contains(c))
        .collect();
    if only_here.is_empty() {
        return;
    }
    if w.sync_mode {
        w.violation(format!(
            "{what} on {host} destroys the only copy of {} acknowledged commits (first {:?})",
            only_here.len(),
            &only_here[..only_here.len().min(5)]
        ));
    } else {
        w.lost_async += only_here.len() as u64;
        w.note(
            "CHECK",
            format!(
                "asynchronous mode: {what} on {host} drops {} acknowledged commits (allowed)",
                only_here.len()
            ),
        );
    }
}

//! What PostgreSQL does, on the world: start, stop, crash, promote, pg_rewind,
//! pg_basebackup, initdb, streaming replication and synchronous acknowledgement.
//! Functions apply one change atomically at the current simulated instant.

use super::wal::{DataDir, DirState, RecKind};
use crate::check;
use crate::world::{Broken, Pending, Postmaster, World};
use pgbaton_core::sync::Ssn;
use std::path::Path;
use tokio::time::Instant;

/// Start the server on `host` (`Ok(false)`: it already runs).
pub fn start(w: &mut World, host: &str) -> Result<bool, String> {
    let pid = w.id() as u32;
    let now_ms = w.now_ms();
    let h = w.hosts.get_mut(host).ok_or("no such host")?;
    if h.pm_moved() {
        // pg_ctl finds no postmaster.pid at the path, but the moved postmaster still
        // holds the port.
        return Err("could not bind to port 5432: Address already in use".into());
    }
    if h.pm.is_some() {
        return Ok(false);
    }
    if h.eio {
        return Err("could not read the data directory: Input/output error".into());
    }
    if h.start_fails {
        return Err("pg_ctl: could not start server (see the server log)".into());
    }
    let upstream_addr;
    let (standby, ssn) = {
        let Some(d) = h.data_mut() else {
            return Err("data directory is missing".into());
        };
        d.state = if d.standby_signal {
            DirState::InArchiveRecovery
        } else {
            DirState::InProduction
        };
        upstream_addr = d.conf.upstream.clone();
        (d.standby_signal, d.conf.ssn.clone())
    };
    let upstream = if standby {
        upstream_addr.and_then(|a| w.host_by_addr(&a))
    } else {
        None
    };
    let h = w.hosts.get_mut(host).ok_or("no such host")?;
    let dir = h.data_dir.clone();
    let started_ms = now_ms;
    h.pm = Some(Postmaster {
        pid,
        dir,
        started_ms,
        in_recovery: standby,
        sync_defined: !ssn.is_empty(),
        reload_pending: false,
        ssn,
        upstream: upstream.clone(),
        streaming: false,
    });
    let role = if standby {
        format!("standby of {}", upstream.as_deref().unwrap_or("nobody"))
    } else {
        "PRIMARY (accepting writes)".into()
    };
    w.note(host, format!("[pg] postmaster {pid} started as {role}"));
    if !standby {
        check::became_writable(w, host);
    }
    Ok(true)
}

/// Stop the server. A clean (fast) stop of a primary writes a shutdown checkpoint and
/// sends it to the standbys streaming from it before exiting.
pub fn stop(w: &mut World, host: &str, clean: bool, why: &str) -> bool {
    let Some(pm) = w.hosts.get(host).and_then(|h| h.pm.clone()) else {
        return false;
    };
    if clean && !pm.in_recovery {
        let id = w.id();
        if let Some(d) = w.hosts.get_mut(host).and_then(|h| h.data_mut()) {
            d.append(id, RecKind::Checkpoint { shutdown: true }, 114);
            d.state = DirState::ShutDown;
        }
        let standbys: Vec<String> = w
            .hosts
            .values()
            .filter(|s| {
                s.pm.as_ref()
                    .is_some_and(|p| p.in_recovery && p.upstream.as_deref() == Some(host))
            })
            .map(|s| s.name.clone())
            .collect();
        for s in standbys {
            stream_one(w, &s);
        }
    } else if clean {
        if let Some(d) = w.hosts.get_mut(host).and_then(|h| h.data_mut()) {
            d.state = DirState::ShutDownInRecovery;
        }
    }
    if let Some(h) = w.hosts.get_mut(host) {
        h.pm = None;
        h.pending.clear();
    }
    w.note(host, format!("[pg] postmaster {} stopped ({why})", pm.pid));
    true
}

/// Promote the standby on `host`: a new timeline, one past the newest it knows.
pub fn promote(w: &mut World, host: &str) -> Result<(), String> {
    let id = w.id();
    let h = w.hosts.get_mut(host).ok_or("no such host")?;
    let Some(pm) = h.pm.as_mut() else {
        return Err("the server is not running".into());
    };
    if !pm.in_recovery {
        return Err("recovery is not in progress".into());
    }
    pm.in_recovery = false;
    pm.upstream = None;
    pm.streaming = false;
    let Some(d) = h.data_mut() else {
        return Err("data directory is missing".into());
    };
    let parent = d.tli();
    let tli = d.newest_tli() + 1;
    let switch = d.end();
    let mut hist = d.histories.get(&parent).cloned().unwrap_or_default();
    hist.push((parent, switch));
    d.histories.insert(tli, hist);
    let start = d.end();
    d.wal.push(super::wal::Rec {
        id,
        tli,
        start,
        end: start + 40,
        kind: RecKind::EndOfRecovery,
    });
    d.standby_signal = false;
    d.state = DirState::InProduction;
    let sysid = d.sysid;
    w.note(
        host,
        format!("[pg] promoted: timeline {tli} begins at {}", lsn(switch)),
    );
    check::new_timeline(w, sysid, tli, host);
    check::became_writable(w, host);
    Ok(())
}

/// `pg_rewind` of `host`'s stopped data directory from the server at `source`:
/// `Ok(false)` when nothing needed doing.
pub fn rewind(w: &mut World, host: &str, source: &str) -> Result<bool, String> {
    let src = w
        .host_by_addr(source)
        .ok_or_else(|| format!("could not connect to server at {source}"))?;
    let h = w.hosts.get(host).ok_or("no such host")?;
    if h.pm.is_some() {
        return Err("target server must be shut down cleanly".into());
    }
    if h.eio {
        return Err("could not read the data directory: Input/output error".into());
    }
    let mine = h.data().cloned().ok_or("data directory is missing")?;
    let s = w.hosts.get(&src).ok_or("no such host")?;
    if s.pm.is_none() || !w.connected(host, &src) {
        return Err(format!("could not connect to server at {source}"));
    }
    let theirs = s.data().cloned().ok_or("source has no data directory")?;
    if mine.sysid != theirs.sysid {
        return Err("source and target clusters are from different systems".into());
    }
    let p = mine.common_prefix(&theirs);
    if p == mine.wal.len() {
        return Ok(false);
    }
    let lost: Vec<u64> = mine.wal[p..]
        .iter()
        .filter_map(|r| match r.kind {
            RecKind::Commit(c) => Some(c),
            _ => None,
        })
        .collect();
    let dir = h.data_dir.clone();
    check::discarding(w, host, &dir, "pg_rewind", &lost);
    w.note(
        host,
        format!(
            "[pg] pg_rewind from {src}: servers diverged at {} ({} records of this member thrown away, {} commits)",
            lsn(mine.wal.get(p).map_or(0, |r| r.start)),
            mine.wal.len() - p,
            lost.len()
        ),
    );
    if let Some(d) = w.hosts.get_mut(host).and_then(|h| h.data_mut()) {
        d.wal = theirs.wal;
        d.histories = theirs.histories;
        d.conf = theirs.conf;
        d.standby_signal = false;
        d.state = DirState::InArchiveRecovery;
    }
    Ok(true)
}

/// `pg_basebackup` from the server at `source` into `dir` on `host`.
pub fn basebackup(w: &mut World, host: &str, dir: &Path, source: &str) -> Result<(), String> {
    let src = w
        .host_by_addr(source)
        .ok_or_else(|| format!("could not connect to server at {source}"))?;
    let s = w.hosts.get(&src).ok_or("no such host")?;
    if s.pm.is_none() || !w.connected(host, &src) {
        return Err(format!("could not connect to server at {source}"));
    }
    let mut copy = s.data().cloned().ok_or("source has no data directory")?;
    copy.slots.clear();
    copy.files.clear();
    copy.standby_signal = false;
    copy.state = DirState::InArchiveRecovery;
    let h = w.hosts.get_mut(host).ok_or("no such host")?;
    if h.dirs.contains_key(dir) {
        return Err(format!(
            "directory {} exists but is not empty",
            dir.display()
        ));
    }
    h.dirs.insert(dir.to_path_buf(), copy);
    w.note(host, format!("[pg] pg_basebackup from {src} done"));
    Ok(())
}

/// `initdb` into `dir` on `host`: a new cluster with a new system identifier.
pub fn initdb(w: &mut World, host: &str, dir: &Path) -> Result<(), String> {
    let sysid = 7_000_000_000_000_000_000 + w.id();
    let rec = w.id();
    let h = w.hosts.get_mut(host).ok_or("no such host")?;
    if h.dirs.contains_key(dir) {
        return Err(format!(
            "directory {} exists but is not empty",
            dir.display()
        ));
    }
    h.dirs
        .insert(dir.to_path_buf(), DataDir::initdb(sysid, rec));
    w.note(host, format!("[pg] initdb: system identifier {sysid}"));
    Ok(())
}

/// Let the standby on `host` receive what its upstream has, if their histories agree.
pub fn stream_one(w: &mut World, host: &str) {
    let Some(h) = w.hosts.get(host) else { return };
    let Some(pm) = h.pm.as_ref() else { return };
    if !pm.in_recovery {
        return;
    }
    let up = pm.upstream.clone();
    if h.receiver_stalled {
        // A SIGSTOPped receiver keeps its connection: the primary still lists it as
        // streaming, at the position it had.
        return;
    }
    let streaming = match up {
        Some(up) if w.connected(host, &up) => {
            let src = w
                .hosts
                .get(&up)
                .filter(|s| s.pm.is_some())
                .and_then(|s| s.data());
            match (src, h.data()) {
                (Some(src), Some(mine)) if mine.is_prefix_of(src) => {
                    let new = src.wal[mine.wal.len()..].to_vec();
                    let hist: Vec<(u32, Vec<(u32, u64)>)> = src
                        .histories
                        .iter()
                        .filter(|(t, _)| !mine.histories.contains_key(t))
                        .map(|(t, v)| (*t, v.clone()))
                        .collect();
                    let d = w.hosts.get_mut(host).and_then(|h| h.data_mut());
                    if let Some(d) = d {
                        d.wal.extend(new);
                        d.histories.extend(hist);
                    }
                    true
                }
                _ => false,
            }
        }
        _ => false,
    };
    if let Some(pm) = w.hosts.get_mut(host).and_then(|h| h.pm.as_mut()) {
        pm.streaming = streaming;
    }
}

/// The standbys streaming from `primary`, with how far each has flushed.
pub fn standbys_of(w: &World, primary: &str) -> Vec<(String, u64)> {
    w.hosts
        .values()
        .filter(|s| {
            s.pm.as_ref().is_some_and(|p| {
                p.in_recovery && p.streaming && p.upstream.as_deref() == Some(primary)
            })
        })
        .map(|s| (s.name.clone(), s.data().map_or(0, |d| d.end())))
        .collect()
}

/// The names of `synchronous_standby_names` in priority (written) order.
fn priority_order(text: &str) -> Vec<String> {
    let inner = match (text.find('('), text.rfind(')')) {
        (Some(a), Some(b)) if b > a => &text[a + 1..b],
        _ => text
            .split_once(char::is_whitespace)
            .map_or(text, |(_, r)| r),
    };
    inner
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `pg_stat_replication.sync_state` of each standby of a primary with `ssn`, and
/// whether a commit ending at `end` is acknowledged.
pub fn sync_view(ssn_text: &str, standbys: &[(String, u64)], end: u64) -> (Vec<String>, bool) {
    let ssn = Ssn::parse(ssn_text);
    let states = |f: &dyn Fn(&str, usize) -> &'static str| -> Vec<String> {
        standbys
            .iter()
            .enumerate()
            .map(|(i, (n, _))| f(n, i).to_string())
            .collect()
    };
    match ssn {
        Ssn::Standalone => (states(&|_, _| "async"), true),
        Ssn::AnyStandby => {
            let ok = standbys.first().is_some_and(|(_, f)| *f >= end);
            (
                states(&|_, i| if i == 0 { "sync" } else { "potential" }),
                ok,
            )
        }
        Ssn::List { first: true, k, .. } => {
            let order = priority_order(ssn_text);
            let mut ranked: Vec<(usize, &String, u64)> = standbys
                .iter()
                .filter_map(|(n, f)| order.iter().position(|o| o == n).map(|p| (p, n, *f)))
                .collect();
            ranked.sort();
            let chosen: Vec<&String> = ranked.iter().take(k).map(|(_, n, _)| *n).collect();
            let ok = ranked.len() >= k && ranked.iter().take(k).all(|(_, _, f)| *f >= end);
            let st = states(&|n, _| {
                if chosen.iter().any(|c| c.as_str() == n) {
                    "sync"
                } else if order.iter().any(|o| o == n) {
                    "potential"
                } else {
                    "async"
                }
            });
            (st, ok)
        }
        Ssn::List {
            first: false,
            k,
            names,
        } => {
            let ok = standbys
                .iter()
                .filter(|(n, f)| names.contains(n) && *f >= end)
                .count()
                >= k;
            let st = states(&|n, _| {
                if names.iter().any(|o| o == n) {
                    "quorum"
                } else {
                    "async"
                }
            });
            (st, ok)
        }
    }
}

/// A client commits one row on `host`'s primary; returns the commit id.
pub fn commit(w: &mut World, host: &str) -> Option<u64> {
    let id = w.id();
    let h = w.hosts.get_mut(host)?;
    if !h.writable() || h.eio {
        return None;
    }
    let rec = h.data_mut()?.append(id, RecKind::Commit(id), 128);
    h.pending.push(Pending {
        commit: id,
        end: rec.end,
        acked: false,
    });
    acknowledge(w, host);
    Some(id)
}

/// Mark the commits of `primary` that its synchronous standbys now hold.
pub fn acknowledge(w: &mut World, primary: &str) {
    let Some(h) = w.hosts.get(primary) else {
        return;
    };
    let Some(pm) = h.pm.as_ref() else { return };
    if h.pending.iter().all(|p| p.acked) {
        return;
    }
    let ssn = pm.ssn.clone();
    let defined = pm.sync_defined;
    let standbys = standbys_of(w, primary);
    let Some(h) = w.hosts.get_mut(primary) else {
        return;
    };
    for p in h.pending.iter_mut().filter(|p| !p.acked) {
        // As SyncRepWaitForLSN: no wait at all unless the checkpointer has set
        // sync_standbys_defined; with it set and no names yet, nobody releases.
        p.acked = !defined || (!ssn.is_empty() && sync_view(&ssn, &standbys, p.end).1);
    }
}

/// The checkpointer of `host`'s server re-reads the configuration (after a reload):
/// now, or when its long checkpoint ends.
pub fn checkpointer_reload(w: &mut World, host: &str) {
    let Some(h) = w.hosts.get_mut(host) else {
        return;
    };
    let busy = h.ckpt_busy;
    let Some(pm) = h.pm.as_mut() else { return };
    if busy {
        pm.reload_pending = true;
    } else {
        pm.reload_pending = false;
        pm.sync_defined = !pm.ssn.is_empty();
    }
}

/// One tick of the world (every 10 ms): fences act, WAL streams, commits are
/// acknowledged, and the one-primary invariant is checked.
pub fn tick(w: &mut World) {
    let now = Instant::now().duration_since(w.start);
    let names: Vec<String> = w.hosts.keys().cloned().collect();
    for name in &names {
        let Some(h) = w.hosts.get_mut(name) else {
            continue;
        };
        let boot = now + h.boot_offset;
        // The fence finds the postmaster through postmaster.pid at the configured path.
        let running = h.pm.is_some() && !h.pm_moved();
        let mut fire = false;
        for f in h.fences.iter_mut() {
            if f.alive && !f.frozen && running {
                if let Some((deadline, _)) = f.armed {
                    if boot >= deadline {
                        f.fenced += 1;
                        fire = true;
                    }
                }
            }
        }
        let live = h.agent_alive;
        let inc = h.agent_incarnation;
        let pm_down = h.pm.is_none();
        h.fences.retain(|f| {
            let agent_gone = !live || f.owner != inc;
            let done = match f.armed {
                None => true,
                Some((d, _)) => boot >= d && pm_down,
            };
            f.alive && !(agent_gone && done)
        });
        if fire && w.broken != Broken::SkipFence {
            if let Some(h) = w.hosts.get_mut(name) {
                h.fenced += 1;
            }
            stop(w, name, false, "FENCED: the lease deadline passed");
        }
    }
    for name in &names {
        stream_one(w, name);
    }
    for name in &names {
        acknowledge(w, name);
    }
    check::tick(w);
}

/// `0/3000148`.
pub fn lsn(x: u64) -> String {
    format!("{:X}/{:X}", x >> 32, x & 0xFFFF_FFFF)
}

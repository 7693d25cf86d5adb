//! Scripted schedules for the findings of the safety review
//! (`shared/reviews/safety-2026-11-29.md`): each one triggers its finding and must
//! pass once the finding is fixed. `pgbaton-sim --regression NAME` plays one.

use crate::faults::{Fault, Step};
use crate::run::Options;

fn at(ms: u64, f: Fault) -> Step {
    Step {
        at_ms: ms,
        fault: f,
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Every regression by name.
pub const ALL: [&str; 11] = [
    "finding1",
    "finding2",
    "finding3",
    "finding4",
    "finding5",
    "finding9",
    "finding9-isolated",
    "finding12",
    "restart",
    "s4",
    "s6",
];

/// The options of regression `name`.
pub fn options(name: &str) -> Option<Options> {
    if let Some(ms) = name.strip_prefix("bootstrap-") {
        return ms.parse().ok().map(bootstrap);
    }
    let (sync, steps) = match name {
        // Finding 1: the primary P's agent is frozen (its fence stops PostgreSQL), R
        // promotes, R's agent is killed right after the promotion (its fence and
        // PostgreSQL live on and acknowledge commits until the fence stops them), P
        // resumes: it must not take the key back on the old timeline and rewind R.
        "finding1" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::FreezeAgent(s("$P"))),
                at(20_001, Fault::AwaitNewPrimary(s("$P"), s("R"))),
                at(20_001, Fault::KillAgent(s("$R"))),
                at(32_000, Fault::ResumeAgent(s("$P"))),
                at(45_000, Fault::StartAgent(s("$R"))),
            ],
        ),
        // Finding 2: the primary's data directory returns EIO and its postmaster dies.
        // Every cycle fails before deciding; the lease keeper must not keep the key
        // alive for it: a replica must take over.
        "finding2" => (
            "off",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Eio(s("$P"), true)),
                at(20_100, Fault::CrashPostgres(s("$P"))),
                at(50_000, Fault::ExpectWritableOtherThan(s("$P"))),
                at(55_000, Fault::Eio(s("$P"), false)),
            ],
        ),
        // Finding 3: the primary's fence is killed, and within 50 ms the primary is cut
        // off from the store. It must stop accepting writes before a replica promotes.
        "finding3" => (
            "off",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::KillFence(s("$P"))),
                at(20_050, Fault::Isolate(s("$P"))),
                at(45_000, Fault::Rejoin(s("$P"))),
            ],
        ),
        // Finding 4: quorum mode (ANY 1 of two standbys). B's WAL receiver stalls, A's
        // agent hangs in SQL (its keeper renews, its key keeps an old position) while
        // A acknowledges commits alone; the primary node dies; the operator asks for
        // a failover to B without --force. B must not be promoted without them.
        "finding4" => (
            "quorum",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Bind(s("A"), s("replica"))),
                at(20_000, Fault::Bind(s("B"), s("replica2"))),
                at(20_000, Fault::StallReceiver(s("$B"))),
                at(20_010, Fault::HangSql(s("$A"), true)),
                at(23_000, Fault::KillAgent(s("$P"))),
                at(23_000, Fault::CrashPostgres(s("$P"))),
                at(23_100, Fault::ResumeReceiver(s("$B"))),
                at(36_000, Fault::OperatorFailover(s("$B"))),
                at(60_000, Fault::HangSql(s("$A"), false)),
                at(60_000, Fault::StartAgent(s("$P"))),
            ],
        ),
        // Finding 5: synchronous mode on; the synchronous standby's receiver stalls,
        // the primary writes 20 MB of WAL in an open transaction (no acknowledged
        // commit in it), and the primary node dies. The synchronous standby holds
        // every acknowledged commit: it must be promoted despite the lag limit.
        "finding5" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Bind(s("S"), s("sync"))),
                at(20_000, Fault::StallReceiver(s("$S"))),
                at(20_010, Fault::BulkWal(s("$P"), 20 << 20)),
                at(22_000, Fault::KillAgent(s("$P"))),
                at(22_000, Fault::CrashPostgres(s("$P"))),
                at(22_100, Fault::ResumeReceiver(s("$S"))),
                at(50_000, Fault::ExpectWritableOtherThan(s("$P"))),
                at(55_000, Fault::StartAgent(s("$P"))),
            ],
        ),
        // Finding 9: the primary's data directory is moved away under its running
        // postmaster. The path reads as empty and postmaster.pid is gone, but the
        // postmaster goes on accepting writes (and the fence cannot find it). The agent
        // must stop it before it lets the key go; a replica then takes over.
        "finding9" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::MoveDataDir(s("$P"))),
                at(50_000, Fault::ExpectWritableOtherThan(s("$P"))),
            ],
        ),
        // Finding 9 while the store is out of reach: every HA cycle fails at the store
        // read, the fence and the isolation guard look for postmaster.pid at the path.
        // The agent's check must run before the store read (campaign seed 71000375).
        "finding9-isolated" => (
            "off",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Isolate(s("$P"))),
                at(22_000, Fault::MoveDataDir(s("$P"))),
                at(40_000, Fault::ExpectWritableOtherThan(s("$P"))),
                at(42_000, Fault::Rejoin(s("$P"))),
            ],
        ),
        // Finding 12 (the checkpointer lag): synchronous mode on; both standbys go down,
        // so the primary P runs standalone (empty synchronous_standby_names). A long
        // checkpoint starts on P; the standbys come back and P names them, but its
        // checkpointer applies the reload only when the checkpoint ends: until then
        // commits do not wait. Both WAL receivers stall, P dies. No standby may have
        // been listed in the sync key meanwhile (it would be promoted without the
        // commits acknowledged since).
        "finding12" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Bind(s("A"), s("replica"))),
                at(20_000, Fault::Bind(s("B"), s("replica2"))),
                at(20_000, Fault::FreezeAgent(s("$A"))),
                at(20_000, Fault::FreezeAgent(s("$B"))),
                at(20_000, Fault::CrashPostgres(s("$A"))),
                at(20_000, Fault::CrashPostgres(s("$B"))),
                at(25_000, Fault::SlowCheckpoint(s("$P"), true)),
                at(26_000, Fault::ResumeAgent(s("$A"))),
                at(26_000, Fault::ResumeAgent(s("$B"))),
                at(34_000, Fault::StallReceiver(s("$A"))),
                at(34_000, Fault::StallReceiver(s("$B"))),
                at(36_000, Fault::KillAgent(s("$P"))),
                at(36_000, Fault::CrashPostgres(s("$P"))),
            ],
        ),
        // S2 (found by campaigns): the primary's agent is killed and started again; while
        // the new agent waits up to ttl + 1 s for its old member key, the previous
        // agent's fence (the only protection left) freezes. The primary must still stop
        // accepting writes before its lease can expire.
        "restart" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::KillAgent(s("$P"))),
                at(21_000, Fault::StartAgent(s("$P"))),
                at(23_000, Fault::FreezeFence(s("$P"))),
                at(50_000, Fault::ResumeFence(s("$P"))),
            ],
        ),
        // S4 (found by campaigns, seed 1000411): synchronous mode on; both standbys'
        // agents freeze and their servers crash, so the primary P runs alone (sync
        // key {leader: P, members: []}). Then P's server crashes and cannot start
        // again for 8 s; P releases the key. No replica may be promoted under that
        // sync key: once its server starts again, P must take the key back.
        "s4" => (
            "on",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::Bind(s("A"), s("replica"))),
                at(20_000, Fault::Bind(s("B"), s("replica2"))),
                at(20_000, Fault::FreezeAgent(s("$A"))),
                at(20_000, Fault::FreezeAgent(s("$B"))),
                at(20_000, Fault::CrashPostgres(s("$A"))),
                at(20_000, Fault::CrashPostgres(s("$B"))),
                at(26_000, Fault::StartFails(s("$P"), true)),
                at(26_000, Fault::CrashPostgres(s("$P"))),
                at(30_000, Fault::ResumeAgent(s("$A"))),
                at(30_000, Fault::ResumeAgent(s("$B"))),
                at(34_000, Fault::StartFails(s("$P"), false)),
            ],
        ),
        // S6 (found by campaigns, seed 30018122): the primary P dies; the replica R
        // promotes and is cut off from the store the same millisecond, before anything
        // records its new timeline; its fence stops it. The other replica Q is then
        // promoted: it must not create a timeline with R's number (PostgreSQL, without
        // a WAL archive, takes "newest known + 1"), and R must rejoin Q once it is back.
        "s6" => (
            "off",
            vec![
                at(20_000, Fault::Bind(s("P"), s("primary"))),
                at(20_000, Fault::KillAgent(s("$P"))),
                at(20_000, Fault::CrashPostgres(s("$P"))),
                at(20_001, Fault::AwaitNewPrimary(s("$P"), s("R"))),
                at(20_001, Fault::Isolate(s("$R"))),
                at(50_000, Fault::StartAgent(s("$P"))),
                at(55_000, Fault::Rejoin(s("$R"))),
            ],
        ),
        _ => return None,
    };
    Some(Options {
        seed: 1,
        sync: sync.into(),
        kinds: Vec::new(),
        fault_ms: 45_000,
        schedule: Some(steps),
        ..Options::default()
    })
}

/// The interrupted bootstrap (issue 10): every agent is killed `kill_ms` after the start
/// (Ctrl-C of `pgbaton demo`) and started again 500 ms later. The cluster must converge
/// with one system identifier.
pub fn bootstrap(kill_ms: u64) -> Options {
    let mut steps = Vec::new();
    for m in ["node1", "node2", "node3"] {
        steps.push(at(kill_ms, Fault::KillAgent(s(m))));
        steps.push(at(kill_ms + 500, Fault::StartAgent(s(m))));
    }
    Options {
        seed: 1,
        sync: "off".into(),
        kinds: Vec::new(),
        faults_from_ms: 0,
        fault_ms: kill_ms + 1000,
        schedule: Some(steps),
        ..Options::default()
    }
}

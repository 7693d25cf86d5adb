//! Synchronous replication: which standbys PostgreSQL waits for, which ones the `sync`
//! key names, and in which order the two change, so that a member named in `sync` holds
//! every acknowledged commit at every moment.
//!
//! The model: `synchronous_standby_names` (`FIRST k (...)` or `ANY k (...)`, listing
//! the names `V`) makes PostgreSQL acknowledge a commit only once at least `k` members
//! of `V` flushed it. The `sync` key `(M, q)` claims that every acknowledged commit is
//! on at least `q` members of `M` (`q = |M|` in mode `on`). The claim stays true under a
//! config `(V, k)` for new commits when `k - |V \ M| >= q` ([`claim_holds_under`]);
//! old commits are on every standby that has flushed past the primary's current LSN.
//!
//! Hence the ordering ([`sync_step`]):
//! - **adding**: first change `synchronous_standby_names`; write the key only once the
//!   new setting is in effect (`SHOW`, and `pg_stat_replication.sync_state` is
//!   `sync`/`quorum`) and the standby has flushed past the primary's current LSN;
//! - **removing**: first weaken the key (so that it holds under both the old and the
//!   new setting), then change `synchronous_standby_names`, in one ordered plan.

use crate::failover::Candidate;
use crate::model::{SyncState, SynchronousMode};
use crate::observation::{Observation, StandbyObs};
use crate::plan::Action;
use crate::Lsn;
use std::collections::BTreeSet;
use std::fmt;

#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod props;

/// A value of `synchronous_standby_names`, as far as pgbaton understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ssn {
    /// Empty: commits are acknowledged without any standby.
    Standalone,
    /// `*` (or anything pgbaton cannot parse): some standby, no matter which.
    AnyStandby,
    /// `FIRST k (names)` or `ANY k (names)`: each commit is on at least `k` of `names`.
    List {
        /// FIRST (priority) or ANY (quorum).
        first: bool,
        /// How many of `names` must flush a commit.
        k: usize,
        /// The standbys named, sorted.
        names: Vec<String>,
    },
}

impl Ssn {
    /// Parse `SHOW synchronous_standby_names`. Unknown syntax counts as
    /// [`Ssn::AnyStandby`]: nobody can then be claimed synchronous.
    pub fn parse(text: &str) -> Ssn {
        let t = text.trim();
        if t.is_empty() {
            return Ssn::Standalone;
        }
        let (first, rest) = match t.split_once(char::is_whitespace) {
            Some((w, r)) if w.eq_ignore_ascii_case("first") => (true, r.trim()),
            Some((w, r)) if w.eq_ignore_ascii_case("any") => (false, r.trim()),
            _ => (true, t),
        };
        let (k, list) = match rest.find('(') {
            Some(open) => {
                let k = rest[..open].trim().parse::<usize>().ok();
                let Some(close) = rest.rfind(')') else {
                    return Ssn::AnyStandby;
                };
                match k {
                    Some(k) if close > open => (k, &rest[open + 1..close]),
                    _ => return Ssn::AnyStandby,
                }
            }
            None => (1, rest),
        };
        let mut names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().trim_matches('"').replace("\"\"", "\""))
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n == "*") || names.is_empty() || k == 0 {
            return Ssn::AnyStandby;
        }
        names.sort();
        names.dedup();
        Ssn::List { first, k, names }
    }

    /// The standbys named (empty unless a list).
    pub fn names(&self) -> &[String] {
        match self {
            Ssn::List { names, .. } => names,
            _ => &[],
        }
    }
}

impl fmt::Display for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ssn::Standalone => Ok(()),
            Ssn::AnyStandby => f.write_str("*"),
            Ssn::List { first, k, names } => {
                let quoted: Vec<String> = names
                    .iter()
                    .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                    .collect();
                let kw = if *first { "FIRST" } else { "ANY" };
                write!(f, "{kw} {k} ({})", quoted.join(", "))
            }
        }
    }
}

/// Whether the claim of `key` (every acknowledged commit is on `key.holders()` of its
/// members) stays true for commits acknowledged under `ssn`.
pub fn claim_holds_under(key: &SyncState, ssn: &Ssn) -> bool {
    let q = key.holders();
    if q == 0 {
        return true;
    }
    match ssn {
        Ssn::List { k, names, .. } => {
            let outside = names.iter().filter(|n| !key.lists(n)).count();
            *k as i64 - outside as i64 >= q as i64
        }
        Ssn::Standalone | Ssn::AnyStandby => false,
    }
}

/// What the primary's sync management sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncInput {
    /// The primary (this member).
    pub me: String,
    /// `synchronous_mode`.
    pub mode: SynchronousMode,
    /// `synchronous_node_count` (at least 1 is used).
    pub node_count: u32,
    /// `synchronous_mode_strict`.
    pub strict: bool,
    /// Members that may be synchronous standbys: registered, not tagged `nosync`.
    pub allowed: BTreeSet<String>,
    /// The standbys connected now.
    pub standbys: Vec<StandbyObs>,
    /// The primary's current WAL position, read before `standbys`.
    pub current_lsn: Option<Lsn>,
    /// `synchronous_standby_names` in effect; `None` when it could not be read.
    pub in_effect: Option<String>,
    /// The checkpointer may not have applied `in_effect` yet: commits may still be
    /// acknowledged without waiting, so no standby is added to the key meanwhile.
    pub pending: bool,
    /// The `sync` key and its revision.
    pub key: Option<(SyncState, i64)>,
}

impl SyncInput {
    /// Gather the input from a primary's observation.
    pub fn from_observation(obs: &Observation) -> SyncInput {
        let c = &obs.cluster.config;
        SyncInput {
            me: obs.me.clone(),
            mode: c.synchronous_mode,
            node_count: c.synchronous_node_count,
            strict: c.synchronous_mode_strict,
            allowed: obs
                .cluster
                .members
                .values()
                .filter(|m| !m.tags.nosync && m.name != obs.me)
                .map(|m| m.name.clone())
                .collect(),
            standbys: obs.local.standbys.clone(),
            current_lsn: obs.local.lsn,
            in_effect: obs.local.synchronous_standby_names.clone(),
            pending: obs.local.sync_names_pending,
            key: obs.cluster.sync.clone(),
        }
    }
}

/// The next step: actions in order (the key before PostgreSQL when removing), and a
/// note for the primary's reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncStep {
    /// Actions, to run in order; the first failure stops the rest.
    pub actions: Vec<Action>,
    /// What is going on, for people; empty when synchronous replication is off and idle.
    pub note: String,
}

fn empty_claim(me: &str, mode: SynchronousMode) -> SyncState {
    SyncState {
        leader: me.to_string(),
        members: Vec::new(),
        quorum: (mode == SynchronousMode::Quorum).then_some(0),
    }
}

/// The primary's next step of synchronous replication management (see the module doc
/// for the ordering). Pure.
pub fn sync_step(i: &SyncInput) -> SyncStep {
    let Some(text) = &i.in_effect else {
        return SyncStep {
            actions: Vec::new(),
            note: if i.mode == SynchronousMode::Off {
                String::new()
            } else {
                "synchronous: cannot read synchronous_standby_names; waiting".into()
            },
        };
    };
    let cur = Ssn::parse(text);
    let expect = i.key.as_ref().map(|(_, r)| *r);
    let (claim, key_mine) = match &i.key {
        Some((s, _)) if s.leader == i.me => (s.clone(), true),
        _ => (empty_claim(&i.me, i.mode), false),
    };
    // The key must name this primary whenever it matters: in sync mode, or when a
    // stale key still lists members.
    let key_stale = match &i.key {
        None => i.mode != SynchronousMode::Off,
        Some((s, _)) => !key_mine && (i.mode != SynchronousMode::Off || !s.members.is_empty()),
    };
    let desired = desired_ssn(i, &claim, &cur);
    let write = |state: SyncState| Action::WriteSync { state, expect };
    let mut actions = Vec::new();
    if desired != cur {
        let mut next = if claim_holds_under(&claim, &desired) {
            claim.clone()
        } else {
            weaken(&claim, &desired, i.mode)
        };
        if !claim_holds_under(&next, &desired) {
            next = empty_claim(&i.me, i.mode);
        }
        if next != claim || key_stale {
            actions.push(write(next.clone()));
        }
        actions.push(Action::SetSynchronousStandbyNames(desired.to_string()));
        let removed: Vec<&String> = claim.members.iter().filter(|m| !next.lists(m)).collect();
        let mut note =
            format!("synchronous: setting synchronous_standby_names to '{desired}' (was '{cur}')");
        if !removed.is_empty() {
            note.push_str(&format!(
                "; first removing {} from the sync key",
                join(removed.iter().map(|s| s.as_str()))
            ));
        }
        return SyncStep { actions, note };
    }
    // The desired setting is in effect: publish what has caught up, once commits wait
    // for it (the checkpointer applied it).
    let caught_up: BTreeSet<&str> = match (&cur, i.current_lsn) {
        (Ssn::List { names, .. }, Some(lsn)) if !i.pending => i
            .standbys
            .iter()
            .filter(|s| {
                s.streaming
                    && names.contains(&s.name)
                    && matches!(s.sync_state.as_str(), "sync" | "quorum")
                    && s.flush_lsn.is_some_and(|f| f >= lsn)
            })
            .map(|s| s.name.as_str())
            .collect(),
        _ => BTreeSet::new(),
    };
    let target = match (&cur, i.mode) {
        (Ssn::List { names, .. }, SynchronousMode::On) => {
            let mut m: BTreeSet<&str> = caught_up.clone();
            if claim.quorum.is_none() {
                m.extend(
                    claim
                        .members
                        .iter()
                        .filter(|x| names.contains(x))
                        .map(String::as_str),
                );
            }
            SyncState {
                leader: i.me.clone(),
                members: m.into_iter().map(str::to_string).collect(),
                quorum: None,
            }
        }
        (Ssn::List { k, names, .. }, SynchronousMode::Quorum) => {
            let full = SyncState {
                leader: i.me.clone(),
                members: names.clone(),
                quorum: Some(*k as u32),
            };
            if caught_up.len() >= *k {
                full
            } else {
                claim.clone()
            }
        }
        _ => empty_claim(&i.me, i.mode),
    };
    let target = if claim_holds_under(&target, &cur) {
        target
    } else {
        claim.clone()
    };
    if target != claim || key_stale {
        actions.push(write(target.clone()));
    }
    let note = match i.mode {
        SynchronousMode::Off => String::new(),
        _ => {
            let waiting: Vec<&str> = cur
                .names()
                .iter()
                .map(String::as_str)
                .filter(|n| !target.lists(n))
                .collect();
            let mut n = match (&cur, target.members.is_empty()) {
                (Ssn::Standalone, _) => {
                    "synchronous: no eligible standby, running standalone".to_string()
                }
                (Ssn::AnyStandby, _) => {
                    "synchronous (strict): no eligible standby, commits wait for any standby"
                        .to_string()
                }
                (_, true) => "synchronous: no synchronous standby yet".to_string(),
                (_, false) => format!(
                    "synchronous standbys: {}{}",
                    join(target.members.iter().map(String::as_str)),
                    target
                        .quorum
                        .map(|q| format!(" (each commit on {q})"))
                        .unwrap_or_default()
                ),
            };
            if !waiting.is_empty() && matches!(cur, Ssn::List { .. }) {
                if i.pending {
                    n.push_str(&format!(
                        "; waiting for the checkpointer to apply the setting before listing {}",
                        waiting.join(", ")
                    ));
                } else {
                    n.push_str(&format!("; waiting for {} to catch up", waiting.join(", ")));
                }
            }
            n
        }
    };
    SyncStep { actions, note }
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// The `synchronous_standby_names` the primary wants now.
fn desired_ssn(i: &SyncInput, claim: &SyncState, cur: &Ssn) -> Ssn {
    if i.mode == SynchronousMode::Off {
        return Ssn::Standalone;
    }
    let mut eligible: Vec<&StandbyObs> = i
        .standbys
        .iter()
        .filter(|s| s.streaming && s.name != i.me && i.allowed.contains(&s.name))
        .collect();
    // Current sync standbys first, then those PostgreSQL already waits for, then the
    // least lag, then the name.
    eligible.sort_by(|a, b| {
        let rank = |s: &StandbyObs| {
            (
                !claim.lists(&s.name),
                !cur.names().contains(&s.name),
                std::cmp::Reverse(s.flush_lsn),
            )
        };
        rank(a).cmp(&rank(b)).then(a.name.cmp(&b.name))
    });
    let mut names: Vec<String> = eligible.iter().map(|s| s.name.clone()).collect();
    names.dedup();
    let n = i.node_count.max(1) as usize;
    if i.mode == SynchronousMode::On {
        names.truncate(n);
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return if i.strict {
            Ssn::AnyStandby
        } else {
            Ssn::Standalone
        };
    }
    match i.mode {
        SynchronousMode::On => Ssn::List {
            first: true,
            k: names.len(),
            names,
        },
        _ => Ssn::List {
            first: false,
            k: n.min(names.len()),
            names,
        },
    }
}

/// A claim that holds for every commit acknowledged so far (a weakening of `claim`)
/// and for those acknowledged under `next`.
fn weaken(claim: &SyncState, next: &Ssn, mode: SynchronousMode) -> SyncState {
    let Ssn::List { k, names, .. } = next else {
        return empty_claim(&claim.leader, mode);
    };
    if claim.quorum.is_none() && mode == SynchronousMode::On {
        // Each listed member holds everything: keep those still listed.
        return SyncState {
            leader: claim.leader.clone(),
            members: claim
                .members
                .iter()
                .filter(|m| names.contains(m))
                .cloned()
                .collect(),
            quorum: None,
        };
    }
    let outside = names.iter().filter(|n| !claim.lists(n)).count() as i64;
    let q = *k as i64 - outside;
    if q >= 1 && (q as usize) <= claim.holders() {
        SyncState {
            leader: claim.leader.clone(),
            members: claim.members.clone(),
            quorum: Some(q as u32),
        }
    } else {
        empty_claim(&claim.leader, mode)
    }
}

/// What `synchronous_standby_names` a primary starts with (before its first cycle can
/// manage it): what the `sync` key already promises, else `*` in strict mode, else
/// empty.
pub fn names_at_start(obs: &Observation) -> String {
    let c = &obs.cluster.config;
    if c.synchronous_mode == SynchronousMode::Off {
        return String::new();
    }
    if let Some((s, _)) = &obs.cluster.sync {
        if s.leader == obs.me && s.holders() > 0 {
            let mut names = s.members.clone();
            names.sort();
            return Ssn::List {
                first: s.quorum.is_none(),
                k: s.holders(),
                names,
            }
            .to_string();
        }
    }
    if c.synchronous_mode_strict {
        "*".into()
    } else {
        String::new()
    }
}

/// In synchronous mode, which of the `ranking` (best first) may be promoted after the
/// primary `last_primary` was lost, according to the `sync` key.
///
/// - mode `on`: the members listed (each holds every acknowledged commit);
/// - mode `quorum` with `q` of the `N` listed: at least `N - q + 1` of them must have
///   reported (so at least one of them holds each acknowledged commit), and only the
///   most advanced of those is eligible (WAL is a prefix: it holds what they hold).
///
/// `Err` says why nobody is.
pub fn sync_candidates(
    key: Option<&SyncState>,
    last_primary: Option<&str>,
    ranking: &[Candidate],
) -> Result<Vec<Candidate>, String> {
    const NONE: &str = "no failover: synchronous mode and no synchronous standby is running";
    let Some(key) = key else {
        return Err(format!("{NONE} (the sync key is missing)"));
    };
    if let Some(p) = last_primary {
        if key.leader != p {
            return Err(format!(
                "{NONE} (the sync key belongs to {}, not to the last primary {p})",
                key.leader
            ));
        }
    }
    if key.holders() == 0 {
        return Err(NONE.to_string());
    }
    let listed: Vec<Candidate> = ranking
        .iter()
        .filter(|c| key.lists(&c.name))
        .cloned()
        .collect();
    let need = key.members.len() - key.holders() + 1;
    if listed.len() < need || listed.is_empty() {
        return Err(if key.quorum.is_none() {
            format!(
                "{NONE} (synchronous: {}; none of them can be promoted)",
                key.members.join(", ")
            )
        } else {
            format!(
                "{NONE} (quorum: {need} of {} must report, {} did)",
                key.members.join(", "),
                listed.len()
            )
        });
    }
    if key.quorum.is_none() {
        return Ok(listed);
    }
    let best = listed[0].lsn;
    Ok(listed.into_iter().filter(|c| c.lsn == best).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(name: &str, flush: u64, state: &str) -> StandbyObs {
        StandbyObs {
            name: name.into(),
            streaming: true,
            flush_lsn: Some(Lsn(flush)),
            sync_state: state.into(),
        }
    }

    fn input(mode: SynchronousMode, ssn: &str, key: Option<SyncState>) -> SyncInput {
        SyncInput {
            me: "p".into(),
            mode,
            node_count: 1,
            strict: false,
            allowed: ["a", "b"].iter().map(|s| s.to_string()).collect(),
            standbys: vec![standby("a", 100, "async"), standby("b", 90, "async")],
            current_lsn: Some(Lsn(100)),
            in_effect: Some(ssn.into()),
            pending: false,
            key: key.map(|k| (k, 7)),
        }
    }

    fn key(members: &[&str], quorum: Option<u32>) -> SyncState {
        SyncState {
            leader: "p".into(),
            members: members.iter().map(|s| s.to_string()).collect(),
            quorum,
        }
    }

    #[test]
    fn parse_and_render() {
        let s = Ssn::parse("FIRST 1 (\"b\", \"a\")");
        assert_eq!(s.to_string(), "FIRST 1 (\"a\", \"b\")");
        assert_eq!(Ssn::parse("ANY 2 (a,b,c)").names().len(), 3);
        assert_eq!(Ssn::parse(""), Ssn::Standalone);
        assert_eq!(Ssn::parse("*"), Ssn::AnyStandby);
        assert_eq!(
            Ssn::parse("a, b"),
            Ssn::List {
                first: true,
                k: 1,
                names: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn adding_sets_postgres_first_and_the_key_after_catch_up() {
        let step = sync_step(&input(SynchronousMode::On, "", Some(key(&[], None))));
        assert_eq!(
            step.actions,
            vec![Action::SetSynchronousStandbyNames("FIRST 1 (\"a\")".into())]
        );
        let mut i = input(SynchronousMode::On, "FIRST 1 (\"a\")", Some(key(&[], None)));
        i.standbys[0].sync_state = "sync".into();
        i.standbys[0].flush_lsn = Some(Lsn(99));
        assert!(sync_step(&i).actions.is_empty(), "not caught up yet");
        i.standbys[0].flush_lsn = Some(Lsn(100));
        assert_eq!(
            sync_step(&i).actions,
            vec![Action::WriteSync {
                state: key(&["a"], None),
                expect: Some(7)
            }]
        );
    }

    /// Safety review finding 12: commits wait only once the checkpointer applied the
    /// setting; until then a caught-up standby is not listed, and a listed one stays.
    #[test]
    fn no_standby_is_listed_before_the_checkpointer_applied_the_setting() {
        let mut i = input(SynchronousMode::On, "FIRST 1 (\"a\")", Some(key(&[], None)));
        i.standbys[0].sync_state = "sync".into();
        i.standbys[0].flush_lsn = Some(Lsn(100));
        i.pending = true;
        let step = sync_step(&i);
        assert!(step.actions.is_empty(), "{:?}", step.actions);
        assert!(step.note.contains("checkpointer"), "{}", step.note);
        i.key = Some((key(&["a"], None), 7));
        assert!(
            sync_step(&i).actions.is_empty(),
            "a listed standby stays listed"
        );
        let mut q = input(
            SynchronousMode::Quorum,
            "ANY 1 (\"a\", \"b\")",
            Some(key(&[], Some(0))),
        );
        q.standbys[0].sync_state = "quorum".into();
        q.standbys[0].flush_lsn = Some(Lsn(100));
        q.pending = true;
        assert!(sync_step(&q).actions.is_empty());
        q.pending = false;
        assert!(!sync_step(&q).actions.is_empty());
    }

    #[test]
    fn removing_clears_the_key_first() {
        let mut i = input(
            SynchronousMode::On,
            "FIRST 1 (\"a\")",
            Some(key(&["a"], None)),
        );
        i.standbys.remove(0);
        let step = sync_step(&i);
        assert_eq!(
            step.actions,
            vec![
                Action::WriteSync {
                    state: key(&[], None),
                    expect: Some(7)
                },
                Action::SetSynchronousStandbyNames("FIRST 1 (\"b\")".into()),
            ]
        );
    }

    #[test]
    fn strict_waits_for_any_standby_and_non_strict_goes_standalone() {
        let mut i = input(
            SynchronousMode::On,
            "FIRST 1 (\"a\")",
            Some(key(&["a"], None)),
        );
        i.standbys.clear();
        assert_eq!(
            sync_step(&i).actions.last(),
            Some(&Action::SetSynchronousStandbyNames(String::new()))
        );
        i.strict = true;
        assert_eq!(
            sync_step(&i).actions.last(),
            Some(&Action::SetSynchronousStandbyNames("*".into()))
        );
    }

    #[test]
    fn quorum_lists_every_eligible_standby() {
        let step = sync_step(&input(SynchronousMode::Quorum, "", None));
        assert_eq!(
            step.actions,
            vec![
                Action::WriteSync {
                    state: key(&[], Some(0)),
                    expect: None
                },
                Action::SetSynchronousStandbyNames("ANY 1 (\"a\", \"b\")".into()),
            ]
        );
    }

    #[test]
    fn candidates_in_quorum_mode_need_enough_reports() {
        let c = |n: &str, l: u64| Candidate {
            name: n.into(),
            lsn: Lsn(l),
            priority: 0,
        };
        let k = key(&["a", "b"], Some(1));
        assert!(sync_candidates(Some(&k), Some("p"), &[c("a", 10)]).is_err());
        let ok = sync_candidates(Some(&k), Some("p"), &[c("b", 12), c("a", 10)]).unwrap();
        assert_eq!(ok, vec![c("b", 12)]);
        let on = key(&["a"], None);
        assert_eq!(
            sync_candidates(Some(&on), Some("p"), &[c("b", 12), c("a", 10)]).unwrap(),
            vec![c("a", 10)]
        );
        let err = sync_candidates(Some(&key(&[], None)), Some("p"), &[c("a", 1)]).unwrap_err();
        assert!(err.contains("no synchronous standby is running"), "{err}");
    }
}

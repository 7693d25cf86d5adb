//! Property tests of the leaderless election: generated clusters of 2–5 members, with
//! `decide()` run from every live member's point of view on the same store snapshot.
//!
//! Checked: never two winners in one grace window; never an ineligible winner; the
//! best candidate does take over; a primary without the key stops; every plan without
//! actions has a reason; `decide` is deterministic.

mod support;

use pgbaton_core::model::{MemberStatus, PgState, PrimaryStatus, Role, Tags};
use pgbaton_core::{decide, Action, DataDir, Local, Lsn, Observation, Plan};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
/// The last position the (dead) primary `p` published.
const TOP: u64 = 0x1_0000_0000;

/// What a generated member is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Streaming,
    InRecovery,
    StoppedStandby,
    StoppedFormerPrimary,
    RunningPrimary,
    Empty,
}

#[derive(Debug, Clone)]
struct GenMember {
    kind: Kind,
    /// Bytes its received position is behind [`TOP`].
    lag: u64,
    /// Bytes its replay is behind its received position.
    replay_behind: u64,
    nofailover: bool,
    priority: i32,
    /// Reported after the leader vanished.
    fresh: bool,
    /// How far from the edge of the freshness window its report is (ms).
    skew: u64,
    /// Its agent runs (so it decides); otherwise its key is left over or gone.
    alive: bool,
    key: bool,
    /// Its own wait since it saw the leader vanish (for the per-member variant).
    own_wait: u64,
}

#[derive(Debug, Clone)]
struct GenCluster {
    members: Vec<GenMember>,
    max_lag: u64,
    grace_s: u64,
    waited: u64,
    with_status: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Streaming),
        3 => Just(Kind::InRecovery),
        1 => Just(Kind::StoppedStandby),
        1 => Just(Kind::StoppedFormerPrimary),
        1 => Just(Kind::RunningPrimary),
        1 => Just(Kind::Empty),
    ]
}

fn lag() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        1 => Just(1u64),
        1 => Just(MB / 2),
        1 => Just(MB),
        1 => Just(MB + 1),
        1 => Just(40 * MB),
        2 => 0u64..(2 * MB),
    ]
}

fn member() -> impl Strategy<Value = GenMember> {
    (
        kind(),
        lag(),
        prop_oneof![Just(0u64), Just(100u64), 0u64..5000],
        prop::bool::weighted(0.2),
        0i32..3,
        prop::bool::weighted(0.8),
        0u64..3000,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.5),
        0u64..10_000,
    )
        .prop_map(
            |(
                kind,
                lag,
                replay_behind,
                nofailover,
                priority,
                fresh,
                skew,
                alive,
                key,
                own_wait,
            )| {
                GenMember {
                    kind,
                    lag,
                    replay_behind,
                    nofailover,
                    priority,
                    fresh,
                    skew,
                    alive,
                    key,
                    own_wait,
                }
            },
        )
}

fn cluster() -> impl Strategy<Value = GenCluster> {
    (
        prop::collection::vec(member(), 2..=5),
        prop_oneof![Just(0u64), Just(MB), Just(16 * MB)],
        1u64..=3,
        prop_oneof![0u64..500, 0u64..10_000],
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(members, max_lag, grace_s, waited, with_status)| GenCluster {
                members,
                max_lag,
                grace_s,
                waited,
                with_status,
            },
        )
}

impl GenMember {
    fn received(&self) -> u64 {
        TOP - self.lag
    }
    fn replayed(&self) -> u64 {
        self.received().saturating_sub(self.replay_behind)
    }
    fn tags(&self) -> Tags {
        Tags {
            nofailover: self.nofailover,
            failover_priority: self.priority,
            ..Tags::default()
        }
    }

    /// Its member key, reported `since` + or − the skew.
    fn status(&self, name: &str, since: u64) -> MemberStatus {
        let base = replica(name, 0);
        let updated_ms = if self.fresh {
            (since + self.skew).min(NOW)
        } else {
            since - 1 - self.skew
        };
        let (role, state, positions) = match self.kind {
            Kind::Streaming => (Role::Replica, PgState::Streaming, true),
            Kind::InRecovery => (Role::Replica, PgState::InRecovery, true),
            Kind::StoppedStandby | Kind::Empty => (Role::Replica, PgState::Stopped, false),
            Kind::StoppedFormerPrimary => (Role::Unknown, PgState::Stopped, false),
            Kind::RunningPrimary => (Role::Primary, PgState::Running, false),
        };
        MemberStatus {
            role,
            state,
            lsn: match self.kind {
                Kind::RunningPrimary => Some(Lsn(self.received())),
                _ if positions => Some(Lsn(self.replayed())),
                _ => None,
            },
            received_lsn: positions.then_some(Lsn(self.received())),
            replayed_lsn: positions.then_some(Lsn(self.replayed())),
            lag_bytes: positions.then_some(self.lag),
            tags: self.tags(),
            updated_ms,
            ..base
        }
    }

    /// Its own PostgreSQL, consistent with its member key.
    fn local(&self) -> Local {
        let running_standby = |streaming| Local {
            streaming,
            lsn: Some(Lsn(self.replayed())),
            received_lsn: Some(Lsn(self.received())),
            ..local_replica("host-p:5432", 0)
        };
        match self.kind {
            Kind::Streaming => running_standby(true),
            Kind::InRecovery => running_standby(false),
            Kind::StoppedStandby => {
                local_stopped(DataDir::Standby, Some(control(true, self.replayed(), 1)))
            }
            Kind::StoppedFormerPrimary => {
                local_stopped(DataDir::Primary, Some(control(false, self.received(), 1)))
            }
            Kind::RunningPrimary => local_primary(self.received()),
            Kind::Empty => Local::default(),
        }
    }
}

/// The shared store snapshot and every live member's observation.
struct World {
    view_members: BTreeMap<String, MemberStatus>,
    status: Option<PrimaryStatus>,
    max_lag: u64,
    grace_ms: u64,
    /// (name, observation) for each live member.
    povs: Vec<(String, Observation)>,
}

/// `since_of(i)` is when member `i` saw the leader vanish; `fresh_since` is the time
/// member reports are generated around.
fn world(g: &GenCluster, fresh_since: u64, since_of: impl Fn(usize) -> u64) -> World {
    let mut base = Obs::new("x")
        .config(|c| {
            c.maximum_lag_on_failover = g.max_lag;
            c.failover_grace = g.grace_s;
        })
        .build();
    let status = g.with_status.then(|| PrimaryStatus {
        primary: "p".into(),
        lsn: Lsn(TOP),
        timeline: 1,
        updated_ms: fresh_since - 1,
        registry: BTreeMap::new(),
        hosts: BTreeMap::new(),
    });
    base.cluster.status = status.clone();
    // The bootstrap owner is the dead primary too: no live member may take the key back.
    if let Some((init, _)) = base.cluster.initialize.as_mut() {
        init.owner = "p".into();
    }
    for (i, m) in g.members.iter().enumerate() {
        if m.alive || m.key {
            let s = m.status(NAMES[i], fresh_since);
            base.cluster.members.insert(NAMES[i].to_string(), s);
        }
    }
    let povs = g
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.alive)
        .map(|(i, m)| {
            let mut obs = base.clone();
            obs.me = NAMES[i].to_string();
            obs.tags = m.tags();
            obs.my_lease = Some(i as i64 + 1);
            obs.local = m.local();
            obs.leaderless_since_ms = Some(since_of(i));
            (NAMES[i].to_string(), obs)
        })
        .collect();
    World {
        view_members: base.cluster.members,
        status,
        max_lag: g.max_lag,
        grace_ms: g.grace_s * 1000,
        povs,
    }
}

/// The rule of issue 5, written independently of `failover.rs`: eligible members
/// (ignoring freshness) with their position, best first.
fn oracle_ranking(w: &World) -> Vec<(String, u64, i32, u64)> {
    let mut e: Vec<(String, u64, i32, u64)> = w
        .view_members
        .values()
        .filter(|m| m.role == Role::Replica)
        .filter(|m| matches!(m.state, PgState::Streaming | PgState::InRecovery))
        .filter(|m| !m.tags.nofailover)
        .filter_map(|m| {
            let pos = [m.received_lsn, m.replayed_lsn, m.lsn]
                .into_iter()
                .flatten()
                .max()?;
            let within = w
                .status
                .as_ref()
                .is_none_or(|s| s.lsn.0.saturating_sub(pos.0) <= w.max_lag);
            within.then(|| {
                (
                    m.name.clone(),
                    pos.0,
                    m.tags.failover_priority,
                    m.updated_ms,
                )
            })
        })
        .collect();
    e.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    e
}

fn takes_key(p: &Plan) -> bool {
    p.actions.contains(&Action::AcquireLeader)
}

fn promotes(p: &Plan) -> bool {
    p.actions
        .iter()
        .any(|a| matches!(a, Action::Promote { .. }))
}

/// Checks shared by both variants: reasons, determinism, winners' plans, and that a
/// writable PostgreSQL without the key is stopped.
fn common_checks(w: &World, plans: &[(String, Plan)]) -> Result<(), TestCaseError> {
    for ((name, obs), (_, plan)) in w.povs.iter().zip(plans) {
        prop_assert!(
            !plan.reason.trim().is_empty(),
            "{name}: a plan without a reason: {plan:?}"
        );
        prop_assert_eq!(&decide(obs), plan, "{}: decide is not deterministic", name);
        prop_assert_eq!(&decide(&obs.clone()), plan);
        if takes_key(plan) {
            // The winner names itself in the status key before promoting.
            prop_assert!(
                matches!(plan.actions.get(1), Some(Action::PublishStatus(s)) if s.primary == *name),
                "{}: no status claim before the promotion: {:?}",
                name,
                plan
            );
            let mut actions = plan.actions.clone();
            actions.remove(1);
            prop_assert_eq!(
                actions,
                vec![
                    Action::AcquireLeader,
                    Action::Promote {
                        reason: match &w.status {
                            Some(s) => format!("failover: the primary {} is gone", s.primary),
                            None => "failover: no primary".to_string(),
                        },
                        old_primary: w.status.as_ref().map(|s| s.primary.clone()),
                    }
                ],
                "{}: unexpected winner plan",
                name
            );
        }
        prop_assert!(
            takes_key(plan) == promotes(plan),
            "{name}: promotes without the key or takes it without promoting: {plan:?}"
        );
        if obs.local.running && obs.local.in_recovery == Some(false) {
            prop_assert_eq!(
                plan.actions.first(),
                Some(&Action::StopPostgres),
                "{}: a writable PostgreSQL that is not the last primary must stop",
                name
            );
        }
    }
    Ok(())
}

fn run_all(w: &World) -> Vec<(String, Plan)> {
    w.povs.iter().map(|(n, o)| (n.clone(), decide(o))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// All members saw the leader vanish at the same moment.
    #[test]
    fn shared_window_election(g in cluster()) {
        let since = NOW - g.waited;
        let w = world(&g, since, |_| since);
        let plans = run_all(&w);
        common_checks(&w, &plans)?;

        let ranking = oracle_ranking(&w);
        let fresh: Vec<_> = ranking.iter().filter(|c| c.3 >= since).collect();
        let pending = ranking.iter().any(|c| c.3 < since);
        let winners: Vec<&String> = plans.iter().filter(|(_, p)| takes_key(p)).map(|(n, _)| n).collect();
        let allowed = (g.waited / w.grace_ms + 1) as usize;

        // Never two winners in one grace window; later, one more per grace period.
        prop_assert!(winners.len() <= allowed, "winners {winners:?}, at most {allowed} after {} ms", g.waited);
        if g.waited < w.grace_ms {
            prop_assert!(winners.len() <= 1, "two winners in the first grace window: {winners:?}");
            if pending {
                prop_assert!(winners.is_empty(), "a winner while members are still expected to report: {winners:?}");
            }
        }
        // Never an ineligible winner, and never one ranked too low for the time waited.
        for name in &winners {
            let rank = fresh.iter().position(|c| &c.0 == *name);
            prop_assert!(rank.is_some(), "{name} won but is not a fresh eligible member; eligible: {fresh:?}");
            let rank = rank.unwrap_or(usize::MAX);
            prop_assert!(rank < allowed, "{name} (rank {rank}) acted after only {} ms", g.waited);
            if g.waited < w.grace_ms {
                prop_assert_eq!(rank, 0, "{} is not the best candidate: {:?}", name, fresh);
            }
        }
        // Someone does win: the best fresh candidate, when it is alive and no one is
        // still expected to report.
        if let Some(best) = fresh.first() {
            let alive = w.povs.iter().any(|(n, _)| n == &best.0);
            if alive && (!pending || g.waited >= w.grace_ms) {
                prop_assert!(winners.contains(&&best.0), "the best candidate {} did not take over; plans {plans:?}", best.0);
            }
        }
    }

    /// Each member saw the leader vanish at its own moment, all within the first grace
    /// window: still at most one winner, and it is the best candidate.
    #[test]
    fn staggered_first_window(g in cluster()) {
        let grace_ms = g.grace_s * 1000;
        let since_of = |i: usize| NOW - g.members[i].own_wait % grace_ms;
        let fresh_since = NOW - grace_ms + 1;
        let w = world(&g, fresh_since, since_of);
        let plans = run_all(&w);
        common_checks(&w, &plans)?;

        let winners: Vec<&String> = plans.iter().filter(|(_, p)| takes_key(p)).map(|(n, _)| n).collect();
        prop_assert!(winners.len() <= 1, "two winners: {winners:?}");
        let ranking = oracle_ranking(&w);
        if let Some(name) = winners.first() {
            prop_assert_eq!(&ranking.first().map(|c| &c.0), &Some(*name), "the winner is not the best candidate");
            let i = NAMES.iter().position(|n| n == name).unwrap_or(0);
            let my_since = since_of(i);
            prop_assert!(ranking.iter().all(|c| c.3 >= my_since), "{name} won while an eligible member had not reported since it saw the leader vanish");
        }
    }
}

/// Every member of a three-member cluster decides at once; the best replica wins alone.
#[test]
fn three_members_one_winner() {
    let g = GenCluster {
        members: vec![
            GenMember {
                kind: Kind::Streaming,
                lag: 10,
                replay_behind: 0,
                nofailover: false,
                priority: 0,
                fresh: true,
                skew: 0,
                alive: true,
                key: true,
                own_wait: 0,
            };
            3
        ],
        max_lag: MB,
        grace_s: 2,
        waited: 100,
        with_status: true,
    };
    let since = NOW - 100;
    let w = world(&g, since, |_| since);
    let winners: Vec<String> = run_all(&w)
        .into_iter()
        .filter(|(_, p)| takes_key(p))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners, vec!["a".to_string()]);
}

/// Guards against vacuous properties: the generator must produce clusters with one
/// winner, with none, with a second candidate trying after a grace period, and with
/// members still awaited.
#[test]
fn generator_covers_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = cluster();
    let (mut none, mut one, mut several, mut awaiting) = (0, 0, 0, 0);
    for _ in 0..256 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let g = tree.current();
        let since = NOW - g.waited;
        let w = world(&g, since, |_| since);
        let plans = run_all(&w);
        match plans.iter().filter(|(_, p)| takes_key(p)).count() {
            0 => none += 1,
            1 => one += 1,
            _ => several += 1,
        }
        if plans
            .iter()
            .any(|(_, p)| p.reason.contains("to report their WAL positions"))
        {
            awaiting += 1;
        }
    }
    assert!(
        none >= 10 && one >= 50 && several >= 3 && awaiting >= 5,
        "none {none}, one {one}, several {several}, awaiting {awaiting}"
    );
}

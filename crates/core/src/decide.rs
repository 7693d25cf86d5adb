//! The HA rules: one pure function from an [`Observation`] to a [`Plan`].
//!
//! Read top to bottom, this file is the whole policy of a member:
//! 1. set aside a data directory that a lost bootstrap made (it never served as the
//!    cluster); refuse anything else that could mix histories (foreign files, another
//!    system id);
//! 2. no cluster in the store: race to create it (or adopt the existing primary);
//! 3. a claim without a system identifier: the winner bootstraps, the others wait;
//! 4. a running cluster: the leader does primary duties (and hands over on a
//!    switchover), the others clone, follow, or rejoin after checking their history;
//! 5. no leader: a switchover or operator failover names the next primary; otherwise
//!    the ranked election of [`crate::failover`] picks it, unless the cluster is paused.

use crate::failover::{elect, exclude_older_timelines, newest_timeline};
use crate::model::{
    MemberStatus, PgState, PrimaryStatus, RequestKind, Role, SwitchoverPhase, SwitchoverRequest,
    SyncState, SynchronousMode,
};
use crate::observation::{DataDir, Observation};
use crate::plan::{Action, Plan};
use crate::registry::slot_work;
use crate::rejoin::{must_rewind, WalEnd};
use crate::slots::slot_name;
use crate::sync::{names_at_start, sync_candidates, sync_step, SyncInput};
use crate::takeback::may_take_back;
use std::collections::BTreeSet;

/// Decide what this member does now. Pure: same observation, same plan.
pub fn decide(obs: &Observation) -> Plan {
    if let Some(plan) = lost_bootstrap(obs) {
        return plan;
    }
    if obs.local.data == DataDir::Foreign {
        return Plan::one(
            Action::Refuse(
                "data_dir holds files but is not a PostgreSQL data directory; pgbaton will \
                 not touch them. Empty it, or point data_dir at a PostgreSQL data directory"
                    .into(),
            ),
            "foreign files in the data directory",
        );
    }
    if let Some(refusal) = system_identifier_mismatch(obs) {
        return refusal;
    }
    match &obs.cluster.initialize {
        None => no_cluster(obs),
        Some((init, revision)) if init.system_identifier.is_none() => {
            bootstrapping(obs, &init.owner, *revision)
        }
        Some(_) => running_cluster(obs),
    }
}

/// A data directory made by this member's initdb, whose system identifier was never
/// recorded, never served as the cluster: it is not user data. When the bootstrap went
/// to another member (another identifier is recorded, or another member holds the
/// claim), or the directory is only half moved into place, it is set aside (moved,
/// never deleted) so that the member can be cloned like a new one. With no claim at all,
/// the member claims the cluster again to adopt its own directory ([`no_cluster`]).
fn lost_bootstrap(obs: &Observation) -> Option<Plan> {
    let local = &obs.local;
    if !local.unrecorded_initdb {
        return None;
    }
    let lost = match &obs.cluster.initialize {
        _ if local.data == DataDir::Foreign => true,
        None => false,
        Some((init, _)) => match (&init.system_identifier, &local.system_identifier) {
            (Some(theirs), Some(mine)) => theirs != mine,
            (Some(_), None) => false,
            (None, _) => init.owner != obs.me,
        },
    };
    if !lost {
        return None;
    }
    let mut actions = Vec::new();
    if obs.cluster.leader.as_deref() == Some(obs.me.as_str()) {
        actions.push(Action::ReleaseLeader);
    }
    actions.push(Action::SetAsideDataDir);
    Some(Plan {
        actions,
        reason: "the data directory comes from a bootstrap that this member lost (its \
                 initdb was never recorded as the cluster's): setting it aside to clone \
                 this member from the primary"
            .into(),
    })
}

fn system_identifier_mismatch(obs: &Observation) -> Option<Plan> {
    let (init, _) = obs.cluster.initialize.as_ref()?;
    let theirs = init.system_identifier.as_ref()?;
    let mine = obs.local.system_identifier.as_ref()?;
    (theirs != mine).then(|| {
        Plan::one(
            Action::Refuse(format!(
                "the data directory belongs to another PostgreSQL cluster: its system \
                 identifier is {mine}, but cluster members have {theirs}. Nothing was \
                 changed. Point data_dir at this cluster's data, or at an empty directory \
                 to clone a new replica"
            )),
            "system identifier mismatch",
        )
    })
}

const STANDBY_ADOPTION: &str = "the data directory is a replica (it has standby.signal) and \
     the store knows no cluster: a replica is never adopted as primary. Start the agent of \
     its primary first, or remove standby.signal if you really mean to make it the primary";

fn no_cluster(obs: &Observation) -> Plan {
    match obs.local.data {
        DataDir::Empty => Plan::one(
            Action::ClaimInitialize,
            "no cluster in the store and an empty data directory: racing to initialize it",
        ),
        DataDir::Primary => Plan::one(
            Action::ClaimInitialize,
            "no cluster in the store and an existing primary in the data directory: \
             claiming the cluster to adopt it",
        ),
        DataDir::Standby | DataDir::Foreign => Plan::one(
            Action::Refuse(STANDBY_ADOPTION.into()),
            "refusing to adopt a replica",
        ),
    }
}

fn bootstrapping(obs: &Observation, owner: &str, revision: i64) -> Plan {
    if owner != obs.me {
        if obs.cluster.members.contains_key(owner) {
            return Plan::idle(format!(
                "member {owner} is initializing the cluster: waiting for it"
            ));
        }
        return Plan::one(
            Action::ReleaseStaleInitialize { revision },
            format!(
                "member {owner} claimed the cluster but its agent is gone before it finished: \
                 releasing the claim so that the bootstrap can be retried"
            ),
        );
    }
    match (obs.local.data, &obs.local.system_identifier) {
        (DataDir::Empty, _) => Plan::one(
            Action::Initdb,
            "this member won the initialize race: creating the cluster with initdb",
        ),
        // The identifier is recorded first: from then on it is the cluster's, and a
        // crash before it leaves a directory that never served (see lost_bootstrap).
        (DataDir::Primary, Some(sysid)) => Plan {
            actions: vec![
                Action::RecordSystemIdentifier {
                    system_identifier: sysid.clone(),
                },
                Action::AcquireLeader,
                Action::StartPrimary,
            ],
            reason: format!(
                "this member owns the new cluster: recording system identifier {sysid}, \
                 taking the leader key and starting PostgreSQL as primary"
            ),
        },
        (DataDir::Primary, None) => {
            Plan::idle("waiting to read the system identifier of the data directory")
        }
        (DataDir::Standby | DataDir::Foreign, _) => Plan::one(
            Action::Refuse(STANDBY_ADOPTION.into()),
            "refusing to adopt a replica",
        ),
    }
}

fn running_cluster(obs: &Observation) -> Plan {
    let leader = obs.cluster.leader.as_deref();
    if obs.local.reinit_requested {
        // Only a replica of a running primary is re-cloned; otherwise the request is
        // ignored and the member goes on with its duties (the CLI withdraws it).
        if let Some(l) = leader.filter(|l| *l != obs.me && obs.local.data != DataDir::Empty) {
            if leader_ready(obs, l).is_ok() {
                return Plan::one(
                    Action::Reclone {
                        leader: l.to_string(),
                    },
                    format!("an operator asked to re-clone this member from {l}"),
                );
            }
        }
    }
    match (obs.local.data, leader) {
        (DataDir::Empty, Some(l)) if l == obs.me => Plan::one(
            Action::ReleaseLeader,
            "this member holds the leader key but its data directory is empty: letting go",
        ),
        (DataDir::Empty, Some(l)) => clone_from(obs, l),
        (DataDir::Empty, None) => {
            Plan::idle("empty data directory and no primary to clone from: waiting for a leader")
        }
        (_, Some(l)) if l == obs.me => primary_duties(obs),
        (_, Some(l)) => replica_duties(obs, l),
        (_, None) => no_leader(obs),
    }
}

fn leader_ready(obs: &Observation, leader: &str) -> Result<MemberStatus, Plan> {
    match obs.cluster.members.get(leader) {
        Some(m) if m.role == Role::Primary && m.state == PgState::Running => Ok(m.clone()),
        Some(m) => Err(Plan::idle(format!(
            "waiting for primary {leader} to run (it reports {})",
            m.state.as_str()
        ))),
        None => Err(Plan::idle(format!(
            "member {leader} holds the leader key but has not published its status yet"
        ))),
    }
}

fn clone_from(obs: &Observation, leader: &str) -> Plan {
    let primary = match leader_ready(obs, leader) {
        Ok(m) => m,
        Err(wait) => return wait,
    };
    let slot = slot_name(&obs.me);
    if !primary.slots.contains(&slot) {
        return Plan::idle(format!(
            "waiting for primary {leader} to create replication slot {slot} for this member"
        ));
    }
    Plan::one(
        Action::CloneFrom {
            leader: leader.to_string(),
        },
        format!("empty data directory: cloning from primary {leader} through slot {slot}"),
    )
}

fn primary_duties(obs: &Observation) -> Plan {
    let local = &obs.local;
    let mut actions = Vec::new();
    if obs.my_lease.is_some() && obs.cluster.leader_lease != obs.my_lease {
        actions.push(Action::AcquireLeader);
    }
    if obs.local.data == DataDir::Standby {
        return Plan::one(
            Action::ReleaseLeader,
            "this member holds the leader key but its data directory is a replica that \
             was never promoted: letting go of the key",
        );
    }
    if !local.running || local.in_recovery != Some(false) {
        if local.start_failed {
            return Plan {
                actions: vec![Action::StopPostgres, Action::ReleaseLeader],
                reason: format!(
                    "PostgreSQL did not start as primary within primary_start_timeout ({} s): \
                     releasing the leader key so that a replica can take over",
                    obs.cluster.config.primary_start_timeout
                ),
            };
        }
        if obs.cluster.config.paused && !local.running {
            return Plan {
                actions,
                reason: "paused: PostgreSQL is down on the primary and is not restarted".into(),
            };
        }
        if local.running && local.in_recovery == Some(true) {
            // Holding the key as a replica happens only between taking it and
            // promoting (a crash in between): finish the promotion. In synchronous
            // mode only once the sync key names this member as the leader (the winner
            // writes it before promoting); otherwise let go and let the election rerun.
            if sync_mode(obs)
                && obs.cluster.sync.as_ref().map(|(s, _)| s.leader.as_str())
                    != Some(obs.me.as_str())
            {
                return Plan::one(
                    Action::ReleaseLeader,
                    "this member holds the leader key but is still a replica, and the sync \
                     key does not name it: letting go so that the election runs again",
                );
            }
            actions.push(claim_status(obs));
            actions.push(Action::Promote {
                reason: "finishing an interrupted promotion".into(),
                old_primary: None,
            });
            return Plan {
                actions,
                reason: "this member holds the leader key but is still a replica: promoting".into(),
            };
        }
        if !local.running && sync_mode(obs) {
            actions.push(Action::SetSynchronousStandbyNames(names_at_start(obs)));
        }
        actions.push(Action::StartPrimary);
        return Plan {
            actions,
            reason: "this member holds the leader key: starting PostgreSQL as primary".into(),
        };
    }
    if let Some(plan) = switchover_as_primary(obs) {
        return plan;
    }
    let live: BTreeSet<String> = obs.cluster.members.keys().cloned().collect();
    let previous = obs
        .cluster
        .status
        .as_ref()
        .map(|s| s.registry.clone())
        .unwrap_or_default();
    let work = slot_work(
        &previous,
        &live,
        &obs.me,
        &local.slots,
        obs.now_ms,
        obs.cluster
            .config
            .member_slot_retention
            .saturating_mul(1000),
    );
    let known_hosts = registered_hosts(obs, &work.registry);
    let mut hosts: Vec<String> = known_hosts
        .iter()
        .filter(|(name, _)| **name != obs.me)
        .map(|(_, host)| host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    actions.push(Action::AllowReplicationFrom { hosts });
    let mut reason = String::from("primary: holding the leader key");
    for slot in &work.create {
        reason.push_str(&format!("; creating slot {slot} for a new member"));
        actions.push(Action::CreateSlot(slot.clone()));
    }
    for slot in &work.drop {
        reason.push_str(&format!("; dropping slot {slot} of a removed member"));
        actions.push(Action::DropSlot(slot.clone()));
    }
    actions.push(Action::PublishStatus(PrimaryStatus {
        primary: obs.me.clone(),
        lsn: local.lsn.unwrap_or_default(),
        timeline: local.timeline.unwrap_or(1),
        updated_ms: obs.now_ms,
        registry: work.registry,
        hosts: known_hosts,
    }));
    // Synchronous replication last: a failed compare-and-set of the sync key must not
    // keep the status from being published.
    let sync = sync_step(&SyncInput::from_observation(obs));
    if !sync.note.is_empty() {
        reason.push_str("; ");
        reason.push_str(&sync.note);
    }
    actions.extend(sync.actions);
    Plan { actions, reason }
}

/// The host of every registered member: from its live member key, else the one the
/// primary last recorded in the `status` key (issue 11: a member whose key expired
/// during a partition keeps its replication access until `pgbaton remove`).
fn registered_hosts(
    obs: &Observation,
    registry: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, String> {
    let previous = obs.cluster.status.as_ref().map(|s| &s.hosts);
    registry
        .keys()
        .filter_map(|name| {
            let host = match obs.cluster.members.get(name) {
                Some(m) => Some(m.host.clone()),
                None => previous.and_then(|h| h.get(name).cloned()),
            };
            host.map(|h| (name.clone(), h))
        })
        .collect()
}

/// Synchronous replication is on (either mode).
fn sync_mode(obs: &Observation) -> bool {
    obs.cluster.config.synchronous_mode != SynchronousMode::Off
}

/// What a member does right before it promotes itself, once it holds the leader key.
///
/// In synchronous mode it first rewrites the sync key to name it as the leader with no
/// synchronous standby (its own standbys are not synchronous yet) and sets
/// `synchronous_standby_names` to what a new primary starts with (`*` in strict mode).
/// Then, in every mode, it rewrites the `status` key to name itself ([`claim_status`]).
/// Each step marks the intent to promote in the store before PostgreSQL acts, so that a
/// crash at any point leaves a store that no older primary can take back (see
/// [`crate::takeback`]); the sync key comes first because a `status` that names this
/// member while the sync key still names the old primary would stop every election.
fn before_promotion(obs: &Observation) -> Vec<Action> {
    let mut actions = Vec::new();
    if sync_mode(obs) {
        let quorum = (obs.cluster.config.synchronous_mode == SynchronousMode::Quorum).then_some(0);
        let names = if obs.cluster.config.synchronous_mode_strict {
            "*"
        } else {
            ""
        };
        actions.extend([
            Action::WriteSync {
                state: SyncState {
                    leader: obs.me.clone(),
                    members: Vec::new(),
                    quorum,
                },
                expect: obs.cluster.sync.as_ref().map(|(_, r)| *r),
            },
            Action::SetSynchronousStandbyNames(names.into()),
        ]);
    }
    actions.push(claim_status(obs));
    actions
}

/// The `status` key rewritten to name this member, before it promotes: from then on no
/// former primary can take the key back by the rule of [`crate::takeback`], even if
/// this member dies right after promoting (safety review finding 1). Its timeline is
/// still the old one; the first cycle as primary publishes the new one.
fn claim_status(obs: &Observation) -> Action {
    let previous = obs.cluster.status.as_ref();
    Action::PublishStatus(PrimaryStatus {
        primary: obs.me.clone(),
        lsn: obs
            .local
            .received_lsn
            .max(obs.local.lsn)
            .or(previous.map(|s| s.lsn))
            .unwrap_or_default(),
        timeline: crate::takeback::my_timeline(obs)
            .or(previous.map(|s| s.timeline))
            .unwrap_or(1),
        updated_ms: obs.now_ms,
        registry: previous.map(|s| s.registry.clone()).unwrap_or_default(),
        hosts: previous.map(|s| s.hosts.clone()).unwrap_or_default(),
    })
}

fn replica_duties(obs: &Observation, leader: &str) -> Plan {
    let local = &obs.local;
    if obs.cluster.config.paused && !(local.running && local.in_recovery == Some(false)) {
        return Plan::idle(format!("paused: replica of {leader}; no automatic action"));
    }
    if local.running && local.in_recovery == Some(false) {
        return Plan::one(
            Action::StopPostgres,
            format!(
                "member {leader} holds the leader key but this PostgreSQL runs as a primary: \
                 stopping it so that it cannot accept writes"
            ),
        );
    }
    if local.unresponsive {
        // Safety review finding 11: a postmaster that does not answer yet is not a
        // diverged replica. Rewinding is impossible while it runs, and re-cloning would
        // throw its data away; wait for it to answer (or to stop).
        return Plan::idle(
            "PostgreSQL runs but does not answer SQL yet (starting up, recovering or \
             stopping): waiting for it",
        );
    }
    let primary = match leader_ready(obs, leader) {
        Ok(m) => m,
        Err(wait) => return wait,
    };
    let leader_tl = primary.timeline.unwrap_or(1);
    let paused = obs.cluster.config.paused;
    // Where does this member's WAL end, and on which timeline?
    let (my_tl, end) = if local.running {
        (
            local.timeline.unwrap_or(1),
            match local.received_lsn.max(local.lsn) {
                Some(l) => WalEnd::Known(l),
                None => WalEnd::Unknown,
            },
        )
    } else {
        match local.control {
            Some(c) if c.clean_shutdown => (c.timeline, WalEnd::LastRecordAt(c.checkpoint_lsn)),
            Some(c) => (
                c.timeline,
                c.last_record.map_or(WalEnd::Unknown, WalEnd::LastRecordAt),
            ),
            None => (0, WalEnd::Unknown),
        }
    };
    let target = format!("{}:{}", primary.host, primary.port);
    // A stopped member is checked before it starts. A running standby is re-pointed
    // first: PostgreSQL checks the timeline history itself when it connects, and
    // refuses to stream from a primary whose history it cannot follow. So a running
    // standby counts as diverged only when it has stopped streaming from the leader
    // for a while *and* the history says it went past the switch point (its reported
    // timeline is unreliable while it crosses a timeline switch).
    let suspect = if local.running {
        local.following.as_deref() == Some(&target) && local.stream_stalled
    } else {
        true
    };
    let diverged =
        suspect && (my_tl == 0 || must_rewind(my_tl, end, leader_tl, &obs.cluster.history));
    if diverged {
        if paused {
            return Plan::idle(format!(
                "paused: this member's history diverged from {leader}'s and needs pg_rewind"
            ));
        }
        let mut actions = Vec::new();
        if local.running {
            actions.push(Action::StopPostgres);
        }
        actions.push(Action::Rewind {
            leader: leader.to_string(),
        });
        return Plan {
            actions,
            reason: format!(
                "this member (timeline {my_tl}) diverged from the primary {leader} (timeline \
                 {leader_tl}) or cannot prove it did not: rewinding it"
            ),
        };
    }
    if !local.running {
        if paused && local.data == DataDir::Primary {
            return Plan::idle("paused: the former primary is not turned into a replica");
        }
        return Plan::one(
            Action::Follow {
                leader: leader.to_string(),
            },
            format!("starting as a replica of {leader} ({target})"),
        );
    }
    if local.following.as_deref() != Some(target.as_str()) {
        return Plan::one(
            Action::Follow {
                leader: leader.to_string(),
            },
            format!("re-pointing replication to the primary {leader} ({target})"),
        );
    }
    // Keep a slot for every other member, so that whoever is promoted next already
    // retains WAL for the rest.
    let mut actions = Vec::new();
    let registered: Vec<String> = obs
        .cluster
        .status
        .as_ref()
        .map(|s| s.registry.keys().cloned().collect())
        .unwrap_or_default();
    let mut keep = Vec::new();
    for name in registered.iter().filter(|n| *n != &obs.me) {
        let slot = slot_name(name);
        if !local.slots.iter().any(|s| s.name == slot) {
            actions.push(Action::CreateSlot(slot.clone()));
        }
        keep.push(slot);
    }
    if !keep.is_empty() {
        actions.push(Action::AdvanceSlots(keep));
    }
    let reason = if local.streaming {
        format!("replica streaming from {leader}")
    } else {
        format!("replica of {leader}, waiting for streaming to start")
    };
    Plan { actions, reason }
}

/// The primary's side of a switchover: hand over when the request is due and the
/// candidate is fit; drop requests that cannot succeed.
fn switchover_as_primary(obs: &Observation) -> Option<Plan> {
    let (req, revision) = obs.cluster.switchover.as_ref()?;
    let clear = |why: String| {
        Plan::one(
            Action::ClearSwitchover {
                revision: *revision,
            },
            why,
        )
    };
    match (req.kind, &req.phase) {
        (RequestKind::Failover, _) => Some(clear(
            "dropping a failover request: this member is a healthy primary".into(),
        )),
        (RequestKind::Switchover, SwitchoverPhase::PrimaryStopped { .. }) => None,
        (RequestKind::Switchover, SwitchoverPhase::Requested) => {
            if req.scheduled_ms.is_some_and(|t| t > obs.now_ms) {
                return None;
            }
            if req.to == obs.me {
                return Some(clear("dropping a switchover to the current primary".into()));
            }
            if let Err(why) = candidate_fit(obs, &req.to) {
                return Some(clear(format!("switchover to {} cancelled: {why}", req.to)));
            }
            Some(Plan::one(
                Action::HandOver { to: req.to.clone() },
                format!(
                    "switchover to {}: checkpoint, clean shutdown, and hand-over once {} has \
                     the shutdown checkpoint",
                    req.to, req.to
                ),
            ))
        }
    }
}

/// Whether `name` can take over in a switchover: streaming and within the lag limit.
pub fn candidate_fit(obs: &Observation, name: &str) -> Result<(), String> {
    let m = obs
        .cluster
        .members
        .get(name)
        .ok_or_else(|| format!("{name} is not running"))?;
    // With a live primary the candidate must stream; without one (operator failover)
    // no replica can, and a running one within the lag limit is fit.
    let primary_alive = obs.cluster.leader.is_some();
    let fit_state = m.state == PgState::Streaming
        || (!primary_alive && m.state == PgState::InRecovery && m.role == Role::Replica);
    if !fit_state {
        return Err(format!("{name} is {}, not streaming", m.state.as_str()));
    }
    let newest = newest_timeline_of(obs);
    let tl = m.timeline.unwrap_or(0);
    if !primary_alive && tl < newest {
        return Err(format!(
            "{name} is on timeline {tl}, behind the cluster's timeline {newest}"
        ));
    }
    let lag = m.lag_bytes.unwrap_or(0);
    let max = obs.cluster.config.maximum_lag_on_failover;
    if lag > max && !sync_mode(obs) {
        return Err(format!(
            "{name} lags {} > {} limit",
            crate::failover::human(lag),
            crate::failover::human(max)
        ));
    }
    Ok(())
}

/// In synchronous mode, whether this member may be promoted by a (non-forced) operator
/// failover: it must be listed in the sync key (in quorum mode, as the most advanced of
/// enough reporting members).
fn sync_fit(obs: &Observation) -> Result<Option<Plan>, String> {
    if !sync_mode(obs) {
        return Ok(None);
    }
    let mut members = obs.cluster.members.clone();
    members.retain(|_, m| m.role == Role::Replica || m.name == obs.me);
    // The automatic election's freshness rule holds here too: a report older than the
    // leader loss may hide commits that only its member acknowledged since (safety
    // review finding 4), so such members must report again (or stay silent past the
    // grace, and then do not count) before a quorum is judged.
    let since = obs.leaderless_since_ms.unwrap_or(obs.now_ms);
    let grace_ms = obs.cluster.config.failover_grace.max(1) * 1000;
    let past_grace = obs.now_ms.saturating_sub(since) >= grace_ms;
    let mut election = elect(
        &members,
        obs.cluster.status.as_ref(),
        u64::MAX,
        since,
        past_grace,
    );
    if !election.pending.is_empty() {
        return Ok(Some(Plan::idle(format!(
            "operator failover: waiting for {} to report their WAL positions after the \
             primary was lost",
            election.pending.join(", ")
        ))));
    }
    exclude_older_timelines(&mut election, &members, newest_timeline_of(obs));
    let last = obs.cluster.status.as_ref().map(|s| s.primary.as_str());
    let ranking = sync_candidates(
        obs.cluster.sync.as_ref().map(|(s, _)| s),
        last,
        &election.ranking,
    )?;
    if ranking.iter().any(|c| c.name == obs.me) {
        Ok(None)
    } else {
        Err(format!("{} is not a synchronous standby", obs.me))
    }
}

fn no_leader(obs: &Observation) -> Plan {
    let writable = obs.local.running && obs.local.in_recovery == Some(false);
    if writable {
        if let Err(why) = may_take_back(obs) {
            return Plan::one(
                Action::StopPostgres,
                format!(
                    "no leader in the store and this member was not the last primary, or \
                     may not take the key back ({why}): stopping PostgreSQL so that it \
                     cannot accept writes"
                ),
            );
        }
    }
    // A request that names the next primary (an operator failover, or a switchover
    // already handed over) must not meet a writable old primary; a switchover still
    // waiting for its time changes nothing yet.
    let takeover_pending = obs.cluster.switchover.as_ref().is_some_and(|(r, _)| {
        r.kind == RequestKind::Failover || r.phase != SwitchoverPhase::Requested
    });
    if writable && takeover_pending {
        return Plan::one(
            Action::StopPostgres,
            "no leader in the store and an operator request is pending: stopping \
             PostgreSQL so that it cannot accept writes until the request settles",
        );
    }
    if let Some((req, revision)) = &obs.cluster.switchover {
        if let Some(plan) = requested_takeover(obs, req, *revision) {
            return plan;
        }
    }
    let local = &obs.local;
    let was_primary = local.data == DataDir::Primary;
    // A former primary whose start failed lets a replica take over. Unless the sync key
    // names it alone: then no standby is known to hold every acknowledged commit, no
    // replica may be promoted, and only its own data directory can serve again, so it
    // retries (simulator finding S4: otherwise no primary ever again).
    let only_copy = local.start_failed && sole_sync_leader(obs);
    if was_primary && (!local.start_failed || only_copy) {
        match may_take_back(obs) {
            Ok(()) => {
                if obs.cluster.config.paused && !local.running {
                    return Plan::idle(
                        "paused: no leader and PostgreSQL is down; not restarting it",
                    );
                }
                let mut actions = vec![Action::AcquireLeader];
                if !local.running && sync_mode(obs) {
                    actions.push(Action::SetSynchronousStandbyNames(names_at_start(obs)));
                }
                actions.push(Action::StartPrimary);
                let reason = if only_copy {
                    "no leader in the store, this member was the last primary and the sync \
                     key names no synchronous standby (no replica may be promoted): taking \
                     the leader key back to retry the start that failed"
                } else {
                    "no leader in the store and this member was the last primary: taking \
                     the leader key back"
                };
                return Plan {
                    actions,
                    reason: reason.into(),
                };
            }
            Err(why) => {
                return Plan::idle(format!(
                    "no leader in the store: waiting for a replica to be promoted (this \
                     former primary may not take the key back: {why})"
                ));
            }
        }
    }
    if was_primary && local.running && local.in_recovery == Some(false) {
        return Plan::one(
            Action::StopPostgres,
            "no leader in the store and this member was not the last primary: stopping \
             PostgreSQL so that it cannot accept writes",
        );
    }
    if obs.cluster.config.paused {
        return Plan::idle("paused: no leader, and no automatic failover while paused");
    }
    if local.data != DataDir::Standby {
        return Plan::idle("no leader in the store: waiting for a replica to be promoted");
    }
    if !local.running {
        return Plan::one(
            Action::StartStandby,
            "no leader in the store: starting this replica in recovery so that it can be \
             promoted if it is the best candidate",
        );
    }
    failover(obs)
}

/// In synchronous mode, whether the sync key names this member as its leader with no
/// synchronous standby: no other member may be elected.
fn sole_sync_leader(obs: &Observation) -> bool {
    sync_mode(obs)
        && obs
            .cluster
            .sync
            .as_ref()
            .is_some_and(|(k, _)| k.leader == obs.me && k.holders() == 0)
}

/// No leader and no request: the ranked election.
fn failover(obs: &Observation) -> Plan {
    let config = &obs.cluster.config;
    let since = obs.leaderless_since_ms.unwrap_or(obs.now_ms);
    let waited = obs.now_ms.saturating_sub(since);
    let grace_ms = config.failover_grace.max(1) * 1000;
    if let Some(plan) = designated_successor(obs) {
        return plan;
    }
    let mut members = obs.cluster.members.clone();
    members.retain(|_, m| m.role == Role::Replica || m.name == obs.me);
    // In synchronous mode the sync key, not the lag, says who holds every acknowledged
    // commit: `status.lsn` includes WAL never acknowledged (safety review finding 5).
    let max_lag = if sync_mode(obs) {
        u64::MAX
    } else {
        config.maximum_lag_on_failover
    };
    let mut election = elect(
        &members,
        obs.cluster.status.as_ref(),
        max_lag,
        since,
        waited >= grace_ms,
    );
    exclude_older_timelines(&mut election, &members, newest_timeline_of(obs));
    if sync_mode(obs) {
        let last = obs.cluster.status.as_ref().map(|s| s.primary.as_str());
        let key = obs.cluster.sync.as_ref().map(|(s, _)| s);
        match sync_candidates(key, last, &election.ranking) {
            Ok(ranking) => {
                for c in &election.ranking {
                    if !ranking.iter().any(|r| r.name == c.name) {
                        election
                            .excluded
                            .push(format!("{} is not a synchronous standby", c.name));
                    }
                }
                election.ranking = ranking;
            }
            Err(why) => {
                // "Not yet" while a listed standby may still report (an operator reads
                // this line first in an incident).
                let waiting: Vec<&str> = election
                    .pending
                    .iter()
                    .filter(|p| key.is_some_and(|k| k.lists(p)))
                    .map(String::as_str)
                    .collect();
                if waiting.is_empty() {
                    return Plan::idle(why);
                }
                return Plan::idle(format!(
                    "no failover yet: waiting for reports from {} (synchronous standbys \
                     whose last status predates the loss of the primary)",
                    waiting.join(", ")
                ));
            }
        }
    }
    if obs.tags.nofailover {
        return Plan::idle(format!(
            "no leader: this member is tagged nofailover; {}",
            summary(&election)
        ));
    }
    let Some(rank) = election.ranking.iter().position(|c| c.name == obs.me) else {
        return Plan::idle(format!("no leader: {}", summary(&election)));
    };
    if !election.pending.is_empty() && waited < grace_ms {
        return Plan::idle(format!(
            "no leader: waiting for {} to report their WAL positions",
            election.pending.join(", ")
        ));
    }
    if (rank as u64) * grace_ms > waited {
        return Plan::idle(format!(
            "no leader: {} should take over first",
            election.ranking[0].name
        ));
    }
    let old = obs.cluster.status.as_ref().map(|s| s.primary.clone());
    let reason = match &old {
        Some(p) => format!("failover: the primary {p} is gone"),
        None => "failover: no primary".to_string(),
    };
    let mut actions = vec![Action::AcquireLeader];
    actions.extend(before_promotion(obs));
    actions.push(Action::Promote {
        reason: reason.clone(),
        old_primary: old,
    });
    let what = if sync_mode(obs) {
        "the most advanced eligible synchronous standby"
    } else {
        "the most advanced eligible replica"
    };
    Plan {
        actions,
        reason: format!("{reason}; this member is {what} (rank {})", rank + 1),
    }
}

/// The newest timeline the store knows of.
fn newest_timeline_of(obs: &Observation) -> u32 {
    newest_timeline(obs.cluster.status.as_ref(), &obs.cluster.history)
}

/// Synchronous mode: the sync key names this running replica as the leader with no
/// synchronous standby. Only a member that won an election (holding every acknowledged
/// commit) or a switchover writes that, right before it promotes; since then no other
/// member can have acknowledged a commit. So the promotion was interrupted (the agent
/// died between the key and PostgreSQL): finish it.
fn designated_successor(obs: &Observation) -> Option<Plan> {
    if !sync_mode(obs) || obs.tags.nofailover {
        return None;
    }
    let (key, _) = obs.cluster.sync.as_ref()?;
    if key.leader != obs.me || !key.members.is_empty() {
        return None;
    }
    let old = obs
        .cluster
        .status
        .as_ref()
        .map(|s| s.primary.clone())
        .filter(|p| *p != obs.me);
    let mut actions = vec![Action::AcquireLeader];
    actions.extend(before_promotion(obs));
    actions.push(Action::Promote {
        reason: "finishing an interrupted promotion (the sync key names this member)".into(),
        old_primary: old,
    });
    Some(Plan {
        actions,
        reason: "no leader, and the sync key names this replica as the new primary: it was \
                 chosen and holds every acknowledged commit, but did not finish promoting; \
                 promoting it"
            .into(),
    })
}

fn summary(e: &crate::failover::Election) -> String {
    match e.ranking.first() {
        Some(w) if e.excluded.is_empty() => format!("{} is the failover candidate", w.name),
        Some(w) => format!(
            "{} is the failover candidate; {}",
            w.name,
            e.excluded.join("; ")
        ),
        None => e.no_winner_reason(),
    }
}

/// No leader, and an operator request names who comes next.
fn requested_takeover(obs: &Observation, req: &SwitchoverRequest, revision: i64) -> Option<Plan> {
    let timeout_ms = obs.cluster.config.switchover_timeout.saturating_mul(1000);
    match (req.kind, &req.phase) {
        (RequestKind::Switchover, SwitchoverPhase::Requested) => None,
        (
            RequestKind::Switchover,
            SwitchoverPhase::PrimaryStopped {
                checkpoint_lsn,
                stopped_ms,
                ..
            },
        ) => {
            let late = obs.now_ms.saturating_sub(*stopped_ms) > timeout_ms;
            let from_alive = req
                .from
                .as_ref()
                .is_some_and(|f| *f == obs.me || obs.cluster.members.contains_key(f));
            if late && !from_alive {
                return Some(Plan::one(
                    Action::ClearSwitchover { revision },
                    format!(
                        "switchover to {} timed out and the old primary is gone: dropping it so \
                         that a failover can happen",
                        req.to
                    ),
                ));
            }
            if req.to == obs.me {
                if late {
                    return Some(Plan::idle("switchover timed out: not promoting"));
                }
                if !(obs.local.running && obs.local.data == DataDir::Standby) {
                    return Some(Plan::one(
                        Action::ClearSwitchover { revision },
                        "switchover: this member cannot take over (its PostgreSQL is not \
                         running as a replica): cancelling so that the old primary resumes",
                    ));
                }
                let mut actions = vec![
                    Action::WaitForWal {
                        lsn: *checkpoint_lsn,
                    },
                    Action::AcquireLeader,
                ];
                actions.extend(before_promotion(obs));
                actions.push(Action::Promote {
                    reason: format!(
                        "switchover from {}",
                        req.from.as_deref().unwrap_or("the old primary")
                    ),
                    old_primary: req.from.clone(),
                });
                return Some(Plan {
                    actions,
                    reason: format!(
                        "switchover: promoting once this member has received the shutdown \
                         checkpoint at {checkpoint_lsn}"
                    ),
                });
            }
            if late && req.from.as_deref() == Some(obs.me.as_str()) {
                return Some(Plan {
                    actions: vec![
                        Action::ClearSwitchover { revision },
                        Action::AcquireLeader,
                        Action::StartPrimary,
                    ],
                    reason: format!(
                        "switchover to {} did not complete within {} s: resuming as primary",
                        req.to, obs.cluster.config.switchover_timeout
                    ),
                });
            }
            Some(Plan::idle(format!("switchover to {} in progress", req.to)))
        }
        (RequestKind::Failover, _) => {
            let late = obs.now_ms.saturating_sub(req.requested_ms) > timeout_ms;
            if late {
                return Some(Plan::one(
                    Action::ClearSwitchover { revision },
                    format!(
                        "failover to {} did not happen within the timeout: dropping it",
                        req.to
                    ),
                ));
            }
            if req.to != obs.me {
                return Some(Plan::idle(format!(
                    "operator failover to {} in progress",
                    req.to
                )));
            }
            if obs.local.data != DataDir::Standby || !obs.local.running {
                return Some(Plan::one(
                    Action::ClearSwitchover { revision },
                    "operator failover to this member impossible: it is not a running replica",
                ));
            }
            if !req.force {
                if let Err(why) = candidate_fit(obs, &obs.me) {
                    return Some(Plan::one(
                        Action::ClearSwitchover { revision },
                        format!(
                            "operator failover refused: {why} (use --force to accept data loss)"
                        ),
                    ));
                }
                match sync_fit(obs) {
                    Ok(None) => {}
                    Ok(Some(wait)) => return Some(wait),
                    Err(why) => {
                        return Some(Plan::one(
                            Action::ClearSwitchover { revision },
                            format!(
                                "operator failover refused: {why} (use --force to accept the \
                                 loss of acknowledged commits)"
                            ),
                        ))
                    }
                }
            }
            let old = obs.cluster.status.as_ref().map(|s| s.primary.clone());
            let reason = match (req.force, sync_mode(obs)) {
                (true, true) => "operator failover (forced in synchronous mode: acknowledged \
                     commits not received by this member are lost)"
                    .to_string(),
                (true, false) => {
                    "operator failover (forced: commits not received by this member are lost)"
                        .to_string()
                }
                _ => "operator failover".to_string(),
            };
            let mut actions = vec![Action::AcquireLeader];
            actions.extend(before_promotion(obs));
            actions.push(Action::Promote {
                reason: reason.clone(),
                old_primary: old,
            });
            Some(Plan { actions, reason })
        }
    }
}

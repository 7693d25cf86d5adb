//! The HA rules: one pure function from an [`Observation`] to a [`Plan`].
//!
//! Read top to bottom, this file is the whole policy of a member:
//! 1. refuse anything that could mix histories (foreign files, another system id);
//! 2. no cluster in the store: race to create it (or adopt the existing primary);
//! 3. a claim without a system identifier: the winner bootstraps, the others wait;
//! 4. a running cluster: the leader does primary duties, the others clone or follow.

use crate::model::{MemberStatus, PgState, PrimaryStatus, Role};
use crate::observation::{DataDir, Observation};
use crate::plan::{Action, Plan};
use crate::registry::slot_work;
use crate::slots::slot_name;
use std::collections::BTreeSet;

/// Decide what this member does now. Pure: same observation, same plan.
pub fn decide(obs: &Observation) -> Plan {
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
        (DataDir::Primary, Some(sysid)) => Plan {
            actions: vec![
                Action::AcquireLeader,
                Action::StartPrimary,
                Action::RecordSystemIdentifier {
                    system_identifier: sysid.clone(),
                },
            ],
            reason: format!(
                "this member owns the new cluster: taking the leader key, starting \
                 PostgreSQL as primary and recording system identifier {sysid}"
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
        actions.push(Action::StartPrimary);
        return Plan {
            actions,
            reason: "this member holds the leader key: starting PostgreSQL as primary".into(),
        };
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
    let mut hosts: Vec<String> = obs
        .cluster
        .members
        .values()
        .filter(|m| m.name != obs.me)
        .map(|m| m.host.clone())
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
    }));
    Plan { actions, reason }
}

fn replica_duties(obs: &Observation, leader: &str) -> Plan {
    let local = &obs.local;
    if local.running && local.in_recovery == Some(false) {
        return Plan::one(
            Action::StopPostgres,
            format!(
                "member {leader} holds the leader key but this PostgreSQL runs as a primary: \
                 stopping it so that it cannot accept writes"
            ),
        );
    }
    if local.data == DataDir::Primary {
        return Plan::idle(format!(
            "this data directory was a primary and member {leader} leads now: it must be \
             rewound or re-cloned before it can follow (use pgbaton reinit)"
        ));
    }
    let primary = match obs.cluster.members.get(leader) {
        Some(m) => m,
        None => {
            return Plan::idle(format!(
                "member {leader} holds the leader key but has not published its address yet"
            ))
        }
    };
    let target = format!("{}:{}", primary.host, primary.port);
    if !local.running {
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
    if local.streaming {
        Plan::idle(format!("replica streaming from {leader}"))
    } else {
        Plan::idle(format!(
            "replica of {leader}, waiting for streaming to start"
        ))
    }
}

fn no_leader(obs: &Observation) -> Plan {
    let local = &obs.local;
    let last_primary = obs.cluster.status.as_ref().map(|s| s.primary.as_str());
    let was_primary = obs.local.data == DataDir::Primary;
    match (was_primary, last_primary) {
        (true, Some(p)) if p == obs.me => Plan {
            actions: vec![Action::AcquireLeader, Action::StartPrimary],
            reason: "no leader in the store and this member was the last primary: taking \
                     the leader key back"
                .into(),
        },
        (true, None)
            if obs
                .cluster
                .initialize
                .as_ref()
                .map(|(i, _)| i.owner.as_str())
                == Some(obs.me.as_str()) =>
        {
            Plan {
                actions: vec![Action::AcquireLeader, Action::StartPrimary],
                reason: "no leader in the store and this member created the cluster: taking \
                     the leader key back"
                    .into(),
            }
        }
        (true, _) if local.running && local.in_recovery == Some(false) => Plan::one(
            Action::StopPostgres,
            "no leader in the store and this member was not the last primary: stopping \
             PostgreSQL so that it cannot accept writes",
        ),
        (true, Some(p)) => Plan::idle(format!(
            "no leader in the store; the last primary was {p}: waiting for it"
        )),
        (true, None) | (false, _) => Plan::idle(
            "no leader in the store: waiting for the primary to come back (automatic \
             failover is not enabled)",
        ),
    }
}

//! The values kept in the store, as typed data. Their JSON is part of pgbaton's
//! interface (documented in `docs/store-layout.md`), so fields are only ever added.

use crate::Lsn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Store key of the bootstrap claim: whoever creates it initializes the cluster.
pub const KEY_INITIALIZE: &str = "initialize";
/// Store key of the leader lock, attached to the leader's lease. Value: member name.
pub const KEY_LEADER: &str = "leader";
/// Store key of the cluster-wide dynamic config.
pub const KEY_CONFIG: &str = "config";
/// Store key of the timeline history (a JSON array of [`HistoryEntry`]).
pub const KEY_HISTORY: &str = "history";
/// Store key of a pending switchover request.
pub const KEY_SWITCHOVER: &str = "switchover";
/// Store key of a pending `pgbaton restart` request (value: member name).
pub const KEY_RESTART: &str = "restart";
/// Store key of a pending `pgbaton reinit` request (value: member name).
pub const KEY_REINIT: &str = "reinit";
/// Store key of the synchronous-standby set.
pub const KEY_SYNC: &str = "sync";
/// Store key of the last LSN the primary published.
pub const KEY_STATUS: &str = "status";
/// Store key of the newest timeline number a promotion was allowed to create (a
/// [`TimelineReservation`]): taken before every promotion, so that no number is reused.
pub const KEY_TIMELINE: &str = "timeline";
/// Prefix of the member keys, each attached to its member's lease.
pub const MEMBERS_PREFIX: &str = "members/";

/// The store key of member `name`.
pub fn member_key(name: &str) -> String {
    format!("{MEMBERS_PREFIX}{name}")
}

/// The value of the `initialize` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initialize {
    /// The member that won the bootstrap race.
    pub owner: String,
    /// PostgreSQL's system identifier, once the data directory exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
}

/// What a member is in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The leader, accepting writes.
    Primary,
    /// A standby following the primary (or about to).
    Replica,
    /// Not known yet (e.g. before its data directory exists).
    Unknown,
}

/// The PostgreSQL state a member reports, as shown by `pgbaton list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgState {
    /// Running as primary.
    Running,
    /// Running as a replica with a live WAL receiver.
    Streaming,
    /// Running as a replica without a WAL receiver.
    #[serde(rename = "in recovery")]
    InRecovery,
    /// Starting up.
    Starting,
    /// Not running.
    Stopped,
    /// Being bootstrapped with initdb.
    Initializing,
    /// Being cloned from the primary.
    #[serde(rename = "creating replica")]
    CreatingReplica,
    /// Being rewound with pg_rewind.
    Rewinding,
    /// Refusing to run (e.g. a system identifier mismatch); see `error`.
    Failed,
}

impl PgState {
    /// The text used in `list` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PgState::Running => "running",
            PgState::Streaming => "streaming",
            PgState::InRecovery => "in recovery",
            PgState::Starting => "starting",
            PgState::Stopped => "stopped",
            PgState::Initializing => "initializing",
            PgState::CreatingReplica => "creating replica",
            PgState::Rewinding => "rewinding",
            PgState::Failed => "failed",
        }
    }
}

/// Tags from the member config that steer the HA rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    /// Never promote this member automatically.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nofailover: bool,
    /// Higher wins among equally advanced candidates.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failover_priority: i32,
    /// Never a synchronous standby.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nosync: bool,
    /// Excluded from `/replica` health checks.
    #[serde(default, skip_serializing_if = "is_false")]
    pub noloadbalance: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(i: &i32) -> bool {
    *i == 0
}

/// The value of `members/<name>`: what a member publishes about itself, every cycle
/// in which it changed (the agent rewrites an unchanged report only about every `3/4 ttl`,
/// and every cycle while the cluster has no leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Unique member name.
    pub name: String,
    /// Host other members use to reach its PostgreSQL.
    pub host: String,
    /// Port other members use to reach its PostgreSQL.
    pub port: u16,
    /// URL of its HTTP API.
    #[serde(default)]
    pub api_url: String,
    /// Its role as it sees it.
    pub role: Role,
    /// Its PostgreSQL state.
    pub state: PgState,
    /// Current timeline, when known.
    #[serde(default)]
    pub timeline: Option<u32>,
    /// Primary: current write LSN. Replica: last replayed LSN.
    #[serde(default)]
    pub lsn: Option<Lsn>,
    /// Replica: last received (flushed) LSN.
    #[serde(default)]
    pub received_lsn: Option<Lsn>,
    /// Replica: last replayed LSN.
    #[serde(default)]
    pub replayed_lsn: Option<Lsn>,
    /// Replica: bytes behind the primary's published LSN.
    #[serde(default)]
    pub lag_bytes: Option<u64>,
    /// PostgreSQL server version number, e.g. 150010.
    #[serde(default)]
    pub pg_version: Option<u32>,
    /// PostgreSQL's system identifier of its data directory.
    #[serde(default)]
    pub system_identifier: Option<String>,
    /// Tags from its config.
    #[serde(default)]
    pub tags: Tags,
    /// Physical replication slots this member's PostgreSQL holds (published by the
    /// primary so that a new member knows when its slot is ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<String>,
    /// Why the member is in its state, when it is not plain (e.g. an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Wall-clock time of this report, milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_ms: u64,
}

/// The value of the `status` key, written by the primary when it changes (the agent
/// rewrites it about every `3/4 ttl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryStatus {
    /// The primary that wrote it.
    pub primary: String,
    /// Its current WAL write position.
    pub lsn: Lsn,
    /// Its timeline.
    pub timeline: u32,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// Every member the cluster knows, with when it was last seen (ms since the Unix
    /// epoch). Its slot is kept while it is registered, even when it is briefly down.
    /// `pgbaton remove NAME` sets the time to 0, after which the primary drops the slot
    /// and forgets the member.
    #[serde(default)]
    pub registry: BTreeMap<String, u64>,
    /// The last known host of every registered member. The primary keeps allowing
    /// replication from these hosts while the member is registered, even when its
    /// member key has expired (a partitioned old primary must be able to rejoin the
    /// moment the partition heals, before it has published itself again).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
}

/// The value of the `timeline` key: the newest timeline number reserved, and by whom.
/// A member writes it (compare-and-set) before it promotes, and PostgreSQL then skips
/// every number up to it, so that a promotion nobody heard of (the member was cut off
/// right after it) cannot share its timeline number with a later one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineReservation {
    /// The reserved timeline number.
    pub timeline: u32,
    /// The member that reserved it.
    pub member: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    #[serde(default)]
    pub time_ms: u64,
}

/// One promotion, as appended to the `history` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The new timeline the promotion started.
    pub timeline: u32,
    /// Where the previous timeline ended.
    pub switch_lsn: Option<Lsn>,
    /// Why it happened (switchover, failover, bootstrap, ...).
    pub reason: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The previous primary, if any.
    pub old_primary: Option<String>,
    /// The member promoted.
    pub new_primary: String,
}

/// What an operator asked for in the `switchover` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// A planned hand-over from a healthy primary, with no data loss.
    Switchover,
    /// Promote a chosen member while there is no healthy primary.
    Failover,
}

/// Where a switchover stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum SwitchoverPhase {
    /// Waiting for its time, or for the primary to act.
    Requested,
    /// The primary shut down cleanly; the candidate may take over once it has received
    /// WAL past the shutdown checkpoint.
    PrimaryStopped {
        /// Start of the primary's shutdown checkpoint record.
        checkpoint_lsn: Lsn,
        /// The primary's timeline.
        timeline: u32,
        /// Wall-clock time of the stop, milliseconds since the Unix epoch.
        stopped_ms: u64,
    },
}

/// The value of the `switchover` key: a pending operator request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    /// Switchover or failover.
    pub kind: RequestKind,
    /// The primary when the request was made.
    #[serde(default)]
    pub from: Option<String>,
    /// The member to promote.
    pub to: String,
    /// Not before this wall-clock time (ms since the Unix epoch).
    #[serde(default)]
    pub scheduled_ms: Option<u64>,
    /// When it was requested (ms since the Unix epoch).
    pub requested_ms: u64,
    /// Accept data loss (failover only).
    #[serde(default)]
    pub force: bool,
    /// Progress.
    pub phase: SwitchoverPhase,
}

/// The cluster-wide settings kept in the `config` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Lease time in seconds: how long a silent leader keeps the lock.
    pub ttl: u64,
    /// Seconds between HA cycles (changes in the store wake the loop earlier).
    pub loop_wait: u64,
    /// Deadline of one store call, in seconds.
    pub retry_timeout: u64,
    /// Never promote automatically a member further behind than this (bytes).
    pub maximum_lag_on_failover: u64,
    /// Seconds a crashed primary may take to restart in place before it lets go.
    pub primary_start_timeout: u64,
    /// Maintenance mode: no automatic action.
    pub paused: bool,
    /// Re-clone a member whose pg_rewind failed (otherwise it stays down for the DBA).
    pub reclone_on_rewind_failure: bool,
    /// Seconds a switchover may take before the old primary resumes.
    pub switchover_timeout: u64,
    /// Seconds the failover winner has to take the leader key before the next candidate
    /// may.
    pub failover_grace: u64,
    /// Seconds a member may stay away before the primary drops its replication slot
    /// and forgets it (default one day). Until then WAL is kept for it.
    pub member_slot_retention: u64,
    /// Synchronous replication: `off`, `on` (FIRST semantics) or `quorum` (ANY k).
    pub synchronous_mode: SynchronousMode,
    /// How many synchronous standbys (`on`), or the `k` of `ANY k` (`quorum`).
    pub synchronous_node_count: u32,
    /// Never run standalone: with no eligible standby, commits wait instead.
    pub synchronous_mode_strict: bool,
    /// Extra PostgreSQL settings for every member.
    pub parameters: BTreeMap<String, serde_json::Value>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            maximum_lag_on_failover: 1024 * 1024,
            primary_start_timeout: 5,
            paused: false,
            member_slot_retention: 86_400,
            reclone_on_rewind_failure: true,
            switchover_timeout: 30,
            failover_grace: 2,
            synchronous_mode: SynchronousMode::Off,
            synchronous_node_count: 1,
            synchronous_mode_strict: false,
            parameters: BTreeMap::new(),
        }
    }
}

/// The cluster's synchronous replication mode.
///
/// Written as `off`, `on` or `quorum`; YAML booleans (`true`/`false`, which `on`/`off`
/// may be read as) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SynchronousMode {
    /// Asynchronous replication.
    #[default]
    Off,
    /// `synchronous_node_count` standbys, PostgreSQL's FIRST semantics.
    On,
    /// `ANY synchronous_node_count` of the eligible standbys.
    Quorum,
}

impl SynchronousMode {
    /// The text used in config files and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            SynchronousMode::Off => "off",
            SynchronousMode::On => "on",
            SynchronousMode::Quorum => "quorum",
        }
    }
}

impl<'de> Deserialize<'de> for SynchronousMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(SynchronousMode::On),
            Raw::Bool(false) => Ok(SynchronousMode::Off),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "off" | "false" => Ok(SynchronousMode::Off),
                "on" | "true" => Ok(SynchronousMode::On),
                "quorum" => Ok(SynchronousMode::Quorum),
                other => Err(serde::de::Error::custom(format!(
                    "unknown synchronous_mode {other:?}; use off, on or quorum"
                ))),
            },
        }
    }
}

/// The value of the `sync` key: the standbys known to hold every acknowledged commit
/// of `leader`.
///
/// - `quorum: None` (mode `on`): every member listed holds every acknowledged commit.
/// - `quorum: Some(q)` (mode `quorum`): every acknowledged commit is on at least `q` of
///   `members`, so the most advanced of any `members.len() - q + 1` of them has them all.
///
/// A member appears here only once PostgreSQL waits for it and it has caught up; it
/// leaves this key before PostgreSQL stops waiting for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// The primary this set belongs to.
    pub leader: String,
    /// The synchronous standbys (sorted by name).
    #[serde(default)]
    pub members: Vec<String>,
    /// Quorum mode: how many of `members` hold each acknowledged commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
}

impl SyncState {
    /// How many of `members` hold each acknowledged commit (0 when empty).
    pub fn holders(&self) -> usize {
        match self.quorum {
            _ if self.members.is_empty() => 0,
            None => self.members.len(),
            Some(q) => (q as usize).min(self.members.len()),
        }
    }

    /// Whether `name` is listed.
    pub fn lists(&self, name: &str) -> bool {
        self.members.iter().any(|m| m == name)
    }
}

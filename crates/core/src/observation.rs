//! What one member observed at the start of an HA cycle: the input of [`crate::decide`].

use crate::model::{
    ClusterConfig, HistoryEntry, Initialize, MemberStatus, PrimaryStatus, SwitchoverRequest,
    SyncState, Tags,
};
use crate::Lsn;
use std::collections::BTreeMap;

/// Everything the decision needs, gathered by the agent before each cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// This member's name.
    pub me: String,
    /// This member's tags.
    pub tags: Tags,
    /// The lease this member's agent holds now, if any.
    pub my_lease: Option<i64>,
    /// This member's own PostgreSQL.
    pub local: Local,
    /// The store's view of the cluster.
    pub cluster: ClusterView,
    /// Since when (ms since the Unix epoch) this agent has seen no leader key, if it
    /// sees none now.
    pub leaderless_since_ms: Option<u64>,
}

/// What the data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataDir {
    /// Missing or empty: nothing to lose.
    #[default]
    Empty,
    /// A PostgreSQL data directory without `standby.signal`: it was (or is) a primary.
    Primary,
    /// A PostgreSQL data directory with `standby.signal`: a replica.
    Standby,
    /// Files that are not a PostgreSQL data directory: never touched.
    Foreign,
}

/// The local PostgreSQL as the agent saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Local {
    /// What the data directory holds.
    pub data: DataDir,
    /// Its system identifier (from `pg_controldata`), when it has data.
    pub system_identifier: Option<String>,
    /// The data directory was made by this member's initdb and its system identifier
    /// was never recorded in the store (its `pgbaton-initdb` marker is still there): it
    /// never served as the cluster.
    pub unrecorded_initdb: bool,
    /// Whether PostgreSQL is running and answering.
    pub running: bool,
    /// A postmaster runs but does not answer SQL (starting up, in crash recovery,
    /// shutting down). Its data directory is busy: nothing may rewind or replace it.
    pub unresponsive: bool,
    /// Whether it is in recovery (a replica), when running.
    pub in_recovery: Option<bool>,
    /// The `host:port` its standby config currently follows, if any.
    pub following: Option<String>,
    /// Whether its WAL receiver is streaming.
    pub streaming: bool,
    /// Its physical replication slots, when running.
    pub slots: Vec<SlotObs>,
    /// Current (primary) or replayed (replica) WAL position.
    pub lsn: Option<Lsn>,
    /// Current timeline.
    pub timeline: Option<u32>,
    /// Replica: last WAL position received and flushed.
    pub received_lsn: Option<Lsn>,
    /// From `pg_controldata`, read while PostgreSQL is stopped.
    pub control: Option<Control>,
    /// A running standby has not streamed for several seconds although it follows the
    /// leader (its WAL receiver keeps failing).
    pub stream_stalled: bool,
    /// The last attempt to start PostgreSQL as primary failed or timed out.
    pub start_failed: bool,
    /// An operator asked to re-clone this member (`pgbaton reinit`).
    pub reinit_requested: bool,
    /// Primary: the standbys connected to it (`pg_stat_replication`).
    pub standbys: Vec<StandbyObs>,
    /// Primary: `synchronous_standby_names` as PostgreSQL uses it now (`SHOW`).
    pub synchronous_standby_names: Option<String>,
    /// Primary: the checkpointer may not have applied `synchronous_standby_names` yet.
    /// Commits wait for standbys only once the checkpointer re-read the setting, which
    /// it defers while a checkpoint is due or immediate; pgbaton knows it did once a
    /// `CHECKPOINT` requested after the reload has finished (safety review finding 12).
    pub sync_names_pending: bool,
}

/// One standby connected to the local primary, from `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyObs {
    /// Its `application_name` (pgbaton sets it to the member name).
    pub name: String,
    /// Its WAL sender is in state `streaming` (not `startup`/`catchup`/`backup`).
    pub streaming: bool,
    /// The last position it flushed to disk.
    pub flush_lsn: Option<Lsn>,
    /// `sync`, `quorum`, `potential` or `async`, as PostgreSQL sees it now.
    pub sync_state: String,
}

/// What `pg_controldata` says about a stopped data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// It was shut down cleanly (a shutdown checkpoint is its last record).
    pub clean_shutdown: bool,
    /// Start of its latest checkpoint record.
    pub checkpoint_lsn: Lsn,
    /// Timeline of that checkpoint.
    pub timeline: u32,
    /// Not shut down cleanly (crashed, fenced): where its last valid WAL record on that
    /// timeline starts, when the agent could read the WAL to its end; `None`: unknown.
    pub last_record: Option<Lsn>,
}

/// One physical replication slot on the local PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotObs {
    /// Slot name.
    pub name: String,
    /// Whether a WAL sender is using it now.
    pub active: bool,
}

/// The cluster as read from the store in one snapshot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterView {
    /// The bootstrap claim and its store revision.
    pub initialize: Option<(Initialize, i64)>,
    /// The member holding the leader key.
    pub leader: Option<String>,
    /// The lease the leader key is attached to.
    pub leader_lease: Option<i64>,
    /// Every member key, by name.
    pub members: BTreeMap<String, MemberStatus>,
    /// The primary's last status report.
    pub status: Option<PrimaryStatus>,
    /// The store revision of the `status` key, to rewrite it only if nobody else has
    /// since (`None`: the key is absent).
    pub status_revision: Option<i64>,
    /// Cluster-wide settings.
    pub config: ClusterConfig,
    /// Why the store's `config` key could not be used (the last good config, or the
    /// fallback, is in `config` instead). Shown by `pgbaton list` and `/metrics`.
    pub config_error: Option<String>,
    /// A pending switchover or failover request, with its store revision.
    pub switchover: Option<(SwitchoverRequest, i64)>,
    /// Every promotion so far, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The synchronous-standby set, with its store revision.
    pub sync: Option<(SyncState, i64)>,
}

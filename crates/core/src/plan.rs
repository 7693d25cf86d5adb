//! The output of [`crate::decide`]: actions for the agent to carry out, and why.

use crate::model::{PrimaryStatus, SyncState};
use crate::Lsn;

/// What to do this cycle. The agent executes `actions` in order and stops at the first
/// failure; the outcome shows up in the next observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// Why, in words a DBA understands. Logged, and shown in the member's status.
    pub reason: String,
}

impl Plan {
    /// A plan with one action.
    pub fn one(action: Action, reason: impl Into<String>) -> Plan {
        Plan {
            actions: vec![action],
            reason: reason.into(),
        }
    }

    /// A plan with no action; the reason says why nothing is done.
    pub fn idle(reason: impl Into<String>) -> Plan {
        Plan {
            actions: Vec::new(),
            reason: reason.into(),
        }
    }
}

/// One step the agent carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the `initialize` key naming this member (fails harmlessly if taken).
    ClaimInitialize,
    /// Delete a bootstrap claim whose owner vanished before it finished.
    ReleaseStaleInitialize {
        /// The claim's store revision, so that only that claim is deleted.
        revision: i64,
    },
    /// Run `initdb` (with data checksums) in the empty data directory.
    Initdb,
    /// Stop PostgreSQL if it runs and move the data directory aside, to
    /// `<data_dir>.set-aside-<unix seconds>` (never deleted): it was made by this member's
    /// initdb for a bootstrap that another member won, so it never served as the cluster.
    SetAsideDataDir,
    /// Write the primary's config and `pg_hba.conf`, start PostgreSQL if stopped (or
    /// restart it if a setting needs it), and make sure the replication role exists.
    StartPrimary,
    /// Store the system identifier in the `initialize` key.
    RecordSystemIdentifier {
        /// The identifier from `pg_controldata`.
        system_identifier: String,
    },
    /// Take the leader key, or re-attach it to this member's current lease.
    AcquireLeader,
    /// Delete the leader key if it still names this member.
    ReleaseLeader,
    /// Clone the data directory from the leader through this member's slot.
    CloneFrom {
        /// The leader's member name.
        leader: String,
    },
    /// Point the standby config at the leader and start (or reload) PostgreSQL.
    Follow {
        /// The leader's member name.
        leader: String,
    },
    /// Start a stopped replica in recovery as it is configured (there is no primary to
    /// point it at), so that it reports its WAL position and can be promoted.
    StartStandby,
    /// Stop PostgreSQL (fast mode).
    StopPostgres,
    /// Rewrite `pg_hba.conf` so these hosts may stream, and reload if it changed.
    AllowReplicationFrom {
        /// Hosts of the registered members.
        hosts: Vec<String>,
    },
    /// Create a physical replication slot.
    CreateSlot(String),
    /// Drop a physical replication slot.
    DropSlot(String),
    /// Write the `status` key.
    PublishStatus(PrimaryStatus),
    /// Hand leadership over for a switchover: checkpoint, stop cleanly, record the
    /// shutdown checkpoint in the `switchover` key, release the leader key.
    HandOver {
        /// The candidate.
        to: String,
    },
    /// Wait (briefly) until the local replica has received WAL past `lsn`.
    WaitForWal {
        /// The position the replica must have passed.
        lsn: Lsn,
    },
    /// Promote the local replica, wait until it accepts writes, and append the
    /// promotion to the history.
    Promote {
        /// Why, for the history.
        reason: String,
        /// The primary before this promotion.
        old_primary: Option<String>,
    },
    /// Delete the `switchover` key (done, cancelled or timed out).
    ClearSwitchover {
        /// The request's store revision, so that only that request is deleted.
        revision: i64,
    },
    /// Make the stopped former primary a replica of `leader` with pg_rewind (crash
    /// recovery first when it was not shut down cleanly), or a new clone if that fails
    /// and the cluster allows it.
    Rewind {
        /// The new primary.
        leader: String,
    },
    /// Move the data directory aside and clone it again from `leader`.
    Reclone {
        /// The primary to clone from.
        leader: String,
    },
    /// Move replication slots of other members forward to this replica's replay
    /// position, so they hold no more WAL than needed.
    AdvanceSlots(Vec<String>),
    /// Set `synchronous_standby_names` in pgbaton's managed config and reload a running
    /// PostgreSQL (a stopped one gets it at its next start).
    SetSynchronousStandbyNames(String),
    /// Write the `sync` key, only if its store revision is still `expect` (`None`: the
    /// key must be absent). Fails when someone changed it meanwhile.
    WriteSync {
        /// The new value.
        state: SyncState,
        /// The revision it must still have.
        expect: Option<i64>,
    },
    /// Refuse to go on: log the message, publish it, and touch nothing.
    Refuse(String),
}

//! A data directory's contents as the simulator models them: the system identifier,
//! the WAL as a list of records (each with a globally unique id, so that "same history"
//! is "same records"), the timeline history files, the control file and the config.

use std::collections::BTreeMap;

/// What a WAL record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecKind {
    /// A client's committed row.
    Commit(u64),
    /// A checkpoint (`shutdown`: written by a clean stop of a primary).
    Checkpoint {
        /// A shutdown checkpoint.
        shutdown: bool,
    },
    /// The first record of a new timeline, written by a promotion.
    EndOfRecovery,
}

/// One WAL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// Unique across the whole simulation: two directories hold the same history up to
    /// a record exactly when they hold the record with the same id there.
    pub id: u64,
    /// Timeline the record was written on.
    pub tli: u32,
    /// Where it starts.
    pub start: u64,
    /// Where the next one starts.
    pub end: u64,
    /// What it is.
    pub kind: RecKind,
}

/// The control file's cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirState {
    /// Cleanly stopped primary.
    ShutDown,
    /// Cleanly stopped standby.
    ShutDownInRecovery,
    /// Running (or crashed) primary.
    InProduction,
    /// Running (or crashed) standby, or rewound and waiting for recovery.
    InArchiveRecovery,
}

/// The configuration files pgbaton writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirConf {
    /// `synchronous_standby_names` from `pgbaton.conf`.
    pub ssn: String,
    /// `primary_conninfo`: the upstream `host:port`.
    pub upstream: Option<String>,
    /// `primary_slot_name`.
    pub slot: Option<String>,
}

/// One PostgreSQL data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// `pg_control`'s system identifier.
    pub sysid: u64,
    /// The WAL, oldest first.
    pub wal: Vec<Rec>,
    /// Timeline history files present: timeline → [(parent timeline, switch point)].
    pub histories: BTreeMap<u32, Vec<(u32, u64)>>,
    /// `standby.signal` exists.
    pub standby_signal: bool,
    /// The control file's state.
    pub state: DirState,
    /// The configuration.
    pub conf: DirConf,
    /// Physical replication slots: name → restart position.
    pub slots: BTreeMap<String, u64>,
    /// Small files pgbaton keeps in the directory (the initdb marker).
    pub files: std::collections::BTreeSet<String>,
}

/// Where WAL starts in a new cluster (as in PostgreSQL 15: 0/1000000 + the first page).
pub const WAL_START: u64 = 0x0100_0028;

impl DataDir {
    /// A freshly initialized cluster: one shutdown checkpoint on timeline 1.
    pub fn initdb(sysid: u64, rec_id: u64) -> DataDir {
        DataDir {
            sysid,
            wal: vec![Rec {
                id: rec_id,
                tli: 1,
                start: WAL_START,
                end: WAL_START + 114,
                kind: RecKind::Checkpoint { shutdown: true },
            }],
            histories: BTreeMap::new(),
            standby_signal: false,
            state: DirState::ShutDown,
            conf: DirConf::default(),
            slots: BTreeMap::new(),
            files: Default::default(),
        }
    }

    /// The end of the WAL.
    pub fn end(&self) -> u64 {
        self.wal.last().map(|r| r.end).unwrap_or(WAL_START)
    }

    /// The timeline of the last record.
    pub fn tli(&self) -> u32 {
        self.wal.last().map(|r| r.tli).unwrap_or(1)
    }

    /// The newest timeline this directory knows of (its own or a history file's).
    pub fn newest_tli(&self) -> u32 {
        self.histories
            .keys()
            .copied()
            .max()
            .unwrap_or(1)
            .max(self.tli())
    }

    /// The last checkpoint record: (start, timeline).
    pub fn last_checkpoint(&self) -> (u64, u32) {
        self.wal
            .iter()
            .rev()
            .find(|r| matches!(r.kind, RecKind::Checkpoint { .. } | RecKind::EndOfRecovery))
            .map(|r| (r.start, r.tli))
            .unwrap_or((WAL_START, 1))
    }

    /// Append a record of `len` bytes on the current timeline; returns it.
    pub fn append(&mut self, id: u64, kind: RecKind, len: u64) -> Rec {
        let start = self.end();
        let rec = Rec {
            id,
            tli: self.tli(),
            start,
            end: start + len,
            kind,
        };
        self.wal.push(rec);
        rec
    }

    /// How many leading records `self` and `other` share.
    pub fn common_prefix(&self, other: &DataDir) -> usize {
        self.wal
            .iter()
            .zip(other.wal.iter())
            .take_while(|(a, b)| a.id == b.id)
            .count()
    }

    /// `self`'s WAL is a prefix of `other`'s: it can stream from `other`.
    ///
    /// Comparing the last record suffices: a record is created once, and a WAL only
    /// grows by new records or is replaced by a copy of another WAL's prefix, so two
    /// WALs holding the same record at the same place agree on everything before it.
    pub fn is_prefix_of(&self, other: &DataDir) -> bool {
        self.sysid == other.sysid
            && self.wal.len() <= other.wal.len()
            && self
                .wal
                .last()
                .is_none_or(|last| other.wal[self.wal.len() - 1].id == last.id)
    }

    /// Whether the commit `id` is in this WAL.
    pub fn has_commit(&self, id: u64) -> bool {
        self.wal.iter().any(|r| r.kind == RecKind::Commit(id))
    }

    /// The commit ids in this WAL.
    pub fn commits(&self) -> impl Iterator<Item = u64> + '_ {
        self.wal.iter().filter_map(|r| match r.kind {
            RecKind::Commit(c) => Some(c),
            _ => None,
        })
    }
}

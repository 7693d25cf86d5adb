//! Builders for the decision core's inputs, shared by the table and property tests.
//!
//! Every struct literal of a core type lives here once, so that a field added to the
//! core needs one edit in the tests.
#![allow(dead_code)]

use pgbaton_core::model::{
    ClusterConfig, HistoryEntry, Initialize, MemberStatus, PgState, PrimaryStatus, RequestKind,
    Role, SwitchoverPhase, SwitchoverRequest, Tags,
};
use pgbaton_core::{Action, ClusterView, Control, DataDir, Local, Lsn, Observation, SlotObs};
use std::collections::BTreeMap;

/// "Now" in every hand-written case (ms since the Unix epoch).
pub const NOW: u64 = 1_700_000_000_000;
/// The cluster's system identifier.
pub const SYSID: &str = "7300000000000000001";
/// Revision of the `initialize` key.
pub const INIT_REV: i64 = 11;
/// Revision of the `switchover` key.
pub const SW_REV: i64 = 42;
/// 1 MiB, the default lag limit.
pub const MB: u64 = 1024 * 1024;

/// The kind of an action, e.g. `CreateSlot` for `CreateSlot("b")`.
pub fn kind(a: &Action) -> String {
    format!("{a:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The kinds of a plan's actions, in order.
pub fn kinds(actions: &[Action]) -> Vec<String> {
    actions.iter().map(kind).collect()
}

/// A member key of a streaming replica on timeline 1 at `lsn`, reported at [`NOW`].
pub fn replica(name: &str, lsn: u64) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        host: format!("host-{name}"),
        port: 5432,
        api_url: String::new(),
        role: Role::Replica,
        state: PgState::Streaming,
        timeline: Some(1),
        lsn: Some(Lsn(lsn)),
        received_lsn: Some(Lsn(lsn)),
        replayed_lsn: Some(Lsn(lsn)),
        lag_bytes: Some(0),
        pg_version: Some(150_000),
        system_identifier: Some(SYSID.into()),
        tags: Tags::default(),
        slots: Vec::new(),
        note: None,
        updated_ms: NOW,
    }
}

/// A member key of a running primary on timeline 1 at `lsn` holding `slots`.
pub fn primary(name: &str, lsn: u64, slots: &[&str]) -> MemberStatus {
    MemberStatus {
        role: Role::Primary,
        state: PgState::Running,
        received_lsn: None,
        replayed_lsn: None,
        lag_bytes: None,
        slots: slots.iter().map(|s| s.to_string()).collect(),
        ..replica(name, lsn)
    }
}

/// The `status` key written by `primary`.
pub fn status(primary: &str, lsn: u64, registry: &[(&str, u64)]) -> PrimaryStatus {
    PrimaryStatus {
        primary: primary.into(),
        lsn: Lsn(lsn),
        timeline: 1,
        updated_ms: NOW - 1000,
        registry: registry.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        hosts: Default::default(),
    }
}

/// A history entry: timeline `tl` began at `switch`.
pub fn fork(tl: u32, switch: u64) -> HistoryEntry {
    HistoryEntry {
        timeline: tl,
        switch_lsn: Some(Lsn(switch)),
        reason: "test".into(),
        time_ms: NOW - 60_000,
        old_primary: Some("a".into()),
        new_primary: "b".into(),
    }
}

/// A switchover request from `from` to `to`.
pub fn switchover(from: &str, to: &str) -> SwitchoverRequest {
    SwitchoverRequest {
        kind: RequestKind::Switchover,
        from: Some(from.into()),
        to: to.into(),
        scheduled_ms: None,
        requested_ms: NOW - 1000,
        force: false,
        phase: SwitchoverPhase::Requested,
    }
}

/// A switchover whose primary stopped cleanly at `checkpoint` `ago_ms` before [`NOW`].
pub fn switchover_stopped(from: &str, to: &str, checkpoint: u64, ago_ms: u64) -> SwitchoverRequest {
    SwitchoverRequest {
        phase: SwitchoverPhase::PrimaryStopped {
            checkpoint_lsn: Lsn(checkpoint),
            timeline: 1,
            stopped_ms: NOW - ago_ms,
        },
        ..switchover(from, to)
    }
}

/// An operator failover request to `to`.
pub fn failover_request(to: &str, force: bool) -> SwitchoverRequest {
    SwitchoverRequest {
        kind: RequestKind::Failover,
        from: None,
        force,
        ..switchover("a", to)
    }
}

/// Slots as PostgreSQL reports them, all inactive unless named in `active`.
pub fn slots(names: &[&str], active: &[&str]) -> Vec<SlotObs> {
    names
        .iter()
        .map(|n| SlotObs {
            name: n.to_string(),
            active: active.contains(n),
        })
        .collect()
}

/// A running primary's own PostgreSQL at `lsn` on timeline 1.
pub fn local_primary(lsn: u64) -> Local {
    Local {
        data: DataDir::Primary,
        system_identifier: Some(SYSID.into()),
        running: true,
        in_recovery: Some(false),
        lsn: Some(Lsn(lsn)),
        timeline: Some(1),
        ..Local::default()
    }
}

/// A running standby that follows `following` and has replayed up to `lsn`.
pub fn local_replica(following: &str, lsn: u64) -> Local {
    Local {
        data: DataDir::Standby,
        system_identifier: Some(SYSID.into()),
        running: true,
        in_recovery: Some(true),
        following: Some(following.into()),
        streaming: true,
        lsn: Some(Lsn(lsn)),
        timeline: Some(1),
        received_lsn: Some(Lsn(lsn)),
        ..Local::default()
    }
}

/// A stopped data directory of kind `data` whose control file says `control`.
pub fn local_stopped(data: DataDir, control: Option<Control>) -> Local {
    Local {
        data,
        system_identifier: Some(SYSID.into()),
        control,
        ..Local::default()
    }
}

/// A control file: last checkpoint at `lsn` on `timeline`.
pub fn control(clean: bool, lsn: u64, timeline: u32) -> Control {
    Control {
        clean_shutdown: clean,
        checkpoint_lsn: Lsn(lsn),
        timeline,
        last_record: None,
    }
}

/// Builds an [`Observation`] for member `me`; starts from a running cluster (the
/// `initialize` key carries [`SYSID`]) with no members, no leader and an empty data
/// directory.
#[derive(Debug, Clone)]
pub struct Obs(pub Observation);

impl Obs {
    /// A member of a bootstrapped cluster whose owner was `a`.
    pub fn new(me: &str) -> Obs {
        let cluster = ClusterView {
            initialize: Some((
                Initialize {
                    owner: "a".into(),
                    system_identifier: Some(SYSID.into()),
                },
                INIT_REV,
            )),
            ..ClusterView::default()
        };
        Obs(Observation {
            now_ms: NOW,
            me: me.into(),
            tags: Tags::default(),
            my_lease: None,
            local: Local::default(),
            cluster,
            leaderless_since_ms: None,
        })
    }

    /// No `initialize` key at all.
    pub fn no_cluster(mut self) -> Obs {
        self.0.cluster.initialize = None;
        self
    }

    /// `owner` claimed the cluster and has not recorded a system identifier yet.
    pub fn claimed_by(mut self, owner: &str) -> Obs {
        self.0.cluster.initialize = Some((
            Initialize {
                owner: owner.into(),
                system_identifier: None,
            },
            INIT_REV,
        ));
        self
    }

    /// The leader key names `name`, on lease `lease`.
    pub fn leader(mut self, name: &str, lease: i64) -> Obs {
        self.0.cluster.leader = Some(name.into());
        self.0.cluster.leader_lease = Some(lease);
        self
    }

    /// This member's agent holds `lease`.
    pub fn my_lease(mut self, lease: i64) -> Obs {
        self.0.my_lease = Some(lease);
        self
    }

    /// Adds (or replaces) a member key.
    pub fn member(mut self, m: MemberStatus) -> Obs {
        self.0.cluster.members.insert(m.name.clone(), m);
        self
    }

    /// Sets the `status` key.
    pub fn status(mut self, s: PrimaryStatus) -> Obs {
        self.0.cluster.status = Some(s);
        self
    }

    /// Sets this member's PostgreSQL.
    pub fn local(mut self, l: Local) -> Obs {
        self.0.local = l;
        self
    }

    /// Edits this member's PostgreSQL.
    pub fn with_local(mut self, f: impl FnOnce(&mut Local)) -> Obs {
        f(&mut self.0.local);
        self
    }

    /// Edits the cluster config.
    pub fn config(mut self, f: impl FnOnce(&mut ClusterConfig)) -> Obs {
        f(&mut self.0.cluster.config);
        self
    }

    /// This member's tags.
    pub fn tags(mut self, tags: Tags) -> Obs {
        self.0.tags = tags;
        self
    }

    /// Sets the `switchover` key.
    pub fn request(mut self, r: SwitchoverRequest) -> Obs {
        self.0.cluster.switchover = Some((r, SW_REV));
        self
    }

    /// Sets the history.
    pub fn history(mut self, h: Vec<HistoryEntry>) -> Obs {
        self.0.cluster.history = h;
        self
    }

    /// No leader since `ago_ms` before [`NOW`].
    pub fn leaderless_for(mut self, ago_ms: u64) -> Obs {
        self.0.leaderless_since_ms = Some(NOW - ago_ms);
        self
    }

    /// The finished observation.
    pub fn build(self) -> Observation {
        self.0
    }
}

/// The member keys as a map.
pub fn members(ms: Vec<MemberStatus>) -> BTreeMap<String, MemberStatus> {
    ms.into_iter().map(|m| (m.name.clone(), m)).collect()
}

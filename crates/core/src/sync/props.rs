//! Property tests of [`super::sync_step`] against a model of PostgreSQL's commit
//! acknowledgement: whatever the sequence of standbys connecting, disconnecting,
//! lagging, being tagged `nosync` or changing mode, every acknowledged commit is on at
//! least `holders()` members of the `sync` key, after every single action.

use super::*;
use crate::model::SyncState;
use proptest::prelude::*;

const STANDBYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Event {
    Connect(usize),
    Disconnect(usize),
    /// The standby receives and flushes everything written so far.
    Replicate(usize),
    ToggleNosync(usize),
    Commit,
    Mode(u8, u32, bool),
    /// The primary's agent runs one cycle.
    Cycle,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..3usize).prop_map(Event::Connect),
        (0..3usize).prop_map(Event::Disconnect),
        (0..3usize).prop_map(Event::Replicate),
        (0..3usize).prop_map(Event::ToggleNosync),
        Just(Event::Commit),
        Just(Event::Commit),
        (0..3u8, 1..3u32, any::<bool>()).prop_map(|(m, n, s)| Event::Mode(m, n, s)),
        Just(Event::Cycle),
        Just(Event::Cycle),
        Just(Event::Cycle),
    ]
}

struct World {
    lsn: u64,
    connected: [bool; 3],
    flush: [u64; 3],
    nosync: [bool; 3],
    ssn: String,
    key: Option<(SyncState, i64)>,
    revision: i64,
    pending: Vec<u64>,
    acked_max: u64,
    mode: SynchronousMode,
    node_count: u32,
    strict: bool,
}

impl World {
    fn parsed(&self) -> Ssn {
        Ssn::parse(&self.ssn)
    }

    /// Does PostgreSQL acknowledge commit `c` under the current setting?
    fn ackable(&self, c: u64) -> bool {
        let has = |i: usize| self.connected[i] && self.flush[i] >= c;
        match self.parsed() {
            Ssn::Standalone => true,
            Ssn::AnyStandby => (0..3).any(has),
            Ssn::List { k, names, .. } => {
                (0..3)
                    .filter(|&i| has(i) && names.iter().any(|n| n == STANDBYS[i]))
                    .count()
                    >= k
            }
        }
    }

    fn release(&mut self) {
        let (ok, wait): (Vec<u64>, Vec<u64>) = self.pending.iter().partition(|&&c| self.ackable(c));
        self.pending = wait;
        if let Some(m) = ok.into_iter().max() {
            self.acked_max = self.acked_max.max(m);
        }
    }

    fn check(&self, when: &str) -> Result<(), TestCaseError> {
        let Some((key, _)) = &self.key else {
            return Ok(());
        };
        if self.acked_max == 0 {
            return Ok(());
        }
        let holders = (0..3)
            .filter(|&i| key.lists(STANDBYS[i]) && self.flush[i] >= self.acked_max)
            .count();
        prop_assert!(
            holders >= key.holders(),
            "{when}: commit {} is on {holders} of {:?}, the key claims {} (ssn {:?}, flush {:?})",
            self.acked_max,
            key.members,
            key.holders(),
            self.ssn,
            self.flush
        );
        Ok(())
    }

    fn input(&self) -> SyncInput {
        let ssn = self.parsed();
        SyncInput {
            me: "p".into(),
            mode: self.mode,
            node_count: self.node_count,
            strict: self.strict,
            allowed: (0..3)
                .filter(|&i| !self.nosync[i])
                .map(|i| STANDBYS[i].to_string())
                .collect(),
            standbys: (0..3)
                .filter(|&i| self.connected[i])
                .map(|i| StandbyObs {
                    name: STANDBYS[i].into(),
                    streaming: true,
                    flush_lsn: Some(Lsn(self.flush[i])),
                    sync_state: match &ssn {
                        Ssn::List { first, names, .. }
                            if names.iter().any(|n| n == STANDBYS[i]) =>
                        {
                            if *first { "sync" } else { "quorum" }.into()
                        }
                        _ => "async".into(),
                    },
                })
                .collect(),
            current_lsn: Some(Lsn(self.lsn)),
            in_effect: Some(self.ssn.clone()),
            pending: false,
            key: self.key.clone(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn the_key_never_claims_more_than_postgres_guarantees(
        events in proptest::collection::vec(event(), 1..120)
    ) {
        let mut w = World {
            lsn: 1,
            connected: [false; 3],
            flush: [1; 3],
            nosync: [false; 3],
            ssn: String::new(),
            key: None,
            revision: 0,
            pending: Vec::new(),
            acked_max: 0,
            mode: SynchronousMode::On,
            node_count: 1,
            strict: false,
        };
        for e in events {
            match e {
                Event::Connect(i) => w.connected[i] = true,
                Event::Disconnect(i) => w.connected[i] = false,
                Event::Replicate(i) => {
                    if w.connected[i] {
                        w.flush[i] = w.lsn;
                    }
                }
                Event::ToggleNosync(i) => w.nosync[i] = !w.nosync[i],
                Event::Commit => {
                    w.lsn += 1;
                    w.pending.push(w.lsn);
                }
                Event::Mode(m, n, s) => {
                    w.mode = [SynchronousMode::Off, SynchronousMode::On, SynchronousMode::Quorum]
                        [m as usize];
                    w.node_count = n;
                    w.strict = s;
                }
                Event::Cycle => {
                    let step = sync_step(&w.input());
                    for a in step.actions {
                        match a {
                            Action::WriteSync { state, expect } => {
                                prop_assert_eq!(expect, w.key.as_ref().map(|(_, r)| *r));
                                w.revision += 1;
                                w.key = Some((state, w.revision));
                            }
                            Action::SetSynchronousStandbyNames(s) => w.ssn = s,
                            other => prop_assert!(false, "unexpected action {other:?}"),
                        }
                        w.release();
                        w.check("after an action")?;
                    }
                }
            }
            w.release();
            w.check("after an event")?;
        }
    }
}

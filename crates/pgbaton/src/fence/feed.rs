//! Feeding the fence from the agent's two sources of truth: the lease keeper (the lease
//! was renewed) and the main loop (the store showed this member holding the leader key).
//!
//! The deadline counts from the older of the two, so neither a failing store nor a hung
//! main loop can keep PostgreSQL writable (see `docs/fencing.md`, "Two inputs").

use super::clock;
use super::error::FenceError;
use super::{Fence, FenceOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running fence: something that stops PostgreSQL at an armed deadline, even when the
/// agent hangs. In production the `pgbaton fence-watchdog` child ([`Fence`]); in the
/// simulator a simulated process on the simulated host.
pub trait FenceProcess: Send {
    /// Arm (or re-arm) at `deadline`, the lease's earliest expiry being `expiry`.
    fn arm_until(&self, deadline: Duration, expiry: Duration) -> Result<(), FenceError>;
    /// Disarm: nothing to enforce.
    fn disarm(&self) -> Result<(), FenceError>;
    /// How many times it stopped PostgreSQL.
    fn fenced_count(&self) -> u64;
    /// Whether the process runs.
    fn is_alive(&self) -> bool;
    /// The last error it reported.
    fn last_error(&self) -> Option<String>;
}

/// Starts fence processes (the first one and replacements of dead ones).
#[async_trait::async_trait]
pub trait FenceSpawner: Send + Sync {
    /// Start a new fence process and wait until it is ready.
    async fn spawn(&self) -> Result<Box<dyn FenceProcess>, FenceError>;
}

impl FenceProcess for Fence {
    fn arm_until(&self, deadline: Duration, expiry: Duration) -> Result<(), FenceError> {
        Fence::arm_until(self, deadline, expiry)
    }
    fn disarm(&self) -> Result<(), FenceError> {
        Fence::disarm(self)
    }
    fn fenced_count(&self) -> u64 {
        Fence::fenced_count(self)
    }
    fn is_alive(&self) -> bool {
        Fence::is_alive(self)
    }
    fn last_error(&self) -> Option<String> {
        Fence::last_error(self)
    }
}

/// Starts `pgbaton fence-watchdog` child processes.
#[derive(Debug, Clone)]
pub struct OsFenceSpawner(pub FenceOptions);

#[async_trait::async_trait]
impl FenceSpawner for OsFenceSpawner {
    async fn spawn(&self) -> Result<Box<dyn FenceProcess>, FenceError> {
        let opts = self.0.clone();
        match tokio::task::spawn_blocking(move || Fence::spawn(opts)).await {
            Ok(r) => r.map(|f| Box::new(f) as Box<dyn FenceProcess>),
            Err(e) => Err(FenceError::Exited(format!("the start task failed: {e}"))),
        }
    }
}

/// One successful lease renewal (or grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// When the request was sent.
    pub sent: Duration,
    /// The lease's time to live.
    pub ttl: Duration,
    /// The store's id of the lease.
    pub lease: i64,
}

/// What the fence has been told so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedState {
    /// The last successful renewal (or grant) of the lease the leader key was last
    /// confirmed under (of the newest lease while this member does not lead).
    pub renewal: Option<Renewal>,
    /// The last renewal of a newer lease, kept apart until the main loop confirms the
    /// leader key under it: a new lease says nothing about when the old one, which
    /// still holds the key, can expire (safety review finding 12).
    pub newer: Option<Renewal>,
    /// When the last store read that showed this member as leader was sent, and under
    /// which lease; `None` while this member does not lead.
    pub confirmed: Option<(Duration, i64)>,
    /// When the latest store call that failed (no answer, unreachable) was sent: the
    /// isolation guard's evidence that the store is down.
    pub store_failed: Option<Duration>,
}

impl FeedState {
    /// Whether the lease keeper may renew the lease at `now`. Not once this member
    /// leads and the main loop has not confirmed it within the fence deadline: the
    /// loop is stuck (every cycle fails before it decides, or it hangs), its
    /// PostgreSQL has been fenced, and only an expiring lease lets a replica take over
    /// (safety review finding 2). Renewals resume as soon as the loop confirms again.
    pub fn may_renew(&self, now: Duration, margin: Duration) -> bool {
        match (self.confirmed, self.renewal) {
            (Some((confirmed, _)), Some(r)) => now < clock::deadline(confirmed, r.ttl, margin),
            _ => true,
        }
    }

    /// When the latest store call that succeeded was sent: a renewal, or a read that
    /// showed this member leading.
    pub fn store_ok(&self) -> Option<Duration> {
        [
            self.renewal.map(|r| r.sent),
            self.newer.map(|r| r.sent),
            self.confirmed.map(|(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The fence deadline and the lease's earliest expiry, once this member leads and a
    /// renewal is known: counted from the older of the two moments.
    pub fn arm_at(&self, margin: Duration) -> Option<(Duration, Duration)> {
        let r = self.renewal?;
        let (confirmed, _) = self.confirmed?;
        let since = r.sent.min(confirmed);
        Some((
            clock::deadline(since, r.ttl, margin),
            clock::earliest_expiry(since, r.ttl),
        ))
    }

    /// A renewal (or grant) of `r.lease` succeeded.
    fn renew(&mut self, r: Renewal) {
        match (self.confirmed, self.renewal) {
            // Leading under another lease: that lease's last renewal still bounds the
            // deadline; this one counts once the loop confirms the key under it.
            (Some((_, under)), Some(_)) if under != r.lease => self.newer = Some(r),
            _ => {
                self.renewal = Some(r);
                self.newer = None;
            }
        }
    }

    /// The main loop saw the leader key under `lease` in a read sent at `sent`.
    fn confirm(&mut self, sent: Duration, lease: i64) {
        if let Some(newer) = self.newer.filter(|n| n.lease == lease) {
            self.renewal = Some(newer);
            self.newer = None;
        }
        self.confirmed = Some((sent, lease));
    }
}

/// A [`Fence`] fed by the lease keeper and the main loop. Share it in an `Arc`; every
/// method but [`FenceFeed::respawn`] is short and never blocks (one non-blocking pipe
/// write under a mutex).
pub struct FenceFeed {
    margin: Duration,
    spawner: Arc<dyn FenceSpawner>,
    inner: Mutex<Inner>,
    /// Bumped on every change of what the fence was told (for the agent's backstop and
    /// the lease keeper, which wait on it).
    changed: tokio::sync::watch::Sender<u64>,
}

struct Inner {
    fence: Box<dyn FenceProcess>,
    state: FeedState,
    /// What the current fence process was last told successfully, so that an unchanged
    /// deadline (every cycle of a leader between two renewals) or a repeated disarm
    /// (every cycle of a replica) costs no pipe write and no wake-up of the fence.
    told: Told,
    /// Fences counted by fence processes replaced by [`FenceFeed::respawn`].
    fenced_before: u64,
}

impl FenceFeed {
    /// Wraps a started fence with `watchdog.safety_margin`; `spawner` replaces it when it
    /// dies.
    pub fn new(
        fence: Box<dyn FenceProcess>,
        spawner: Arc<dyn FenceSpawner>,
        margin: Duration,
    ) -> FenceFeed {
        FenceFeed {
            margin,
            spawner,
            inner: Mutex::new(Inner {
                fence,
                state: FeedState::default(),
                told: Told::Unknown,
                fenced_before: 0,
            }),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The watchdog safety margin.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// The armed deadline (on [`clock::now`]'s clock), if this member leads.
    pub fn deadline(&self) -> Option<Duration> {
        self.lock().state.arm_at(self.margin).map(|(d, _)| d)
    }

    /// Whether the lease keeper may renew at `now` (on the fence clock; see
    /// [`FeedState::may_renew`]).
    pub fn may_renew(&self, now: Duration) -> bool {
        self.lock().state.may_renew(now, self.margin)
    }

    /// What the fence has been told so far.
    pub fn state(&self) -> FeedState {
        self.lock().state
    }

    /// Lease keeper or main loop: a store call sent at `sent_at` (on [`clock::now`]'s
    /// clock) failed without an answer. Arms nothing; the isolation guard reads it.
    pub fn store_failed(&self, sent_at: Duration) {
        let mut inner = self.lock();
        let later = inner.state.store_failed.is_none_or(|f| f < sent_at);
        if later {
            inner.state.store_failed = Some(sent_at);
        }
        drop(inner);
        if later {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// A receiver that sees every change of what the fence was told.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Lease keeper, after a renewal (or a new grant) of `lease` succeeded: `sent_at`
    /// is [`clock::now`] taken just before the request, `ttl` the lease's time to live.
    /// Re-arms when this member leads.
    pub fn renewed(&self, sent_at: Duration, ttl: Duration, lease: i64) -> Result<(), FenceError> {
        self.update(|s| {
            s.renew(Renewal {
                sent: sent_at,
                ttl,
                lease,
            })
        })
    }

    /// Main loop: the store read (or leader-key write) sent at `sent_at` showed the
    /// leader key held by this member under its live lease `lease`. Call it before
    /// promoting or starting PostgreSQL as primary (so it is never writable unarmed),
    /// and on every cycle while leading.
    pub fn confirmed_leader(&self, sent_at: Duration, lease: i64) -> Result<(), FenceError> {
        self.update(|s| s.confirm(sent_at, lease))
    }

    /// Main loop: this member's PostgreSQL no longer accepts writes as primary (demoted
    /// or stopped), or it never became primary. Disarms the fence.
    pub fn stepped_down(&self) -> Result<(), FenceError> {
        let mut inner = self.lock();
        let before = inner.state;
        inner.state.confirmed = None;
        if let Some(newer) = inner.state.newer.take() {
            inner.state.renewal = Some(newer);
        }
        let result = inner.disarm();
        let changed = inner.state != before;
        drop(inner);
        if changed {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
        result
    }

    /// How many times PostgreSQL was fenced (the `fencing_actions` metric).
    pub fn fenced_count(&self) -> u64 {
        let inner = self.lock();
        inner.fenced_before + inner.fence.fenced_count()
    }

    /// Whether the fence process runs. When it does not, call [`FenceFeed::respawn`].
    pub fn is_alive(&self) -> bool {
        self.lock().fence.is_alive()
    }

    /// The last error the fence process reported.
    pub fn last_error(&self) -> Option<String> {
        self.lock().fence.last_error()
    }

    /// Starts a new fence process (waiting up to [`super::READY_TIMEOUT`] for it) and
    /// re-arms it at once with what is known.
    pub async fn respawn(&self) -> Result<(), FenceError> {
        let fresh = self.spawner.spawn().await?;
        let mut inner = self.lock();
        inner.fenced_before += inner.fence.fenced_count();
        let old = std::mem::replace(&mut inner.fence, fresh);
        // A fresh fence process starts disarmed.
        inner.told = Told::Disarmed;
        let armed = inner.state.arm_at(self.margin);
        let result = match armed {
            Some((deadline, expiry)) => inner.arm(deadline, expiry),
            None => Ok(()),
        };
        drop(inner);
        drop(old);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut FeedState)) -> Result<(), FenceError> {
        let mut inner = self.lock();
        let before = inner.state;
        change(&mut inner.state);
        let result = match inner.state.arm_at(self.margin) {
            Some((deadline, expiry)) => inner.arm(deadline, expiry),
            None => Ok(()),
        };
        let changed = inner.state != before;
        drop(inner);
        if changed {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
        result
    }
}

/// What the current fence process was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// Nothing certain (at start, or after a failed command): the next command is sent.
    Unknown,
    /// Disarmed (a fresh fence process starts so).
    Disarmed,
    /// Armed with this deadline and lease expiry.
    Armed(Duration, Duration),
}

impl Inner {
    /// Arm at `deadline` unless the fence already holds exactly that.
    fn arm(&mut self, deadline: Duration, expiry: Duration) -> Result<(), FenceError> {
        let want = Told::Armed(deadline, expiry);
        if self.told == want {
            return Ok(());
        }
        let result = self.fence.arm_until(deadline, expiry);
        // On error the fence keeps its previous (earlier) deadline: send again next time.
        self.told = if result.is_ok() { want } else { Told::Unknown };
        result
    }

    /// Disarm unless the fence is known to be disarmed.
    fn disarm(&mut self) -> Result<(), FenceError> {
        if self.told == Told::Disarmed {
            return Ok(());
        }
        let result = self.fence.disarm();
        self.told = if result.is_ok() {
            Told::Disarmed
        } else {
            Told::Unknown
        };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    /// A command as [`Counting`] records it: `Some((deadline, expiry))` for an arm,
    /// `None` for a disarm.
    type Heard = Option<(Duration, Duration)>;

    /// Counts the commands a fence process receives.
    #[derive(Default)]
    struct Counting {
        commands: Arc<Mutex<Vec<Heard>>>,
    }

    impl FenceProcess for Counting {
        fn arm_until(&self, deadline: Duration, expiry: Duration) -> Result<(), FenceError> {
            self.commands.lock().unwrap().push(Some((deadline, expiry)));
            Ok(())
        }
        fn disarm(&self) -> Result<(), FenceError> {
            self.commands.lock().unwrap().push(None);
            Ok(())
        }
        fn fenced_count(&self) -> u64 {
            0
        }
        fn is_alive(&self) -> bool {
            true
        }
        fn last_error(&self) -> Option<String> {
            None
        }
    }

    struct NoSpawn;

    #[async_trait::async_trait]
    impl FenceSpawner for NoSpawn {
        async fn spawn(&self) -> Result<Box<dyn FenceProcess>, FenceError> {
            Err(FenceError::Exited("not in this test".into()))
        }
    }

    fn ren(sent: u64, ttl: u64, lease: i64) -> Renewal {
        Renewal {
            sent: s(sent),
            ttl: s(ttl),
            lease,
        }
    }

    #[test]
    fn the_fence_hears_only_changes() {
        let fence = Counting::default();
        let commands = fence.commands.clone();
        let feed = FenceFeed::new(Box::new(fence), Arc::new(NoSpawn), s(2));
        let mut changes = feed.subscribe();
        // A replica steps down every cycle: one disarm, then silence.
        for _ in 0..5 {
            feed.stepped_down().unwrap();
        }
        assert_eq!(*commands.lock().unwrap(), vec![None]);
        // A leader: renewed at 100 s, confirmed every cycle after it. The deadline
        // counts from the older input (the renewal), so it does not move.
        feed.renewed(s(100), s(10), 1).unwrap();
        changes.mark_unchanged();
        for t in 101..105 {
            feed.confirmed_leader(s(t), 1).unwrap();
        }
        assert!(
            changes.has_changed().unwrap(),
            "the lease keeper and backstop must hear confirmations"
        );
        assert_eq!(
            *commands.lock().unwrap(),
            vec![None, Some((s(108), s(110)))]
        );
        // A renewal moves it (the older input is now the confirmation at 104 s).
        feed.renewed(s(105), s(10), 1).unwrap();
        feed.confirmed_leader(s(106), 1).unwrap();
        assert_eq!(
            *commands.lock().unwrap(),
            vec![
                None,
                Some((s(108), s(110))),
                Some((s(112), s(114))),
                Some((s(113), s(115)))
            ]
        );
        // Stepping down disarms once.
        feed.stepped_down().unwrap();
        feed.stepped_down().unwrap();
        assert_eq!(commands.lock().unwrap().last(), Some(&None));
        assert_eq!(commands.lock().unwrap().len(), 5);
    }

    #[test]
    fn a_new_lease_does_not_extend_a_deadline_confirmed_under_the_old_one() {
        // Finding 12: lease 1 renewed at 100 s, the key confirmed under it at 102 s
        // (ttl 10, margin 2: deadline 108 s, lease 1 expires at 110 s at the earliest).
        // The keeper loses lease 1 and is granted lease 2 at 109 s. Paired with the old
        // confirmation, the new grant used to move the deadline to 110 s: past the
        // moment lease 1, which still holds the leader key, may expire.
        let mut st = FeedState::default();
        st.renew(ren(100, 10, 1));
        st.confirm(s(102), 1);
        assert_eq!(st.arm_at(s(2)), Some((s(108), s(110))));
        st.renew(ren(109, 10, 2));
        assert_eq!(st.arm_at(s(2)), Some((s(108), s(110))));
        // Renewals of lease 2 go on; still bounded by lease 1.
        st.renew(ren(111, 10, 2));
        assert_eq!(st.arm_at(s(2)), Some((s(108), s(110))));
        // The loop re-attached the key to lease 2 (write sent at 112 s): lease 2 counts.
        st.confirm(s(112), 2);
        assert_eq!(st.arm_at(s(2)), Some((s(119), s(121))));
        // Not leading: the newest lease is kept as it comes.
        let mut st = FeedState::default();
        st.renew(ren(100, 10, 1));
        st.renew(ren(109, 10, 2));
        assert_eq!(st.renewal, Some(ren(109, 10, 2)));
    }

    #[test]
    fn not_armed_until_leading_and_renewed() {
        let mut st = FeedState::default();
        assert_eq!(st.arm_at(s(2)), None);
        st.renewal = Some(ren(100, 10, 1));
        assert_eq!(st.arm_at(s(2)), None);
        st.confirmed = Some((s(101), 1));
        assert_eq!(st.arm_at(s(2)), Some((s(108), s(110))));
    }

    #[test]
    fn renewals_stop_once_the_loop_misses_the_deadline() {
        // Finding 2: leading, confirmed at 100 s, ttl 10, margin 2: renew until 108 s.
        let st = FeedState {
            renewal: Some(ren(105, 10, 1)),
            confirmed: Some((s(100), 1)),
            newer: None,
            store_failed: None,
        };
        assert!(st.may_renew(s(107), s(2)));
        assert!(!st.may_renew(s(108), s(2)));
        assert!(!st.may_renew(s(500), s(2)));
        // Not leading: the member key must stay alive whatever the loop does.
        let st = FeedState {
            renewal: Some(ren(105, 10, 1)),
            confirmed: None,
            newer: None,
            store_failed: None,
        };
        assert!(st.may_renew(s(500), s(2)));
    }

    #[test]
    fn the_older_input_sets_the_deadline() {
        let st = FeedState {
            renewal: Some(ren(120, 10, 1)),
            confirmed: Some((s(101), 1)),
            newer: None,
            store_failed: None,
        };
        // A hung main loop (confirmed long ago) fences even though renewals go on.
        assert_eq!(st.arm_at(s(2)), Some((s(109), s(111))));
        let st = FeedState {
            renewal: Some(ren(100, 10, 1)),
            confirmed: Some((s(130), 1)),
            newer: None,
            store_failed: None,
        };
        // A failing store (renewed long ago) fences even though the loop runs.
        assert_eq!(st.arm_at(s(2)), Some((s(108), s(110))));
    }
}

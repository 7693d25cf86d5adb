//! The member's agent: observe, decide, act, once per cycle, until told to stop.
//!
//! One HA cycle:
//! 1. read the whole cluster namespace from the store ([`pgbaton_store::Store::snapshot`]);
//! 2. observe the local PostgreSQL ([`observe`]);
//! 3. publish this member's status under its lease ([`publish`]);
//! 4. ask the pure core what to do ([`pgbaton_core::decide`]) and log the reason;
//! 5. carry the actions out in order ([`execute`]);
//! 6. sleep until `loop_wait` passes or the store changes in a way that matters ([`wake`]).
//!
//! The lease is renewed by its own task ([`lease`]), never by this loop.

mod backstop;
mod execute;
mod freshness;
mod isolation;
mod lease;
mod observe;
mod publish;
mod reload;
mod settings;
mod shutdown;
mod startup;
mod syncapply;
mod timeline;
mod transitions;
mod vanished;
mod wake;
mod walend;

use crate::effects::{exited, Clock, Effects, ExitWatch, Pg, PgSql};
use anyhow::Context;
use pgbaton_config::NodeConfig;
use pgbaton_core::model::{ClusterConfig, PgState};
use pgbaton_core::view::{cluster_view, RawEntry};
use pgbaton_core::{decide, Action, Observation};
use pgbaton_store::{Snapshot, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use execute::INITDB_MARKER;
pub use shutdown::Shutdown;
pub(crate) use vanished::start_time as process_start_time;

/// How long a standby may fail to stream from its leader before its history is
/// suspected to have diverged.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// How long a postmaster that does not answer SQL is waited for before the rules may
/// treat its data directory as stuck (rewind, or re-clone keeping the old data aside).
const UNRESPONSIVE_LIMIT: Duration = Duration::from_secs(300);

/// Run the agent of the member configured in `config_path` until SIGTERM or Ctrl-C.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let cfg = pgbaton_config::load(config_path)?;
    crate::logging::init(&cfg).map_err(|e| crate::exit::bad_config(format!("{e:#}")))?;
    let Some(mut agent) = Agent::new(cfg, config_path).await? else {
        tracing::info!("shutdown requested before the store answered");
        return Ok(());
    };
    crate::api::spawn(crate::api::ApiContext {
        snapshot: agent.api_state.subscribe(),
        store: agent.store.clone(),
        cfg: agent.cfg.clone(),
        config_path: config_path.to_path_buf(),
        reload: Some(agent.reload_requested.clone()),
    })
    .await
    .with_context(|| {
        format!(
            "starting the HTTP API on api.listen {}",
            agent.cfg.api.listen
        )
    })?;
    let result = agent.run().await;
    crate::sdnotify::stopping();
    agent.stop().await;
    result
}

/// Run the agent of member `cfg` on the given effects until `shutdown` is requested:
/// the same cycle as [`run`], without the HTTP API, signal handlers or a config file.
/// The simulator runs every member this way.
pub async fn run_with(cfg: NodeConfig, effects: Effects, shutdown: Shutdown) -> anyhow::Result<()> {
    startup::stop_unleased_primary(effects.pg.as_ref()).await;
    let Some(cluster_config) = read_cluster_config(effects.store.as_ref(), &cfg, &shutdown).await?
    else {
        return Ok(());
    };
    let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut agent = Agent::assemble(
        cfg,
        Path::new(""),
        cluster_config,
        effects,
        shutdown,
        reload,
    );
    let result = agent.run().await;
    agent.stop().await;
    result
}

/// The cluster-wide settings from the store's `config` key (waiting for the store as
/// long as it takes); the member's `bootstrap` section when the key is missing or
/// unreadable. `None` when a shutdown was requested before the store answered.
async fn read_cluster_config(
    store: &dyn Store,
    cfg: &NodeConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<ClusterConfig>> {
    let key = pgbaton_core::model::KEY_CONFIG;
    let Some(entry) = startup::get_retrying(store, key, shutdown).await else {
        return Ok(None);
    };
    Ok(Some(match entry {
        // Never fall back to `bootstrap` here: that would silently revert `paused`
        // and `synchronous_mode` (safety finding 10).
        Some(e) => match pgbaton_core::view::read_config(&e.value) {
            Ok((c, warnings)) => {
                for w in warnings {
                    tracing::warn!("store key \"config\": {w}");
                }
                c
            }
            Err(err) => anyhow::bail!(
                "the store's cluster config (key \"config\") is unusable: {err}; fix it with pgbaton edit-config, then start the agent again"
            ),
        },
        None => cfg.bootstrap.clone(),
    }))
}

/// Aborts a background task when dropped, so that the lease keeper dies with its agent.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The agent's state between cycles. Everything here is a cache or a handle: the truth
/// lives in the store and in PostgreSQL.
pub(crate) struct Agent {
    cfg: NodeConfig,
    store: Arc<dyn Store>,
    pg: Arc<dyn Pg>,
    clock: Arc<dyn Clock>,
    lease: tokio::sync::watch::Receiver<lease::LeaseState>,
    /// The lease keeper task, stopped with the agent.
    _keeper: AbortOnDrop,
    /// The fence backstop task, stopped with the agent.
    _backstop: AbortOnDrop,
    /// The isolation guard task, stopped with the agent.
    _isolation: AbortOnDrop,
    /// The last cluster view had a member other than this one (for the isolation guard).
    others: Arc<std::sync::atomic::AtomicBool>,
    /// The walsenders' status replies, as this member's reads of pg_stat_replication saw
    /// them (for the isolation guard).
    replies: isolation::Replies,
    /// Cluster-wide settings, as last read from the store.
    cluster_config: ClusterConfig,
    /// The system identifier of the data directory, once read.
    system_identifier: Option<String>,
    /// The SQL connection to the local PostgreSQL, while it answers.
    sql: Option<Box<dyn PgSql>>,
    /// The `host:port` the standby config was last pointed at.
    following: Option<String>,
    /// The standby config last written, to rewrite `pgbaton.conf` on a replica.
    standby_target: Option<pgbaton_postgres::StandbyTarget>,
    /// `synchronous_standby_names` as pgbaton manages it (`None`: not managed yet; a
    /// running primary's value is adopted as observed).
    sync_names: Option<String>,
    /// Whether the checkpointer applied `synchronous_standby_names` (finding 12).
    sync_applied: syncapply::SyncApplied,
    /// A timeline number reserved ahead of a promotion (switchover candidate).
    reserved_timeline: Option<u32>,
    /// What the member is busy with, shown in its status while an action runs.
    activity: Option<PgState>,
    /// The last plan reason, to log changes only.
    last_reason: String,
    /// The last start as primary failed or timed out (cleared by a successful start).
    start_failed: bool,
    /// Since when this agent has seen no leader key (ms since the Unix epoch).
    leaderless_since: Option<u64>,
    /// Since when the running standby has not been streaming.
    not_streaming_since: Option<Instant>,
    /// Since when the postmaster has run without answering SQL.
    unresponsive_since: Option<Instant>,
    /// The lease ttl this agent runs with (fixed at start), in seconds.
    running_ttl: u64,
    /// `loop_wait` was bounded by `running_ttl` (logged once).
    loop_wait_clamped: bool,
    /// The postmaster last seen running for the data directory (finding 9).
    postmaster_seen: Option<vanished::Seen>,
    /// When this agent first saw each member report (finding 6: no cross-host clocks).
    freshness: freshness::Freshness,
    /// The postmaster's pid at the end of the last cycle (None: PostgreSQL was not
    /// running).
    postmaster_pid: Option<u32>,
    /// The exit watch (pidfd) on that postmaster, kept from one wait to the next.
    postmaster_watch: Option<(u32, ExitWatch)>,
    /// Promotions done by this member.
    promotions: u64,
    /// Rewinds done by this member.
    rewinds: u64,
    /// Where the WAL of the stopped, crashed data directory ends (read once per stop).
    wal_end: walend::WalEndCache,
    /// Set when the agent must stop with an error (a refusal).
    fatal: Option<String>,
    shutdown: shutdown::Shutdown,
    /// Where the config file lives, for SIGHUP reloads.
    config_path: std::path::PathBuf,
    /// Raised by SIGHUP.
    reload_requested: Arc<std::sync::atomic::AtomicBool>,
    /// The config changed on reload: PostgreSQL's settings must be re-applied.
    settings_dirty: bool,
    /// The fence process that stops PostgreSQL at the lease deadline.
    fence: Arc<crate::fence::FenceFeed>,
    /// This member's key as this cycle's snapshot holds it (`publish` skips a report
    /// the store already has).
    stored_report: Option<pgbaton_store::Entry>,
    /// When this agent last wrote its member key.
    report_written_at: Option<Instant>,
    /// When this agent last wrote the `status` key.
    status_written_at: Option<Instant>,
    /// The replay position the replica's slots for other members were last advanced
    /// to, and those slots.
    slots_advanced: Option<(pgbaton_core::Lsn, Vec<String>)>,
    /// The state the HTTP API answers from, replaced after every cycle.
    api_state: tokio::sync::watch::Sender<crate::api::AgentSnapshot>,
}

impl Agent {
    /// Connect to the store (waiting for it as long as it takes) and start the fence
    /// process. `None` when a shutdown was requested before the store answered.
    async fn new(cfg: NodeConfig, config_path: &Path) -> anyhow::Result<Option<Agent>> {
        let shutdown = shutdown::Shutdown::listen()?;
        let pg = settings::instance(&cfg).context("preparing PostgreSQL control")?;
        let pg: Arc<dyn Pg> = Arc::new(crate::effects::LocalPg(pg));
        startup::stop_unleased_primary(pg.as_ref()).await;
        let bootstrap_timeout = Duration::from_secs(cfg.bootstrap.retry_timeout.max(1));
        let mut store = crate::storeconn::open(&cfg, bootstrap_timeout).await?;
        // Once the cluster exists, its timing lives in the store's `config` key
        // (`pgbaton edit-config`); the file's `bootstrap` section only seeds it.
        let Some(cluster_config) = read_cluster_config(store.as_ref(), &cfg, &shutdown).await?
        else {
            return Ok(None);
        };
        let call_timeout = Duration::from_secs(cluster_config.retry_timeout.max(1));
        if call_timeout != bootstrap_timeout {
            store = crate::storeconn::open(&cfg, call_timeout).await?;
        }
        tracing::info!(
            ttl = cluster_config.ttl,
            loop_wait = cluster_config.loop_wait,
            retry_timeout = cluster_config.retry_timeout,
            "cluster timing"
        );
        let ttl = Duration::from_secs(cluster_config.ttl);
        let fence_opts = crate::fence::FenceOptions::from_config(&cfg, ttl)?;
        let spawner = Arc::new(crate::fence::OsFenceSpawner(fence_opts));
        let fence = crate::fence::FenceSpawner::spawn(spawner.as_ref())
            .await
            .context("starting the fence process")?;
        let fence = Arc::new(crate::fence::FenceFeed::new(
            fence,
            spawner,
            Duration::from_secs(cfg.watchdog.safety_margin),
        ));
        let effects = Effects {
            store,
            pg,
            clock: Arc::new(crate::effects::SystemClock),
            fence,
            spawner: Arc::new(crate::effects::TokioSpawner),
        };
        Ok(Some(Agent::assemble(
            cfg,
            config_path,
            cluster_config,
            effects,
            shutdown,
            reload::listen()?,
        )))
    }

    /// The agent of member `cfg`, acting through `effects`; starts its lease keeper.
    fn assemble(
        cfg: NodeConfig,
        config_path: &Path,
        cluster_config: ClusterConfig,
        effects: Effects,
        shutdown: Shutdown,
        reload_requested: Arc<std::sync::atomic::AtomicBool>,
    ) -> Agent {
        let Effects {
            store,
            pg,
            clock,
            fence,
            spawner,
        } = effects;
        tracing::info!(
            store = %store.describe(),
            data_dir = %cfg.data_dir.display(),
            bin_dir = %pg.describe(),
            "agent configured"
        );
        let ttl = Duration::from_secs(cluster_config.ttl);
        let backstop = backstop::spawn(fence.clone(), pg.clone(), clock.clone(), spawner.as_ref());
        let others = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let replies = isolation::Replies::default();
        let guard = isolation::spawn(
            fence.clone(),
            pg.clone(),
            clock.clone(),
            isolation::GuardTiming {
                retry_timeout: Duration::from_secs(cluster_config.retry_timeout.max(1)),
                loop_wait: Duration::from_secs(cluster_config.loop_wait),
                ttl,
            },
            others.clone(),
            replies.clone(),
            spawner.as_ref(),
        );
        let (lease, keeper) = lease::spawn(
            store.clone(),
            ttl,
            fence.clone(),
            clock.clone(),
            spawner.as_ref(),
        );
        let (api_state, _) = tokio::sync::watch::channel(crate::api::AgentSnapshot::initial(
            &cfg.name,
            cluster_config.clone(),
        ));
        Agent {
            config_path: config_path.to_path_buf(),
            reload_requested,
            settings_dirty: false,
            fence,
            stored_report: None,
            report_written_at: None,
            status_written_at: None,
            slots_advanced: None,
            api_state,
            cfg,
            store,
            pg,
            clock,
            _keeper: AbortOnDrop(keeper),
            _backstop: AbortOnDrop(backstop),
            _isolation: AbortOnDrop(guard),
            others,
            replies,
            lease,
            cluster_config,
            system_identifier: None,
            sql: None,
            following: None,
            standby_target: None,
            sync_names: None,
            sync_applied: Default::default(),
            reserved_timeline: None,
            activity: None,
            last_reason: String::new(),
            fatal: None,
            start_failed: false,
            leaderless_since: None,
            promotions: 0,
            postmaster_pid: None,
            postmaster_watch: None,
            not_streaming_since: None,
            unresponsive_since: None,
            freshness: freshness::Freshness::default(),
            postmaster_seen: None,
            running_ttl: ttl.as_secs(),
            loop_wait_clamped: false,
            rewinds: 0,
            wal_end: walend::WalEndCache::default(),
            shutdown,
        }
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        self.check_name_is_free().await?;
        execute::clean_leftovers(&self.cfg, self.pg.as_ref());
        let mut lease = self.lease.clone();
        let first_lease = lease.wait_for(|l| l.lease.is_some());
        if tokio::time::timeout(Duration::from_secs(5), first_lease)
            .await
            .is_err()
        {
            tracing::warn!("no store lease after 5 s: is the store reachable? retrying");
        }
        let mut last: Option<Snapshot> = None;
        crate::sdnotify::ready("running the HA loop");
        while !self.shutdown.requested() {
            crate::sdnotify::alive();
            let started = Instant::now();
            let failed = match self.cycle().await {
                Ok(snap) => {
                    last = Some(snap);
                    false
                }
                Err(e) => {
                    tracing::warn!("HA cycle failed: {e:#}");
                    self.note_postmaster();
                    true
                }
            };
            if let Some(msg) = self.fatal.take() {
                return Err(crate::exit::refused(msg));
            }
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cycle done"
            );
            if failed {
                // Retry soon, not after loop_wait: the store client has moved to another
                // endpoint, and a leader must confirm its key again before its fence
                // deadline.
                let retry = Instant::now() + Duration::from_millis(100);
                self.shutdown.sleep_until(retry).await;
            } else {
                self.wait(last.as_ref()).await;
            }
        }
        tracing::info!("shutdown requested");
        Ok(())
    }

    /// Refuse to run when another live agent already uses this member name. A key left
    /// by this member's own previous run stops changing and expires with its lease.
    async fn check_name_is_free(&self) -> anyhow::Result<()> {
        let key = pgbaton_core::model::member_key(&self.cfg.name);
        let store = self.store.as_ref();
        let Some(Some(first)) = startup::get_retrying(store, &key, &self.shutdown).await else {
            return Ok(());
        };
        tracing::info!(
            "member key {key} exists: checking that no other agent named {} is running",
            self.cfg.name
        );
        let deadline =
            Instant::now() + Duration::from_secs(self.cluster_config.ttl) + Duration::from_secs(1);
        while Instant::now() < deadline && !self.shutdown.requested() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match startup::get_retrying(store, &key, &self.shutdown).await {
                None | Some(None) => return Ok(()),
                Some(Some(e)) if e.mod_revision != first.mod_revision => {
                    let other = serde_json::from_str::<pgbaton_core::model::MemberStatus>(&e.value)
                        .map(|m| {
                            format!(" (PostgreSQL at {}:{}, API {})", m.host, m.port, m.api_url)
                        })
                        .unwrap_or_default();
                    return Err(crate::exit::refused(format!(
                        "member name {:?} is already used by a running agent{other}; every member \
                         needs a unique `name` in its config file",
                        self.cfg.name
                    )));
                }
                Some(Some(_)) => {}
            }
        }
        Ok(())
    }

    /// One HA cycle. Returns the snapshot it decided on.
    async fn cycle(&mut self) -> anyhow::Result<Snapshot> {
        let started = Instant::now();
        if self
            .reload_requested
            .swap(false, std::sync::atomic::Ordering::SeqCst)
            && self.reload_config()
        {
            self.settings_dirty = true;
        }
        // Before anything that can fail: a dead fence is replaced even while the store
        // is unreachable, which is exactly when it matters (safety review finding 3).
        self.ensure_fence().await;
        // So is a postmaster whose data directory moved away (the fence and the
        // backstops find the postmaster through the path, so only this check can).
        if let Ok(status) = self.pg.status() {
            self.stop_vanished_postmaster(status.as_ref()).await?;
        }
        let read_sent = self.clock.boot();
        let snap = match self.store.snapshot().await {
            Ok(snap) => snap,
            Err(e) => {
                self.fence.store_failed(read_sent);
                return Err(e.into());
            }
        };
        self.stored_report = snap
            .entries
            .get(&pgbaton_core::model::member_key(&self.cfg.name))
            .cloned();
        let shared = Arc::new(snap.clone());
        self.api_state.send_modify(|s| s.store = Some(shared));
        let (view, problems) = cluster_view(
            snap.entries.values().map(|e| RawEntry {
                key: &e.key,
                value: &e.value,
                mod_revision: e.mod_revision,
                lease: e.lease.map(|l| l.0),
            }),
            &self.cluster_config,
        );
        for p in problems {
            tracing::warn!("{p}");
        }
        self.cluster_config = view.config.clone();
        let others = view.members.keys().any(|m| *m != self.cfg.name);
        self.others
            .store(others, std::sync::atomic::Ordering::Relaxed);
        // Only a member that may have to follow another primary needs to know where
        // its WAL ends after a crash (a leader restarts in place at once).
        let scan_wal = view
            .leader
            .as_deref()
            .is_some_and(|l| l != self.cfg.name.as_str());
        let local = self.observe(scan_wal).await?;
        let my_lease = self.lease.borrow().lease;
        if my_lease.is_none() {
            // Without a lease the member key cannot be published, and other members
            // would take any claim of ours for one left by a dead agent.
            tracing::info!("waiting for a store lease before acting");
            return Ok(snap);
        }
        let now_ms = self.clock.wall_ms();
        self.leaderless_since = match (&view.leader, self.leaderless_since) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(t),
            (None, None) => Some(now_ms),
        };
        let revisions: std::collections::BTreeMap<String, i64> = snap
            .entries
            .values()
            .filter_map(|e| {
                e.key
                    .strip_prefix(pgbaton_core::model::MEMBERS_PREFIX)
                    .map(|name| (name.to_string(), e.mod_revision))
            })
            .collect();
        let mut view = view;
        self.freshness
            .stamp(&mut view.members, &revisions, now_ms, self.leaderless_since);
        let mut core = local.core.clone();
        core.start_failed = self.start_failed && !core.running;
        // A standby that has not streamed for STALL_AFTER is stalled.
        let standby = core.running && core.in_recovery == Some(true);
        self.not_streaming_since = match (standby && !core.streaming, self.not_streaming_since) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(Instant::now()),
        };
        self.unresponsive_since = match (core.unresponsive, self.unresponsive_since) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(Instant::now()),
        };
        if self
            .unresponsive_since
            .is_some_and(|t| t.elapsed() >= UNRESPONSIVE_LIMIT)
        {
            core.unresponsive = false;
        }
        core.stream_stalled = self
            .not_streaming_since
            .is_some_and(|t| t.elapsed() >= STALL_AFTER);
        core.reinit_requested =
            snap.value(pgbaton_core::model::KEY_REINIT) == Some(self.cfg.name.as_str());
        let obs = Observation {
            now_ms,
            leaderless_since_ms: self.leaderless_since,
            me: self.cfg.name.clone(),
            tags: self.cfg.tags.clone(),
            my_lease: my_lease.map(|l| l.0),
            local: core,
            cluster: view,
        };
        self.feed_fence(&obs, read_sent).await;
        if snap.value(pgbaton_core::model::KEY_RESTART) == Some(self.cfg.name.as_str()) {
            tracing::info!("restarting PostgreSQL: an operator asked for it (pgbaton restart)");
            self.activity = Some(PgState::Starting);
            let _ = self
                .publish(&obs, &local, "restarting PostgreSQL on operator request")
                .await;
            let _alive = crate::sdnotify::KeepAlive::start();
            if let Err(e) = self.restart_postgres(&obs).await {
                tracing::error!("restart failed: {e:#}");
            }
            self.activity = None;
            return Ok(snap);
        }
        if self.settings_dirty && local.core.running {
            self.settings_dirty = false;
            if let Err(e) = self.apply_settings(&obs).await {
                tracing::error!("applying the reloaded settings failed: {e:#}");
            }
        }
        let plan = decide(&obs);
        if plan.reason != self.last_reason {
            tracing::info!("{}", plan.reason);
            self.last_reason = plan.reason.clone();
        }
        self.activity = activity(&plan.actions, &local.core);
        let published = self.publish(&obs, &local, &plan.reason).await;
        self.share_state(&obs, &local, published, &plan.reason, started);
        for action in plan.actions {
            if let Action::Refuse(msg) = &action {
                tracing::error!("{msg}");
                self.fatal = Some(msg.clone());
                self.activity = Some(PgState::Failed);
                let _ = self.publish(&obs, &local, msg).await;
                break;
            }
            let name = execute::describe(&action);
            // Long steps (a clone, a crash recovery) keep the systemd watchdog fed.
            let _alive = long_running(&action).then(crate::sdnotify::KeepAlive::start);
            if let Err(e) = self.execute(&action, &obs).await {
                tracing::error!("{name} failed: {e:#}");
                break;
            }
        }
        if self.fatal.is_none() {
            self.activity = None;
        }
        self.note_postmaster();
        Ok(snap)
    }

    /// Tell the fence what this cycle saw: leading (re-arm from this read), or no
    /// longer a writable primary (disarm).
    async fn feed_fence(&mut self, obs: &Observation, read_sent: Duration) {
        let leads = obs.cluster.leader.as_deref() == Some(self.cfg.name.as_str())
            && obs.my_lease.is_some()
            && obs.cluster.leader_lease == obs.my_lease;
        let writable = obs.local.running && obs.local.in_recovery == Some(false);
        let fed = if let (true, Some(lease)) = (leads, obs.my_lease) {
            self.fence.confirmed_leader(read_sent, lease)
        } else if !writable {
            self.fence.stepped_down()
        } else {
            Ok(())
        };
        if let Err(e) = fed {
            tracing::error!("cannot feed the fence process: {e}");
        }
    }

    /// Restart the fence process if it died; the new one is armed at once with what
    /// the old one was told.
    async fn ensure_fence(&mut self) {
        if !self.fence.is_alive() {
            tracing::error!(
                "the fence process died ({}); starting a new one",
                self.fence.last_error().unwrap_or_default()
            );
            if let Err(e) = self.fence.respawn().await {
                tracing::error!("cannot restart the fence process: {e}");
            }
        }
    }

    /// Hand the HTTP API a fresh copy of what this cycle saw.
    fn share_state(
        &self,
        obs: &Observation,
        local: &observe::LocalView,
        member: pgbaton_core::model::MemberStatus,
        reason: &str,
        started: Instant,
    ) {
        let lease = *self.lease.borrow();
        let holds = obs.cluster.leader.as_deref() == Some(self.cfg.name.as_str())
            && lease.lease.is_some()
            && obs.cluster.leader_lease == lease.lease.map(|l| l.0);
        self.api_state.send_modify(|s| {
            s.member = Some(member);
            s.pg_running = local.core.running;
            s.in_recovery = local.core.in_recovery;
            s.streaming = local.core.streaming;
            s.holds_leader_key = holds;
            s.handing_over = None;
            s.lease_renewed_at = lease.renewed_at.map(Instant::into_std);
            s.cluster_config = obs.cluster.config.clone();
            s.last_cycle_at = Some(std::time::Instant::now());
            s.last_cycle_ms = started.elapsed().as_millis() as u64;
            s.reason = reason.to_string();
            s.fencing_actions = self.fence.fenced_count();
            s.promotions_seen = obs.cluster.history.len() as u64;
            s.sync_standby = obs.cluster.sync.as_ref().is_some_and(|(k, _)| {
                k.holders() > 0
                    && k.lists(&obs.me)
                    && obs.cluster.leader.as_deref() == Some(k.leader.as_str())
            });
        });
    }

    /// Record whether PostgreSQL runs, and its postmaster's pid, at the end of a cycle.
    fn note_postmaster(&mut self) {
        self.postmaster_pid = self.pg.status().ok().flatten().map(|p| p.pid);
    }

    /// A watch on the running postmaster's exit, or None (not running, or no pidfd).
    /// The watch of the last wait is kept while the postmaster is the same: a pidfd
    /// names a process, not a pid number, so a kept one still fires when it exits.
    fn watch_postmaster(&mut self) -> Option<(u32, ExitWatch)> {
        let kept = self.postmaster_watch.take();
        let pid = self.postmaster_pid?;
        if let Some(same) = kept.filter(|(p, _)| *p == pid) {
            return Some(same);
        }
        let watch = self.pg.watch_exit(pid)?;
        // The pid may have been reused between reading it and opening the pidfd: keep
        // the watch only when postmaster.pid still names the same live postmaster.
        match self.pg.status() {
            Ok(Some(again)) if again.pid == pid => Some((pid, watch)),
            _ => None,
        }
    }

    /// `loop_wait` from the store, bounded by the lease this agent actually runs with.
    ///
    /// The lease ttl is fixed when the agent starts, but `loop_wait` is re-read every
    /// cycle; after `edit-config` raises both, a loop slower than the running lease
    /// allows would get a healthy primary fenced every cycle (safety review finding
    /// 12). So the loop waits at most `ttl - 2 × retry_timeout` (at least 1 s) until
    /// the agent is restarted with the new ttl, and says so once.
    fn loop_wait(&mut self) -> Duration {
        let wanted = self.cluster_config.loop_wait.max(1);
        let allowed = self
            .running_ttl
            .saturating_sub(self.cluster_config.retry_timeout.saturating_mul(2))
            .max(1);
        if wanted > allowed {
            if !self.loop_wait_clamped {
                tracing::warn!(
                    loop_wait = wanted,
                    running_ttl = self.running_ttl,
                    "loop_wait from the cluster config is too long for the lease ttl this \
                     agent started with; waiting {allowed} s per cycle until the agent is \
                     restarted (a ttl change takes effect at restart)"
                );
                self.loop_wait_clamped = true;
            }
            return Duration::from_secs(allowed);
        }
        self.loop_wait_clamped = false;
        Duration::from_secs(wanted)
    }

    /// Sleep until `loop_wait` passes, the store changes in a way that matters, or a
    /// shutdown is requested.
    async fn wait(&mut self, last: Option<&Snapshot>) {
        let mut exit_watch = self.watch_postmaster();
        self.wait_watching(last, &mut exit_watch).await;
        self.postmaster_watch = exit_watch;
    }

    /// [`Agent::wait`], with the postmaster's exit watch (dropped once it fired).
    async fn wait_watching(
        &mut self,
        last: Option<&Snapshot>,
        exit_watch: &mut Option<(u32, ExitWatch)>,
    ) {
        let deadline = Instant::now() + self.loop_wait();
        let Some(last) = last else {
            self.shutdown.sleep_until(deadline).await;
            return;
        };
        let mut seen = last.revision;
        // One store wait for the whole period (a watch, not a request per slice). A dead
        // postmaster must be noticed at once, not at the next cycle: a pidfd tells the
        // moment it exits; without one, postmaster.pid is looked at every 100 ms.
        let store = self.store.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let mut change = Box::pin(store.wait_for_change(seen, left));
        // A postmaster that exits after its pidfd was opened makes it readable at once;
        // one gone before that gets no watch and is found by looking.
        let mut check = checker(exit_watch.is_some());
        let end = tokio::time::sleep_until(deadline);
        tokio::pin!(end);
        loop {
            // Biased: the same order every time, so the simulator replays a seed exactly.
            tokio::select! {
                biased;
                _ = exited(exit_watch.as_ref().map(|(_, w)| w)) => {
                    *exit_watch = None;
                    if matches!(self.pg.status(), Ok(None)) {
                        tracing::warn!("PostgreSQL stopped unexpectedly");
                        self.postmaster_pid = None;
                        return;
                    }
                    check = checker(false);
                }
                _ = &mut end => return,
                _ = tick(check.as_mut()) => {
                    crate::sdnotify::alive();
                    if Instant::now() >= deadline || self.shutdown.requested() {
                        return;
                    }
                    if self.postmaster_pid.is_some() && matches!(self.pg.status(), Ok(None)) {
                        tracing::warn!("PostgreSQL stopped unexpectedly");
                        self.postmaster_pid = None;
                        return;
                    }
                }
                waited = &mut change => match waited {
                    Ok(rev) if rev > seen => match self.store.snapshot().await {
                        Ok(snap) if wake::significant(last, &snap) => return,
                        Ok(snap) => {
                            seen = snap.revision;
                            let left = deadline.saturating_duration_since(Instant::now());
                            change = Box::pin(store.wait_for_change(seen, left));
                        }
                        Err(_) => return,
                    },
                    Ok(_) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return;
                        }
                        change = Box::pin(store.wait_for_change(seen, left));
                    }
                    Err(e) => {
                        tracing::warn!("waiting for store changes failed: {e}");
                        self.shutdown.sleep_until(deadline).await;
                        return;
                    }
                },
                _ = self.shutdown.wait() => return,
            }
        }
    }
}

/// How often `wait` looks at `postmaster.pid` between HA cycles when it cannot watch
/// the postmaster's exit.
const POSTMASTER_CHECK: Duration = Duration::from_millis(100);
/// How often `wait` tells systemd it is alive while it watches the postmaster's exit,
/// when systemd watches the agent (its watchdog wants it at least every
/// `WatchdogSec / 2`, 15 s by default). Without systemd's watchdog nothing ticks.
const ALIVE_EVERY: Duration = Duration::from_secs(1);

/// The periodic check of `wait`: `postmaster.pid` every [`POSTMASTER_CHECK`] when the
/// postmaster's exit cannot be watched, else systemd's keep-alive (none without it).
fn checker(watched: bool) -> Option<tokio::time::Interval> {
    let period = if !watched {
        POSTMASTER_CHECK
    } else if crate::sdnotify::watchdog_interval().is_some() {
        ALIVE_EVERY
    } else {
        return None;
    };
    let mut check = tokio::time::interval(period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(check)
}

/// The next tick of `check`, or never.
async fn tick(check: Option<&mut tokio::time::Interval>) {
    match check {
        Some(c) => {
            c.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What the member reports while a long action of `actions` runs.
fn activity(actions: &[Action], local: &pgbaton_core::Local) -> Option<PgState> {
    actions.iter().find_map(|a| match a {
        Action::Initdb => Some(PgState::Initializing),
        Action::CloneFrom { .. } => Some(PgState::CreatingReplica),
        Action::StartPrimary | Action::Follow { .. } | Action::StartStandby if !local.running => {
            Some(PgState::Starting)
        }
        Action::Rewind { .. } => Some(PgState::Rewinding),
        Action::Reclone { .. } => Some(PgState::CreatingReplica),
        _ => None,
    })
}

/// Whether `action` runs a program whose duration grows with the data (initdb, a clone,
/// pg_rewind, a start with crash recovery, a shutdown checkpoint): the systemd watchdog
/// is fed from a side task while it runs, so only a hung loop, not a big database,
/// gets the agent restarted.
fn long_running(action: &Action) -> bool {
    matches!(
        action,
        Action::Initdb
            | Action::StartPrimary
            | Action::StartStandby
            | Action::StopPostgres
            | Action::CloneFrom { .. }
            | Action::Follow { .. }
            | Action::HandOver { .. }
            | Action::WaitForWal { .. }
            | Action::Promote { .. }
            | Action::Rewind { .. }
            | Action::Reclone { .. }
    )
}

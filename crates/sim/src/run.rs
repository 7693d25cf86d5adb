//! One simulated run: build the world and three (or more) members running the
//! production agent, start the client, play a fault schedule, heal everything, then
//! check liveness within a bound derived from the timing config.

use crate::faults::{self, Fault, Kind, Step};
use crate::fence::SimFenceSpawner;
use crate::gate::{Gate, GatedSpawner};
use crate::pg::{model, SimPg};
use crate::store::{StoreClient, StoreState};
use crate::world::{lock, Broken, Host, Shared, World};
use pgbaton::effects::Effects;
use pgbaton::fence::{FenceFeed, FenceSpawner};
use pgbaton_config::NodeConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: same seed, same run.
    pub seed: u64,
    /// How many members.
    pub members: usize,
    /// `synchronous_mode`: `off`, `on` or `quorum`.
    pub sync: String,
    /// `synchronous_mode_strict`.
    pub strict: bool,
    /// Fault kinds to draw from.
    pub kinds: Vec<Kind>,
    /// When random faults start (ms; the cluster bootstraps before).
    pub faults_from_ms: u64,
    /// How long random faults go on (ms).
    pub fault_ms: u64,
    /// A fixed schedule instead of a random one (regressions).
    pub schedule: Option<Vec<Step>>,
    /// A deliberately broken rule.
    pub broken: Broken,
    /// Keep DEBUG lines of the agents in the trace.
    pub debug: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 1,
            members: 3,
            sync: "off".into(),
            strict: false,
            kinds: Kind::ALL.to_vec(),
            faults_from_ms: 15_000,
            fault_ms: 30_000,
            schedule: None,
            broken: Broken::None,
            debug: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Invariant violations (empty: passed).
    pub violations: Vec<String>,
    /// The trace, one line per event.
    pub trace: Vec<String>,
    /// Simulated time the run covered (ms).
    pub sim_ms: u64,
    /// How long after the last fault the cluster converged (ms), if it did.
    pub converged_ms: Option<u64>,
    /// Commits acknowledged to the client.
    pub acked: usize,
    /// Acknowledged commits dropped in asynchronous mode (allowed there).
    pub lost_async: u64,
    /// Faults applied.
    pub faults: usize,
}

/// The cluster timing every run uses (the defaults of `ClusterConfig`).
pub const TTL_S: u64 = 10;
/// `loop_wait`.
pub const LOOP_WAIT_S: u64 = 1;
/// `retry_timeout`.
pub const RETRY_TIMEOUT_S: u64 = 3;
/// `watchdog.safety_margin`.
pub const SAFETY_MARGIN_S: u64 = 2;
/// `failover_grace`.
pub const FAILOVER_GRACE_S: u64 = 2;
/// `primary_start_timeout`.
pub const PRIMARY_START_TIMEOUT_S: u64 = 5;
/// The agent's `STALL_AFTER`.
pub const STALL_AFTER_S: u64 = 5;

/// The liveness bound after the last fault is repaired, derived from the timing:
/// a restarted agent waits up to `ttl + 1` for its old member key (name check), the
/// old leader's lease runs out within `ttl`, the election waits `failover_grace` per
/// rank (members), a primary that does not come back is given up after
/// `primary_start_timeout`, a stalled standby is noticed after `STALL_AFTER` and then
/// rewound and restarted within a few cycles; every step waits at most `loop_wait`
/// plus a store call (`retry_timeout`). Doubled stall and `ttl` terms cover one
/// failed attempt of each.
pub fn liveness_bound_ms(members: usize) -> u64 {
    (3 * TTL_S
        + 1
        + members as u64 * FAILOVER_GRACE_S
        + PRIMARY_START_TIMEOUT_S
        + 2 * STALL_AFTER_S
        + 10 * LOOP_WAIT_S
        + 2 * RETRY_TIMEOUT_S)
        * 1000
}

fn member_config(i: usize, o: &Options) -> anyhow::Result<NodeConfig> {
    let text = format!(
        r#"cluster: sim
name: node{i}
data_dir: /sim/node{i}/data
store:
  local: /sim/store
postgres:
  listen: 10.0.0.{i}:5432
  superuser: {{username: postgres, password: sim-superuser}}
  replication: {{username: replicator, password: sim-replication}}
api:
  listen: 10.0.0.{i}:8008
  allow_unauthenticated: true   # the simulator runs no API
bootstrap:
  ttl: {TTL_S}
  loop_wait: {LOOP_WAIT_S}
  retry_timeout: {RETRY_TIMEOUT_S}
  failover_grace: {FAILOVER_GRACE_S}
  primary_start_timeout: {PRIMARY_START_TIMEOUT_S}
  synchronous_mode: {}
  synchronous_mode_strict: {}
watchdog: {{mode: off, safety_margin: {SAFETY_MARGIN_S}}}
"#,
        o.sync, o.strict
    );
    Ok(pgbaton_config::parse(&text, &format!("node{i}.yaml"))?)
}

/// The running agent of each member.
struct Procs {
    cfgs: BTreeMap<String, NodeConfig>,
    agents: BTreeMap<String, (JoinHandle<()>, Gate)>,
}

impl Procs {
    fn start(&mut self, world: &Shared, name: &str) {
        if self.agents.get(name).is_some_and(|(h, _)| !h.is_finished()) {
            return;
        }
        let Some(cfg) = self.cfgs.get(name).cloned() else {
            return;
        };
        let inc = {
            let mut w = lock(world);
            let h = w.hosts.get_mut(name).expect("configured member");
            h.agent_incarnation += 1;
            h.agent_alive = true;
            h.agent_frozen = false;
            let inc = h.agent_incarnation;
            w.note(name, format!("[proc] agent started (incarnation {inc})"));
            inc
        };
        let gate = Gate::default();
        let span = tracing::info_span!("agent", member = name);
        let world2 = world.clone();
        let name2 = name.to_string();
        let spawner = Arc::new(GatedSpawner {
            gate: gate.clone(),
            span: span.clone(),
        });
        let task = async move {
            let mut inc = inc;
            loop {
                let result = run_agent(&world2, &name2, inc, cfg.clone(), spawner.clone()).await;
                {
                    let mut w = lock(&world2);
                    w.note(&name2, format!("[proc] agent exited: {result}"));
                    if let Some(h) = w.hosts.get_mut(&name2) {
                        h.agent_alive = false;
                    }
                }
                // The service manager starts it again (systemd Restart=always, RestartSec=5).
                tokio::time::sleep(Duration::from_secs(5)).await;
                let mut w = lock(&world2);
                let Some(h) = w.hosts.get_mut(&name2) else {
                    return;
                };
                h.agent_incarnation += 1;
                h.agent_alive = true;
                inc = h.agent_incarnation;
                w.note(
                    &name2,
                    format!("[proc] agent restarted by the service manager (incarnation {inc})"),
                );
            }
        };
        let handle = tokio::spawn(gate.wrap(task).instrument(span));
        self.agents.insert(name.to_string(), (handle, gate));
    }

    fn kill(&mut self, world: &Shared, name: &str) {
        if let Some((h, _)) = self.agents.remove(name) {
            h.abort();
            let mut w = lock(world);
            if let Some(host) = w.hosts.get_mut(name) {
                host.agent_alive = false;
            }
            w.note(name, "[proc] agent killed (kill -9)");
        }
    }

    fn gate(&self, name: &str) -> Option<&Gate> {
        self.agents.get(name).map(|(_, g)| g)
    }
}

/// One agent process: a fence, the effects, and the production agent until it exits.
async fn run_agent(
    world: &Shared,
    name: &str,
    inc: u64,
    cfg: NodeConfig,
    spawner: Arc<GatedSpawner>,
) -> String {
    let fences = Arc::new(SimFenceSpawner {
        world: world.clone(),
        host: name.to_string(),
        owner: inc,
    });
    let first = match fences.spawn().await {
        Ok(f) => f,
        Err(e) => return format!("cannot start the fence: {e}"),
    };
    let fence = Arc::new(FenceFeed::new(
        first,
        fences,
        Duration::from_secs(cfg.watchdog.safety_margin),
    ));
    let effects = Effects {
        store: Arc::new(StoreClient::new(
            world.clone(),
            name,
            Duration::from_secs(RETRY_TIMEOUT_S),
        )),
        pg: Arc::new(SimPg::new(world.clone(), name, &cfg.data_dir)),
        clock: Arc::new(crate::clock::SimClock::new(world.clone(), name)),
        fence,
        spawner,
    };
    match pgbaton::agent::run_with(cfg, effects, pgbaton::agent::Shutdown::manual()).await {
        Ok(()) => "stopped".into(),
        Err(e) => format!("error: {e:#}"),
    }
}

/// A member for `role` now (see [`Fault::Bind`]).
fn select(w: &World, role: &str) -> Option<String> {
    let leader = w
        .store
        .value(pgbaton_core::model::KEY_LEADER)
        .map(str::to_string);
    let sync: Vec<String> = w
        .store
        .value(pgbaton_core::model::KEY_SYNC)
        .and_then(|v| serde_json::from_str::<pgbaton_core::model::SyncState>(v).ok())
        .map(|s| s.members)
        .unwrap_or_default();
    let replicas = || {
        w.hosts
            .values()
            .filter(|h| h.pm.as_ref().is_some_and(|p| p.in_recovery))
            .map(|h| h.name.clone())
    };
    match role {
        "primary" => w
            .hosts
            .values()
            .find(|h| h.writable())
            .map(|h| h.name.clone())
            .or(leader),
        "replica" => replicas().next(),
        "replica2" => replicas().nth(1),
        "sync" => sync.first().cloned(),
        "async" => replicas().find(|r| !sync.contains(r)),
        _ => None,
    }
}

/// Labels bound by scripted schedules.
type Labels = BTreeMap<String, String>;

/// `$label` → the member bound to it; anything else as is.
fn resolve(labels: &Labels, name: &str) -> String {
    match name.strip_prefix('$') {
        Some(l) => labels
            .get(l)
            .cloned()
            .unwrap_or_else(|| format!("<unbound {l}>")),
        None => name.to_string(),
    }
}

/// Resolve the member names of a scripted fault.
fn resolved(labels: &Labels, f: &Fault) -> Fault {
    let r = |n: &String| resolve(labels, n);
    match f {
        Fault::KillAgent(m) => Fault::KillAgent(r(m)),
        Fault::StartAgent(m) => Fault::StartAgent(r(m)),
        Fault::FreezeAgent(m) => Fault::FreezeAgent(r(m)),
        Fault::ResumeAgent(m) => Fault::ResumeAgent(r(m)),
        Fault::KillFence(m) => Fault::KillFence(r(m)),
        Fault::FreezeFence(m) => Fault::FreezeFence(r(m)),
        Fault::ResumeFence(m) => Fault::ResumeFence(r(m)),
        Fault::CrashPostgres(m) => Fault::CrashPostgres(r(m)),
        Fault::Cut(a, b) => Fault::Cut(r(a), r(b)),
        Fault::Heal(a, b) => Fault::Heal(r(a), r(b)),
        Fault::Isolate(m) => Fault::Isolate(r(m)),
        Fault::Rejoin(m) => Fault::Rejoin(r(m)),
        Fault::Skew(m, d) => Fault::Skew(r(m), *d),
        Fault::StallReceiver(m) => Fault::StallReceiver(r(m)),
        Fault::ResumeReceiver(m) => Fault::ResumeReceiver(r(m)),
        Fault::Eio(m, on) => Fault::Eio(r(m), *on),
        Fault::StartFails(m, on) => Fault::StartFails(r(m), *on),
        Fault::HangSql(m, on) => Fault::HangSql(r(m), *on),
        Fault::SlowCheckpoint(m, on) => Fault::SlowCheckpoint(r(m), *on),
        Fault::MoveDataDir(m) => Fault::MoveDataDir(r(m)),
        Fault::RestoreDataDir(m) => Fault::RestoreDataDir(r(m)),
        Fault::BulkWal(m, n) => Fault::BulkWal(r(m), *n),
        Fault::OperatorFailover(m) => Fault::OperatorFailover(r(m)),
        other => other.clone(),
    }
}

/// Play one scripted-only step (labels, waits, expectations, operator requests).
async fn script(world: &Shared, labels: &mut Labels, f: &Fault) {
    match f {
        Fault::Bind(label, role) => {
            let w = lock(world);
            match select(&w, role) {
                Some(m) => {
                    w.note("script", format!("${label} is {m} (the {role})"));
                    labels.insert(label.clone(), m);
                }
                None => w.note("script", format!("no {role} to call ${label}")),
            }
        }
        Fault::AwaitNewPrimary(old, new) => {
            let old = resolve(labels, old);
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until {
                let found = lock(world)
                    .hosts
                    .values()
                    .find(|h| h.writable() && h.name != old)
                    .map(|h| h.name.clone());
                if let Some(m) = found {
                    lock(world).note("script", format!("${new} is {m} (newly writable)"));
                    labels.insert(new.clone(), m);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            lock(world).note(
                "script",
                format!("no member other than {old} became writable"),
            );
        }
        Fault::ExpectWritableOtherThan(old) => {
            let old = resolve(labels, old);
            let mut w = lock(world);
            if !w.hosts.values().any(|h| h.writable() && h.name != old) {
                w.violation(format!(
                    "availability: no member other than {old} accepts writes although the others are healthy"
                ));
            }
        }
        Fault::OperatorFailover(_) | Fault::OperatorSwitchover => {
            let op = StoreClient::new(world.clone(), "operator", Duration::from_secs(3));
            let bootstrap = pgbaton_core::model::ClusterConfig::default();
            let planned = match f {
                Fault::OperatorFailover(to) => {
                    let to = resolve(labels, to);
                    pgbaton::cli::ops::plan_failover(&op, &bootstrap, &to, false)
                        .await
                        .map(|(r, _)| r)
                }
                _ => {
                    let ask = pgbaton::cli::ops::SwitchoverAsk::default();
                    pgbaton::cli::ops::plan_switchover(&op, &bootstrap, &ask).await
                }
            };
            let result = match planned {
                Ok(mut req) => {
                    // The request's timestamp on the simulated wall clock.
                    req.requested_ms = crate::clock::WALL_EPOCH_MS + lock(world).now_ms();
                    pgbaton::cli::ops::submit(&op, &req)
                        .await
                        .map(|_| format!("{:?} to {} submitted", req.kind, req.to))
                }
                Err(e) => Err(e),
            };
            let msg = match result {
                Ok(m) => m,
                Err(e) => format!("refused: {e}"),
            };
            lock(world).note("operator", msg);
        }
        _ => {}
    }
}

fn apply(world: &Shared, procs: &mut Procs, f: &Fault) {
    let note = |m: &str, msg: String| lock(world).note(m, format!("[fault] {msg}"));
    match f {
        Fault::Bind(..)
        | Fault::AwaitNewPrimary(..)
        | Fault::ExpectWritableOtherThan(_)
        | Fault::OperatorFailover(_)
        | Fault::OperatorSwitchover => {}
        Fault::BulkWal(m, bytes) => {
            let mut w = lock(world);
            let id = w.id();
            let done = match w.hosts.get_mut(m) {
                Some(h) if h.writable() => h
                    .data_mut()
                    .map(|d| {
                        d.append(
                            id,
                            crate::pg::wal::RecKind::Checkpoint { shutdown: false },
                            *bytes,
                        )
                    })
                    .is_some(),
                _ => false,
            };
            if done {
                w.note(
                    m,
                    format!("[fault] {bytes} bytes of WAL written by an open transaction"),
                );
            }
        }
        Fault::KillAgent(m) => procs.kill(world, m),
        Fault::StartAgent(m) => procs.start(world, m),
        Fault::FreezeAgent(m) => {
            if let Some(g) = procs.gate(m) {
                g.freeze();
                note(m, "agent frozen (SIGSTOP)".into());
            }
        }
        Fault::ResumeAgent(m) => {
            if let Some(g) = procs.gate(m) {
                g.resume();
                note(m, "agent resumed (SIGCONT)".into());
            }
        }
        Fault::KillFence(m) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.fences.iter_mut().for_each(|f| f.alive = false);
            }
            w.note(m, "[fault] fence process killed (kill -9)");
        }
        Fault::FreezeFence(m) | Fault::ResumeFence(m) => {
            let frozen = matches!(f, Fault::FreezeFence(_));
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.fences.iter_mut().for_each(|f| f.frozen = frozen);
            }
            w.note(
                m,
                format!(
                    "[fault] fence {}",
                    if frozen { "frozen" } else { "resumed" }
                ),
            );
        }
        Fault::CrashPostgres(m) => {
            let mut w = lock(world);
            if model::stop(&mut w, m, false, "CRASH: postmaster killed (kill -9)") {
                w.note(m, "[fault] postmaster killed");
            }
        }
        Fault::Cut(a, b) => {
            let mut w = lock(world);
            w.blocked.insert((a.clone(), b.clone()));
            w.note(a, format!("[fault] network: {a} -> {b} dropped"));
        }
        Fault::Heal(a, b) => {
            let mut w = lock(world);
            w.blocked.remove(&(a.clone(), b.clone()));
            w.note(a, format!("[fault] network: {a} -> {b} healed"));
        }
        Fault::Isolate(m) => {
            let mut w = lock(world);
            w.blocked.insert((m.clone(), "store".into()));
            w.blocked.insert(("store".into(), m.clone()));
            w.note(m, "[fault] network: cut off from the store");
        }
        Fault::Rejoin(m) => {
            let mut w = lock(world);
            w.blocked.remove(&(m.clone(), "store".into()));
            w.blocked.remove(&("store".into(), m.clone()));
            w.note(m, "[fault] network: reaches the store again");
        }
        Fault::Skew(m, d) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.wall_skew_ms += d;
            }
            w.note(m, format!("[fault] wall clock stepped by {d} ms"));
        }
        Fault::StallReceiver(m) | Fault::ResumeReceiver(m) => {
            let stall = matches!(f, Fault::StallReceiver(_));
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.receiver_stalled = stall;
            }
            w.note(
                m,
                format!(
                    "[fault] WAL receiver {}",
                    if stall { "stalled" } else { "resumed" }
                ),
            );
        }
        Fault::HangSql(m, on) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.sql_hung = *on;
            }
            w.note(
                m,
                format!(
                    "[fault] the agent's SQL session {}",
                    if *on { "hangs" } else { "answers again" }
                ),
            );
        }
        Fault::MoveDataDir(m) => {
            let mut w = lock(world);
            let id = w.id();
            let now = w.now_ms();
            let Some(h) = w.hosts.get_mut(m) else { return };
            // Not modelled: a move while `pg_ctl start` runs (the agent never learns
            // the new postmaster's pid). The operator moves a directory that has run
            // for a while; a move drawn in the first second after a start is skipped.
            if h.pm.as_ref().is_some_and(|p| now < p.started_ms + 1000) {
                w.note(
                    m,
                    "[fault] data directory move skipped: PostgreSQL is starting",
                );
                return;
            }
            let to = h.moved_dir(id);
            let Some(d) = h.dirs.remove(&h.data_dir) else {
                return;
            };
            h.dirs.insert(to.clone(), d);
            if let Some(pm) = h.pm.as_mut().filter(|p| p.dir == h.data_dir) {
                pm.dir = to.clone();
            }
            let running = h.pm.as_ref().map(|p| p.pid);
            let from = h.data_dir.display().to_string();
            w.note(
                m,
                format!(
                    "[fault] data directory {from} moved to {}{}",
                    to.display(),
                    running
                        .map(|p| format!(" under running postmaster {p}"))
                        .unwrap_or_default()
                ),
            );
        }
        Fault::RestoreDataDir(m) => restore_data_dir(&mut lock(world), m),
        Fault::SlowCheckpoint(m, on) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.ckpt_busy = *on;
            }
            // The checkpointer catches up with a deferred reload when the checkpoint
            // ends (without one pending this changes nothing).
            if !*on {
                crate::pg::model::checkpointer_reload(&mut w, m);
            }
            w.note(
                m,
                format!(
                    "[fault] long checkpoint {}",
                    if *on {
                        "starts: reloads wait for it"
                    } else {
                        "ends"
                    }
                ),
            );
        }
        Fault::Eio(m, on) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.eio = *on;
            }
            w.note(
                m,
                format!(
                    "[fault] data directory {}",
                    if *on { "returns EIO" } else { "healthy again" }
                ),
            );
        }
        Fault::StartFails(m, on) => {
            let mut w = lock(world);
            if let Some(h) = w.hosts.get_mut(m) {
                h.start_fails = *on;
            }
            w.note(
                m,
                format!(
                    "[fault] starting PostgreSQL {}",
                    if *on { "fails" } else { "works again" }
                ),
            );
        }
        Fault::HealAll => {
            let names: Vec<String> = procs.cfgs.keys().cloned().collect();
            {
                let mut w = lock(world);
                w.blocked.clear();
                for h in w.hosts.values_mut() {
                    h.eio = false;
                    h.start_fails = false;
                    h.receiver_stalled = false;
                    h.sql_hung = false;
                    h.ckpt_busy = false;
                    h.fences.iter_mut().for_each(|f| f.frozen = false);
                }
                let hosts: Vec<String> = w.hosts.keys().cloned().collect();
                for h in &hosts {
                    crate::pg::model::checkpointer_reload(&mut w, h);
                    restore_data_dir(&mut w, h);
                }
                w.note("world", "[fault] every fault repaired");
            }
            for n in &names {
                if let Some(g) = procs.gate(n) {
                    g.resume();
                }
                procs.start(world, n);
            }
        }
    }
}

/// Move member `m`'s data directory back from where `MoveDataDir` put it, if its path
/// is still empty and no postmaster runs on it.
fn restore_data_dir(w: &mut crate::world::World, m: &str) {
    let Some(h) = w.hosts.get_mut(m) else { return };
    if h.dirs.contains_key(&h.data_dir) {
        return;
    }
    let busy = h.pm.as_ref().map(|p| p.dir.clone());
    let Some(moved) = h
        .dirs
        .keys()
        .filter(|d| h.is_moved_dir(d))
        .rfind(|d| busy.as_ref() != Some(*d))
        .cloned()
    else {
        return;
    };
    if let Some(d) = h.dirs.remove(&moved) {
        h.dirs.insert(h.data_dir.clone(), d);
        let to = h.data_dir.display().to_string();
        w.note(
            m,
            format!(
                "[fault] data directory {} moved back to {to}",
                moved.display()
            ),
        );
    }
}

/// Exactly one primary, holding the leader key, and every other member streaming
/// from it.
fn converged(w: &World) -> bool {
    let writable: Vec<&Host> = w.hosts.values().filter(|h| h.writable()).collect();
    let [p] = writable.as_slice() else {
        return false;
    };
    if w.store.value(pgbaton_core::model::KEY_LEADER) != Some(p.name.as_str()) {
        return false;
    }
    w.hosts.values().filter(|h| h.name != p.name).all(|h| {
        h.pm.as_ref().is_some_and(|pm| {
            pm.in_recovery && pm.streaming && pm.upstream.as_deref() == Some(p.name.as_str())
        })
    })
}

async fn drive(o: Options, world: Shared) -> (Option<u64>, usize) {
    let mut procs = Procs {
        cfgs: BTreeMap::new(),
        agents: BTreeMap::new(),
    };
    for i in 1..=o.members {
        match member_config(i, &o) {
            Ok(c) => {
                procs.cfgs.insert(c.name.clone(), c);
            }
            Err(e) => {
                lock(&world).violation(format!("member config does not parse: {e:#}"));
                return (None, 0);
            }
        }
    }
    let names: Vec<String> = procs.cfgs.keys().cloned().collect();
    let start = lock(&world).start;
    let ticker = tokio::spawn({
        let world = world.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                model::tick(&mut lock(&world));
            }
        }
    });
    let client = tokio::spawn(crate::client::run(world.clone()));
    let mut steps: Vec<Step> = Vec::new();
    let stagger: Vec<u64> = {
        let mut w = lock(&world);
        names.iter().map(|_| w.rng.range(0, 300)).collect()
    };
    for (n, at) in names.iter().zip(stagger) {
        steps.push(Step {
            at_ms: at,
            fault: Fault::StartAgent(n.clone()),
        });
    }
    let end_faults = o.faults_from_ms + o.fault_ms;
    match &o.schedule {
        Some(s) => steps.extend(s.iter().cloned()),
        None => {
            let mut w = lock(&world);
            let s = faults::schedule(&mut w.rng, &o.kinds, &names, o.faults_from_ms, end_faults);
            steps.extend(s);
        }
    }
    steps.sort_by_key(|s| s.at_ms);
    let heal_at = steps
        .iter()
        .map(|s| s.at_ms)
        .max()
        .unwrap_or(0)
        .max(end_faults);
    let mut applied = 0;
    let mut labels = Labels::new();
    let mut offset = Duration::ZERO;
    for s in &steps {
        tokio::time::sleep_until(start + offset + Duration::from_millis(s.at_ms)).await;
        let waited = Instant::now();
        script(&world, &mut labels, &s.fault).await;
        // Steps after a wait keep their spacing from the moment the wait ended.
        offset += waited.elapsed();
        apply(&world, &mut procs, &resolved(&labels, &s.fault));
        if !matches!(s.fault, Fault::StartAgent(_)) {
            applied += 1;
        }
    }
    tokio::time::sleep_until(start + offset + Duration::from_millis(heal_at)).await;
    apply(&world, &mut procs, &Fault::HealAll);
    let healed = Instant::now();
    let bound = Duration::from_millis(liveness_bound_ms(o.members));
    let mut converged_ms = None;
    while healed.elapsed() <= bound {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if converged(&lock(&world)) {
            converged_ms = Some(healed.elapsed().as_millis() as u64);
            break;
        }
    }
    {
        let mut w = lock(&world);
        match converged_ms {
            Some(ms) => w.note("CHECK", format!("converged {ms} ms after the last repair")),
            None => {
                w.violation(format!(
                    "liveness: no single primary with every member streaming {} s after the last repair",
                    bound.as_secs()
                ));
                dump(&w);
            }
        }
        final_check(&mut w);
    }
    ticker.abort();
    client.abort();
    for (_, (h, _)) in procs.agents {
        h.abort();
    }
    (converged_ms, applied)
}

/// The store's keys and each server's state, into the trace (after a liveness failure).
fn dump(w: &World) {
    for key in ["leader", "sync", "status", "history", "initialize"] {
        if let Some(v) = w.store.value(key) {
            w.note("store", format!("{key} = {v}"));
        }
    }
    for h in w.hosts.values() {
        let pm = match &h.pm {
            Some(p) if p.in_recovery => format!(
                "standby of {} ({})",
                p.upstream.as_deref().unwrap_or("nobody"),
                if p.streaming {
                    "streaming"
                } else {
                    "not streaming"
                }
            ),
            Some(_) => "PRIMARY".into(),
            None => "stopped".into(),
        };
        let wal = h
            .data()
            .map(|d| {
                format!(
                    "timeline {}, WAL to {}",
                    d.tli(),
                    crate::pg::model::lsn(d.end())
                )
            })
            .unwrap_or_else(|| "no data directory".into());
        w.note(&h.name, format!("state: {pm}; {wal}"));
    }
}

/// In synchronous mode every acknowledged commit is on the final primary.
fn final_check(w: &mut World) {
    if !w.sync_mode {
        return;
    }
    let Some(p) = w.hosts.values().find(|h| h.writable()) else {
        return;
    };
    let Some(d) = p.data() else { return };
    let have: BTreeSet<u64> = d.commits().collect();
    let missing = w.acked.iter().filter(|a| !have.contains(&a.commit)).count();
    if missing > 0 {
        let name = p.name.clone();
        w.violation(format!(
            "synchronous mode: the final primary {name} lacks {missing} acknowledged commits"
        ));
    }
}

/// Run one seed to the end.
pub fn run(o: &Options) -> Outcome {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Outcome {
                seed: o.seed,
                violations: vec![format!("cannot build the runtime: {e}")],
                trace: Vec::new(),
                sim_ms: 0,
                converged_ms: None,
                acked: 0,
                lost_async: 0,
                faults: 0,
            }
        }
    };
    let start = rt.block_on(async { Instant::now() });
    let sink = Arc::new(Mutex::new(Vec::new()));
    let mut rng = crate::rng::Rng::new(o.seed);
    let mut hosts = BTreeMap::new();
    for i in 1..=o.members {
        let name = format!("node{i}");
        hosts.insert(
            name.clone(),
            Host {
                name: name.clone(),
                addr: format!("10.0.0.{i}:5432"),
                dirs: BTreeMap::new(),
                data_dir: PathBuf::from(format!("/sim/node{i}/data")),
                pm: None,
                eio: false,
                start_fails: false,
                boot_offset: Duration::from_millis(rng.range(1_000, 1_000_000_000)),
                wall_skew_ms: rng.range(0, 200) as i64 - 100,
                fences: Vec::new(),
                agent_incarnation: 0,
                agent_alive: false,
                agent_frozen: false,
                receiver_stalled: false,
                sql_hung: false,
                ckpt_busy: false,
                pending: Vec::new(),
                fenced: 0,
            },
        );
    }
    let world: Shared = Arc::new(Mutex::new(World {
        seed: o.seed,
        rng,
        start,
        hosts,
        store: StoreState::default(),
        store_changed: Arc::new(tokio::sync::Notify::new()),
        blocked: BTreeSet::new(),
        next_id: 0,
        acked: Vec::new(),
        timelines: BTreeMap::new(),
        violations: Vec::new(),
        log: sink.clone(),
        sync_mode: o.sync != "off",
        broken: o.broken,
        lost_async: 0,
    }));
    crate::trace::install(o.debug);
    let traced = crate::trace::Sink {
        lines: sink.clone(),
        start,
    };
    let (converged_ms, faults) =
        crate::trace::with_sink(traced, || rt.block_on(drive(o.clone(), world.clone())));
    let sim_ms = rt.block_on(async { Instant::now().duration_since(start).as_millis() as u64 });
    drop(rt);
    let w = lock(&world);
    let trace = sink.lock().map(|t| t.clone()).unwrap_or_default();
    Outcome {
        seed: o.seed,
        violations: w.violations.clone(),
        trace,
        sim_ms,
        converged_ms,
        acked: w.acked.len(),
        lost_async: w.lost_async,
        faults,
    }
}

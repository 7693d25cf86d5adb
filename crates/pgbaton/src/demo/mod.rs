//! `pgbaton demo`: a local cluster in the foreground, on the embedded store or on etcd.
//!
//! It writes one config per member (kept, so a second run reuses them and the data),
//! starts etcd when asked for one without endpoints, starts one agent process per
//! member, shows a live status table (and, with `--writer`, a client writing through it),
//! and on Ctrl-C or SIGTERM stops every agent (each stops its PostgreSQL cleanly) and
//! then etcd. Started again after any interruption, it resumes and heals the cluster.

mod configs;
mod dircheck;
mod error;
mod etcd;
mod screen;
mod writer;

use anyhow::Context;
use configs::{Backend, Member};
use error::DemoError;
use etcd::LocalEtcd;
use screen::Screen;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The store a demo runs on (`--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreArg {
    /// The embedded store: files under `<dir>/store`, no other process.
    Local,
    /// etcd v3: the one given with `--etcd-endpoints`, else a local one the demo starts.
    Etcd,
}

/// What `pgbaton demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where configs, data and logs live.
    pub dir: PathBuf,
    /// Number of members, 1 to 9.
    pub nodes: u16,
    /// The store.
    pub store: StoreArg,
    /// etcd client URLs of a running etcd; empty means "start one" (etcd only).
    pub etcd_endpoints: Vec<String>,
    /// Run a client that commits every 10 ms through the multi-host string.
    pub writer: bool,
}

/// Run the demo until Ctrl-C or SIGTERM. Returns an error when it cannot start, or when
/// an agent or the demo's etcd exits by itself; either way everything started is stopped.
pub async fn run(opts: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    // Listen before starting anything: a Ctrl-C at any moment stops the demo cleanly
    // (the default action would kill it without stopping its members).
    let mut stop = Stop::listen()?;
    let nodes = opts.nodes;
    anyhow::ensure!((1..=9).contains(&nodes), "--nodes must be between 1 and 9");
    let etcd_ports = etcd::ports(&opts.dir);
    let own_etcd = etcd::endpoints(etcd_ports);
    let backend = match opts.store {
        StoreArg::Local if !opts.etcd_endpoints.is_empty() => {
            return Err(DemoError::EndpointsWithoutEtcd.into())
        }
        StoreArg::Local => Backend::Local,
        StoreArg::Etcd if opts.etcd_endpoints.is_empty() => Backend::Etcd(own_etcd.clone()),
        StoreArg::Etcd => Backend::Etcd(opts.etcd_endpoints.clone()),
    };
    let starts_etcd = opts.store == StoreArg::Etcd && opts.etcd_endpoints.is_empty();
    let dir = std::path::absolute(&opts.dir)?;
    dircheck::check(&dir)?;
    let mut subdirs = vec!["", "data", "logs"];
    if backend == Backend::Local {
        subdirs.push("store");
    }
    for sub in subdirs {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        // PostgreSQL runs as an unprivileged user when we are root: it must traverse.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting permissions of {}", d.display()))?;
    }
    dircheck::mark(&dir)?;
    let members = configs::prepare(&dir, nodes, &backend, &own_etcd)?;
    configs::check_ports(&members)?;
    let mut local_etcd = if starts_etcd {
        Some(LocalEtcd::start(&dir, etcd_ports).await?)
    } else {
        None
    };
    let mut children: Vec<(String, Child)> = Vec::new();
    let result = match start_agents(&dir, &members, &mut children) {
        Ok(()) => {
            let conninfo = demo_conninfo(&members);
            let screen = Screen {
                dir: &dir,
                first: &members[0].config,
                store: store_line(&backend, local_etcd.as_ref()),
                names: members.iter().map(|m| m.name.clone()).collect(),
                writer: opts.writer.then(|| writer::spawn(conninfo.clone())),
                conninfo,
                started,
            };
            watch(&screen, &mut children, local_etcd.as_mut(), &mut stop).await
        }
        Err(e) => Err(e),
    };
    stop_all(&mut children).await;
    if let Some(etcd) = local_etcd.as_mut() {
        etcd.stop().await;
    }
    println!(
        "\nAll members stopped. Run `{}{}` again to resume.",
        backend.command_line(&dir, nodes, &own_etcd),
        if opts.writer { " --writer" } else { "" }
    );
    result
}

/// The screen's line about the store.
fn store_line(backend: &Backend, local_etcd: Option<&LocalEtcd>) -> String {
    match local_etcd {
        Some(e) => format!(
            "Store: {} (started by the demo; log: {})",
            backend.describe(),
            e.log().display()
        ),
        None => format!("Store: {}", backend.describe()),
    }
}

/// Start one agent per config, adding each to `children` as soon as it runs.
fn start_agents(
    dir: &Path,
    members: &[Member],
    children: &mut Vec<(String, Child)>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the pgbaton executable")?;
    for Member {
        name, config: cfg, ..
    } in members
    {
        let log = dir.join("logs").join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(&exe);
        child
            .arg("agent")
            .arg("-c")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .kill_on_drop(false);
        // If the demo itself dies, its agents must not run on unattended.
        // SAFETY: prctl is async-signal-safe and touches only the child process.
        unsafe {
            child.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = child
            .spawn()
            .with_context(|| format!("starting the agent of {name}"))?;
        children.push((name.clone(), child));
    }
    Ok(())
}

async fn watch(
    screen: &Screen<'_>,
    children: &mut [(String, Child)],
    mut local_etcd: Option<&mut LocalEtcd>,
    stop: &mut Stop,
) -> anyhow::Result<()> {
    let (_, store) = crate::cli::open(screen.first).await?;
    let mut converged_after = None;
    loop {
        let rows = crate::cli::fetch(store.as_ref()).await.unwrap_or_default();
        print!("{}", screen.render(&rows, &mut converged_after));
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the agent of {name} exited ({status}); see {}",
                    screen
                        .dir
                        .join("logs")
                        .join(format!("{name}.log"))
                        .display()
                );
            }
        }
        if let Some(etcd) = local_etcd.as_deref_mut() {
            etcd.check_running()?;
        }
        tokio::select! {
            _ = stop.interrupt.recv() => return Ok(()),
            _ = stop.terminate.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from the start of the demo on.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn listen() -> anyhow::Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }
}

async fn stop_all(children: &mut [(String, Child)]) {
    for (_, child) in children.iter() {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for (name, child) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(_) => println!("stopped {name}"),
            Err(_) => {
                let _ = child.kill().await;
                println!("killed {name} (it did not stop within 60 s)");
            }
        }
    }
}

/// A libpq connection string that reaches whichever demo member is the primary.
fn demo_conninfo(members: &[Member]) -> String {
    let hosts = vec!["127.0.0.1"; members.len()].join(",");
    let ports: Vec<String> = members.iter().map(|m| m.pg_port.to_string()).collect();
    format!(
        "host={hosts} port={} user=postgres password=pgbaton-demo-superuser \
         target_session_attrs=read-write connect_timeout=2",
        ports.join(",")
    )
}

//! `pgbaton demo`: a local cluster on the embedded store, in the foreground.
//!
//! It writes one config per member (kept, so a second run reuses them and the data),
//! starts one agent process per member, shows a live status table, and on Ctrl-C stops
//! every agent, which stops its PostgreSQL cleanly.

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const CLUSTER: &str = "demo";

/// Run the demo in `dir` with `nodes` members until Ctrl-C.
pub async fn run(dir: &Path, nodes: u16) -> anyhow::Result<()> {
    anyhow::ensure!((1..=9).contains(&nodes), "--nodes must be between 1 and 9");
    let dir = std::path::absolute(dir)?;
    for sub in ["", "data", "logs", "store"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        // PostgreSQL runs as an unprivileged user when we are root: it must traverse.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting permissions of {}", d.display()))?;
    }
    let mut configs = Vec::new();
    for i in 1..=nodes {
        let name = format!("node{i}");
        let path = dir.join(format!("{name}.yaml"));
        if !path.exists() {
            let text = pgbaton_config::render_example(
                CLUSTER,
                &name,
                &dir.join("data").join(&name),
                &dir.join("store"),
                55000 + i,
                58000 + i,
            );
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        pgbaton_config::load(&path)?;
        configs.push((name, path));
    }
    let exe = std::env::current_exe().context("finding the pgbaton executable")?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for (name, cfg) in &configs {
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
    let first = configs[0].1.clone();
    let result = watch(&dir, &first, &mut children).await;
    stop_all(&mut children).await;
    println!(
        "\nAll members stopped. Run `pgbaton demo --dir {}` again to resume.",
        dir.display()
    );
    result
}

async fn watch(dir: &Path, first: &Path, children: &mut [(String, Child)]) -> anyhow::Result<()> {
    let (_, store) = crate::cli::open(first).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let rows = crate::cli::fetch(store.as_ref()).await.unwrap_or_default();
        let mut screen = String::from("\x1b[2J\x1b[H");
        screen.push_str(&crate::cli::table(CLUSTER, &rows));
        screen.push_str(&format!(
            "\nTry, in another terminal:\n  \
             pgbaton list -c {cfg}\n  \
             psql 'host=127.0.0.1 port=55001 user=postgres password=pgbaton-demo-superuser' -c 'select * from pg_stat_replication'\n  \
             tail -f {logs}/node1.log\n\
             Configs, data and logs: {dir}\nPress Ctrl-C to stop the cluster.\n",
            cfg = first.display(),
            logs = dir.join("logs").display(),
            dir = dir.display(),
        ));
        print!("{screen}");
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the agent of {name} exited ({status}); see {}",
                    dir.join("logs").join(format!("{name}.log")).display()
                );
            }
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
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

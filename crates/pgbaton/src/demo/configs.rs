//! The demo's member configs: which store they name, which ports they use, writing
//! them once, and refusing to reuse configs that name another store than the one asked
//! for.
//!
//! Ports are picked at the first start, below Linux's ephemeral range (32768–60999) so
//! that no outgoing connection can take one, and only if free then; the configs keep
//! them, so later runs use the same ones.

use super::error::DemoError;
use anyhow::Context;
use pgbaton_config::NodeConfig;
use std::path::{Path, PathBuf};

/// The cluster name of every demo.
pub const CLUSTER: &str = "demo";

/// The store the demo's members use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store in `<demo dir>/store`.
    Local,
    /// etcd v3 at these client URLs.
    Etcd(Vec<String>),
}

impl Backend {
    /// The store `cfg` names.
    pub fn of(cfg: &NodeConfig) -> Backend {
        match &cfg.store.etcd {
            Some(etcd) if cfg.store.local.is_none() => Backend::Etcd(etcd.endpoints.clone()),
            _ => Backend::Local,
        }
    }

    /// For people: "the local store" or "etcd at http://...".
    pub fn describe(&self) -> String {
        match self {
            Backend::Local => "the local store".to_string(),
            Backend::Etcd(e) => format!("etcd at {}", e.join(",")),
        }
    }

    /// The `pgbaton demo` command line that runs this store in `dir`; `own_etcd` is the
    /// endpoint list of the etcd the demo starts itself.
    pub fn command_line(&self, dir: &Path, nodes: u16, own_etcd: &[String]) -> String {
        let base = format!("pgbaton demo --dir {} --nodes {nodes}", dir.display());
        match self {
            Backend::Local => base,
            Backend::Etcd(e) if e.as_slice() == own_etcd => format!("{base} --store etcd"),
            Backend::Etcd(e) => format!("{base} --store etcd --etcd-endpoints {}", e.join(",")),
        }
    }
}

/// First PostgreSQL port: member `i` gets `PG_BASE + i` when it is free.
pub const PG_BASE: u16 = 25000;
/// First HTTP API port: member `i` gets `API_BASE + i` when it is free.
pub const API_BASE: u16 = 28000;
/// Ports the demo picks stay below the kernel's ephemeral range.
const EPHEMERAL_START: u16 = 32768;

/// One demo member, as its config says.
#[derive(Debug, Clone)]
pub struct Member {
    /// `node<i>`.
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its PostgreSQL port.
    pub pg_port: u16,
    /// Its HTTP API port.
    pub api_port: u16,
}

/// Make sure `<dir>/node<i>.yaml` exists for every member and names `wanted`: write the
/// missing ones (with free ports), check the existing ones (and keep their ports).
/// Fails with [`DemoError::StoreMismatch`] when an existing config names another store.
pub fn prepare(
    dir: &Path,
    nodes: u16,
    wanted: &Backend,
    own_etcd: &[String],
) -> anyhow::Result<Vec<Member>> {
    let mut members = Vec::new();
    let mut missing = Vec::new();
    for i in 1..=nodes {
        let name = format!("node{i}");
        let path = dir.join(format!("{name}.yaml"));
        if path.exists() {
            let cfg = pgbaton_config::load(&path)?;
            check_same_store(&path, &Backend::of(&cfg), wanted, dir, nodes, own_etcd)?;
            members.push(member(name, path, &cfg));
        } else {
            missing.push((i, name, path));
        }
    }
    let mut taken: Vec<u16> = members
        .iter()
        .flat_map(|m| [m.pg_port, m.api_port])
        .collect();
    for (i, name, path) in missing {
        let (pg_port, api_port) = pick_ports(i, &mut taken)?;
        let text = render(dir, &name, wanted, pg_port, api_port);
        // Check before writing, so a bad --etcd-endpoints leaves no config behind.
        let cfg = pgbaton_config::parse(&text, &path.display().to_string())?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        members.push(member(name, path, &cfg));
    }
    members.sort_by_key(|m| m.name[4..].parse::<u16>().unwrap_or(u16::MAX));
    Ok(members)
}

fn member(name: String, config: PathBuf, cfg: &NodeConfig) -> Member {
    Member {
        name,
        config,
        data_dir: cfg.data_dir.clone(),
        pg_port: cfg.pg_listen().1,
        api_port: cfg.api_listen().1,
    }
}

/// Free ports for member `i`: `PG_BASE + i` and `API_BASE + i` when both are free,
/// else the first free pair `10·k` above them, below the ephemeral range.
fn pick_ports(i: u16, taken: &mut Vec<u16>) -> anyhow::Result<(u16, u16)> {
    let free = |p: u16, taken: &[u16]| {
        !taken.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
    };
    let mut k = 0u16;
    loop {
        let (pg, api) = (PG_BASE + i + 10 * k, API_BASE + i + 10 * k);
        if api >= EPHEMERAL_START {
            anyhow::bail!(
                "no free pair of ports for node{i} between {PG_BASE} and {EPHEMERAL_START}; \
                 free some, or write the demo's configs by hand"
            );
        }
        if free(pg, taken) && free(api, taken) {
            taken.extend([pg, api]);
            return Ok((pg, api));
        }
        k += 1;
    }
}

/// A port of `member` is in use by another program: say which, and what to do.
pub fn check_ports(members: &[Member]) -> Result<(), DemoError> {
    for m in members {
        // Its own PostgreSQL still running (e.g. after the demo was killed) is fine: the
        // agent takes it over.
        let own_postmaster = postmaster_alive(&m.data_dir);
        let ports = [("PostgreSQL", m.pg_port), ("HTTP API", m.api_port)];
        for (what, port) in ports {
            if what == "PostgreSQL" && own_postmaster {
                continue;
            }
            if let Err(source) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Err(DemoError::PortInUse {
                    port,
                    what,
                    member: m.name.clone(),
                    config: m.config.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Whether the postmaster of `data_dir` runs.
fn postmaster_alive(data_dir: &Path) -> bool {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

/// The config text of member `name` on `backend`.
fn render(dir: &Path, name: &str, backend: &Backend, pg_port: u16, api_port: u16) -> String {
    let data_dir = dir.join("data").join(name);
    match backend {
        Backend::Local => pgbaton_config::render_example(
            CLUSTER,
            name,
            &data_dir,
            &dir.join("store"),
            pg_port,
            api_port,
        ),
        Backend::Etcd(endpoints) => pgbaton_config::render_example_etcd(
            CLUSTER, name, &data_dir, endpoints, pg_port, api_port,
        ),
    }
}

/// `Ok` when the existing config at `path` (naming `found`) fits `wanted`.
fn check_same_store(
    path: &Path,
    found: &Backend,
    wanted: &Backend,
    dir: &Path,
    nodes: u16,
    own_etcd: &[String],
) -> Result<(), DemoError> {
    if found == wanted {
        return Ok(());
    }
    let wanted_text = match wanted {
        Backend::Local => "the local store (the default; --store etcd was not given)".to_string(),
        Backend::Etcd(e) if e.as_slice() == own_etcd => {
            format!("etcd started by the demo at {}", e.join(","))
        }
        other => other.describe(),
    };
    Err(DemoError::StoreMismatch {
        config: path.to_path_buf(),
        found: found.describe(),
        wanted: wanted_text,
        dir: dir.to_path_buf(),
        resume: found.command_line(dir, nodes, own_etcd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<String> {
        vec!["http://127.0.0.1:52379".to_string()]
    }

    #[test]
    fn written_configs_are_reused_only_for_the_same_store() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let etcd = Backend::Etcd(own());
        let configs = prepare(dir, 2, &etcd, &own()).expect("first run writes configs");
        assert_eq!(configs.len(), 2);
        let cfg = pgbaton_config::load(&configs[1].config).expect("valid config");
        assert_eq!(Backend::of(&cfg), etcd);
        let port = cfg.pg_listen().1;
        assert!(port > PG_BASE && port < EPHEMERAL_START, "{port}");
        assert_eq!(configs[1].pg_port, port);
        // The same store again: reused as they are.
        let before = std::fs::read_to_string(&configs[0].config).expect("read");
        prepare(dir, 2, &etcd, &own()).expect("same store is fine");
        assert_eq!(
            std::fs::read_to_string(&configs[0].config).expect("read"),
            before
        );

        // Another store: refused, with the command that resumes the existing cluster.
        let err = prepare(dir, 2, &Backend::Local, &own()).expect_err("local over etcd");
        let text = err.to_string();
        assert!(
            text.contains("node1.yaml uses etcd at http://127.0.0.1:52379"),
            "{text}"
        );
        assert!(text.contains("asked for the local store"), "{text}");
        assert!(text.contains("--nodes 2 --store etcd`"), "{text}");
        let other = Backend::Etcd(vec!["http://10.0.0.9:2379".to_string()]);
        let text = prepare(dir, 2, &other, &own())
            .expect_err("other etcd")
            .to_string();
        assert!(
            text.contains("asked for etcd at http://10.0.0.9:2379"),
            "{text}"
        );
    }

    #[test]
    fn local_configs_are_not_reused_for_etcd() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        prepare(dir, 1, &Backend::Local, &own()).expect("local configs");
        let text = prepare(dir, 1, &Backend::Etcd(own()), &own())
            .expect_err("etcd over local")
            .to_string();
        assert!(text.contains("uses the local store"), "{text}");
        assert!(text.contains("etcd started by the demo"), "{text}");
        assert!(
            text.contains(&format!("`pgbaton demo --dir {} --nodes 1`", dir.display())),
            "{text}"
        );
    }

    #[test]
    fn bad_endpoints_leave_no_config_behind() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bad = Backend::Etcd(vec!["127.0.0.1:2379".to_string()]);
        let err = prepare(tmp.path(), 1, &bad, &own()).expect_err("not a URL");
        assert!(err.to_string().contains("store.etcd.endpoints"), "{err:#}");
        assert!(!tmp.path().join("node1.yaml").exists());
    }
}

#[cfg(test)]
mod port_tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let own = vec!["http://127.0.0.1:52379".to_string()];
        // Someone holds node1's default PostgreSQL port: node1 gets another pair.
        let squatter = std::net::TcpListener::bind(("127.0.0.1", PG_BASE + 1)).ok();
        let first = prepare(tmp.path(), 3, &Backend::Local, &own).expect("configs");
        let mut all: Vec<u16> = first.iter().flat_map(|m| [m.pg_port, m.api_port]).collect();
        assert!(all.iter().all(|&p| p < EPHEMERAL_START), "{all:?}");
        if squatter.is_some() {
            assert_ne!(first[0].pg_port, PG_BASE + 1);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "ports are distinct");
        drop(squatter);
        // A second run keeps them, whatever is free now.
        let again = prepare(tmp.path(), 3, &Backend::Local, &own).expect("configs");
        for (a, b) in first.iter().zip(&again) {
            assert_eq!((a.pg_port, a.api_port), (b.pg_port, b.api_port));
        }
    }

    #[test]
    fn a_taken_port_is_named_with_what_to_do() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let own = vec!["http://127.0.0.1:52379".to_string()];
        let members = prepare(tmp.path(), 2, &Backend::Local, &own).expect("configs");
        let port = members[1].api_port;
        let _held = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        // Only node2: the other test of this module may hold node1's default port.
        let text = check_ports(&members[1..]).expect_err("taken").to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("HTTP API port of node2"), "{text}");
        assert!(text.contains("node2.yaml"), "{text}");
        assert!(
            text.contains(&format!("ss -ltnp 'sport = :{port}'")),
            "{text}"
        );
    }
}

//! The demo's member configs: which store they name, writing them once, and refusing
//! to reuse configs that name another store than the one asked for.

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

/// Ports of member `i` (1-based): PostgreSQL and the HTTP API.
pub fn ports(i: u16) -> (u16, u16) {
    (55000 + i, 58000 + i)
}

/// Make sure `<dir>/node<i>.yaml` exists for every member and names `wanted`: write the
/// missing ones, check the existing ones. Returns `(name, config path)` per member.
/// Fails with [`DemoError::StoreMismatch`] when an existing config names another store.
pub fn prepare(
    dir: &Path,
    nodes: u16,
    wanted: &Backend,
    own_etcd: &[String],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut configs = Vec::new();
    for i in 1..=nodes {
        let name = format!("node{i}");
        let path = dir.join(format!("{name}.yaml"));
        if path.exists() {
            let cfg = pgbaton_config::load(&path)?;
            check_same_store(&path, &Backend::of(&cfg), wanted, dir, nodes, own_etcd)?;
        } else {
            let text = render(dir, &name, i, wanted);
            // Check before writing, so a bad --etcd-endpoints leaves no config behind.
            pgbaton_config::parse(&text, &path.display().to_string())?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        configs.push((name, path));
    }
    Ok(configs)
}

/// The config text of member `name` (number `i`) on `backend`.
fn render(dir: &Path, name: &str, i: u16, backend: &Backend) -> String {
    let data_dir = dir.join("data").join(name);
    let (pg_port, api_port) = ports(i);
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
        let cfg = pgbaton_config::load(&configs[1].1).expect("valid config");
        assert_eq!(Backend::of(&cfg), etcd);
        assert_eq!(cfg.pg_listen().1, 55002);
        // The same store again: reused as they are.
        let before = std::fs::read_to_string(&configs[0].1).expect("read");
        prepare(dir, 2, &etcd, &own()).expect("same store is fine");
        assert_eq!(
            std::fs::read_to_string(&configs[0].1).expect("read"),
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

//! Writing configs back out: the effective config (for `pgbaton check-config`) and
//! commented example files (for `pgbaton demo`, on the local store or on etcd).

use crate::types::NodeConfig;
use std::path::Path;

/// What every password is shown as.
pub const REDACTED: &str = "********";

/// The effective config as YAML: defaults filled in (connect addresses, OS user, socket
/// directory, log level, the whole `bootstrap` section), every password replaced by
/// `********`. Keys come in the documented order, so the text is stable.
///
/// Meant for a validated config; `postgres.bin_dir` stays absent when it is found
/// automatically.
pub fn render_effective(cfg: &NodeConfig) -> String {
    let c = effective(cfg);
    let header = format!(
        "# effective config of member {:?} in cluster {:?} (defaults filled in, passwords hidden)\n",
        cfg.name, cfg.cluster
    );
    match serde_saphyr::to_string(&c) {
        Ok(body) => header + &body,
        // Serializing plain strings, numbers and maps does not fail; keep a readable
        // fallback rather than panicking if it ever does.
        Err(e) => format!("{header}# cannot render the config as YAML: {e}\n"),
    }
}

/// The effective config as a value (what [`render_effective`] prints): defaults filled
/// in, every password replaced by `********`.
pub fn effective(cfg: &NodeConfig) -> NodeConfig {
    let mut c = cfg.clone();
    c.postgres.superuser.password = REDACTED.to_string();
    if let Some(r) = c.postgres.rewind.as_mut() {
        r.password = REDACTED.to_string();
    }
    c.postgres.replication.password = REDACTED.to_string();
    if let Some(auth) = c.api.auth.as_mut() {
        auth.password = REDACTED.to_string();
    }
    if let Some(etcd) = c.store.etcd.as_mut() {
        if etcd.password.is_some() {
            etcd.password = Some(REDACTED.to_string());
        }
    }
    c.postgres.connect_address = Some(cfg.pg_connect_address());
    let (api_host, api_port) = cfg.api_connect();
    c.api.connect_address = Some(format!("{}:{api_port}", crate::addr::url_host(&api_host)));
    c.postgres.os_user = Some(cfg.os_user_name().to_string());
    c.postgres.socket_dir = Some(cfg.socket_dir());
    c.log.level = Some(cfg.log_level().to_string());
    c
}

/// A complete, commented config file for one member of a single-host cluster that uses
/// the local store in `store_dir`, PostgreSQL on `127.0.0.1:pg_port` and the API on
/// `127.0.0.1:api_port`. It passes [`crate::parse`] when the names are valid and the
/// paths absolute. The passwords are fixed demo values, the same for every member.
pub fn render_example(
    cluster: &str,
    name: &str,
    data_dir: &Path,
    store_dir: &Path,
    pg_port: u16,
    api_port: u16,
) -> String {
    let store_dir = scalar(&store_dir.display().to_string());
    let store = format!(
        r#"store:
  local: {store_dir}    # embedded single-host store (a directory)
  # etcd:                     # instead of local, for members on several hosts
  #   endpoints: ["http://127.0.0.1:2379"]
"#
    );
    render_with_store(cluster, name, data_dir, &store, pg_port, api_port)
}

/// Like [`render_example`], but the member uses etcd v3 at `endpoints` (client URLs
/// such as `http://127.0.0.1:2379`, in the order the member tries them) with the
/// default key prefix. The caller must pass at least one endpoint for the result to
/// pass [`crate::parse`].
pub fn render_example_etcd(
    cluster: &str,
    name: &str,
    data_dir: &Path,
    endpoints: &[String],
    pg_port: u16,
    api_port: u16,
) -> String {
    let list = endpoints
        .iter()
        .map(|e| serde_json::Value::String(e.clone()).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let store = format!(
        r#"store:
  etcd:                       # etcd v3, for members on several hosts
    endpoints: [{list}]
    # prefix: /pgbaton        # keys live under <prefix>/<cluster>/
    # username: pgbaton       # with password, when etcd has auth enabled
    # password: secret
  # local: /var/lib/pgbaton/store   # instead of etcd: embedded single-host store
"#
    );
    render_with_store(cluster, name, data_dir, &store, pg_port, api_port)
}

/// The example file around a ready `store:` section (ending in a newline).
fn render_with_store(
    cluster: &str,
    name: &str,
    data_dir: &Path,
    store: &str,
    pg_port: u16,
    api_port: u16,
) -> String {
    let cluster = scalar(cluster);
    let name = scalar(name);
    let data_dir = scalar(&data_dir.display().to_string());
    format!(
        r#"# pgbaton member config; every key is described in docs/configuration.md.
cluster: {cluster}    # cluster name; the namespace in the store
name: {name}    # unique member name
data_dir: {data_dir}    # PGDATA of this member
{store}postgres:
  listen: 127.0.0.1:{pg_port}    # host:port PostgreSQL listens on
  # connect_address: 10.0.0.5:5432   # how others reach it; defaults to listen
  # bin_dir: /usr/lib/postgresql/15/bin  # default: found automatically
  # os_user: postgres         # who runs PostgreSQL when the agent is root
  # socket_dir: /tmp          # Unix socket directory
  # The same roles and passwords on every member. Change them for real use.
  superuser:   {{username: postgres,   password: pgbaton-demo-superuser}}
  replication: {{username: replicator, password: pgbaton-demo-replication}}
  parameters: {{max_connections: 100}}  # extra postgresql.conf settings
  # pg_hba: ["host all all 10.0.0.0/24 scram-sha-256"]  # extra pg_hba.conf lines
api:
  listen: 127.0.0.1:{api_port}    # the agent's HTTP address
# tags: {{nofailover: false, failover_priority: 0, nosync: false, noloadbalance: false}}
# Cluster-wide settings, used only by the member that bootstraps the cluster:
# bootstrap:
#   ttl: 10                   # lease seconds; loop_wait + retry_timeout + safety_margin <= ttl
#   loop_wait: 1
#   retry_timeout: 3
#   maximum_lag_on_failover: 1048576
#   parameters: {{}}
# log: {{level: info}}          # error, warn, info, debug or trace
# Fencing: PostgreSQL stops accepting writes safety_margin seconds before the lease
# can expire (docs/fencing.md). mode: off, automatic or required.
# watchdog: {{mode: off, device: /dev/watchdog, safety_margin: 2}}
"#
    )
}

/// `s` as a YAML scalar: plain when that reads back as the same string, else quoted.
fn scalar(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::scalar;

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(scalar("node1"), "node1");
        assert_eq!(scalar("/srv/pg/node1"), "/srv/pg/node1");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("/tmp/a b"), "\"/tmp/a b\"");
        assert_eq!(scalar(""), "\"\"");
    }
}

//! Validation of a parsed config: every rule, every problem reported at once.

use crate::access::LOG_LEVELS;
use crate::addr::{host_port, is_loopback, is_wildcard};
use crate::error::{ConfigError, Problem};
use crate::params::{check_parameters, Origin};
use crate::types::{Credentials, EtcdConfig, NodeConfig};
use pgbaton_core::model::ClusterConfig;
use std::path::Path;

/// Longest cluster or member name (a DNS label, and short enough for slot names).
pub const MAX_NAME_LEN: usize = 63;

impl NodeConfig {
    /// Checks every rule; `Ok` or every problem found, each line starting with `origin`.
    /// [`crate::parse`] and [`crate::load`] already call it.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Every rule this config breaks (empty when valid). Pure: touches no files.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        out.extend(check_name("cluster", &self.cluster));
        out.extend(check_name("name", &self.name));
        out.extend(check_abs("data_dir", &self.data_dir));
        self.check_store(&mut out);
        self.check_postgres(&mut out);
        self.check_api(&mut out);
        out.extend(check_cluster_config_with_margin(
            &self.bootstrap,
            "bootstrap",
            self.timing_margin(),
        ));
        if let Some(level) = &self.log.level {
            if !LOG_LEVELS.contains(&level.as_str()) {
                out.push(Problem::at(
                    "log.level",
                    format!(
                        "{level:?} is not a log level; use one of: {}",
                        LOG_LEVELS.join(", ")
                    ),
                ));
            }
        }
        if let Some(file) = &self.log.file {
            out.extend(check_abs("log.file", file));
        }
        self.check_watchdog(&mut out);
        out
    }

    /// The margin the `bootstrap` timing is checked with: this member's
    /// `watchdog.safety_margin`, or 1 when that is itself wrong (reported on its own).
    fn timing_margin(&self) -> u64 {
        let m = self.watchdog.safety_margin;
        if m < 1 || m >= self.bootstrap.ttl {
            1
        } else {
            m
        }
    }

    /// The fence must fire before the lease can expire: `1 <= safety_margin < ttl`.
    /// (`bootstrap` timing checks the rest: see [`check_cluster_config_with_margin`].)
    /// (The ttl checked is `bootstrap.ttl`; the agent re-checks against the ttl of the
    /// lease it actually holds and fences at once when the margin does not fit.)
    fn check_watchdog(&self, out: &mut Vec<Problem>) {
        let w = &self.watchdog;
        out.extend(check_abs("watchdog.device", &w.device));
        let ttl = self.bootstrap.ttl;
        if w.safety_margin < 1 {
            out.push(Problem::at(
                "watchdog.safety_margin",
                format!(
                    "{} is too small; use at least 1 (seconds): it covers clock drift, the fence's polling and PostgreSQL's shutdown",
                    w.safety_margin
                ),
            ));
        } else if ttl >= 2 && w.safety_margin >= ttl {
            out.push(Problem::at(
                "watchdog.safety_margin",
                format!(
                    "{} must be less than bootstrap.ttl ({ttl}), or PostgreSQL would be fenced as soon as the lease is renewed; lower safety_margin or raise ttl",
                    w.safety_margin
                ),
            ));
        }
    }

    fn check_store(&self, out: &mut Vec<Problem>) {
        match (&self.store.local, &self.store.etcd) {
            (None, None) => out.push(Problem::at(
                "store",
                "no store is set; set store.local (a directory, one host) or store.etcd.endpoints",
            )),
            (Some(_), Some(_)) => out.push(Problem::at(
                "store",
                "both store.local and store.etcd are set; keep exactly one of them",
            )),
            (Some(dir), None) => out.extend(check_abs("store.local", dir)),
            (None, Some(etcd)) => check_etcd(etcd, out),
        }
    }

    fn check_postgres(&self, out: &mut Vec<Problem>) {
        let pg = &self.postgres;
        let listen = check_addr("postgres.listen", &pg.listen, out);
        let connect = pg
            .connect_address
            .as_ref()
            .and_then(|a| check_addr("postgres.connect_address", a, out));
        if let Some((host, _)) = &connect {
            if is_wildcard(host) {
                out.push(Problem::at(
                    "postgres.connect_address",
                    format!("{host:?} is not an address others can connect to; give this host's real address (e.g. 10.0.0.5:5432)"),
                ));
            }
        }
        if let (Some((host, port)), None) = (&listen, &pg.connect_address) {
            if is_wildcard(host) {
                out.push(Problem::at(
                    "postgres.listen",
                    format!("listens on every address ({host}), so other members cannot know where to connect; set postgres.connect_address (e.g. 10.0.0.5:{port})"),
                ));
            }
        }
        if let Some(dir) = &pg.bin_dir {
            out.extend(check_abs("postgres.bin_dir", dir));
        }
        if let Some(dir) = &pg.socket_dir {
            out.extend(check_abs("postgres.socket_dir", dir));
        }
        if let Some(user) = &pg.os_user {
            if user.trim().is_empty() || user.contains(|c: char| c.is_whitespace() || c == ':') {
                out.push(Problem::at(
                    "postgres.os_user",
                    format!("{user:?} is not an OS user name; remove the key to use \"postgres\""),
                ));
            } else if user == "root" || user == "0" {
                out.push(Problem::at(
                    "postgres.os_user",
                    "PostgreSQL must not run as root (and the programs of bin_dir would run as root); use an unprivileged user such as \"postgres\"",
                ));
            }
        }
        check_credentials("postgres.superuser", &pg.superuser, out);
        check_credentials("postgres.replication", &pg.replication, out);
        if let Some(rewind) = &pg.rewind {
            check_credentials("postgres.rewind", rewind, out);
            if rewind.username == pg.superuser.username
                || rewind.username == pg.replication.username
            {
                out.push(Problem::at(
                    "postgres.rewind.username",
                    "must differ from the superuser and replication roles (pgbaton creates it with only the rights pg_rewind needs)",
                ));
            }
        }
        out.extend(check_parameters(
            "postgres.parameters",
            &pg.parameters,
            Origin::MemberFile,
        ));
        for (i, line) in pg.pg_hba.iter().enumerate() {
            let kind = line.split_whitespace().next().unwrap_or("");
            let known = [
                "local",
                "host",
                "hostssl",
                "hostnossl",
                "hostgssenc",
                "hostnogssenc",
                "include",
                "include_if_exists",
                "include_dir",
            ];
            if line.contains('\n') || !known.contains(&kind) {
                out.push(Problem::at(
                    format!("postgres.pg_hba[{i}]"),
                    format!(
                        "{line:?} is not a pg_hba.conf line; it must start with one of: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }

    fn check_api(&self, out: &mut Vec<Problem>) {
        let api = check_addr("api.listen", &self.api.listen, out);
        if let Some(addr) = &self.api.connect_address {
            if let Some((host, _)) = check_addr("api.connect_address", addr, out) {
                if is_wildcard(&host) {
                    out.push(Problem::at(
                        "api.connect_address",
                        format!("{host:?} is not an address others can connect to; give this host's real address"),
                    ));
                }
            }
        }
        if let Some(auth) = &self.api.auth {
            check_api_auth(auth, out);
        }
        if let Some((host, _)) = &api {
            let client_certs = self.api.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
            if self.api.auth.is_none()
                && !client_certs
                && !self.api.allow_unauthenticated
                && !is_loopback(host)
            {
                out.push(Problem::at(
                    "api.listen",
                    format!(
                        "{host:?} can be reached from other machines, but api.auth is not set: anyone who reaches the API could reconfigure or take over the cluster; set api.auth (a user name and password) or api.tls.client_ca (client certificates), listen on 127.0.0.1, or set api.allow_unauthenticated: true to accept that risk"
                    ),
                ));
            }
        }
        for (i, name) in self.api.allowed_hosts.iter().enumerate() {
            if let Err(e) = crate::addr::check_host_name(name) {
                out.push(Problem::at(format!("api.allowed_hosts[{i}]"), e));
            }
        }
        if let Some(tls) = &self.api.tls {
            out.extend(check_abs("api.tls.cert", &tls.cert));
            out.extend(check_abs("api.tls.key", &tls.key));
            if let Some(ca) = &tls.client_ca {
                out.extend(check_abs("api.tls.client_ca", ca));
            }
        }
        let pg = host_port(&self.postgres.listen).ok();
        if let (Some((ah, ap)), Some((ph, pp))) = (api, pg) {
            let same_host = ah == ph || is_wildcard(&ah) || is_wildcard(&ph);
            if ap == pp && same_host {
                out.push(Problem::at(
                    "api.listen",
                    format!("uses port {ap}, like postgres.listen; give the API its own port"),
                ));
            }
        }
    }
}

/// Checks the cluster-wide settings (the `bootstrap` section, or the store's `config`
/// key when edited), naming keys under `prefix` (e.g. `bootstrap`), with the default
/// fencing margin ([`crate::default_safety_margin`]). Prefer
/// [`check_cluster_config_with_margin`] when a member's `watchdog.safety_margin` is known.
pub fn check_cluster_config(c: &ClusterConfig, prefix: &str) -> Vec<Problem> {
    check_cluster_config_with_margin(c, prefix, crate::types::default_safety_margin())
}

/// Checks the cluster-wide settings for a member whose fence fires `safety_margin`
/// seconds before its lease can expire; every problem names its key under `prefix`.
///
/// Timing rule (see `docs/fencing.md`): a primary is fenced `ttl - safety_margin` after
/// the older of its last lease renewal and its last leadership confirmation. A healthy
/// primary confirms every `loop_wait` and renews every `ttl / 4`, each with a store call
/// of up to `retry_timeout`, so it must hold that
/// `max(loop_wait, ttl / 4) + retry_timeout + safety_margin <= ttl`; otherwise a healthy
/// primary with a slow store fences itself, or its deadline is not safely before the
/// lease expiry.
pub fn check_cluster_config_with_margin(
    c: &ClusterConfig,
    prefix: &str,
    safety_margin: u64,
) -> Vec<Problem> {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let mut out = Vec::new();
    let too_large: Vec<Problem> = pgbaton_core::limits::config_problems(c)
        .into_iter()
        .filter(|(_, message)| message.contains("too large"))
        .map(|(name, message)| Problem::at(key(name), message))
        .collect();
    // Huge values would overflow the timing arithmetic below; they are reported alone.
    let mut timing_ok = too_large.is_empty();
    out.extend(too_large);
    for (name, value, min) in [
        ("ttl", c.ttl, 2),
        ("loop_wait", c.loop_wait, 1),
        ("retry_timeout", c.retry_timeout, 1),
    ] {
        if value < min {
            timing_ok = false;
            out.push(Problem::at(
                key(name),
                format!("{value} is too small; use at least {min} (seconds)"),
            ));
        }
    }
    if timing_ok && c.retry_timeout >= c.ttl {
        out.push(Problem::at(
            key("retry_timeout"),
            format!(
                "{} must be less than ttl ({}): a primary must learn that its lease renewal failed before the lease expires; lower retry_timeout or raise ttl",
                c.retry_timeout, c.ttl
            ),
        ));
    } else if timing_ok {
        out.extend(check_fence_timing(c, &key("ttl"), safety_margin));
    }
    if c.synchronous_node_count < 1 {
        out.push(Problem::at(
            key("synchronous_node_count"),
            "0 is too small; use at least 1 (how many synchronous standbys, or the k of ANY k)",
        ));
    }
    out.extend(check_parameters(
        &key("parameters"),
        &c.parameters,
        Origin::ClusterWide,
    ));
    out
}

/// The smallest `ttl` that fits `loop_wait`, `retry_timeout` and `safety_margin`:
/// `max(loop_wait, ttl / 4) + retry_timeout + safety_margin <= ttl`.
pub fn min_safe_ttl(loop_wait: u64, retry_timeout: u64, safety_margin: u64) -> u64 {
    let confirm = loop_wait
        .saturating_add(retry_timeout)
        .saturating_add(safety_margin);
    // ttl/4 + r + m <= ttl  <=>  4(r + m) <= 3 ttl
    let renew = retry_timeout
        .saturating_add(safety_margin)
        .saturating_mul(4)
        .div_ceil(3);
    confirm.max(renew)
}

fn check_fence_timing(c: &ClusterConfig, ttl_key: &str, margin: u64) -> Option<Problem> {
    let need = min_safe_ttl(c.loop_wait, c.retry_timeout, margin);
    if c.ttl >= need {
        return None;
    }
    let (lw, rt, ttl) = (c.loop_wait, c.retry_timeout, c.ttl);
    let fix = format!(
        "raise ttl to at least {need}, or lower loop_wait, retry_timeout or watchdog.safety_margin"
    );
    let message = if lw.saturating_add(rt).saturating_add(margin) > ttl {
        format!(
            "loop_wait ({lw}) + retry_timeout ({rt}) + watchdog.safety_margin ({margin}) = {} is more than ttl ({ttl}): a primary is fenced ttl - safety_margin = {} s after it last confirmed its leadership, and a healthy one confirms only every loop_wait with a store call of up to retry_timeout, so it would fence itself whenever the store is slow; {fix}",
            lw.saturating_add(rt).saturating_add(margin),
            ttl.saturating_sub(margin),
        )
    } else {
        format!(
            "ttl / 4 ({:.2}) + retry_timeout ({rt}) + watchdog.safety_margin ({margin}) is more than ttl ({ttl}): the lease is renewed every ttl / 4 with a store call of up to retry_timeout, and the fence fires ttl - safety_margin = {} s after the last renewal, so a healthy primary would fence itself whenever the store is slow; {fix}",
            ttl as f64 / 4.0,
            ttl.saturating_sub(margin),
        )
    };
    Some(Problem::at(ttl_key, message))
}

fn check_name(key: &str, name: &str) -> Option<Problem> {
    let fix = "use 1 to 63 letters, digits, '.', '_' or '-', not starting with '-'";
    let bad = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("{name:?} is {} characters long", name.len()))
    } else if name.starts_with('-') {
        Some(format!("{name:?} starts with '-'"))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("{name:?} contains {c:?}"))
    };
    bad.map(|what| Problem::at(key, format!("{what}; {fix}")))
}

fn check_abs(key: &str, path: &Path) -> Option<Problem> {
    if path.as_os_str().is_empty() {
        Some(Problem::at(
            key,
            "is empty; give an absolute path (e.g. /srv/pg/node1)",
        ))
    } else if !path.is_absolute() {
        Some(Problem::at(
            key,
            format!(
                "{:?} is a relative path; give an absolute path (starting with /)",
                path.display().to_string()
            ),
        ))
    } else {
        None
    }
}

fn check_addr(key: &str, addr: &str, out: &mut Vec<Problem>) -> Option<(String, u16)> {
    match host_port(addr) {
        Ok(hp) => Some(hp),
        Err(e) => {
            out.push(Problem::at(key, e));
            None
        }
    }
}

fn check_credentials(key: &str, c: &Credentials, out: &mut Vec<Problem>) {
    if c.username.trim().is_empty() {
        out.push(Problem::at(
            format!("{key}.username"),
            "is empty; give a role name",
        ));
    }
    if c.password.is_empty() {
        out.push(Problem::at(
            format!("{key}.password"),
            "is empty; give a password",
        ));
    }
}

/// `api.auth`: a basic-auth user name cannot be empty or hold a `:` (the header splits
/// user and password at the first one), and the password cannot be empty.
fn check_api_auth(c: &Credentials, out: &mut Vec<Problem>) {
    if c.username.trim().is_empty() {
        out.push(Problem::at(
            "api.auth.username",
            "is empty; give a user name or remove api.auth",
        ));
    } else if c.username.contains(':') {
        out.push(Problem::at(
            "api.auth.username",
            format!(
                "{:?} contains ':', which basic auth cannot carry in a user name; choose one without it",
                c.username
            ),
        ));
    }
    if c.password.is_empty() {
        out.push(Problem::at(
            "api.auth.password",
            "is empty; give a password or remove api.auth",
        ));
    }
}

fn check_etcd(etcd: &EtcdConfig, out: &mut Vec<Problem>) {
    if etcd.endpoints.is_empty() {
        out.push(Problem::at(
            "store.etcd.endpoints",
            "is empty; list etcd's client URLs (e.g. [\"http://127.0.0.1:2379\"])",
        ));
    }
    for (i, url) in etcd.endpoints.iter().enumerate() {
        let key = format!("store.etcd.endpoints[{i}]");
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let Some(rest) = rest else {
            out.push(Problem::at(key, format!("{url:?} is not an etcd URL; write http://HOST:PORT or https://HOST:PORT (e.g. http://127.0.0.1:2379)")));
            continue;
        };
        if let Err(e) = host_port(rest.strip_suffix('/').unwrap_or(rest)) {
            out.push(Problem::at(key, format!("{url:?}: {e}")));
            continue;
        }
        if etcd.tls.is_some() && url.starts_with("http://") {
            out.push(Problem::at(
                key.clone(),
                format!("{url:?} is plain http but store.etcd.tls is set; use https://"),
            ));
        }
        if etcd.tls.is_none() && url.starts_with("https://") {
            out.push(Problem::at(
                key,
                format!("{url:?} is https but store.etcd.tls is not set; add store.etcd.tls.ca"),
            ));
        }
    }
    match (&etcd.username, &etcd.password) {
        (Some(_), None) => out.push(Problem::at(
            "store.etcd.password",
            "is missing; set it together with store.etcd.username",
        )),
        (None, Some(_)) => out.push(Problem::at(
            "store.etcd.username",
            "is missing; set it together with store.etcd.password",
        )),
        (Some(u), Some(p)) => {
            if u.is_empty() {
                out.push(Problem::at(
                    "store.etcd.username",
                    "is empty; give a user name or remove username and password",
                ));
            }
            if p.is_empty() {
                out.push(Problem::at(
                    "store.etcd.password",
                    "is empty; give a password or remove username and password",
                ));
            }
        }
        (None, None) => {}
    }
    if let Some(tls) = &etcd.tls {
        if tls.ca.is_none() {
            out.push(Problem::at(
                "store.etcd.tls.ca",
                "is missing; give the CA certificate that signed the etcd servers' certificates",
            ));
        }
        if tls.cert.is_some() != tls.key.is_some() {
            out.push(Problem::at(
                "store.etcd.tls",
                "cert and key go together; set both or neither",
            ));
        }
        for (name, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(p) = path {
                out.extend(check_abs(&format!("store.etcd.tls.{name}"), p));
            }
        }
    }
    if !etcd.prefix.starts_with('/') || etcd.prefix.len() < 2 || etcd.prefix.ends_with('/') {
        out.push(Problem::at(
            "store.etcd.prefix",
            format!(
                "{:?} is not a key prefix; write it like /pgbaton (leading '/', no trailing '/')",
                etcd.prefix
            ),
        ));
    }
}

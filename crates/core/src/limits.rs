//! Bounds on values read from the store, which pgbaton treats as untrusted input: the
//! cluster config's timings and counts, member names, hosts and ports, and the
//! PostgreSQL parameters that may never come from the store (they run commands, load
//! libraries or include files). The config crate checks files with the same rules.

use crate::model::{ClusterConfig, MemberStatus};
use crate::slots::is_valid_slot_name;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest `ttl` (seconds): an hour. Larger values only delay failover, and unbounded
/// ones overflow the agent's deadline arithmetic.
pub const MAX_TTL: u64 = 3600;
/// Largest `loop_wait` (seconds).
pub const MAX_LOOP_WAIT: u64 = 300;
/// Largest `retry_timeout` (seconds).
pub const MAX_RETRY_TIMEOUT: u64 = 300;
/// Largest `primary_start_timeout` and `switchover_timeout` (seconds): a day.
pub const MAX_TIMEOUT: u64 = 86_400;
/// Largest `failover_grace` (seconds).
pub const MAX_FAILOVER_GRACE: u64 = 600;
/// Largest `member_slot_retention` (seconds): a year.
pub const MAX_SLOT_RETENTION: u64 = 366 * 86_400;
/// Largest `synchronous_node_count`.
pub const MAX_SYNC_NODES: u32 = 64;
/// Longest member or cluster name.
pub const MAX_NAME_LEN: usize = 63;

/// PostgreSQL settings that run commands, load code or read other files as the
/// `postgres` user. Anyone who can set them controls the database hosts, so they are
/// accepted only in a member's own (root-owned) config file, `postgres.parameters`,
/// never from the cluster-wide config in the store (PostgreSQL 15's list).
pub const RESTRICTED_PARAMETERS: &[&str] = &[
    "archive_command",
    "archive_library",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload",
    "shared_preload_libraries",
    "session_preload_libraries",
    "local_preload_libraries",
    "dynamic_library_path",
    "jit_provider",
    "include",
    "include_dir",
    "include_if_exists",
    "external_pid_file",
    "log_directory",
    "log_filename",
    "ident_file",
    "krb_server_keyfile",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "ssl_crl_file",
    "ssl_crl_dir",
    "ssl_dh_params_file",
];

/// Whether `name` (any case) is one of [`RESTRICTED_PARAMETERS`].
pub fn is_restricted(name: &str) -> bool {
    RESTRICTED_PARAMETERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
}

/// The message for a restricted parameter found where it is not allowed.
pub fn restricted_message(name: &str) -> String {
    format!(
        "{name} runs commands, loads code or reads files as the postgres user, so it may be set only in each member's own config file (postgres.parameters), never cluster-wide; move it there"
    )
}

/// Whether `name` is a PostgreSQL setting name: `[A-Za-z_][A-Za-z0-9_.]*`, at most 63
/// characters (e.g. `auto_explain.log_min_duration`).
pub fn is_parameter_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first && name.len() <= 63 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Every bound `c` breaks, as `(key, message)` pairs. Lower bounds that depend on the
/// member (the fence margin) are the config crate's business.
pub fn config_problems(c: &ClusterConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut range = |key: &'static str, value: u64, min: u64, max: u64| {
        if value < min {
            out.push((
                key,
                format!("{value} is too small; use at least {min} (seconds)"),
            ));
        } else if value > max {
            out.push((key, format!("{value} is too large; use at most {max}")));
        }
    };
    range("ttl", c.ttl, 2, MAX_TTL);
    range("loop_wait", c.loop_wait, 1, MAX_LOOP_WAIT);
    range("retry_timeout", c.retry_timeout, 1, MAX_RETRY_TIMEOUT);
    range(
        "primary_start_timeout",
        c.primary_start_timeout,
        0,
        MAX_TIMEOUT,
    );
    range("switchover_timeout", c.switchover_timeout, 0, MAX_TIMEOUT);
    range("failover_grace", c.failover_grace, 0, MAX_FAILOVER_GRACE);
    range(
        "member_slot_retention",
        c.member_slot_retention,
        0,
        MAX_SLOT_RETENTION,
    );
    if c.synchronous_node_count > MAX_SYNC_NODES {
        out.push((
            "synchronous_node_count",
            format!(
                "{} is too large; use at most {MAX_SYNC_NODES}",
                c.synchronous_node_count
            ),
        ));
    }
    out
}

/// Checks a member or cluster name: 1 to 63 letters, digits, `.`, `_` or `-`, not
/// starting with `-` or `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a member name (1 to 63 letters, digits, '.', '_' or '-')"
        ))
    }
}

/// Checks a host other members connect to: an IPv4 or IPv6 address or a DNS name
/// (letters, digits, `-` and `.`), the forms pg_hba.conf and libpq accept. Never a
/// CIDR, a wildcard or a pg_hba keyword.
pub fn check_host(host: &str) -> Result<(), String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return if ip.is_unspecified() || ip.is_broadcast() {
            Err(format!("{host:?} is not an address one can connect to"))
        } else {
            Ok(())
        };
    }
    if let Ok(ip) = host.parse::<Ipv6Addr>() {
        return if ip.is_unspecified() {
            Err(format!("{host:?} is not an address one can connect to"))
        } else {
            Ok(())
        };
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let keyword = ["all", "samehost", "samenet"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(name));
    if !numeric && !keyword && is_dns_name(host) {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a host address (an IP address or a DNS name)"
        ))
    }
}

/// Whether `host` is a DNS name pg_hba.conf and libpq accept: dot-separated labels of
/// 1 to 63 letters, digits and inner `-` (no `_`), at most 253 characters, an optional
/// trailing dot.
pub fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.len() <= 253 && name.split('.').all(label_ok)
}

/// Checks a member key's value as published under `members/<key_name>`: the name
/// matches the key and is valid, the host and port can be connected to, the API URL is
/// plain `http(s)://`, and every slot name is one PostgreSQL accepts.
pub fn check_member(key_name: &str, m: &MemberStatus) -> Result<(), String> {
    check_name(key_name)?;
    if m.name != key_name {
        return Err(format!("it describes member {:?}", m.name));
    }
    check_host(&m.host).map_err(|e| format!("host: {e}"))?;
    if m.port == 0 {
        return Err("port 0 is not a port one can connect to".into());
    }
    if !m.api_url.is_empty() {
        let rest = m
            .api_url
            .strip_prefix("http://")
            .or_else(|| m.api_url.strip_prefix("https://"));
        let clean = rest.is_some_and(|r| {
            !r.is_empty()
                && r.len() <= 300
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]/_".contains(&b))
        });
        if !clean {
            return Err(format!("api_url {:?} is not an http(s) URL", m.api_url));
        }
    }
    if let Some(bad) = m.slots.iter().find(|s| !is_valid_slot_name(s)) {
        return Err(format!("{bad:?} is not a replication slot name"));
    }
    if m.slots.len() > 10_000 {
        return Err(format!("it lists {} slots", m.slots.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1",
            "::1",
            "fd00:200::5",
            "db-1.example.com",
            "db1.",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "db_3.lan",
            "0.0.0.0",
            "::",
            "10.0.0.0/8",
            "all",
            "samenet",
            "-x",
            "x\n",
            "1.2.3",
            "a,b",
            "\u{e9}.com",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bounds() {
        let c = ClusterConfig {
            ttl: u64::MAX,
            loop_wait: 9_300_000_000_000_000_000,
            ..ClusterConfig::default()
        };
        let keys: Vec<_> = config_problems(&c).iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["ttl", "loop_wait"]);
        assert!(config_problems(&ClusterConfig::default()).is_empty());
    }

    #[test]
    fn restricted_any_case() {
        assert!(is_restricted("ARCHIVE_COMMAND"));
        assert!(is_restricted("include_dir"));
        assert!(!is_restricted("work_mem"));
    }
}

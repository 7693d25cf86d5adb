//! `pg_hba.conf`: pgbaton rewrites it whole from rules the caller supplies.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;

const HEADER: &str = "# Managed by pgbaton and rewritten before every start. Do not edit:\n\
                      # change pgbaton's configuration instead.\n";

/// Quotes a role name for pg_hba.conf (always double-quoted, so `all` or `replication` as a
/// role name cannot turn into a keyword). Refuses `"` and control characters.
fn hba_role(role: &str) -> Result<String> {
    if role.is_empty() || role.contains('"') || role.chars().any(char::is_control) {
        return Err(Error::invalid(
            "role name for pg_hba.conf",
            role,
            "must be non-empty, without double quotes or control characters",
        ));
    }
    Ok(format!("\"{role}\""))
}

/// Turns a member host into a pg_hba.conf address: an IP gets `/32` or `/128`, a CIDR is kept,
/// a host name is written as it is (PostgreSQL resolves it both ways at connect time).
pub fn hba_address(host: &str) -> Result<String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(format!("{ip}/{bits}"));
    }
    if let Some((addr, bits)) = host.split_once('/') {
        if let (Ok(ip), Ok(bits)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if bits <= max {
                return Ok(format!("{ip}/{bits}"));
            }
        }
        return Err(Error::invalid("address for pg_hba.conf", host, "bad CIDR"));
    }
    let valid_name = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if valid_name && host != "all" && host != "samehost" && host != "samenet" {
        Ok(host.to_string())
    } else {
        Err(Error::invalid(
            "address for pg_hba.conf",
            host,
            "not an IP address, CIDR or host name",
        ))
    }
}

/// The standard rule set (pure). In order:
/// - `local all <superuser> scram-sha-256` and `local all all scram-sha-256`;
/// - `local replication <replication_user> scram-sha-256`;
/// - `host replication <replication_user> <addr> scram-sha-256` for each member host
///   (see [`hba_address`]);
/// - `extra` lines verbatim (before the catch-all, so they can be more specific);
/// - `host all all all scram-sha-256`.
///
/// Replication connections are only allowed from member hosts (`all` as database does not
/// match them).
pub fn standard_hba(
    superuser: &str,
    replication_user: &str,
    member_hosts: &[String],
    extra: &[String],
) -> Result<Vec<String>> {
    let su = hba_role(superuser)?;
    let repl = hba_role(replication_user)?;
    let mut lines = vec![
        format!("local  all          {su}  scram-sha-256"),
        "local  all          all  scram-sha-256".to_string(),
        format!("local  replication  {repl}  scram-sha-256"),
    ];
    let mut seen = Vec::new();
    for h in member_hosts {
        let addr = hba_address(h)?;
        if !seen.contains(&addr) {
            lines.push(format!("host   replication  {repl}  {addr}  scram-sha-256"));
            seen.push(addr);
        }
    }
    lines.extend(extra.iter().cloned());
    lines.push("host   all          all  all  scram-sha-256".to_string());
    Ok(lines)
}

impl Instance {
    /// Rewrites `pg_hba.conf` with exactly `lines` (plus a header), mode 0600, owned by the
    /// OS user. Returns whether it changed; a running server needs [`Instance::reload`].
    /// Lines must not contain newlines.
    pub fn write_hba(&self, lines: &[String]) -> Result<bool> {
        let mut text = String::from(HEADER);
        for l in lines {
            if l.contains(['\n', '\r']) {
                return Err(Error::invalid(
                    "pg_hba.conf line",
                    l,
                    "must not contain a newline",
                ));
            }
            text.push_str(l);
            text.push('\n');
        }
        fsutil::write_if_changed(
            &self.data_file("pg_hba.conf"),
            text.as_bytes(),
            0o600,
            self.run_as.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(hba_address("10.0.0.1").unwrap(), "10.0.0.1/32");
        assert_eq!(hba_address("fd00:200::2").unwrap(), "fd00:200::2/128");
        assert_eq!(hba_address("10.0.0.0/24").unwrap(), "10.0.0.0/24");
        assert_eq!(hba_address("db-1.example.com").unwrap(), "db-1.example.com");
        for bad in ["", "10.0.0.0/33", "a b", "all", "x\ny", "h#"] {
            assert!(hba_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn standard_rules() {
        let lines = standard_hba(
            "postgres",
            "replicator",
            &["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.1".into()],
            &["host all app 10.1.0.0/16 scram-sha-256".into()],
        )
        .unwrap();
        assert_eq!(lines[0], "local  all          \"postgres\"  scram-sha-256");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("host   replication"))
                .count(),
            2
        );
        assert!(lines.contains(
            &"host   replication  \"replicator\"  10.0.0.2/32  scram-sha-256".to_string()
        ));
        assert_eq!(
            lines[lines.len() - 2],
            "host all app 10.1.0.0/16 scram-sha-256"
        );
        assert_eq!(
            lines.last().unwrap(),
            "host   all          all  all  scram-sha-256"
        );
        assert!(standard_hba("a\"b", "r", &[], &[]).is_err());
    }
}

//! `host:port` addresses: parsing and checking, shared by validation and the agent.

use std::net::{Ipv4Addr, Ipv6Addr};

const EXAMPLE: &str = "(e.g. 127.0.0.1:5432, [::1]:5432 or db1.example.com:5432)";

/// Splits `host:port` into its host and port, checking both.
///
/// The host may be an IPv4 address, an IPv6 address in brackets (`[::1]:5432`) or a
/// hostname; the port must be 1–65535. The returned host has no brackets (pass it to
/// [`url_host`] to build a URL). The error text names the value and shows the expected
/// form, so callers can prefix it with the key: `postgres.listen: <error>`.
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    let not_addr = || format!("{s:?} is not a host:port address {EXAMPLE}");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(not_addr)?;
        let port = after.strip_prefix(':').ok_or_else(not_addr)?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{s:?}: {host:?} is not an IPv6 address {EXAMPLE}"));
        }
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or_else(not_addr)?;
        if host.contains(':') {
            return Err(format!(
                "{s:?}: an IPv6 address must be written in brackets, e.g. [::1]:5432"
            ));
        }
        check_host(s, host)?;
        (host, port)
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_addr());
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok((host.to_string(), p)),
        _ => Err(format!(
            "{s:?}: port {port} is out of range; use a port from 1 to 65535"
        )),
    }
}

fn check_host(s: &str, host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!(
            "{s:?} has no host; write 0.0.0.0:PORT to listen on every address {EXAMPLE}"
        ));
    }
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{s:?}: {host:?} is not an IPv4 address {EXAMPLE}")),
        };
    }
    if !pgbaton_core::limits::is_dns_name(host) {
        return Err(format!(
            "{s:?}: {host:?} is not a valid hostname (letters, digits, '-' and '.'; no '_', which pg_hba.conf refuses) {EXAMPLE}"
        ));
    }
    Ok(())
}

/// Whether `host` (as returned by [`host_port`]) means "every address" (`0.0.0.0`, `::`),
/// so it cannot be used by others to connect.
pub fn is_wildcard(host: &str) -> bool {
    host == "*"
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_unspecified())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_unspecified())
}

/// Whether `host` (as returned by [`host_port`]) is reachable only from this machine:
/// `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

/// Checks a bare host (no port): an IPv4 or IPv6 address, or a hostname. The error says
/// what is wrong with it.
pub fn check_host_name(host: &str) -> Result<(), String> {
    if host.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    check_host(host, host)
}

/// `host` as written in a URL or `host:port` text: IPv6 addresses get brackets.
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ipv4_ipv6_and_names() {
        assert_eq!(
            host_port("127.0.0.1:5432"),
            Ok(("127.0.0.1".to_string(), 5432))
        );
        assert_eq!(host_port("[::1]:1"), Ok(("::1".to_string(), 1)));
        assert_eq!(
            host_port("[fd00:200::5]:65535"),
            Ok(("fd00:200::5".to_string(), 65535))
        );
        assert_eq!(
            host_port("db-1.example.com:5432"),
            Ok(("db-1.example.com".to_string(), 5432))
        );
        assert_eq!(host_port("localhost:80"), Ok(("localhost".to_string(), 80)));
        assert_eq!(host_port("0.0.0.0:80"), Ok(("0.0.0.0".to_string(), 80)));
    }

    #[test]
    fn rejects_bad_addresses_with_a_hint() {
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            ":5432",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:54x",
            "::1:5432",
            "[::1]5432",
            "[nothost]:5432",
            "999.1.1.1:5432",
            "bad host:5432",
            "-lead.example:5432",
            "",
        ] {
            let err = host_port(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("e.g.") || err.contains("use a port"), "{err}");
        }
        assert!(host_port("127.0.0.1:0").unwrap_err().contains("1 to 65535"));
        assert!(host_port("::1:5432").unwrap_err().contains("brackets"));
    }

    #[test]
    fn wildcards_and_url_hosts() {
        assert!(is_wildcard("0.0.0.0"));
        assert!(is_wildcard("::"));
        assert!(!is_wildcard("127.0.0.1"));
        assert!(!is_wildcard("db1"));
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("10.0.0.1"), "10.0.0.1");
    }
}

//! `pgbaton dsn`: a libpq multi-host connection string for the cluster, so clients
//! reach the primary (or a replica) wherever it runs now, without a proxy.

use super::list::Row;
use serde::Serialize;
use std::path::Path;

/// Which member a connection must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DsnRole {
    /// The writable primary (`target_session_attrs=read-write`).
    Primary,
    /// A replica (`target_session_attrs=standby`, libpq 14 or later).
    Replica,
    /// Any member (`target_session_attrs=any`).
    Any,
}

/// How `dsn` prints the connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DsnFormat {
    /// `host=a,b port=1,2 dbname=postgres target_session_attrs=read-write`.
    Conninfo,
    /// `postgresql://a:1,b:2/postgres?target_session_attrs=read-write`.
    Uri,
    /// Both, with the members, as one JSON object.
    Json,
}

/// What `pgbaton dsn` was asked.
#[derive(Debug, Clone)]
pub struct DsnArgs {
    /// The role the connection must reach.
    pub role: DsnRole,
    /// Database name.
    pub dbname: String,
    /// User name, if any.
    pub user: Option<String>,
    /// Output format.
    pub format: DsnFormat,
}

/// One member in the host list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Member name.
    pub name: String,
    /// Where its PostgreSQL listens.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// The `target_session_attrs` value of `role`.
fn session_attrs(role: DsnRole) -> &'static str {
    match role {
        DsnRole::Primary => "read-write",
        DsnRole::Replica => "standby",
        DsnRole::Any => "any",
    }
}

/// The members a `role` connection should list, in the order libpq should try them:
/// for `primary` and `any`, every member with a known address, the leader first; for
/// `replica`, every other member except those tagged `noloadbalance`, least lag first.
pub fn hosts(rows: &[Row], role: DsnRole) -> Vec<Host> {
    let mut picked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.port != 0 && !r.host.is_empty())
        .filter(|r| match role {
            DsnRole::Replica => !r.leader && !r.tags.iter().any(|t| t == "noloadbalance"),
            DsnRole::Primary | DsnRole::Any => true,
        })
        .collect();
    picked.sort_by_key(|r| (!r.leader, r.lag_bytes.unwrap_or(0), r.name.clone()));
    picked
        .into_iter()
        .map(|r| Host {
            name: r.name.clone(),
            host: r.host.clone(),
            port: r.port,
        })
        .collect()
}

/// A conninfo value, quoted only when libpq needs it.
fn value(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '\'', '\\', '\t', '\n']) {
        pgbaton_postgres::quote_conninfo_value(v)
    } else {
        v.to_string()
    }
}

/// The key=value form.
pub fn conninfo(hosts: &[Host], args: &DsnArgs) -> String {
    let join = |f: &dyn Fn(&Host) -> String| hosts.iter().map(f).collect::<Vec<_>>().join(",");
    let mut parts = vec![
        format!("host={}", value(&join(&|h| h.host.clone()))),
        format!("port={}", join(&|h| h.port.to_string())),
        format!("dbname={}", value(&args.dbname)),
    ];
    if let Some(u) = &args.user {
        parts.push(format!("user={}", value(u)));
    }
    parts.push(format!("target_session_attrs={}", session_attrs(args.role)));
    parts.join(" ")
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The postgresql:// URI form.
pub fn uri(hosts: &[Host], args: &DsnArgs) -> String {
    let list = hosts
        .iter()
        .map(|h| format!("{}:{}", pgbaton_config::url_host(&h.host), h.port))
        .collect::<Vec<_>>()
        .join(",");
    let user = args
        .user
        .as_deref()
        .map(|u| format!("{}@", encode(u)))
        .unwrap_or_default();
    format!(
        "postgresql://{user}{list}/{}?target_session_attrs={}",
        encode(&args.dbname),
        session_attrs(args.role)
    )
}

/// Print the connection string of the cluster as the store shows it now.
pub async fn dsn(config: &Path, args: &DsnArgs) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let rows = super::fetch(store.as_ref()).await?;
    let hosts = hosts(&rows, args.role);
    if hosts.is_empty() {
        let which = if args.role == DsnRole::Replica {
            "replica"
        } else {
            "member"
        };
        return Err(crate::exit::refused(format!(
            "cluster {:?} has no {which} with a known address (is its agent running? see `pgbaton list`)",
            cfg.cluster
        )));
    }
    match args.format {
        DsnFormat::Conninfo => println!("{}", conninfo(&hosts, args)),
        DsnFormat::Uri => println!("{}", uri(&hosts, args)),
        DsnFormat::Json => {
            let out = serde_json::json!({
                "cluster": cfg.cluster,
                "role": format!("{:?}", args.role).to_lowercase(),
                "target_session_attrs": session_attrs(args.role),
                "hosts": hosts,
                "conninfo": conninfo(&hosts, args),
                "uri": uri(&hosts, args),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, port: u16, leader: bool, lag: Option<u64>, tags: &[&str]) -> Row {
        Row {
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            role: if leader { "primary" } else { "replica" }.into(),
            state: "streaming".into(),
            timeline: Some(1),
            lsn: None,
            lag_bytes: lag,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            leader,
            sync: None,
            note: None,
        }
    }

    fn args(role: DsnRole) -> DsnArgs {
        DsnArgs {
            role,
            dbname: "app db".into(),
            user: Some("me".into()),
            format: DsnFormat::Conninfo,
        }
    }

    #[test]
    fn primary_first_then_replicas_by_lag() {
        let rows = vec![
            row("a", 5001, false, Some(50), &[]),
            row("b", 5002, true, None, &[]),
            row("c", 5003, false, Some(5), &["noloadbalance"]),
            row("gone", 0, false, None, &[]),
        ];
        let names = |hs: Vec<Host>| hs.into_iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names(hosts(&rows, DsnRole::Primary)), ["b", "c", "a"]);
        assert_eq!(names(hosts(&rows, DsnRole::Replica)), ["a"]);
        let h = hosts(&rows, DsnRole::Primary);
        assert_eq!(
            conninfo(&h, &args(DsnRole::Primary)),
            "host=127.0.0.1,127.0.0.1,127.0.0.1 port=5002,5003,5001 dbname='app db' user=me target_session_attrs=read-write"
        );
        assert_eq!(
            uri(&h, &args(DsnRole::Any)),
            "postgresql://me@127.0.0.1:5002,127.0.0.1:5003,127.0.0.1:5001/app%20db?target_session_attrs=any"
        );
    }
}

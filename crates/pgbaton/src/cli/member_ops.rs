//! `pgbaton restart NAME` and `pgbaton reload NAME`: act on one member's PostgreSQL or
//! agent. Restart travels through the store (like reinit); reload goes to the member's
//! own HTTP API, which hands the re-read file to its agent.

use super::ops;
use anyhow::{bail, Context};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Restart `name`'s PostgreSQL in its current role and wait until it runs again.
pub async fn restart(config: &Path, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let (_, store) = super::open(config).await?;
    let store = store.as_ref();
    ops::check_restart(store, name).await?;
    ops::submit_restart(store, name).await?;
    println!("restart of {name} requested");
    let t0 = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pending = store.get(pgbaton_core::model::KEY_RESTART).await?.is_some();
        let rows = ops::rows(store).await?;
        let state = rows
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.state.clone());
        if !pending && matches!(state.as_deref(), Some("running" | "streaming")) {
            println!("{name} restarted ({:.1} s)", t0.elapsed().as_secs_f64());
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(crate::exit::timed_out(format!(
                "{name} did not come back within {timeout:?} (state: {state:?}); see its log"
            )));
        }
    }
}

/// Ask `name`'s agent to re-read its config file (`POST /reload` on its API).
pub async fn reload(config: &Path, name: &str) -> anyhow::Result<()> {
    let (cfg, store) = super::open(config).await?;
    let key = pgbaton_core::model::member_key(name);
    let Some(entry) = store.get(&key).await? else {
        return Err(crate::exit::refused(format!(
            "member {name} is not running (no key {key})"
        )));
    };
    let member: pgbaton_core::model::MemberStatus = serde_json::from_str(&entry.value)?;
    pgbaton_core::limits::check_member(name, &member)
        .map_err(|why| anyhow::anyhow!("the store's key {key} is not usable: {why}"))?;
    if member.api_url.starts_with("https://") {
        let url = member.api_url.trim_end_matches('/');
        bail!("the API of {name} uses TLS: use curl -X POST {url}/reload (add --cacert FILE and -u USER:PASSWORD as needed)");
    }
    let address = member
        .api_url
        .strip_prefix("http://")
        .with_context(|| format!("member {name} publishes no http:// API address"))?
        .trim_end_matches('/')
        .to_string();
    let mut request = format!(
        "POST /reload HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
    );
    if let Some(auth) = &cfg.api.auth {
        // The address comes from the store: never send the password in clear text to a
        // host other than this one (security review F6).
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !pgbaton_config::is_loopback(host) {
            bail!("{name}'s API at {address} is plain HTTP on another host: pgbaton does not send the api.auth password there in clear text; set api.tls on the members, or run `pgbaton reload {name}` on {name}'s host");
        }
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", auth.username, auth.password));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n{}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("{name}'s API at {address} did not answer within 5 s"))?
        .with_context(|| format!("calling {name}'s API at {address}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).unwrap_or("?").to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if status != "200" {
        bail!("{name}'s API answered {status}: {body}");
    }
    if json["valid"] == false {
        bail!(
            "{name}'s config file has problems, nothing was changed:\n  {}",
            json["problems"]
        );
    }
    println!(
        "{name}: {}",
        json["message"].as_str().unwrap_or("reload requested")
    );
    Ok(())
}

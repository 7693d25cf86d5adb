//! Browser-borne attacks on the API (security review F2): a web page in an operator's
//! browser must not be able to drive the cluster.
//!
//! - DNS rebinding: a request whose `Host` names neither this member nor a name the
//!   operator allowed (`api.allowed_hosts`) gets 421. IP literals are always accepted:
//!   a page served from an IP address cannot be rebound.
//! - Cross-site requests: an unsafe request with a foreign `Origin`, or with
//!   `Sec-Fetch-Site: cross-site`, gets 403.
//! - "Simple" cross-site POSTs: unsafe requests need `Content-Type: application/json`
//!   (415 otherwise), which a browser never sends cross-site without a CORS preflight,
//!   and the API answers no preflight.

use super::auth::is_safe;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pgbaton_config::NodeConfig;
use std::net::IpAddr;
use std::sync::Arc;

/// The host names a request may carry in `Host` (lower case, without brackets).
#[derive(Debug, Clone)]
pub struct HostGuard {
    names: Arc<[String]>,
}

/// Why a request was turned away before reaching a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names a host this API does not answer for (421).
    Host(String),
    /// A cross-site unsafe request (403).
    CrossSite(String),
    /// An unsafe request without `Content-Type: application/json` (415).
    ContentType,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Host(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::CrossSite(_) => StatusCode::FORBIDDEN,
            Refusal::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Refusal::Host(h) => format!(
                "this API does not answer for host {h:?}; use its address, or add the name to api.allowed_hosts"
            ),
            Refusal::CrossSite(why) => format!(
                "cross-site requests cannot change anything ({why}); send the request from the CLI, curl or a tool, not from a web page"
            ),
            Refusal::ContentType => {
                "this method needs Content-Type: application/json (send {} when there is nothing to say)".to_string()
            }
        }
    }
}

impl HostGuard {
    /// The names `cfg` answers for: the hosts of `api.listen` and `api.connect_address`
    /// (or the derived connect address), `localhost`, this machine's host name, and
    /// `api.allowed_hosts`.
    pub fn from_config(cfg: &NodeConfig) -> HostGuard {
        let mut names = vec!["localhost".to_string()];
        names.push(cfg.api_listen().0);
        names.push(cfg.api_connect().0);
        names.extend(cfg.api.allowed_hosts.iter().cloned());
        if let Ok(h) = nix::unistd::gethostname() {
            if let Some(h) = h.to_str() {
                names.push(h.to_string());
            }
        }
        let mut names: Vec<String> = names
            .into_iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        HostGuard {
            names: names.into(),
        }
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) is ours.
    pub fn host_ok(&self, value: &str) -> bool {
        let host = host_of(value);
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host)
    }

    /// Checks `Host` (every method) and, for unsafe methods, `Origin`,
    /// `Sec-Fetch-Site` and `Content-Type`.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(header::HOST) {
            Some(v) => {
                let text = v.to_str().map_err(|_| Refusal::Host("?".into()))?;
                if !self.host_ok(text) {
                    return Err(Refusal::Host(text.to_string()));
                }
                Some(host_of(text).to_ascii_lowercase())
            }
            // HTTP/1.0 clients (some health checkers) send no Host; browsers always do.
            None => None,
        };
        if is_safe(method) {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            if site.as_bytes().eq_ignore_ascii_case(b"cross-site") {
                return Err(Refusal::CrossSite("Sec-Fetch-Site: cross-site".into()));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("?");
            let origin_host = text
                .split_once("://")
                .map(|(_, rest)| host_of(rest).to_ascii_lowercase());
            let same = match (&origin_host, &host) {
                (Some(o), Some(h)) => o == h,
                (Some(o), None) => self.host_ok(o),
                _ => false,
            };
            if !same {
                return Err(Refusal::CrossSite(format!("Origin: {text}")));
            }
        }
        Ok(())
    }
}

/// Whether an unsafe request says its body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The host part of `host[:port]`, `[v6][:port]` or `scheme://host[:port]/...` tails.
fn host_of(value: &str) -> &str {
    let value = value.trim();
    let value = value.split('/').next().unwrap_or(value);
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => value,
    }
}

/// The outer router layer: `Host`, `Origin` and `Sec-Fetch-Site`.
pub async fn require_same_site(
    State(guard): State<HostGuard>,
    req: Request,
    next: Next,
) -> Response {
    match guard.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::debug!(
                "HTTP API: refused {} {}: {}",
                req.method(),
                req.uri().path(),
                refusal.message()
            );
            refuse(&refusal)
        }
    }
}

/// The inner router layer (after authentication): unsafe methods need JSON.
pub async fn require_json(req: Request, next: Next) -> Response {
    if is_safe(req.method()) || is_json(req.headers()) {
        next.run(req).await
    } else {
        refuse(&Refusal::ContentType)
    }
}

fn refuse(refusal: &Refusal) -> Response {
    (
        refusal.status(),
        Json(serde_json::json!({ "error": refusal.message() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard() -> HostGuard {
        HostGuard {
            names: vec!["localhost".into(), "db1.lan".into()].into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn hosts() {
        let g = guard();
        for ok in [
            "db1.lan",
            "DB1.lan.:8008",
            "localhost",
            "10.1.2.3:80",
            "[::1]:8008",
            "[fd00::1]",
        ] {
            assert!(g.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8008",
            "db1.lan.evil.example",
            "",
        ] {
            assert!(!g.host_ok(bad), "{bad}");
        }
        assert_eq!(
            g.check(&Method::GET, &headers(&[("host", "rebind.evil.example")])),
            Err(Refusal::Host("rebind.evil.example".into()))
        );
    }

    #[test]
    fn cross_site_unsafe_requests() {
        let g = guard();
        let post = Method::POST;
        assert_eq!(
            g.check(&post, &headers(&[("host", "db1.lan:8008")])),
            Ok(())
        );
        assert_eq!(
            g.check(
                &post,
                &headers(&[("host", "db1.lan:8008"), ("origin", "http://db1.lan:8008")])
            ),
            Ok(())
        );
        for (k, v) in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let r = g.check(&post, &headers(&[("host", "db1.lan:8008"), (k, v)]));
            assert!(matches!(r, Err(Refusal::CrossSite(_))), "{k}: {v}: {r:?}");
            // Reads stay open to links from dashboards.
            assert_eq!(
                g.check(&Method::GET, &headers(&[("host", "db1.lan:8008"), (k, v)])),
                Ok(())
            );
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
        ] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}

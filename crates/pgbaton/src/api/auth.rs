//! Basic authentication of unsafe requests when `api.auth` is set: a router layer that
//! answers 401 before any handler runs, so a request without the right credentials
//! changes nothing. A client address that keeps failing is refused with 429 for a
//! while (password guessing), and only its first failure in a window is logged at
//! `warn` (no log flooding).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use pgbaton_config::Credentials;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed attempts one client address may make per [`FAIL_WINDOW`] before it is
/// refused with 429 until the window ends.
pub const MAX_FAILURES: u32 = 20;
/// The window of [`MAX_FAILURES`].
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses remembered at most (the oldest windows are dropped first).
const MAX_TRACKED: usize = 4096;

/// The `WWW-Authenticate` challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"pgbaton\"";

/// Standard base64, with or without the trailing `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The credentials unsafe requests must carry. Build it from `api.auth` with
/// [`Guard::from_config`]; `None` there means the API is open.
#[derive(Clone)]
pub struct Guard {
    username: Arc<[u8]>,
    password: Arc<[u8]>,
    failures: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl Guard {
    /// Whether `ip` used up its failures in the current window.
    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        map.get(&ip).is_some_and(|(start, n)| {
            now.duration_since(*start) < FAIL_WINDOW && *n >= MAX_FAILURES
        })
    }

    /// Count a failure of `ip`; returns how many it made in the current window.
    fn failed(&self, ip: IpAddr, now: Instant) -> u32 {
        let Ok(mut map) = self.failures.lock() else {
            return 1;
        };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (start, _)| now.duration_since(*start) < FAIL_WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAIL_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// Why a request is refused (each renders as a 401 with its own message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Basic <base64 of user:password>`.
    Malformed,
    /// Well-formed, but the user name or password is wrong.
    Wrong,
}

impl Refusal {
    /// The message of the 401 answer.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "this method needs credentials: send an Authorization: Basic header with the user and password of api.auth",
            Refusal::Malformed => "the Authorization header is not `Basic <base64 of user:password>`",
            Refusal::Wrong => "wrong user name or password",
        }
    }
}

impl Guard {
    /// The guard for `api.auth`, or `None` when it is not set (every request is let in).
    pub fn from_config(auth: Option<&Credentials>) -> Option<Guard> {
        auth.map(|c| Guard {
            username: c.username.as_bytes().into(),
            password: c.password.as_bytes().into(),
            failures: Arc::default(),
        })
    }

    /// Whether `method` with these `headers` may go on to its handler.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        if is_safe(method) {
            return Ok(());
        }
        let value = headers.get(header::AUTHORIZATION).ok_or(Refusal::Missing)?;
        let (user, password) = parse_basic(value.as_bytes()).ok_or(Refusal::Malformed)?;
        // Both comparisons always run, so the time does not say which one failed.
        let user_ok = constant_time_eq(&user, &self.username);
        let password_ok = constant_time_eq(&password, &self.password);
        if user_ok & password_ok {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

/// GET, HEAD and OPTIONS never change anything and need no credentials; every other
/// method (POST, PATCH, PUT, DELETE, and anything unknown) does.
pub fn is_safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS
}

/// The user name and password of an `Authorization: Basic ...` value; `None` when it is
/// not one. The scheme is case-insensitive; the password may contain `:`.
pub fn parse_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a guess was right (only the longer length shows).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// The router layer: lets the request through, or answers 401 with the challenge (429
/// once the client address has failed [`MAX_FAILURES`] times in [`FAIL_WINDOW`]).
pub async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if is_safe(req.method()) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let now = Instant::now();
    if ip.is_some_and(|ip| guard.blocked(ip, now)) {
        return too_many();
    }
    match guard.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let n = ip.map(|ip| guard.failed(ip, now)).unwrap_or(1);
            let who = ip.map(|ip| ip.to_string()).unwrap_or_else(|| "?".into());
            if n == 1 || n == MAX_FAILURES {
                tracing::warn!(
                    "HTTP API: refused {} {} from {who}: {} (failure {n} in this minute; at {MAX_FAILURES} the address is refused for the rest of it)",
                    req.method(),
                    req.uri().path(),
                    refusal.message()
                );
            }
            unauthorized(refusal)
        }
    }
}

/// The router layer when `api.tls.client_ca` is set: an unsafe request must come over a
/// connection that presented a client certificate signed by that CA (rustls checked the
/// signature during the handshake); 401 otherwise.
pub async fn require_client_cert(req: Request, next: Next) -> Response {
    let presented = req
        .extensions()
        .get::<super::listener::ClientCert>()
        .is_some_and(|c| c.0);
    if is_safe(req.method()) || presented {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({
            "error": "this method needs a client certificate signed by api.tls.client_ca (curl --cert FILE --key FILE)"
        })),
    )
        .into_response()
}

/// The 429 of a client address that failed too often.
fn too_many() -> Response {
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "error": format!("too many failed logins from this address; wait up to {} s", FAIL_WINDOW.as_secs())
        })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

/// A 401 with `WWW-Authenticate: Basic realm="pgbaton"` and `{"error": ...}`.
pub fn unauthorized(refusal: Refusal) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "error": refusal.message() })),
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            username: b"admin".as_slice().into(),
            password: b"pa:ss word".as_slice().into(),
            failures: Arc::default(),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header value"),
        );
        h
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn parses_basic_headers() {
        let b = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            parse_basic(basic("admin:pa:ss word").as_bytes()),
            Some((b("admin"), b("pa:ss word")))
        );
        // Scheme in any case, extra spaces, no padding.
        assert_eq!(parse_basic(b"bAsIc   YTpi  "), Some((b("a"), b("b"))));
        assert_eq!(parse_basic(b"Basic YTpi"), Some((b("a"), b("b"))));
        assert_eq!(parse_basic(b"Basic Ojo="), Some((b(""), b(":"))));
        for bad in [
            "",
            "Basic",
            "Basic ",
            "Bearer YWRtaW46cHc=",
            "Basic !!!",
            "Basic YWRtaW4=", // "admin": no colon
            "BasicYWRtaW46cHc=",
        ] {
            assert_eq!(parse_basic(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_basic(b"Basic \xff\xfe"), None);
    }

    #[test]
    fn compares_whole_values() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret\0"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn safe_methods_pass_and_unsafe_ones_need_the_right_credentials() {
        let g = guard();
        let none = HeaderMap::new();
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(g.check(&m, &none), Ok(()), "{m}");
        }
        let right = headers(&basic("admin:pa:ss word"));
        for m in [
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ] {
            assert_eq!(g.check(&m, &none), Err(Refusal::Missing), "{m}");
            assert_eq!(g.check(&m, &right), Ok(()), "{m}");
        }
        for (value, why) in [
            (basic("admin:pa:ss wor"), Refusal::Wrong),
            (basic("Admin:pa:ss word"), Refusal::Wrong),
            (basic("admin:"), Refusal::Wrong),
            (basic(":pa:ss word"), Refusal::Wrong),
            ("Basic not-base64".to_string(), Refusal::Malformed),
            ("Bearer abc".to_string(), Refusal::Malformed),
        ] {
            assert_eq!(
                g.check(&Method::POST, &headers(&value)),
                Err(why),
                "{value}"
            );
        }
    }

    #[test]
    fn no_auth_configured_means_no_guard() {
        assert!(Guard::from_config(None).is_none());
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let g = Guard::from_config(Some(&c)).expect("guard");
        assert_eq!(g.check(&Method::DELETE, &headers(&basic("u:p"))), Ok(()));
    }

    #[test]
    fn an_address_that_keeps_failing_is_blocked_for_the_window() {
        let g = guard();
        let ip: IpAddr = "10.0.0.9".parse().expect("ip");
        let other: IpAddr = "10.0.0.8".parse().expect("ip");
        let t0 = Instant::now();
        for i in 1..=MAX_FAILURES {
            assert!(!g.blocked(ip, t0), "{i}");
            assert_eq!(g.failed(ip, t0), i);
        }
        assert!(g.blocked(ip, t0));
        assert!(!g.blocked(other, t0));
        assert!(!g.blocked(ip, t0 + FAIL_WINDOW));
        assert_eq!(g.failed(ip, t0 + FAIL_WINDOW), 1);
    }

    #[test]
    fn a_refusal_is_a_401_with_the_challenge() {
        let r = unauthorized(Refusal::Missing);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static(CHALLENGE))
        );
    }
}

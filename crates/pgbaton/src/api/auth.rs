//! Basic authentication of unsafe requests when `api.auth` is set: a router layer that
//! answers 401 before any handler runs, so a request without the right credentials
//! changes nothing.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use pgbaton_config::Credentials;
use std::sync::Arc;

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

/// The router layer: lets the request through, or answers 401 with the challenge.
pub async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    match guard.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::warn!(
                "HTTP API: refused {} {}: {}",
                req.method(),
                req.uri().path(),
                refusal.message()
            );
            unauthorized(refusal)
        }
    }
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
    fn a_refusal_is_a_401_with_the_challenge() {
        let r = unauthorized(Refusal::Missing);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static(CHALLENGE))
        );
    }
}

//! `api.auth` on the real server: unsafe methods without or with wrong credentials get
//! 401 and leave the store as it was; the right credentials work; GETs need none.

use super::client::{get, request, request_from, Reply};
use super::http::{start_with, three_members, Harness};
use super::primary;
use base64::Engine;
use pgbaton_config::Credentials;
use pgbaton_core::model::{KEY_CONFIG, KEY_RESTART, KEY_SWITCHOVER};
use pgbaton_store::Store;
use std::time::Instant;

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

async fn start_guarded() -> Harness {
    start_with(primary(Instant::now()), |cfg| {
        cfg.api.auth = Some(Credentials {
            username: "admin".into(),
            password: "s3cret:pw".into(),
        });
    })
    .await
}

/// The config key's mod revision, or `None` when there is no key.
async fn config_revision(store: &dyn Store) -> Option<i64> {
    store
        .get(KEY_CONFIG)
        .await
        .expect("get config")
        .map(|e| e.mod_revision)
}

fn assert_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"pgbaton\""),
        "{what}"
    );
    assert!(r.json()["error"].is_string(), "{what}: {}", r.body);
}

#[tokio::test]
async fn unsafe_methods_need_the_right_credentials_and_change_nothing_without() {
    let h = start_guarded().await;
    three_members(&h).await;
    let right = basic("admin:s3cret:pw");
    // Seed the config key with the right credentials, so a refused PATCH has a
    // revision to leave alone.
    let r = request(
        h.port,
        "PATCH",
        "/config",
        &[("Authorization", &right)],
        Some(r#"{"loop_wait": 2}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rev = config_revision(h.store.as_ref()).await;
    assert!(rev.is_some());

    let wrong = [
        None,
        Some(basic("admin:s3cret")),
        Some(basic("Admin:s3cret:pw")),
        Some(basic("admin:s3cret:pw ")),
        Some("Basic !!".to_string()),
        Some("Bearer s3cret:pw".to_string()),
    ];
    let calls: [(&str, &str, Option<&str>); 7] = [
        ("PATCH", "/config", Some(r#"{"loop_wait": 3}"#)),
        ("POST", "/switchover", Some(r#"{"candidate": "node2"}"#)),
        ("POST", "/failover", Some(r#"{"candidate": "node2"}"#)),
        ("POST", "/restart", None),
        ("POST", "/reinitialize", Some(r#"{"member": "node2"}"#)),
        ("POST", "/reload", None),
        ("DELETE", "/switchover", None),
    ];
    for (i, creds) in wrong.iter().enumerate() {
        // Each set of credentials from its own client address, below the failure limit.
        let src = format!("127.0.1.{}", i + 1);
        let headers: Vec<(&str, &str)> = creds
            .iter()
            .map(|c| ("Authorization", c.as_str()))
            .collect();
        for (method, path, body) in calls {
            let what = format!("{method} {path} with {creds:?}");
            let r = request_from(&src, h.port, method, path, &headers, body).await;
            assert_refused(&r, &what);
        }
        // Unknown paths and methods are refused too, before routing says 404/405.
        let r = request_from(&src, h.port, "PUT", "/config", &headers, Some("{}")).await;
        assert_refused(&r, "PUT /config");
        let r = request_from(&src, h.port, "POST", "/nowhere", &headers, None).await;
        assert_refused(&r, "POST /nowhere");
    }
    assert_eq!(config_revision(h.store.as_ref()).await, rev);
    h.fresh().await;
    assert_eq!(get(h.port, "/config").await.json()["loop_wait"], 2);
    assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_none());
    assert!(h.store.get(KEY_RESTART).await.expect("get").is_none());

    // The right credentials work, on every kind of request.
    let auth = [("Authorization", right.as_str())];
    let r = request(
        h.port,
        "POST",
        "/switchover",
        &auth,
        Some(r#"{"candidate": "node2"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_some());
    let r = request(h.port, "DELETE", "/switchover", &auth, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(h.store.get(KEY_SWITCHOVER).await.expect("get").is_none());
    let r = request(h.port, "POST", "/restart", &auth, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = request(h.port, "POST", "/reload", &auth, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The scheme is case-insensitive; a bad body is still a 400 once authenticated.
    let lower = right.replacen("Basic", "basic", 1);
    let r = request(
        h.port,
        "PATCH",
        "/config",
        &[("authorization", &lower)],
        Some("{not json"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(config_revision(h.store.as_ref()).await, rev);
}

#[tokio::test]
async fn safe_methods_need_no_credentials() {
    let h = start_guarded().await;
    for path in [
        "/health",
        "/primary",
        "/liveness",
        "/status",
        "/config",
        "/metrics",
    ] {
        let r = get(h.port, path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    }
    assert_eq!(
        request(h.port, "HEAD", "/primary", &[], None).await.status,
        200
    );
    assert_eq!(
        request(h.port, "OPTIONS", "/health", &[], None)
            .await
            .status,
        200
    );
    // Even with wrong credentials a GET is answered: they are not looked at.
    let r = request(
        h.port,
        "GET",
        "/health",
        &[("Authorization", &basic("admin:nope"))],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(get(h.port, "/nowhere").await.status, 404);
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_even_with_the_right_password() {
    let h = start_guarded().await;
    let src = "127.0.2.1";
    let wrong = basic("admin:guess");
    for i in 0..crate::api::auth::MAX_FAILURES {
        let r = request_from(
            src,
            h.port,
            "POST",
            "/reload",
            &[("Authorization", &wrong)],
            None,
        )
        .await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let right = basic("admin:s3cret:pw");
    let r = request_from(
        src,
        h.port,
        "POST",
        "/reload",
        &[("Authorization", &right)],
        None,
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("60"));
    // Other clients are not locked out; reads never are.
    let r = request_from(
        "127.0.2.2",
        h.port,
        "POST",
        "/reload",
        &[("Authorization", &right)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(h.port, "/status").await.status, 200);
}

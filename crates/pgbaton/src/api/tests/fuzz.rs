//! Fuzzing of HTTP request handling (proptest; stable Rust), in process through the
//! router with its guard layers: any method, path, headers and body get an answer
//! (never a panic, never a 500), and a request refused by a guard, or sent without a
//! JSON content type or from a foreign site, never changes the store.
//!
//! A short run is part of `cargo test`; run longer with
//! `PROPTEST_CASES=20000 cargo test -p pgbaton --bin pgbaton api::tests::fuzz`.

use super::primary;
use crate::api::{server, ApiContext};
use axum::body::Body;
use axum::http::Request;
use pgbaton_store::local::LocalStore;
use pgbaton_store::Store;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = pgbaton_config::render_example(
        "test",
        "node1",
        &dir.path().join("data"),
        &dir.path().join("store"),
        55432,
        58008,
    );
    let config_path = dir.path().join("node1.yaml");
    std::fs::write(&config_path, &text).expect("write");
    let cfg = pgbaton_config::parse(&text, "node1.yaml").expect("parse");
    let store: Arc<dyn Store> = Arc::new(
        LocalStore::open(
            &dir.path().join("store"),
            "test",
            Duration::from_millis(500),
        )
        .expect("store"),
    );
    let mut snap = primary(Instant::now());
    snap.store = Some(Arc::new(rt.block_on(store.snapshot()).expect("snapshot")));
    let (_tx, rx) = tokio::sync::watch::channel(snap);
    let app = server::router(Arc::new(server::Server {
        ctx: ApiContext {
            snapshot: rx,
            store: store.clone(),
            cfg,
            config_path,
            reload: None,
        },
        started: Instant::now(),
    }));
    World {
        rt,
        app,
        store,
        _dir: dir,
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "OPTIONS", "POST", "PATCH", "PUT", "DELETE", "TRACE", "CONNECT",
        ])
        .prop_map(str::to_string),
        "[A-Z]{1,8}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/",
            "/primary",
            "/replica?lag=1kB",
            "/replica?lag=zz",
            "/status",
            "/cluster",
            "/history",
            "/metrics",
            "/config",
            "/reload",
            "/switchover",
            "/failover",
            "/restart",
            "/reinitialize",
            "/Switchover",
            "/switchover/",
            "//config",
            "/config?x=%ff",
            "/%00",
        ])
        .prop_map(str::to_string),
        "/[a-zA-Z0-9%?=&/._-]{0,30}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let pair = prop_oneof![
        prop::sample::select(vec![
            "127.0.0.1",
            "localhost:8008",
            "evil.example",
            "[::1]",
            ""
        ])
        .prop_map(|v| ("host".to_string(), v.to_string())),
        prop::sample::select(vec![
            "application/json",
            "text/plain",
            "application/json; charset=utf-8",
            "",
            "multipart/form-data",
        ])
        .prop_map(|v| ("content-type".to_string(), v.to_string())),
        prop::sample::select(vec!["http://evil.example", "null", "http://127.0.0.1"])
            .prop_map(|v| ("origin".to_string(), v.to_string())),
        prop::sample::select(vec!["cross-site", "same-origin", "none"])
            .prop_map(|v| ("sec-fetch-site".to_string(), v.to_string())),
        prop::sample::select(vec!["W/\"1\"", "\"x\"", "*", "99999999999999999999"])
            .prop_map(|v| ("if-match".to_string(), v.to_string())),
        ("[a-z-]{1,12}", "[ -~]{0,40}"),
    ];
    prop::collection::vec(pair, 0..5)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "{}",
            "{",
            "[]",
            "null",
            r#"{"candidate":"node2"}"#,
            r#"{"member":"node1"}"#,
            r#"{"ttl":18446744073709551615}"#,
            r#"{"parameters":{"archive_command":"id"}}"#,
            r#"{"loop_wait":2}"#,
            r#"{"paused":true}"#,
            r#"{"force":true,"candidate":"x"}"#,
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
    ))]

    #[test]
    fn any_request_gets_an_answer_and_refused_ones_change_nothing(
        reqs in prop::collection::vec((method(), path(), headers(), body()), 1..4)
    ) {
        let w = world();
        for (m, p, hs, b) in reqs {
            let mut builder = Request::builder().method(m.as_str()).uri(p.as_str());
            for (k, v) in &hs {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let Ok(req) = builder.body(Body::from(b)) else { continue };
            let before = w.rt.block_on(w.store.snapshot()).expect("snapshot").revision;
            let resp = w.rt.block_on(w.app.clone().oneshot(req)).expect("infallible");
            let status = resp.status().as_u16();
            prop_assert!(status != 500, "{m} {p} {hs:?}: 500");
            let after = w.rt.block_on(w.store.snapshot()).expect("snapshot").revision;
            let refused = matches!(status, 400..=499);
            let json = hs.iter().any(|(k, v)| {
                k == "content-type" && v.to_ascii_lowercase().starts_with("application/json")
            });
            let cross = hs.iter().any(|(k, v)| {
                (k == "origin" && v != "http://127.0.0.1") || (k == "sec-fetch-site" && v == "cross-site")
            });
            if refused || !json || cross {
                prop_assert_eq!(before, after, "{} {} {:?} -> {} changed the store", m, p, hs, status);
            }
        }
    }
}

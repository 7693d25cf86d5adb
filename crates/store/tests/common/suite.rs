//! The conformance suite: every test is generic over [`Backend`] and must pass unchanged
//! for the local and the etcd store.

use super::Backend;
use pgbaton_store::{Expect, LeaseId, Store, StoreError};
use std::time::{Duration, Instant};

/// How late a waiter may wake after a change.
const WAKE_SLACK: Duration = Duration::from_millis(100);

/// Poll `f` until it returns `Some`, failing after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn put_get_snapshot<B: Backend>(b: B) {
    let s = b.client().await;
    assert!(s.describe().contains("main"), "{}", s.describe());
    let before = s.snapshot().await.unwrap();
    assert!(before.entries.is_empty());
    assert!(s.put("leader", "n1", None, Expect::Any).await.unwrap());
    assert!(s.put("members/n1", "{}", None, Expect::Any).await.unwrap());
    let e = s.get("leader").await.unwrap().unwrap();
    assert_eq!(
        (e.key.as_str(), e.value.as_str(), e.lease),
        ("leader", "n1", None)
    );
    assert!(e.mod_revision > before.revision);
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.value("members/n1"), Some("{}"));
    assert_eq!(snap.entries.len(), 2);
    assert!(snap.revision >= snap.entries["members/n1"].mod_revision);
    assert!(snap.entries["members/n1"].mod_revision > e.mod_revision);
    assert_eq!(s.get("nope").await.unwrap(), None);
}

pub async fn namespaces_are_isolated<B: Backend>(b: B) {
    let a = b.client_for("c1", super::CALL_TIMEOUT).await;
    let ab = b.client_for("c10", super::CALL_TIMEOUT).await;
    assert!(a.put("leader", "a", None, Expect::Absent).await.unwrap());
    assert!(ab.put("leader", "ab", None, Expect::Absent).await.unwrap());
    assert_eq!(a.snapshot().await.unwrap().value("leader"), Some("a"));
    let snap = ab.snapshot().await.unwrap();
    assert_eq!(snap.entries.len(), 1);
    assert_eq!(snap.value("leader"), Some("ab"));
}

pub async fn create_if_absent_race<B: Backend>(b: B) {
    let clients: Vec<B::S> = futures::future::join_all((0..5).map(|_| b.client())).await;
    for round in 0..30 {
        let key = format!("initialize{round}");
        let tasks = clients.iter().enumerate().map(|(i, c)| {
            let (c, key) = (c.clone(), key.clone());
            tokio::spawn(async move { c.put(&key, &format!("c{i}"), None, Expect::Absent).await })
        });
        let results: Vec<bool> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i]).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let v = clients[0].get(&key).await.unwrap().unwrap().value;
        assert_eq!(v, format!("c{}", winners[0]));
    }
}

pub async fn cas_mod_revision_and_value<B: Backend>(b: B) {
    let s = b.client().await;
    assert!(s.put("config", "v1", None, Expect::Any).await.unwrap());
    let r1 = s.get("config").await.unwrap().unwrap().mod_revision;
    assert!(s
        .put("config", "v2", None, Expect::ModRevision(r1))
        .await
        .unwrap());
    assert!(!s
        .put("config", "v3", None, Expect::ModRevision(r1))
        .await
        .unwrap());
    assert!(!s
        .put("other", "x", None, Expect::ModRevision(r1))
        .await
        .unwrap());
    assert!(!s
        .put("other", "x", None, Expect::ModRevision(0))
        .await
        .unwrap());
    assert!(!s
        .put("config", "v3", None, Expect::Value("v1".into()))
        .await
        .unwrap());
    assert!(!s
        .put("other", "x", None, Expect::Value(String::new()))
        .await
        .unwrap());
    assert!(s
        .put("config", "v3", None, Expect::Value("v2".into()))
        .await
        .unwrap());
    assert!(!s.put("config", "v4", None, Expect::Absent).await.unwrap());
    assert_eq!(s.get("config").await.unwrap().unwrap().value, "v3");
    assert_eq!(s.get("other").await.unwrap(), None);
}

pub async fn delete_with_expectations<B: Backend>(b: B) {
    let s = b.client().await;
    assert!(
        s.delete("leader", Expect::Any).await.unwrap(),
        "absent key, Any"
    );
    s.put("leader", "n1", None, Expect::Any).await.unwrap();
    let rev = s.get("leader").await.unwrap().unwrap().mod_revision;
    assert!(!s.delete("leader", Expect::Absent).await.unwrap());
    assert!(!s
        .delete("leader", Expect::Value("n2".into()))
        .await
        .unwrap());
    assert!(!s
        .delete("leader", Expect::ModRevision(rev + 100))
        .await
        .unwrap());
    assert!(s.get("leader").await.unwrap().is_some());
    assert!(s.delete("leader", Expect::ModRevision(rev)).await.unwrap());
    assert!(s.get("leader").await.unwrap().is_none());
    s.put("leader", "n2", None, Expect::Any).await.unwrap();
    assert!(s
        .delete("leader", Expect::Value("n2".into()))
        .await
        .unwrap());
    assert!(!s
        .delete("leader", Expect::Value("n2".into()))
        .await
        .unwrap());
    let snap = s.snapshot().await.unwrap();
    assert!(snap.revision > rev);
}

pub async fn concurrent_cas_counter<B: Backend>(b: B) {
    let clients: Vec<B::S> = futures::future::join_all((0..4).map(|_| b.client())).await;
    clients[0]
        .put("counter", "0", None, Expect::Absent)
        .await
        .unwrap();
    let per_client = 25;
    let tasks = clients.into_iter().map(|c| {
        tokio::spawn(async move {
            let mut done = 0;
            while done < per_client {
                let e = c.get("counter").await.unwrap().unwrap();
                let n: u64 = e.value.parse().unwrap();
                let next = (n + 1).to_string();
                if c.put("counter", &next, None, Expect::ModRevision(e.mod_revision))
                    .await
                    .unwrap()
                {
                    done += 1;
                }
            }
            c
        })
    });
    let clients: Vec<B::S> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let v = clients[0].get("counter").await.unwrap().unwrap().value;
    assert_eq!(v, (4 * per_client).to_string());
}

pub async fn lease_expiry_removes_only_attached_keys<B: Backend>(b: B) {
    let s = b.client().await;
    let ttl = Duration::from_secs(1);
    let short = s.grant_lease(ttl).await.unwrap();
    let kept = s.grant_lease(ttl).await.unwrap();
    assert_ne!(short, kept);
    assert!(s
        .put("members/a", "a", Some(short), Expect::Absent)
        .await
        .unwrap());
    assert!(s
        .put("members/b", "b", Some(kept), Expect::Absent)
        .await
        .unwrap());
    assert!(s.put("config", "c", None, Expect::Absent).await.unwrap());
    assert_eq!(
        s.get("members/a").await.unwrap().unwrap().lease,
        Some(short)
    );
    let started = Instant::now();
    let limit = ttl + b.expiry_slack() + Duration::from_secs(1);
    // Renew `kept` while waiting for `short` to expire.
    loop {
        s.keep_alive(kept).await.unwrap();
        if s.snapshot().await.unwrap().value("members/a").is_none() {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "leased key still there after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snap = s.snapshot().await.unwrap();
    assert_eq!(
        snap.value("members/b"),
        Some("b"),
        "renewed lease kept its key"
    );
    assert_eq!(
        snap.value("config"),
        Some("c"),
        "key without lease survives"
    );
    match s.keep_alive(short).await {
        Err(StoreError::LeaseExpired(l)) => assert_eq!(l, short),
        other => panic!("keep_alive on an expired lease gave {other:?}"),
    }
    match s.put("members/a", "again", Some(short), Expect::Any).await {
        Err(StoreError::LeaseExpired(l)) => assert_eq!(l, short),
        other => panic!("put with an expired lease gave {other:?}"),
    }
    // Renewal keeps a lease alive well past its TTL.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.keep_alive(kept).await.unwrap();
    }
    assert!(s.get("members/b").await.unwrap().is_some());
}

pub async fn revoke_deletes_attached_keys<B: Backend>(b: B) {
    let s = b.client().await;
    let l = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    s.put("leader", "n1", Some(l), Expect::Absent)
        .await
        .unwrap();
    s.put("members/n1", "{}", Some(l), Expect::Absent)
        .await
        .unwrap();
    s.put("config", "{}", None, Expect::Absent).await.unwrap();
    // Re-putting without a lease detaches the key.
    let other = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    s.put("status", "x", Some(l), Expect::Absent).await.unwrap();
    s.put("status", "y", Some(other), Expect::Any)
        .await
        .unwrap();
    let rev = s.snapshot().await.unwrap().revision;
    s.revoke_lease(l).await.unwrap();
    let snap = s.snapshot().await.unwrap();
    assert!(snap.revision > rev);
    assert_eq!(snap.value("leader"), None);
    assert_eq!(snap.value("members/n1"), None);
    assert_eq!(snap.value("config"), Some("{}"));
    assert_eq!(snap.value("status"), Some("y"));
    s.revoke_lease(l).await.unwrap();
    assert!(matches!(
        s.keep_alive(l).await,
        Err(StoreError::LeaseExpired(_))
    ));
    assert!(matches!(
        s.keep_alive(LeaseId(987_654_321)).await,
        Err(StoreError::LeaseExpired(_))
    ));
}

pub async fn wait_wakes_on_anothers_write<B: Backend>(b: B) {
    let waiter = b.client().await;
    let writer = b.client().await;
    for round in 0..3 {
        let rev = waiter.snapshot().await.unwrap().revision;
        let w = waiter.clone();
        let task = tokio::spawn(async move {
            let r = w.wait_for_change(rev, Duration::from_secs(5)).await;
            (r, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!task.is_finished(), "round {round}: woke without a change");
        let put_started = Instant::now();
        writer
            .put("members/x", &round.to_string(), None, Expect::Any)
            .await
            .unwrap();
        let put_done = Instant::now();
        let (r, woke) = task.await.unwrap();
        assert!(r.unwrap() > rev);
        assert!(woke >= put_started);
        let late = woke.saturating_duration_since(put_done);
        assert!(
            late < WAKE_SLACK,
            "round {round}: woke {late:?} after the write"
        );
    }
}

/// Waits on one handle that overlap, or that are cancelled halfway, leave it able to
/// wake the next waiter at once (the local store keeps one inotify watch per handle).
pub async fn concurrent_and_cancelled_waits_still_wake<B: Backend>(b: B) {
    let waiter = b.client().await;
    let writer = b.client().await;
    let rev = waiter.snapshot().await.unwrap().revision;
    // A wait given up after 50 ms (its future dropped mid-wait).
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        waiter.wait_for_change(rev, Duration::from_secs(5)),
    )
    .await;
    assert!(cancelled.is_err(), "woke without a change: {cancelled:?}");
    // Two waits at once on the same handle, then one write.
    let spawn_wait = |w: B::S, rev: i64| {
        tokio::spawn(async move {
            let r = w.wait_for_change(rev, Duration::from_secs(5)).await;
            (r, Instant::now())
        })
    };
    let first = spawn_wait(waiter.clone(), rev);
    let second = spawn_wait(waiter.clone(), rev);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "woke without a change"
    );
    writer
        .put("members/y", "1", None, Expect::Any)
        .await
        .unwrap();
    let put_done = Instant::now();
    for task in [first, second] {
        let (r, woke) = task.await.unwrap();
        assert!(r.unwrap() > rev);
        let late = woke.saturating_duration_since(put_done);
        assert!(late < WAKE_SLACK, "woke {late:?} after the write");
    }
    // And the handle's next wait still wakes on the next write.
    let rev = waiter.snapshot().await.unwrap().revision;
    let third = spawn_wait(waiter.clone(), rev);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished(), "woke without a change");
    writer
        .put("members/y", "2", None, Expect::Any)
        .await
        .unwrap();
    let put_done = Instant::now();
    let (r, woke) = third.await.unwrap();
    assert!(r.unwrap() > rev);
    assert!(woke.saturating_duration_since(put_done) < WAKE_SLACK);
}

pub async fn wait_wakes_on_lease_expiry<B: Backend>(b: B) {
    let s = b.client().await;
    let ttl = Duration::from_secs(1);
    let l = s.grant_lease(ttl).await.unwrap();
    let granted = Instant::now();
    s.put("leader", "n1", Some(l), Expect::Absent)
        .await
        .unwrap();
    let rev = s.snapshot().await.unwrap().revision;
    let r = s
        .wait_for_change(rev, Duration::from_secs(5))
        .await
        .unwrap();
    let woke = granted.elapsed();
    assert!(r > rev);
    assert!(
        woke < ttl + b.expiry_slack(),
        "woke {woke:?} after a {ttl:?} grant"
    );
    assert!(
        woke >= ttl - Duration::from_millis(50),
        "woke early: {woke:?}"
    );
    assert_eq!(s.snapshot().await.unwrap().value("leader"), None);
}

pub async fn wait_times_out_with_same_revision<B: Backend>(b: B) {
    let s = b.client().await;
    s.put("config", "x", None, Expect::Any).await.unwrap();
    let rev = s.snapshot().await.unwrap().revision;
    for _ in 0..2 {
        let t = Instant::now();
        let r = s
            .wait_for_change(rev, Duration::from_millis(300))
            .await
            .unwrap();
        let took = t.elapsed();
        assert_eq!(r, rev);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    // Waiting from an old revision returns at once.
    let t = Instant::now();
    assert!(
        s.wait_for_change(rev - 1, Duration::from_secs(5))
            .await
            .unwrap()
            >= rev
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

pub async fn unreachable_within_call_timeout<B: Backend>(b: B) {
    let call_timeout = Duration::from_millis(500);
    let limit = call_timeout + Duration::from_millis(1000);
    let s = b.client_for("main", call_timeout).await;
    s.put("config", "x", None, Expect::Any).await.unwrap();
    let lease = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    let guard = b.make_unreachable();

    macro_rules! check {
        ($what:expr, $call:expr) => {{
            let t = Instant::now();
            let r = $call;
            let took = t.elapsed();
            assert!(
                matches!(r, Err(StoreError::Unreachable(_))),
                "{}: expected Unreachable, got {:?}",
                $what,
                r
            );
            assert!(took < limit, "{} took {:?}", $what, took);
            assert!(
                took >= call_timeout - Duration::from_millis(50),
                "{} gave up early: {:?}",
                $what,
                took
            );
        }};
    }
    check!("snapshot", s.snapshot().await);
    check!("get", s.get("config").await);
    check!("put", s.put("config", "y", None, Expect::Any).await);
    check!("delete", s.delete("config", Expect::Any).await);
    check!("grant", s.grant_lease(Duration::from_secs(5)).await);
    check!("keep_alive", s.keep_alive(lease).await);
    check!("revoke", s.revoke_lease(lease).await);
    drop(guard);
    eventually(Duration::from_secs(10), "store to come back", || async {
        s.snapshot().await.ok()
    })
    .await;
    // A call that timed out may still have been applied (etcd executes the queued
    // requests once it runs again): its outcome is unknown, not "nothing happened".
    let v = s.get("config").await.unwrap().map(|e| e.value);
    assert!(
        matches!(v.as_deref(), None | Some("x") | Some("y")),
        "{v:?}"
    );
    match s.keep_alive(lease).await {
        Ok(()) | Err(StoreError::LeaseExpired(_)) => {}
        Err(e) => panic!("keep_alive after recovery: {e}"),
    }
    assert!(s.put("config", "z", None, Expect::Any).await.unwrap());
}

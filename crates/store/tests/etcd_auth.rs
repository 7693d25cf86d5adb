//! The etcd backend against a real etcd with authentication enabled: user/password
//! login, every store call and the background watch with the token, clear errors for a
//! wrong password or missing credentials, and a fresh login when etcd forgets the token
//! (a restarted member drops every simple token).

use pgbaton_store::etcd::{EtcdOptions, EtcdStore};
use pgbaton_store::testkit::EtcdCluster;
use pgbaton_store::{Expect, Store, StoreError};
use std::time::{Duration, Instant};

/// Enable auth: a root user, and user `pgbaton` (password `pw`) allowed under /pgbaton/.
fn enable_auth(etcd: &EtcdCluster) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
        &["--user=root:rootpw", "user", "add", "pgbaton:pw"],
        &["--user=root:rootpw", "role", "add", "pgbaton"],
        &[
            "--user=root:rootpw",
            "role",
            "grant-permission",
            "pgbaton",
            "--prefix=true",
            "readwrite",
            "/pgbaton/",
        ],
        &[
            "--user=root:rootpw",
            "user",
            "grant-role",
            "pgbaton",
            "pgbaton",
        ],
    ] {
        etcd.etcdctl(0, args);
    }
}

async fn connect(cluster: &EtcdCluster, user: Option<(&str, &str)>) -> EtcdStore {
    let mut o = EtcdOptions::new(cluster.endpoints(), "auth");
    o.call_timeout = Duration::from_secs(2);
    o.username = user.map(|u| u.0.to_string());
    o.password = user.map(|u| u.1.to_string());
    EtcdStore::connect(o).await.unwrap()
}

/// A put from `writer` wakes a `wait_for_change` on `waiter` within `limit`.
async fn watch_wakes(waiter: &EtcdStore, writer: &EtcdStore, limit: Duration) {
    let rev = waiter.snapshot().await.unwrap().revision;
    let w = waiter.clone();
    let wait = tokio::spawn(async move { w.wait_for_change(rev, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    writer
        .put("members/x", "1", None, Expect::Any)
        .await
        .unwrap();
    assert!(wait.await.unwrap().unwrap() > rev);
    assert!(
        t.elapsed() < limit,
        "woke {:?} after the write",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_user_and_password() {
    let cluster = EtcdCluster::start(1);
    enable_auth(&cluster);
    let s = connect(&cluster, Some(("pgbaton", "pw"))).await;

    // Every store call works with the token.
    assert!(s.put("config", "{}", None, Expect::Absent).await.unwrap());
    assert_eq!(s.get("config").await.unwrap().unwrap().value, "{}");
    let lease = s.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(s
        .put("leader", "n1", Some(lease), Expect::Absent)
        .await
        .unwrap());
    assert!(!s.put("leader", "n2", None, Expect::Absent).await.unwrap());
    s.keep_alive(lease).await.unwrap();
    assert_eq!(s.snapshot().await.unwrap().entries.len(), 2);
    assert!(s
        .delete("config", Expect::Value("{}".into()))
        .await
        .unwrap());
    s.revoke_lease(lease).await.unwrap();
    assert!(s.snapshot().await.unwrap().entries.is_empty());
    // The background watch logs in too.
    let other = connect(&cluster, Some(("pgbaton", "pw"))).await;
    watch_wakes(&s, &other, Duration::from_millis(500)).await;

    // A wrong password and missing credentials are refusals, not outages, and say so.
    let wrong = connect(&cluster, Some(("pgbaton", "nope"))).await;
    match wrong.get("config").await {
        Err(StoreError::Other(m)) => assert!(
            m.contains("store.etcd.username") && m.contains("invalid user ID or password"),
            "{m}"
        ),
        other => panic!("expected a refused login, got {other:?}"),
    }
    let anonymous = connect(&cluster, None).await;
    match anonymous.snapshot().await {
        Err(StoreError::Other(m)) => assert!(m.contains("user name is empty"), "{m}"),
        other => panic!("expected a refusal without credentials, got {other:?}"),
    }

    // A restarted member has forgotten every token: the client logs in again.
    cluster.restart(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.put("config", "again", None, Expect::Any).await {
            Ok(true) => break,
            Ok(false) => panic!("an unconditional put was refused"),
            Err(StoreError::Unreachable(e)) => {
                assert!(Instant::now() < deadline, "etcd did not come back: {e}")
            }
            Err(e) => panic!("the expired token was not replaced: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.get("config").await.unwrap().unwrap().value, "again");
    // So does the background watch, once it has noticed the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rev = s.snapshot().await.unwrap().revision;
        let w = s.clone();
        let wait =
            tokio::spawn(async move { w.wait_for_change(rev, Duration::from_secs(3)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        other
            .put("members/x", "2", None, Expect::Any)
            .await
            .unwrap();
        let t = Instant::now();
        let woke = wait.await.unwrap().unwrap();
        if woke > rev && t.elapsed() < Duration::from_millis(500) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not come back after the restart"
        );
    }
}

//! The etcd backend keeps working when one member of a 3-member cluster dies, and the
//! testkit's failure injection behaves.

use pgbaton_store::etcd::{EtcdOptions, EtcdStore};
use pgbaton_store::testkit::EtcdCluster;
use pgbaton_store::{Expect, Store, StoreError};
use std::time::{Duration, Instant};

async fn connect(endpoints: Vec<String>, call_timeout: Duration) -> EtcdStore {
    let mut opts = EtcdOptions::new(endpoints, "failover");
    opts.call_timeout = call_timeout;
    EtcdStore::connect(opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_losing_one_of_three_members() {
    let cluster = EtcdCluster::start(3);
    let call_timeout = Duration::from_millis(1000);
    let s = connect(cluster.endpoints(), call_timeout).await;
    let watcher = connect(cluster.endpoints(), call_timeout).await;
    assert!(s.put("counter", "0", None, Expect::Absent).await.unwrap());
    let lease = s.grant_lease(Duration::from_secs(5)).await.unwrap();
    s.put("leader", "n1", Some(lease), Expect::Absent)
        .await
        .unwrap();

    for victim in [0usize] {
        cluster.kill(victim);
        // Calls in flight to the dead member may fail once; the client must move on.
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            match s.snapshot().await {
                Ok(_) => break,
                Err(StoreError::Unreachable(e)) if Instant::now() < deadline => {
                    eprintln!("after kill: {e}");
                }
                Err(e) => panic!("store did not recover after killing member {victim}: {e}"),
            }
        }
        // A write may still meet the election if the victim led.
        while let Err(e) = s.put("members/y", "1", None, Expect::Any).await {
            assert!(Instant::now() < deadline, "writes did not recover: {e}");
        }
        // From now on every call must work.
        for i in 1..=20 {
            let e = s.get("counter").await.unwrap().unwrap();
            let next = i.to_string();
            assert!(s
                .put("counter", &next, None, Expect::ModRevision(e.mod_revision))
                .await
                .unwrap());
            s.keep_alive(lease).await.unwrap();
        }
        // The other client's background watch moves to a live member too.
        let rev = watcher.snapshot().await.unwrap().revision;
        let w = watcher.clone();
        let wait =
            tokio::spawn(async move { w.wait_for_change(rev, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        s.put("members/x", "1", None, Expect::Any).await.unwrap();
        assert!(wait.await.unwrap().unwrap() > rev);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    assert_eq!(s.get("counter").await.unwrap().unwrap().value, "20");
    assert_eq!(s.get("leader").await.unwrap().unwrap().lease, Some(lease));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_member_is_left_behind() {
    let cluster = EtcdCluster::start(3);
    let call_timeout = Duration::from_millis(500);
    let s = connect(cluster.endpoints(), call_timeout).await;
    let watcher = connect(cluster.endpoints(), call_timeout).await;
    s.put("config", "x", None, Expect::Any).await.unwrap();
    // Both clients start on member 0; freeze it.
    cluster.pause(0);
    let t = Instant::now();
    match s.get("config").await {
        Err(StoreError::Unreachable(_)) => {}
        other => panic!("a call to a frozen member should time out, got {other:?}"),
    }
    assert!(t.elapsed() < call_timeout + Duration::from_millis(700));
    // If the frozen member led, the others elect a new leader meanwhile ("leader
    // changed" for a moment); after that every call must work.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = s.put("config", "x", None, Expect::Any).await {
        assert!(
            Instant::now() < deadline,
            "no recovery from a frozen member: {e}"
        );
    }
    for _ in 0..10 {
        assert_eq!(s.get("config").await.unwrap().unwrap().value, "x");
        assert!(s.put("config", "x", None, Expect::Any).await.unwrap());
    }
    // The background watch notices the stall and moves on as well.
    let rev = s.snapshot().await.unwrap().revision;
    let w = watcher.clone();
    let wait = tokio::spawn(async move { w.wait_for_change(rev, Duration::from_secs(8)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.put("members/x", "1", None, Expect::Any).await.unwrap();
    let t = Instant::now();
    assert!(wait.await.unwrap().unwrap() > rev);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    cluster.resume(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_can_be_restarted() {
    let cluster = EtcdCluster::start(1);
    let s = connect(cluster.endpoints(), Duration::from_millis(500)).await;
    s.put("config", "x", None, Expect::Any).await.unwrap();
    cluster.kill(0);
    let t = Instant::now();
    assert!(matches!(
        s.get("config").await,
        Err(StoreError::Unreachable(_))
    ));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    cluster.restart(0);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        match s.get("config").await {
            Ok(v) => {
                assert_eq!(v.unwrap().value, "x", "data survives a restart");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery after restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connect_refuses_https_without_tls_and_bad_options() {
    let mut opts = EtcdOptions::new(vec!["https://127.0.0.1:1".into()], "c");
    let err = EtcdStore::connect(opts.clone()).await.unwrap_err();
    assert!(err.to_string().contains("store.etcd.tls"), "{err}");
    opts.endpoints = vec![];
    assert!(matches!(
        EtcdStore::connect(opts.clone()).await,
        Err(StoreError::Other(_))
    ));
    opts.endpoints = vec!["http://127.0.0.1:1".into()];
    opts.username = Some("u".into());
    assert!(matches!(
        EtcdStore::connect(opts).await,
        Err(StoreError::Other(_))
    ));
}

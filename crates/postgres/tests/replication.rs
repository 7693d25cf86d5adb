//! The manual procedure end to end on real PostgreSQL: slot, base backup, standby, streaming,
//! promotion, and bringing the old primary back with pg_rewind.

mod common;

use std::time::Duration;

use common::*;
use pgbaton_postgres::{ClusterState, DataDirState, Error, Sql, StandbyTarget, StopMode};

const T: Duration = Duration::from_secs(30);

async fn count_rows(sql: &Sql) -> Option<i64> {
    let rows = sql.query_text("SELECT count(*) FROM t").await.ok()?;
    rows.first()?.first()?.as_ref()?.parse().ok()
}

async fn wait_streaming(sql: &Sql, slot: &str) {
    let slot = slot.to_string();
    wait_for("WAL receiver streaming", T, || async {
        let wr = sql.wal_receiver().await.ok()??;
        (wr.status == "streaming" && wr.slot_name.as_deref() == Some(slot.as_str())).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_stream_promote_rewind() {
    let root = test_root();
    let primary = start_primary(root.path(), "alpha").await;
    let psql = primary.inst.connect().await.unwrap();

    // The primary's probe.
    let p = psql.probe().await.unwrap();
    assert!(!p.in_recovery);
    assert_eq!(p.timeline, 1);
    assert!(p.current_lsn.is_some());
    assert!(p.server_version_num >= 150000);
    assert!(p.wal_receiver.is_none());
    let cd = primary.inst.controldata().await.unwrap();
    assert_eq!(p.system_identifier, cd.system_identifier);
    assert!(cd.data_checksums);

    // Slot and replication role, both idempotent.
    assert!(psql.create_physical_slot("beta").await.unwrap());
    assert!(!psql.create_physical_slot("beta").await.unwrap());
    let slot = psql.slot("beta").await.unwrap().unwrap();
    assert_eq!(slot.slot_type, "physical");
    assert!(!slot.active);
    assert!(slot.restart_lsn.is_some(), "immediately reserved");
    assert!(psql
        .ensure_replication_role(REPL_USER, REPL_PASSWORD)
        .await
        .unwrap());
    assert!(!psql
        .ensure_replication_role(REPL_USER, REPL_PASSWORD)
        .await
        .unwrap());

    // Clone a standby through the slot and start it.
    let replica = node(root.path(), "beta");
    let upstream = target_for(&replica, &primary, REPL_USER);
    replica
        .inst
        .basebackup(&upstream, Some("beta"), Some(T))
        .await
        .unwrap();
    assert!(matches!(
        replica.inst.data_dir_state().unwrap(),
        DataDirState::Initialized { .. }
    ));
    let standby = StandbyTarget {
        upstream: upstream.clone(),
        slot_name: Some("beta".into()),
    };
    assert!(replica
        .inst
        .prepare_config(&settings(), Some(&standby))
        .unwrap());
    assert!(matches!(
        replica.inst.data_dir_state().unwrap(),
        DataDirState::Initialized {
            standby_signal: true,
            ..
        }
    ));
    assert!(replica.inst.start(T).await.unwrap());
    let rsql = replica.inst.connect().await.unwrap();
    wait_streaming(&rsql, "beta").await;
    let rp = rsql.probe().await.unwrap();
    assert!(rp.in_recovery);
    assert_eq!(rp.timeline, 1);
    assert_eq!(rp.system_identifier, p.system_identifier);
    let wr = rp.wal_receiver.unwrap();
    assert_eq!(wr.sender_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(wr.sender_port, Some(i32::from(primary.inst.port)));

    // The primary sees the standby by its application_name; the slot is in use.
    let peer = wait_for("standby in pg_stat_replication", T, || async {
        let peers = psql.replication().await.ok()?;
        peers
            .into_iter()
            .find(|r| r.application_name == "beta" && r.state.as_deref() == Some("streaming"))
    })
    .await;
    assert_eq!(peer.client_addr.as_deref(), Some("127.0.0.1"));
    assert!(matches!(
        psql.drop_slot("beta").await,
        Err(Error::SlotActive { .. })
    ));

    // A write on the primary shows up on the standby.
    psql.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('one')")
        .await
        .unwrap();
    wait_for("row replicated", T, || async {
        (count_rows(&rsql).await == Some(1)).then_some(())
    })
    .await;

    // A clean standby shutdown, then the same config again changes nothing.
    drop(rsql);
    assert!(replica.inst.stop(StopMode::Fast, T).await.unwrap());
    let cd = replica.inst.controldata().await.unwrap();
    assert_eq!(cd.cluster_state, ClusterState::ShutDownInRecovery);
    assert!(!replica
        .inst
        .prepare_config(&settings(), Some(&standby))
        .unwrap());
    assert!(replica.inst.start(T).await.unwrap());
    let rsql = replica.inst.connect().await.unwrap();
    wait_streaming(&rsql, "beta").await;

    // Promote: the standby becomes a writable primary on timeline 2.
    replica.inst.promote(true, T).await.unwrap();
    let rp = rsql.probe().await.unwrap();
    assert!(!rp.in_recovery);
    assert_eq!(rp.timeline, 2);
    rsql.execute("INSERT INTO t VALUES ('two')").await.unwrap();
    rsql.checkpoint().await.unwrap();
    assert!(rsql.create_physical_slot("alpha").await.unwrap());

    // The old primary ran past the fork (its shutdown checkpoint): rewind, then follow.
    drop(psql);
    assert!(primary.inst.stop(StopMode::Fast, T).await.unwrap());
    assert_eq!(
        primary.inst.controldata().await.unwrap().cluster_state,
        ClusterState::ShutDown
    );
    let su_source = target_for(&primary, &replica, SUPERUSER);
    let dry = primary.inst.rewind(&su_source, true, T).await.unwrap();
    assert!(dry.rewound, "{}", dry.output);
    let report = primary.inst.rewind(&su_source, false, T).await.unwrap();
    assert!(report.rewound, "{}", report.output);
    let follow = StandbyTarget {
        upstream: target_for(&primary, &replica, REPL_USER),
        slot_name: Some("alpha".into()),
    };
    primary
        .inst
        .prepare_config(&settings(), Some(&follow))
        .unwrap();
    assert!(primary.inst.start(T).await.unwrap());
    let osql = primary.inst.connect().await.unwrap();
    wait_streaming(&osql, "alpha").await;
    wait_for("row from the new primary on the old one", T, || async {
        (count_rows(&osql).await == Some(2)).then_some(())
    })
    .await;
    let op = osql.probe().await.unwrap();
    assert!(op.in_recovery);
    assert_eq!(op.timeline, 2);

    // Slots on the old primary, now a standby, can be created and advanced.
    assert!(osql.create_physical_slot("gamma").await.unwrap());
    let pos = op.replay_lsn.unwrap();
    let advanced = osql.advance_slot("gamma", pos).await.unwrap();
    assert!(advanced.is_some());
    assert!(osql.drop_slot("gamma").await.unwrap());
    assert!(!osql.drop_slot("gamma").await.unwrap());
}

/// Fault lab seed 2030: the agent saw a postmaster die (kill -9) and ran pg_rewind at
/// once, while what the dead postmaster left behind (a zombie not yet reaped, or a
/// backend still attached to its shared memory) made pg_rewind's crash recovery refuse
/// to start; the member was re-cloned instead. A rewind clears those leftovers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_right_after_a_killed_postmaster_clears_its_leftovers() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let root = test_root();
    let primary = start_primary(root.path(), "alpha").await;
    let psql = primary.inst.connect().await.unwrap();
    assert!(psql.create_physical_slot("beta").await.unwrap());
    psql.ensure_replication_role(REPL_USER, REPL_PASSWORD)
        .await
        .unwrap();
    psql.execute("CREATE TABLE t (v text)").await.unwrap();
    let replica = node(root.path(), "beta");
    let upstream = target_for(&replica, &primary, REPL_USER);
    replica
        .inst
        .basebackup(&upstream, Some("beta"), Some(T))
        .await
        .unwrap();
    let standby = StandbyTarget {
        upstream,
        slot_name: Some("beta".into()),
    };
    replica
        .inst
        .prepare_config(&settings(), Some(&standby))
        .unwrap();
    assert!(replica.inst.start(T).await.unwrap());
    let rsql = replica.inst.connect().await.unwrap();
    wait_streaming(&rsql, "beta").await;
    replica.inst.promote(true, T).await.unwrap();
    rsql.checkpoint().await.unwrap();

    // The old primary diverges, then its postmaster is killed while one of its backends
    // is frozen (it keeps the shared memory attached, as a slow orphan would).
    psql.execute("INSERT INTO t VALUES ('diverged')")
        .await
        .unwrap();
    let backend: i32 = psql
        .query_text("SELECT pg_backend_pid()")
        .await
        .unwrap()
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .expect("backend pid");
    let pm = primary.inst.status().unwrap().expect("postmaster").pid;
    kill(Pid::from_raw(backend), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(pm as i32), Signal::SIGKILL).unwrap();
    wait_for("the postmaster to die", T, || async {
        primary.inst.status().ok()?.is_none().then_some(())
    })
    .await;
    let su_source = target_for(&primary, &replica, SUPERUSER);
    let report = primary.inst.rewind(&su_source, false, T).await;
    let _ = kill(Pid::from_raw(backend), Signal::SIGKILL);
    let report = report.expect("pg_rewind after a killed postmaster");
    assert!(report.rewound, "{}", report.output);
}

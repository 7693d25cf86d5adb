//! One instance on real PostgreSQL: data directory states, config files, stop modes and
//! pg_controldata, error reporting.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;
use pgbaton_postgres::{ClusterState, DataDirState, Error, StopMode, INCLUDE_LINE, MANAGED_CONF};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_states_and_foreign_dirs_untouched() {
    let root = test_root();
    let n = node(root.path(), "states");
    assert_eq!(n.inst.data_dir_state().unwrap(), DataDirState::Missing);
    assert_eq!(n.inst.ensure_data_dir().unwrap(), DataDirState::Missing);
    assert_eq!(n.inst.data_dir_state().unwrap(), DataDirState::Empty);
    let meta = std::fs::metadata(&n.inst.data_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    if let Some(u) = &n.inst.run_as {
        assert_eq!(meta.uid(), u.uid);
    }

    // A directory with someone else's files: every writer refuses and leaves it alone.
    let foreign = node(root.path(), "foreign");
    std::fs::create_dir(&foreign.inst.data_dir).unwrap();
    std::fs::set_permissions(
        &foreign.inst.data_dir,
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let precious = foreign.inst.data_dir.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    assert_eq!(
        foreign.inst.data_dir_state().unwrap(),
        DataDirState::NotAPostgresDir { entries: 1 }
    );
    assert!(matches!(
        foreign.inst.ensure_data_dir(),
        Err(Error::NotAPostgresDir { entries: 1, .. })
    ));
    assert!(matches!(
        foreign.inst.initdb(&initdb_opts()).await,
        Err(Error::NotAPostgresDir { .. })
    ));
    assert!(foreign.inst.prepare_config(&BTreeMap::new(), None).is_err());
    assert!(foreign.inst.wipe_data_dir().is_err());
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    let mode = std::fs::metadata(&foreign.inst.data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode untouched");
    assert_eq!(
        std::fs::read_dir(&foreign.inst.data_dir).unwrap().count(),
        1
    );

    // initdb into the empty dir, then it is initialized and initdb refuses a second time.
    n.inst.initdb(&initdb_opts()).await.unwrap();
    assert_eq!(
        n.inst.data_dir_state().unwrap(),
        DataDirState::Initialized {
            standby_signal: false,
            recovery_signal: false,
            pg_version: "15".into()
        }
    );
    assert!(matches!(
        n.inst.initdb(&initdb_opts()).await,
        Err(Error::AlreadyInitialized { .. })
    ));

    // Wipe for a re-clone: empty again, directory kept.
    n.inst.wipe_data_dir().unwrap();
    assert_eq!(n.inst.data_dir_state().unwrap(), DataDirState::Empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_stop_modes_and_controldata() {
    let root = test_root();
    let n = node(root.path(), "solo");
    n.inst.initdb(&initdb_opts()).await.unwrap();
    write_standard_hba(&n.inst);

    // Leftovers that must not win over pgbaton's settings.
    let auto = n.inst.data_dir.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap();
    text.push_str("primary_conninfo = 'host=elsewhere'\nport = '1'\nwork_mem = '8MB'\n");
    std::fs::write(&auto, text).unwrap();
    std::fs::write(n.inst.data_dir.join("standby.signal"), "").unwrap();

    assert!(n.inst.prepare_config(&settings(), None).unwrap());
    assert!(
        !n.inst.prepare_config(&settings(), None).unwrap(),
        "idempotent"
    );
    let auto_text = std::fs::read_to_string(&auto).unwrap();
    assert!(!auto_text.contains("primary_conninfo"));
    assert!(!auto_text.contains("port"));
    assert!(
        auto_text.contains("work_mem = '8MB'"),
        "DBA's other settings stay"
    );
    assert!(!n.inst.data_dir.join("standby.signal").exists());
    let conf = std::fs::read_to_string(n.inst.data_dir.join("postgresql.conf")).unwrap();
    assert_eq!(conf.matches(INCLUDE_LINE).count(), 1);
    assert!(conf.contains("max_connections = 100"), "initdb's file kept");
    let managed = n.inst.data_dir.join(MANAGED_CONF);
    let meta = std::fs::metadata(&managed).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    if let Some(u) = &n.inst.run_as {
        assert_eq!(meta.uid(), u.uid);
    }

    // Start; starting again is a no-op; the server uses our port and settings.
    assert_eq!(n.inst.status().unwrap(), None);
    assert!(n.inst.start(T).await.unwrap());
    assert!(!n.inst.start(T).await.unwrap());
    let pm = n.inst.status().unwrap().unwrap();
    assert_eq!(pm.port, Some(n.inst.port));
    assert_eq!(pm.state.as_deref(), Some("ready"));
    let sql = n.inst.connect().await.unwrap();
    assert_eq!(sql.show("port").await.unwrap(), n.inst.port.to_string());
    assert_eq!(sql.show("max_connections").await.unwrap(), "20");
    assert_eq!(sql.show("work_mem").await.unwrap(), "8MB");

    // A reloadable change: rewrite, reload, seen; nothing pending a restart.
    let mut s = settings();
    s.insert("work_mem".into(), "5MB".into());
    assert!(n.inst.prepare_config(&s, None).unwrap());
    n.inst.reload().await.unwrap();
    wait_for("work_mem reloaded", T, || async {
        let c = n.inst.connect().await.ok()?;
        (c.show("work_mem").await.ok()? == "5MB").then_some(())
    })
    .await;
    assert!(sql.pending_restart().await.unwrap().is_empty());
    drop(sql);

    // Fast stop: clean shutdown; stopping again reports "was not running".
    assert!(n.inst.stop(StopMode::Fast, T).await.unwrap());
    assert_eq!(n.inst.status().unwrap(), None);
    assert!(!n.inst.stop(StopMode::Fast, T).await.unwrap());
    let cd = n.inst.controldata().await.unwrap();
    assert_eq!(cd.cluster_state, ClusterState::ShutDown);
    assert_eq!(cd.checkpoint_timeline, 1);

    // Immediate stop: looks like a crash.
    assert!(n.inst.start(T).await.unwrap());
    assert!(n.inst.stop(StopMode::Immediate, T).await.unwrap());
    assert_eq!(
        n.inst.controldata().await.unwrap().cluster_state,
        ClusterState::InProduction
    );

    // Crash recovery on start, then a smart stop is clean again.
    assert!(n.inst.start(T).await.unwrap());
    assert!(n.inst.stop(StopMode::Smart, T).await.unwrap());
    assert!(n
        .inst
        .controldata()
        .await
        .unwrap()
        .cluster_state
        .is_clean_shutdown());

    // Fencing path: a signal, no subprocess, then wait.
    assert!(n.inst.start(T).await.unwrap());
    let pid = n.inst.signal_stop(StopMode::Fast).unwrap();
    assert!(pid.is_some());
    n.inst.wait_stopped(T).await.unwrap();
    assert_eq!(n.inst.signal_stop(StopMode::Fast).unwrap(), None);

    // A failing start says why, with the server log.
    let mut bad = settings();
    bad.insert("shared_buffers".into(), "lots".into());
    n.inst.prepare_config(&bad, None).unwrap();
    let err = n.inst.start(Duration::from_secs(10)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("start PostgreSQL failed"), "{msg}");
    assert!(msg.contains("shared_buffers"), "{msg}");
}

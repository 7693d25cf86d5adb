//! Role passwords never reach PostgreSQL as clear text (security review F10): they are
//! sent as SCRAM-SHA-256 verifiers, so even `log_statement = all` logs no password,
//! and the role still logs in with it.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_passwords_are_sent_as_scram_verifiers_and_never_logged() {
    let root = test_root();
    let mut settings = settings();
    settings.insert("log_statement".into(), "all".into());
    settings.insert("log_min_error_statement".into(), "info".into());
    let n = node(root.path(), "alpha");
    n.inst.initdb(&initdb_opts()).await.unwrap();
    let lines = pgbaton_postgres::standard_hba(
        SUPERUSER,
        REPL_USER,
        &["127.0.0.1".to_string()],
        &["host postgres repl2 127.0.0.1/32 scram-sha-256".to_string()],
    )
    .unwrap();
    n.inst.write_hba(&lines).unwrap();
    n.inst.prepare_config(&settings, None).unwrap();
    assert!(n.inst.start(Duration::from_secs(30)).await.unwrap());
    let sql = n.inst.connect().await.unwrap();

    let secret = "Zq7-very-secret-password";
    assert!(sql.ensure_replication_role("repl2", secret).await.unwrap());
    assert!(!sql.ensure_replication_role("repl2", secret).await.unwrap());
    assert!(sql.ensure_rewind_role("rewinder", secret).await.unwrap());

    let rows = sql
        .query_text("SELECT rolpassword FROM pg_authid WHERE rolname = 'repl2'")
        .await
        .unwrap();
    let stored = rows[0][0].clone().unwrap_or_default();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");

    // The role logs in with the password.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=repl2 password={secret} dbname=postgres",
        n.inst.port
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("log in with the password");
    tokio::spawn(conn);
    drop(client);

    let log = std::fs::read_to_string(&n.inst.log_file).unwrap();
    assert!(log.contains("repl2"), "log_statement = all is on");
    assert!(!log.contains(secret), "the password is in the server log");
}

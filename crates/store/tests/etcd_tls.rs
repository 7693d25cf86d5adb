//! The etcd backend over TLS with client-certificate authentication, against a real etcd
//! started here with certificates made by the `openssl` CLI.

use pgbaton_store::etcd::{EtcdOptions, EtcdStore, EtcdTls};
use pgbaton_store::{Expect, Store, StoreError};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills etcd when the test ends, however it ends.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all in `dir`.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pgbaton-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .expect("write client.ext");
    for (name, cn) in [("server", "127.0.0.1"), ("client", "pgbaton")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn start_etcd(dir: &Path) -> (Etcd, String) {
    let (client, peer) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("etcd.log")).expect("create etcd.log");
    let p = |f: &str| dir.join(f).display().to_string();
    let child = Command::new("etcd")
        .args(["--name", "tls0", "--data-dir", &p("data")])
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("tls0={peer_url}")])
        .args([
            "--cert-file",
            &p("server.pem"),
            "--key-file",
            &p("server.key"),
        ])
        .args(["--client-cert-auth", "--trusted-ca-file", &p("ca.pem")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd (apt-get install -y etcd-server)");
    (Etcd(child), url)
}

fn tls_opts(url: &str, dir: &Path, ca: bool, client_cert: bool) -> EtcdOptions {
    let mut o = EtcdOptions::new(vec![url.to_string()], "tls");
    o.call_timeout = Duration::from_secs(2);
    let f = |n: &str| Some(dir.join(n));
    o.tls = Some(EtcdTls {
        ca_file: if ca { f("ca.pem") } else { None },
        cert_file: if client_cert { f("client.pem") } else { None },
        key_file: if client_cert { f("client.key") } else { None },
    });
    o
}

fn log_tail(dir: &Path) -> String {
    let s = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
    s.lines().rev().take(15).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    make_certs(&dir);
    let (_etcd, url) = start_etcd(&dir);

    let s = EtcdStore::connect(tls_opts(&url, &dir, true, true))
        .await
        .unwrap();
    // Wait for etcd to serve, through TLS.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match s.snapshot().await {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "etcd over TLS never answered: {e}\n{}",
                log_tail(&dir)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(s.put("config", "{}", None, Expect::Absent).await.unwrap());
    assert_eq!(s.get("config").await.unwrap().unwrap().value, "{}");
    let lease = s.grant_lease(Duration::from_secs(5)).await.unwrap();
    assert!(s
        .put("leader", "n1", Some(lease), Expect::Absent)
        .await
        .unwrap());
    assert!(!s.put("leader", "n2", None, Expect::Absent).await.unwrap());
    assert!(s
        .put("leader", "n1", Some(lease), Expect::Value("n1".into()))
        .await
        .unwrap());
    s.keep_alive(lease).await.unwrap();
    assert_eq!(s.get("leader").await.unwrap().unwrap().lease, Some(lease));
    s.revoke_lease(lease).await.unwrap();
    assert!(s.get("leader").await.unwrap().is_none());

    // Without the client certificate, etcd (--client-cert-auth) refuses the handshake.
    // With TLS 1.3 the client learns it only as a closed connection ("BadCertificate"
    // alert, broken pipe or "connection closed", by timing), so only the failure is
    // checked here.
    let no_cert = EtcdStore::connect(tls_opts(&url, &dir, true, false))
        .await
        .unwrap();
    match no_cert.get("config").await {
        Err(StoreError::Unreachable(m)) | Err(StoreError::Other(m)) => {
            eprintln!("refused as expected: {m}");
            assert!(m.contains("etcd get failed"), "{m}")
        }
        other => panic!("expected a failure without client certificate, got {other:?}"),
    }

    // Without the CA, the client refuses to connect at all.
    let err = EtcdStore::connect(tls_opts(&url, &dir, false, true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("store.etcd.tls.ca"), "{err}");

    // An untrusted CA: the server certificate does not verify.
    std::fs::copy(dir.join("client.pem"), dir.join("other-ca.pem")).unwrap();
    let mut o = tls_opts(&url, &dir, true, true);
    if let Some(t) = o.tls.as_mut() {
        t.ca_file = Some(dir.join("other-ca.pem"));
    }
    let wrong_ca = EtcdStore::connect(o).await.unwrap();
    match wrong_ca.get("config").await {
        Err(StoreError::Unreachable(m)) | Err(StoreError::Other(m)) => {
            eprintln!("refused as expected: {m}");
            assert!(
                m.contains("etcd get failed") && m.to_lowercase().contains("certificate"),
                "{m}"
            )
        }
        other => panic!("expected a failure with an untrusted CA, got {other:?}"),
    }

    // An unreadable file is named with its key and path.
    let mut o = tls_opts(&url, &dir, true, true);
    if let Some(t) = o.tls.as_mut() {
        t.key_file = Some(dir.join("missing.key"));
    }
    let err = EtcdStore::connect(o).await.unwrap_err().to_string();
    assert!(
        err.contains("store.etcd.tls.key") && err.contains("missing.key"),
        "{err}"
    );
}

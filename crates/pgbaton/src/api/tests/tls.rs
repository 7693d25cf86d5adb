//! HTTPS: `api::spawn` with `api.tls` serves over TLS with a self-signed certificate made
//! by the `openssl` CLI, refuses plain HTTP on that port, and names bad files.

use super::primary;
use crate::api::{spawn, AgentSnapshot, ApiContext};
use pgbaton_config::ApiTls;
use pgbaton_store::local::LocalStore;
use pgbaton_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_rustls::rustls;

const OPENSSL_CNF: &str = "[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = localhost
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
";

/// Write a self-signed certificate for 127.0.0.1 and its key into `dir`.
fn make_cert(dir: &Path) -> ApiTls {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(&cnf, OPENSSL_CNF).expect("write openssl.cnf");
    let tls = ApiTls {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: None,
    };
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .arg("-config")
        .arg(&cnf)
        .arg("-keyout")
        .arg(&tls.key)
        .arg("-out")
        .arg(&tls.cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {out:?}");
    tls
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A context whose config listens on `port` with `tls`, over a local store in `dir`.
fn context(dir: &Path, port: u16, tls: Option<ApiTls>) -> ApiContext {
    let store_dir = dir.join("store");
    let text =
        pgbaton_config::render_example("test", "node1", &dir.join("data"), &store_dir, 55432, port);
    let config_path = dir.join("node1.yaml");
    std::fs::write(&config_path, &text).expect("write config");
    let mut cfg = pgbaton_config::parse(&text, "node1.yaml").expect("example config parses");
    cfg.api.tls = tls;
    let store: Arc<dyn Store> = Arc::new(
        LocalStore::open(&store_dir, "test", Duration::from_millis(500)).expect("open store"),
    );
    let (_tx, rx) = watch::channel::<AgentSnapshot>(primary(Instant::now()));
    ApiContext {
        snapshot: rx,
        store,
        cfg,
        config_path,
        reload: None,
    }
}

/// GET `path` over TLS, trusting only `cert`; the raw answer.
async fn https_get(port: u16, cert: &Path, path: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("cert pem")).expect("add root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // The server may close without close_notify; what was read so far is the answer.
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn serves_https_and_refuses_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = make_cert(dir.path());
    let port = free_port();
    let ctx = context(dir.path(), port, Some(tls.clone()));
    assert_eq!(ctx.cfg.api_url(), format!("https://127.0.0.1:{port}"));
    spawn(ctx).await.expect("spawn with TLS");

    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        https_get(port, &tls.cert, "/health"),
    )
    .await
    .expect("HTTPS answer in time");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("running"), "{answer}");

    let plain = tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    })
    .await
    .expect("the server closes a plain-HTTP connection in time");
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&plain)
    );
}

async fn spawn_error(tls: ApiTls) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path(), free_port(), Some(tls));
    match spawn(ctx).await {
        Ok(()) => panic!("spawn should fail"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn missing_or_bad_files_fail_spawn_naming_key_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = make_cert(dir.path());

    let missing = PathBuf::from("/nonexistent/pgbaton/cert.pem");
    let e = spawn_error(ApiTls {
        cert: missing.clone(),
        key: good.key.clone(),
        client_ca: None,
    })
    .await;
    assert!(
        e.contains("api.tls.cert") && e.contains(missing.to_str().expect("utf8")),
        "{e}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").expect("write");
    let e = spawn_error(ApiTls {
        cert: good.cert.clone(),
        key: garbage.clone(),
        client_ca: None,
    })
    .await;
    assert!(
        e.contains("api.tls.key") && e.contains(garbage.to_str().expect("utf8")),
        "{e}"
    );

    let e = spawn_error(ApiTls {
        cert: garbage.clone(),
        key: good.key.clone(),
        client_ca: None,
    })
    .await;
    assert!(
        e.contains("api.tls.cert") && e.contains(garbage.to_str().expect("utf8")),
        "{e}"
    );

    // The certificate in place of the key: no private key in it.
    let e = spawn_error(ApiTls {
        cert: good.cert.clone(),
        key: good.cert.clone(),
        client_ca: None,
    })
    .await;
    assert!(e.contains("api.tls.key"), "{e}");
}

/// Make a CA and a client certificate it signs in `dir`: (ca.pem, client.pem, client.key).
fn make_client_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "1",
        "-subj",
        "/CN=pgbaton-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=operator",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "client.pem",
        "-extfile",
        "client.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("client.pem"),
        dir.join("client.key"),
    )
}

/// `method path` over TLS with an optional client certificate; the raw answer, or the
/// error text when the handshake or the exchange failed.
async fn https_request(
    port: u16,
    server_cert: &Path,
    client: Option<(&Path, &Path)>,
    method: &str,
    path: &str,
) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server_cert).expect("read cert") {
        roots.add(c.expect("cert pem")).expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .expect("client cert")
                .map(|c| c.expect("pem"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return format!("handshake failed: {e}"),
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    if let Err(e) = tls.write_all(req.as_bytes()).await {
        return format!("write failed: {e}");
    }
    let mut out = Vec::new();
    if let Err(e) = tls.read_to_end(&mut out).await {
        if out.is_empty() {
            return format!("read failed: {e}");
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn client_certificates_guard_the_control_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tls = make_cert(dir.path());
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir(&ca_dir).expect("mkdir");
    let (ca, client_cert, client_key) = make_client_ca(&ca_dir);
    tls.client_ca = Some(ca);
    let port = free_port();
    spawn(context(dir.path(), port, Some(tls.clone())))
        .await
        .expect("spawn with client_ca");
    let within = |f| tokio::time::timeout(Duration::from_secs(10), f);

    // Reads need no certificate (load balancers, Prometheus).
    let r = within(https_request(port, &tls.cert, None, "GET", "/health"))
        .await
        .expect("in time");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A control request without one: 401, naming the fix.
    let r = within(https_request(port, &tls.cert, None, "POST", "/reload"))
        .await
        .expect("in time");
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.contains("api.tls.client_ca"), "{r}");
    // With a certificate the CA signed: through.
    let with = Some((client_cert.as_path(), client_key.as_path()));
    let r = within(https_request(port, &tls.cert, with, "POST", "/reload"))
        .await
        .expect("in time");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A certificate from another CA (the server's own self-signed one): refused.
    let other = Some((tls.cert.as_path(), tls.key.as_path()));
    let r = within(https_request(port, &tls.cert, other, "POST", "/reload"))
        .await
        .expect("in time");
    assert!(!r.starts_with("HTTP/1.1 200"), "{r}");
}

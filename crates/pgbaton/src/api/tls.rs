//! HTTPS for the API when `api.tls` is set: loads the PEM files (naming the config key
//! and path of whichever is missing or bad) into the rustls acceptor `listener.rs`
//! serves through.

use pgbaton_config::ApiTls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Why the API's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The config key (`api.tls.cert` or `api.tls.key`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{key}: {} holds no {what} in PEM format", path.display())]
    Pem {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. "certificate".
        what: &'static str,
    },
    /// rustls refused the pair (e.g. an unsupported key type).
    #[error("api.tls.cert {} and api.tls.key {}: rustls refused them: {source}", cert.display(), key.display())]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: std::io::Error,
    },
}

/// Read and check `tls.cert`, `tls.key` and `tls.client_ca`, and build the acceptor.
///
/// The caller must do this before it reports the API as serving: every failure names the
/// config key and the file. With `client_ca`, clients may present a certificate (it must
/// then be signed by that CA, or the handshake fails); whether one was presented is
/// checked per request (see `auth::require_client_cert`).
pub async fn load(tls: &ApiTls) -> Result<TlsAcceptor, TlsError> {
    let cert = read("api.tls.cert", &tls.cert)?;
    let key = read("api.tls.key", &tls.key)?;
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(pem_error("api.tls.cert", &tls.cert, "certificate"));
    }
    let Ok(private) = PrivateKeyDer::from_pem_slice(&key) else {
        return Err(pem_error("api.tls.key", &tls.key, "private key"));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let refused = |e: String| TlsError::Refused {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        source: std::io::Error::other(e),
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = read("api.tls.client_ca", path)?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(pem_error("api.tls.client_ca", path, "CA certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| refused(format!("api.tls.client_ca: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, private)
        .map_err(|e| refused(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(key: &'static str, path: &Path, what: &'static str) -> TlsError {
    TlsError::Pem {
        key,
        path: path.to_path_buf(),
        what,
    }
}

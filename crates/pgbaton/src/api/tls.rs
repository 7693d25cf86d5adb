//! HTTPS for the API when `api.tls` is set: loads the PEM files (naming the config key
//! and path of whichever is missing or bad) into the rustls acceptor `listener.rs`
//! serves through.

use axum_server::tls_rustls::RustlsConfig;
use pgbaton_config::ApiTls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
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

/// Read and check `tls.cert` and `tls.key`, and build the server's TLS config.
///
/// The caller must do this before it reports the API as serving: every failure names the
/// config key and the file.
pub async fn load(tls: &ApiTls) -> Result<TlsAcceptor, TlsError> {
    let cert = read("api.tls.cert", &tls.cert)?;
    let key = read("api.tls.key", &tls.key)?;
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(pem_error("api.tls.cert", &tls.cert, "certificate"));
    }
    if PrivateKeyDer::from_pem_slice(&key).is_err() {
        return Err(pem_error("api.tls.key", &tls.key, "private key"));
    }
    let config = RustlsConfig::from_pem(cert, key)
        .await
        .map_err(|source| TlsError::Refused {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            source,
        })?;
    Ok(TlsAcceptor::from(config.get_inner()))
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

//! Turning the configured TLS files into the gRPC channel's TLS settings (rustls), with
//! errors that name the config key and the file.

use super::options::EtcdTls;
use crate::{Result, StoreError};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Build the client TLS options from `tls`. The CA must be given (this build trusts no
/// system roots); `cert` and `key` must be given together. Fails with `Other` naming the
/// `store.etcd.tls.*` key and path of a missing or unreadable file.
pub(crate) fn tls_options(tls: &EtcdTls) -> Result<ClientTlsConfig> {
    let ca = tls.ca_file.as_deref().ok_or_else(|| {
        StoreError::Other(
            "store.etcd.tls.ca is required with TLS to etcd (no system trust roots are used)"
                .into(),
        )
    })?;
    let mut opts = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca", ca)?));
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            opts = opts.identity(Identity::from_pem(read("cert", cert)?, read("key", key)?));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(StoreError::Other(
                "store.etcd.tls.cert is set without store.etcd.tls.key".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(StoreError::Other(
                "store.etcd.tls.key is set without store.etcd.tls.cert".into(),
            ))
        }
    }
    Ok(opts)
}

/// Read the PEM file of `store.etcd.tls.<name>`.
fn read(name: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        StoreError::Other(format!(
            "cannot read store.etcd.tls.{name} {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tls(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> EtcdTls {
        EtcdTls {
            ca_file: ca.map(PathBuf::from),
            cert_file: cert.map(PathBuf::from),
            key_file: key.map(PathBuf::from),
        }
    }

    fn err(t: &EtcdTls) -> String {
        match tls_options(t) {
            Err(StoreError::Other(m)) => m,
            other => panic!("expected Other, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn missing_ca_is_refused() {
        assert!(err(&tls(None, None, None)).contains("store.etcd.tls.ca"));
    }

    #[test]
    fn unreadable_file_names_key_and_path() {
        let m = err(&tls(Some("/nonexistent/ca.pem"), None, None));
        assert!(
            m.contains("store.etcd.tls.ca") && m.contains("/nonexistent/ca.pem"),
            "{m}"
        );
    }

    #[test]
    fn cert_without_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").expect("write");
        let ca = ca.to_str().expect("utf-8");
        assert!(err(&tls(Some(ca), Some("/c.pem"), None)).contains("store.etcd.tls.key"));
        assert!(err(&tls(Some(ca), None, Some("/k.pem"))).contains("store.etcd.tls.cert"));
    }
}

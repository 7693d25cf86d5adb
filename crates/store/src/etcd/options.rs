//! How to reach etcd: endpoints, credentials, TLS files, key prefix and call deadline.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The default root of pgbaton's keys in etcd.
pub const DEFAULT_PREFIX: &str = "/pgbaton";

/// The default deadline of one etcd call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Paths of PEM files for TLS to etcd.
///
/// Files are read by [`super::EtcdStore::connect`]. `ca_file` is required (no system
/// trust roots are used); `cert_file` and `key_file` go together and enable client
/// certificate authentication. All endpoints must then be `https://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificate that signed the etcd server certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for client-certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Connection settings of [`super::EtcdStore`].
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`; the client balances over them and
    /// moves away from dead ones.
    pub endpoints: Vec<String>,
    /// User name for etcd authentication; needs `password`.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// TLS files; see [`EtcdTls`]. When set, every endpoint must be `https://`.
    pub tls: Option<EtcdTls>,
    /// Root of pgbaton's keys (default [`DEFAULT_PREFIX`]); keys live under
    /// `<prefix>/<cluster>/`.
    pub prefix: String,
    /// Cluster name: the namespace under `prefix`.
    pub cluster: String,
    /// Deadline of every call; a call not answered in time is `StoreError::Unreachable`.
    pub call_timeout: Duration,
}

impl EtcdOptions {
    /// Options for `cluster` at `endpoints` with the default prefix and call timeout and
    /// neither authentication nor TLS.
    pub fn new(endpoints: Vec<String>, cluster: &str) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            username: None,
            password: None,
            tls: None,
            prefix: DEFAULT_PREFIX.to_string(),
            cluster: cluster.to_string(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// `<prefix>/<cluster>/`: the etcd key prefix of this cluster's namespace.
    pub fn namespace(&self) -> String {
        format!("{}/{}/", self.prefix.trim_end_matches('/'), self.cluster)
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_has_one_slash_between_parts() {
        let mut o = EtcdOptions::new(vec![], "main");
        assert_eq!(o.namespace(), "/pgbaton/main/");
        o.prefix = "/service/".into();
        assert_eq!(o.namespace(), "/service/main/");
    }

    #[test]
    fn debug_hides_the_password() {
        let mut o = EtcdOptions::new(vec![], "main");
        o.password = Some("s3cret".into());
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}

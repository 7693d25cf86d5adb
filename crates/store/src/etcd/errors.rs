//! The errors of the etcd client, sorted into the store's two kinds of failure (plus
//! lease loss), and telling which failed requests certainly never reached etcd.

use crate::{LeaseId, StoreError};
use std::fmt;
use tonic::{Code, Status};

/// Why one etcd call failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// etcd (or the transport, as code Unavailable) answered with a gRPC status.
    Status(Status),
    /// The channel could not take the request.
    Transport(tonic::transport::Error),
    /// A lease keep-alive was answered with TTL 0: the lease does not exist.
    LeaseNotFound,
    /// Logging in with user and password failed.
    Login { user: String, status: Status },
    /// A stream ended or answered in a way etcd never does when healthy.
    Stream(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(s) => write_status(f, s),
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::LeaseNotFound => write!(f, "lease not found"),
            Error::Login { user, status } => {
                write!(
                    f,
                    "login as etcd user {user:?} (store.etcd.username) failed: "
                )?;
                write_status(f, status)
            }
            Error::Stream(m) => write!(f, "{m}"),
        }
    }
}

/// A status as "message (code)", with the root cause of transport failures.
fn write_status(f: &mut fmt::Formatter<'_>, s: &Status) -> fmt::Result {
    write!(f, "{} ({:?})", s.message(), s.code())?;
    let mut cur = std::error::Error::source(s);
    let mut last = None;
    while let Some(e) = cur {
        last = Some(e);
        cur = e.source();
    }
    match last {
        Some(root) if !s.message().contains(&root.to_string()) => write!(f, ": {root}"),
        _ => Ok(()),
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error::Status(s)
    }
}

/// True when etcd says the lease does not exist (expired or revoked).
pub(crate) fn is_lease_not_found(e: &Error) -> bool {
    match e {
        Error::Status(s) => s.code() == Code::NotFound && s.message().contains("lease not found"),
        Error::LeaseNotFound => true,
        _ => false,
    }
}

/// True when the error means "no answer from this endpoint" (transport failures and the
/// gRPC codes etcd uses for "no leader / try again / timed out") rather than a refusal
/// that retrying cannot fix (auth, bad arguments).
pub(crate) fn is_unreachable(e: &Error) -> bool {
    match e {
        Error::Transport(_) | Error::Stream(_) => true,
        Error::Status(s) | Error::Login { status: s, .. } => !matches!(
            s.code(),
            Code::InvalidArgument
                | Code::NotFound
                | Code::AlreadyExists
                | Code::PermissionDenied
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::Unimplemented
                | Code::Unauthenticated
        ),
        Error::LeaseNotFound => false,
    }
}

/// True when the request certainly never reached etcd (no connection could be made),
/// so it is safe to send it to another endpoint even if it is a write.
pub(crate) fn not_sent(e: &Error) -> bool {
    use std::io::ErrorKind::{
        AddrNotAvailable, ConnectionRefused, HostUnreachable, NetworkUnreachable,
    };
    let root: &(dyn std::error::Error + 'static) = match e {
        Error::Status(s) => s,
        Error::Transport(t) => t,
        // A failed login sent nothing but the login.
        Error::Login { .. } => return is_unreachable(e),
        _ => return false,
    };
    let mut cur = Some(root);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                return true;
            }
        }
        if err.to_string().contains("tcp connect error") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Map an error of the call `what` to a store error.
pub(crate) fn map_error(what: &str, e: Error) -> StoreError {
    if is_unreachable(&e) {
        StoreError::Unreachable(format!("etcd {what} failed: {e}"))
    } else {
        StoreError::Other(format!("etcd {what} failed: {e}"))
    }
}

/// Like [`map_error`], but a missing lease becomes `LeaseExpired(lease)`.
pub(crate) fn map_lease_error(what: &str, lease: LeaseId, e: Error) -> StoreError {
    if is_lease_not_found(&e) {
        StoreError::LeaseExpired(lease)
    } else {
        map_error(what, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let nf = Error::Status(Status::not_found("etcdserver: requested lease not found"));
        assert!(is_lease_not_found(&nf));
        assert!(matches!(
            map_lease_error("put", LeaseId(7), nf),
            StoreError::LeaseExpired(LeaseId(7))
        ));
        assert!(matches!(
            map_lease_error("keep-alive", LeaseId(7), Error::LeaseNotFound),
            StoreError::LeaseExpired(LeaseId(7))
        ));
        let down = Error::Status(Status::unavailable("etcdserver: leader changed"));
        assert!(!not_sent(&down));
        assert!(matches!(map_error("get", down), StoreError::Unreachable(_)));
        let auth = Error::Status(Status::permission_denied("denied"));
        assert!(matches!(map_error("get", auth), StoreError::Other(_)));
        let refused = Error::Status(Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))));
        assert!(not_sent(&refused));
        let bad_login = Error::Login {
            user: "pgbaton".into(),
            status: Status::invalid_argument(
                "etcdserver: authentication failed, invalid user ID or password",
            ),
        };
        let m = map_error("get", bad_login).to_string();
        assert!(
            m.contains("store.etcd.username") && m.contains("invalid user ID or password"),
            "{m}"
        );
    }
}

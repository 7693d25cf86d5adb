//! Sorting etcd client errors into the store's two kinds of failure (plus lease loss),
//! and telling which failed requests certainly never reached etcd.

use crate::{LeaseId, StoreError};
use etcd_client::Error;
use tonic::Code;

/// True when etcd says the lease does not exist (expired or revoked).
pub(crate) fn is_lease_not_found(e: &Error) -> bool {
    match e {
        Error::GRpcStatus(s) => {
            s.code() == Code::NotFound && s.message().contains("lease not found")
        }
        Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

/// True when the error means "no answer from this endpoint" (transport failures and the
/// gRPC codes etcd uses for "no leader / try again / timed out") rather than a refusal
/// that retrying cannot fix (auth, bad arguments).
pub(crate) fn is_unreachable(e: &Error) -> bool {
    match e {
        Error::TransportError(_) | Error::IoError(_) => true,
        Error::WatchError(_) | Error::LeaseKeepAliveError(_) => !is_lease_not_found(e),
        Error::GRpcStatus(s) => !matches!(
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
        _ => false,
    }
}

/// True when the request certainly never reached etcd (no connection could be made),
/// so it is safe to send it to another endpoint even if it is a write.
pub(crate) fn not_sent(e: &Error) -> bool {
    use std::io::ErrorKind::{
        AddrNotAvailable, ConnectionRefused, HostUnreachable, NetworkUnreachable,
    };
    let root: &(dyn std::error::Error + 'static) = match e {
        Error::GRpcStatus(s) => s,
        Error::TransportError(t) => t,
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
        let nf = Error::GRpcStatus(tonic::Status::not_found(
            "etcdserver: requested lease not found",
        ));
        assert!(is_lease_not_found(&nf));
        assert!(matches!(
            map_lease_error("put", LeaseId(7), nf),
            StoreError::LeaseExpired(LeaseId(7))
        ));
        let down = Error::GRpcStatus(tonic::Status::unavailable("etcdserver: leader changed"));
        assert!(!not_sent(&down));
        assert!(matches!(map_error("get", down), StoreError::Unreachable(_)));
        let auth = Error::GRpcStatus(tonic::Status::permission_denied("denied"));
        assert!(matches!(map_error("get", auth), StoreError::Other(_)));
        let refused = Error::GRpcStatus(tonic::Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))));
        assert!(not_sent(&refused));
    }
}

//! Sorting etcd client errors into the store's two kinds of failure (plus lease loss).

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

/// Map an error of the call `what` to a store error. Transport failures and the gRPC
/// codes etcd uses for "no leader / try again / timed out" are `Unreachable`; refusals
/// that retrying cannot fix (auth, bad arguments) are `Other`.
pub(crate) fn map_error(what: &str, e: Error) -> StoreError {
    let unreachable = match &e {
        Error::TransportError(_) | Error::IoError(_) => true,
        Error::WatchError(_) | Error::LeaseKeepAliveError(_) => true,
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
    };
    if unreachable {
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
        assert!(matches!(map_error("get", down), StoreError::Unreachable(_)));
        let auth = Error::GRpcStatus(tonic::Status::permission_denied("denied"));
        assert!(matches!(map_error("get", auth), StoreError::Other(_)));
    }
}

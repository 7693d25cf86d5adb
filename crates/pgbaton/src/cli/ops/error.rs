//! Why an operator request was refused, by kind, so the HTTP API can answer with the
//! matching status code and the CLI can print the same sentence.

/// A refused or failed request. The message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request itself is malformed (e.g. a bad time): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The cluster's state does not allow it (unknown, down or lagging candidate, no
    /// healthy primary, paused): HTTP 412.
    #[error("{0}")]
    Refused(String),
    /// It clashes with another request or with the current primary: HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// There is nothing to act on (e.g. no switchover to cancel): HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// The store did not answer: HTTP 503. A write may or may not have happened.
    #[error("{0}")]
    Store(String),
    /// A value in the store is damaged: HTTP 500.
    #[error("{0}")]
    Damaged(String),
}

//! Why an API request failed, as a typed error that renders to a JSON answer.

use crate::cli::ops::RequestError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A failed request. Every variant renders as `{"error": "...", "problems": [...]}`
/// with the matching status code; the message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong (bad JSON, bad parameter, invalid config): 400.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// One line per problem, when there are several (e.g. config validation).
        problems: Vec<String>,
    },
    /// Nothing to act on (e.g. no switchover to cancel): 404.
    #[error("{0}")]
    NotFound(String),
    /// A compare-and-set lost against a concurrent change, or the request clashes with
    /// another request or the current primary: 409.
    #[error("{0}")]
    Conflict(String),
    /// The cluster's state does not allow the request (unknown, down or lagging
    /// candidate, no healthy primary, paused): 412.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A dependency (the store) did not answer in time: 503.
    #[error("{0}")]
    Unavailable(String),
    /// Something on our side is broken (e.g. damaged data in the store): 500.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a single message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        match e {
            RequestError::Invalid(m) => ApiError::bad_request(m),
            RequestError::Refused(m) => ApiError::PreconditionFailed(m),
            RequestError::Conflict(m) => ApiError::Conflict(m),
            RequestError::NotFound(m) => ApiError::NotFound(m),
            RequestError::Store(m) => ApiError::Unavailable(m),
            RequestError::Damaged(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let ApiError::BadRequest { problems, .. } = &self {
            if !problems.is_empty() {
                body["problems"] = serde_json::json!(problems);
            }
        }
        (status, Json(body)).into_response()
    }
}

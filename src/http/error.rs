//! Errors at the HTTP edge, as JSON bodies with a status code. Internals never leak.

use crate::protocol::rest::{ErrorBody, ErrorDetail};
use crate::registry::admission::Refusal;
use crate::registry::LookupError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("the server is at its limit of {0} concurrent sessions; try again later")]
    TooManySessions(usize),
    #[error("the server is at capacity ({}); try again in {} s", .0.reason, .0.retry_after_s)]
    AtCapacity(Refusal),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("no session with id `{0}`")]
    SessionNotFound(String),
    #[error("session `{0}` has already ended")]
    SessionEnded(String),
    #[error("the transcript store failed")]
    Store(#[from] LookupError),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this API key already holds its limit of {0} live sessions; close one first")]
    KeySessionLimit(usize),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::TooManySessions(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
            Self::AtCapacity(_) => (StatusCode::SERVICE_UNAVAILABLE, "at_capacity"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::SessionNotFound(_) => (StatusCode::NOT_FOUND, "session_not_found"),
            Self::SessionEnded(_) => (StatusCode::CONFLICT, "session_ended"),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::KeySessionLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "key_session_limit"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Store(cause) = &self {
            // The cause chain goes to the log only; the client gets the plain message.
            tracing::error!(error = %crate::logging::chain(cause), "transcript store failed");
        }
        let (status, code) = self.status_and_code();
        let body = ErrorBody { error: ErrorDetail { code: code.into(), message: self.to_string() } };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            // Load balancers and clients back off by this header.
            Self::AtCapacity(refusal) => _ = headers.insert(header::RETRY_AFTER, refusal.retry_after_s.into()),
            Self::Unauthorized(_) => _ = headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            _ => {}
        }
        response
    }
}

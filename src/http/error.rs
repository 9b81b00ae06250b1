//! Errors at the HTTP edge, as JSON bodies with a status code. Internals never leak.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("the server is at its limit of {0} concurrent sessions; try again later")]
    TooManySessions(usize),
    #[error("the server is at capacity ({}); try again in {} s", .0.reason, .0.retry_after_s)]
    AtCapacity(crate::session::admission::Refusal),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("no session with id `{0}`")]
    SessionNotFound(String),
    #[error("session `{0}` has already ended")]
    SessionEnded(String),
    #[error("the transcript store failed")]
    Store(String),
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Store(cause) = &self {
            tracing::error!(%cause, "transcript store failed");
        }
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        if let Self::AtCapacity(refusal) = &self {
            // Load balancers and clients back off by this header.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, refusal.retry_after_s.into());
        }
        response
    }
}

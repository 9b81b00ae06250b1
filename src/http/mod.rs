//! The HTTP edge: the router, the WebSocket upgrade, and error responses.

mod auth;
mod error;
mod extract;
mod key_limits;
mod metrics;
mod openai;
pub mod openapi;
mod page;
mod realtime;
mod routes;
mod state;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;
pub use state::AppState;

pub fn router(state: AppState) -> Router {
    // Checked against Content-Length before the body is read, and while it streams in.
    let upload_limit = axum::extract::DefaultBodyLimit::max(state.config().limits.max_upload_bytes);
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{name}", get(page::asset))
        .route("/health", get(routes::health))
        .route("/health/detailed", get(routes::health_detailed))
        .route("/health/ready", get(routes::health_ready))
        .route("/sessions", get(routes::list_sessions))
        .route("/sessions/{id}", get(routes::get_session).delete(routes::delete_session))
        .route("/sessions/{id}/transcript", get(routes::get_transcript))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::page))
        .route("/stats", get(routes::stats))
        .route("/stats/workers", get(routes::worker_stats))
        .route("/stats/aggregator", get(routes::aggregator_stats))
        .route("/v1/listen", get(ws::listen))
        .route("/v1/realtime", get(realtime::realtime))
        .route("/v1/models", get(openai::models))
        .route("/v1/audio/transcriptions", post(openai::transcriptions).layer(upload_limit))
        .route("/v1/audio/translations", post(openai::translations).layer(upload_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .with_state(state)
}

/// Serves until `signal` resolves, then tells sessions to drain and waits for them (up to the
/// configured grace period) before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = state.session_slots.clone();
    let config = state.config.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let notify = async move {
        signal.await;
        tracing::info!("shutting down: draining sessions");
        let _ = shutdown_tx.send(true);
    };
    axum::serve(listener, app).with_graceful_shutdown(notify).await?;
    // Upgraded sockets outlive the HTTP server: wait until every session gave back its slot.
    let (grace, max_sessions) = {
        let c = config.borrow();
        (Duration::from_secs(c.server.shutdown_grace_s), c.limits.max_sessions)
    };
    let all = tokio::time::timeout(grace, slots.acquire_many(max_sessions as u32)).await;
    if all.is_err() {
        tracing::warn!(grace_s = grace.as_secs(), "sessions still open after the grace period");
    }
    Ok(())
}

//! The HTTP edge: the router, the WebSocket upgrade, and error responses.

mod auth;
mod error;
pub mod openapi;
mod routes;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use error::ApiError;

use crate::config::Config;
use crate::engine::asr::AsrHandle;
use crate::engine::diarize::DiarizeHandle;
use crate::pipeline::vad::VadModel;
use crate::session::aggregate::AggregatorStats;
use crate::session::registry::SessionRegistry;

/// Shared state behind every route; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The running configuration; a reload replaces it for new sessions and requests.
    pub config: Arc<watch::Sender<Arc<Config>>>,
    pub asr: AsrHandle,
    pub diarize: Option<DiarizeHandle>,
    pub aggregator: Arc<AggregatorStats>,
    pub vad: VadModel,
    /// One permit per live session: the hard limit (`limits.max_sessions`).
    pub session_slots: Arc<Semaphore>,
    /// Load-aware admission of streams, and the load figures.
    pub admission: Arc<crate::session::admission::Admission>,
    pub shutdown: watch::Receiver<bool>,
    pub registry: Arc<SessionRegistry>,
    pub started: std::time::Instant,
    /// 1 at start, one more for each reload that changed something.
    pub config_version: Arc<std::sync::atomic::AtomicU64>,
    /// Changes the log filter on reload; `None` when fixed on the command line (or in tests).
    pub log: Option<crate::logging::LogHandle>,
}

impl AppState {
    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The load as admission sees it for a stream with the default settings (speakers on
    /// where the server has them): what readiness, `/stats` and `/metrics` report.
    pub fn load_status(&self) -> crate::session::admission::LoadStatus {
        self.admission.status(&self.config().admission, self.diarize.is_some())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
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

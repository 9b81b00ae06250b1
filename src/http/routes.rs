//! REST endpoints: health, sessions and statistics.

use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::session::registry::TerminateError;

/// `GET /health/detailed`: each component's state; 503 when a required one is down.
pub async fn health_detailed(State(state): State<AppState>) -> Response {
    let asr = state.asr.stats().worker.snapshot();
    let asr_up = asr.alive > 0;
    let diarization = match &state.diarize {
        None => json!({ "state": "disabled" }),
        Some(d) => {
            let s = d.stats().snapshot();
            json!({ "state": if s.alive > 0 { "up" } else { "down" }, "workers": s.alive, "queue_depth": d.queue_depth() })
        }
    };
    let diarization_up = diarization["state"] != "down";
    let healthy = asr_up && diarization_up;
    let body = json!({
        "status": if healthy { "ok" } else { "down" },
        "uptime_seconds": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "components": {
            "asr": { "state": if asr_up { "up" } else { "down" }, "model": state.asr.model(), "workers": asr.alive, "queue_depth": state.asr.queue_depth() },
            "diarization": diarization,
            "vad": { "state": "up", "model": "silero-vad 6.2.3" },
            "sessions": { "state": "up", "active": state.registry.totals().active, "limit": state.config.limits.max_sessions },
        },
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `ended` or `all` (default).
    state: Option<String>,
}

/// `GET /sessions`: live sessions, then recently ended ones.
pub async fn list_sessions(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let (active, ended) = match q.state.as_deref() {
        None | Some("all") => (true, true),
        Some("active") => (true, false),
        Some("ended") => (false, true),
        Some(other) => {
            return Err(ApiError::InvalidParameter(format!("state must be active, ended or all, got `{other}`")))
        }
    };
    Ok(Json(json!({ "sessions": state.registry.list(active, ended) })))
}

/// `GET /sessions/{id}`: one session with its transcript so far.
pub async fn get_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let session = state.registry.get(&id).ok_or(ApiError::SessionNotFound(id))?;
    Ok(Json(session).into_response())
}

/// `DELETE /sessions/{id}`: ends a live session gracefully (its client gets the remaining finals
/// and `closed` with reason `terminated`).
pub async fn delete_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.registry.terminate(&id) {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "terminating" }))).into_response()),
        Err(TerminateError::NotFound) => Err(ApiError::SessionNotFound(id)),
        Err(TerminateError::AlreadyEnded) => Err(ApiError::SessionEnded(id)),
    }
}

/// `GET /stats`: sessions, audio, segments, errors by kind, real-time factor.
pub async fn stats(State(state): State<AppState>) -> Json<Value> {
    let sessions = state.registry.totals();
    let asr = state.asr.stats();
    let audio = asr.audio_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let busy = asr.worker.snapshot().busy_seconds;
    Json(json!({
        "sessions": { "active": sessions.active, "total": sessions.total, "rejected": sessions.rejected },
        "audio_seconds": sessions.audio_seconds,
        "segments": sessions.segments,
        "errors": sessions.errors,
        "asr_audio_seconds": audio,
        "real_time_factor": if audio > 0.0 { Some(busy / audio) } else { None },
    }))
}

/// `GET /stats/workers`: per engine, jobs, busy time, queue depth and job-time percentiles.
pub async fn worker_stats(State(state): State<AppState>) -> Json<Value> {
    let asr = state.asr.stats();
    let mut workers = vec![json!({
        "name": "asr",
        "queue_depth": state.asr.queue_depth(),
        "partial_jobs": asr.partial_jobs.load(Ordering::Relaxed),
        "skipped_stale_partials": asr.skipped_stale.load(Ordering::Relaxed),
        "refused_partials": asr.refused_partials.load(Ordering::Relaxed),
        "stats": asr.worker.snapshot(),
    })];
    if let Some(d) = &state.diarize {
        workers.push(json!({ "name": "diarization", "queue_depth": d.queue_depth(), "stats": d.stats().snapshot() }));
    }
    Json(json!({ "workers": workers }))
}

/// `GET /stats/aggregator`: how finals met their speakers.
pub async fn aggregator_stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.aggregator.snapshot()))
}

/// `GET /metrics`: Prometheus exposition format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::telemetry::render(&state);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

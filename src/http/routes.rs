//! REST endpoints: health, sessions and statistics.

use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::offline::{render, Format, Segment, Transcription};
use crate::session::aggregate::AggregatorCounts;
use crate::session::registry::{SessionSnapshot, TerminateError};

/// `GET /health/detailed`: each component's state; 503 when a required one is down.
#[utoipa::path(get, path = "/health/detailed", tag = "health",
    responses((status = 200, description = "Every component is up", body = Object), (status = 503, description = "A required component is down", body = Object)))]
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
    let store_up = store_health(&state).await["state"] != "down";
    let healthy = asr_up && diarization_up && store_up;
    let body = json!({
        "status": if healthy { "ok" } else { "down" },
        "uptime_seconds": state.started.elapsed().as_secs(),
        "config_version": state.config_version.load(Ordering::Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
        "components": {
            "asr": { "state": if asr_up { "up" } else { "down" }, "model": state.asr.model(), "workers": asr.alive, "queue_depth": state.asr.queue_depth() },
            "diarization": diarization,
            "vad": { "state": "up", "model": "silero-vad 6.2.3" },
            "sessions": { "state": "up", "active": state.registry.totals().active, "limit": state.config().limits.max_sessions },
            "store": store_health(&state).await,
        },
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /health/ready`: readiness for new streams. 503 while the server is at capacity (a new
/// stream would be refused) or draining for shutdown, so a load balancer sends streams
/// elsewhere; `/health` stays the liveness check.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "New streams are admitted", body = Object), (status = 503, description = "At capacity or draining", body = Object)))]
pub async fn health_ready(State(state): State<AppState>) -> Response {
    let config = state.config();
    let load = state.load_status();
    let sessions_full = state.session_slots.available_permits() == 0;
    let status = if *state.shutdown.borrow() {
        "draining"
    } else if load.at_capacity || sessions_full {
        "at_capacity"
    } else {
        "ready"
    };
    let code = if status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({ "status": status, "load": load, "sessions": { "active": state.registry.totals().active, "limit": config.limits.max_sessions } });
    (code, Json(body)).into_response()
}

async fn store_health(state: &AppState) -> Value {
    let Some(store) = state.registry.store().cloned() else { return json!({ "state": "disabled" }) };
    let up = tokio::task::spawn_blocking(move || store.reachable()).await.unwrap_or(false);
    json!({ "state": if up { "up" } else { "down" }, "kind": "sqlite" })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `ended` or `all` (default).
    state: Option<String>,
}

/// Ended sessions listed from the store (they survive restarts).
const LISTED_FROM_STORE: usize = 100;

fn store_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Store(e.to_string())
}

/// `GET /sessions`: live sessions, then recently ended ones (from the store when there is one).
#[utoipa::path(get, path = "/sessions", tag = "sessions",
    params(("state" = Option<String>, Query, description = "active, ended or all (default)")),
    responses((status = 200, description = "Sessions without transcripts: `{\"sessions\": [...]}`", body = Object), (status = 400, body = ErrorBody)))]
pub async fn list_sessions(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let (active, ended) = match q.state.as_deref() {
        None | Some("all") => (true, true),
        Some("active") => (true, false),
        Some("ended") => (false, true),
        Some(other) => {
            return Err(ApiError::InvalidParameter(format!("state must be active, ended or all, got `{other}`")))
        }
    };
    let Some(store) = state.registry.store().cloned().filter(|_| ended) else {
        return Ok(Json(json!({ "sessions": state.registry.list(active, ended) })));
    };
    let mut sessions = state.registry.list(active, true);
    let stored = tokio::task::spawn_blocking(move || store.recent(LISTED_FROM_STORE)).await.map_err(store_failed)?;
    // Sessions that just ended may not be written yet; those in memory come first.
    let mut stored: Vec<SessionSnapshot> =
        stored.map_err(store_failed)?.into_iter().filter(|s| !sessions.iter().any(|m| m.id == s.id)).collect();
    stored.iter_mut().for_each(|s| s.transcript.clear());
    sessions.extend(stored);
    Ok(Json(json!({ "sessions": sessions })))
}

/// A session from memory, or else from the store.
async fn find_session(state: &AppState, id: String) -> Result<SessionSnapshot, ApiError> {
    if let Some(session) = state.registry.get(&id) {
        return Ok(session);
    }
    let Some(store) = state.registry.store().cloned() else { return Err(ApiError::SessionNotFound(id)) };
    let lookup = id.clone();
    let found = tokio::task::spawn_blocking(move || store.get(&lookup)).await.map_err(store_failed)?;
    found.map_err(store_failed)?.ok_or(ApiError::SessionNotFound(id))
}

/// `GET /sessions/{id}`: one session with its transcript so far.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionSnapshot), (status = 404, body = ErrorBody)))]
pub async fn get_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(find_session(&state, id).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    format: Option<String>,
}

/// `GET /sessions/{id}/transcript?format=json|text|srt|vtt`.
#[utoipa::path(get, path = "/sessions/{id}/transcript", tag = "sessions",
    params(("id" = String, Path, description = "Session id"), ("format" = Option<String>, Query, description = "json (default), text, srt or vtt")),
    responses((status = 200, description = "The transcript in the format asked for", body = String), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TranscriptQuery>,
) -> Result<Response, ApiError> {
    let (format, content_type) = match q.format.as_deref().unwrap_or("json") {
        "json" => (Format::Json, "application/json"),
        "text" => (Format::Text, "text/plain; charset=utf-8"),
        "srt" => (Format::Srt, "application/x-subrip"),
        "vtt" => (Format::Vtt, "text/vtt"),
        other => {
            return Err(ApiError::InvalidParameter(format!("format must be json, text, srt or vtt, got `{other}`")))
        }
    };
    let session = find_session(&state, id).await?;
    let language = session.language.clone().unwrap_or_default();
    let segments = session
        .transcript
        .into_iter()
        .map(|e| Segment {
            id: e.segment_id,
            part: e.part,
            start: e.start,
            end: e.end,
            text: e.text,
            words: Vec::new(),
            language: language.clone(),
            speaker: e.speaker,
        })
        .collect();
    let body = render(&Transcription { segments, turns: Vec::new() }, format, &session.id);
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `DELETE /sessions/{id}`: ends a live session gracefully (its client gets the remaining finals
/// and `closed` with reason `terminated`).
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 202, description = "The session is ending gracefully", body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_session(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.registry.terminate(&id) {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "terminating" }))).into_response()),
        Err(TerminateError::NotFound) => Err(ApiError::SessionNotFound(id)),
        Err(TerminateError::AlreadyEnded) => Err(ApiError::SessionEnded(id)),
    }
}

/// `GET /stats`: sessions, audio, segments, errors by kind, real-time factor.
#[utoipa::path(get, path = "/stats", tag = "statistics", responses((status = 200, description = "Sessions, audio, segments, errors by kind, real-time factor", body = Object)))]
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
        "process": crate::process::usage(),
        "load": state.load_status(),
    }))
}

/// `GET /stats/workers`: per engine, jobs, busy time, queue depth and job-time percentiles.
#[utoipa::path(get, path = "/stats/workers", tag = "statistics", responses((status = 200, description = "Per engine: queue depth and WorkerSnapshot stats", body = Object)))]
pub async fn worker_stats(State(state): State<AppState>) -> Json<Value> {
    let asr = state.asr.stats();
    let mut workers = vec![json!({
        "name": "asr",
        "queue_depth": state.asr.queue_depth(),
        "partial_jobs": asr.partial_jobs.load(Ordering::Relaxed),
        "skipped_stale_partials": asr.skipped_stale.load(Ordering::Relaxed),
        "refused_partials": asr.refused_partials.load(Ordering::Relaxed),
        "speculative_jobs": asr.speculative_jobs.load(Ordering::Relaxed),
        "final_wait_p90_seconds": asr.final_waits.p90_within(std::time::Duration::from_secs(60)),
        "stats": asr.worker.snapshot(),
    })];
    if let Some(d) = &state.diarize {
        workers.push(json!({ "name": "diarization", "queue_depth": d.queue_depth(), "stats": d.stats().snapshot() }));
    }
    Json(json!({ "workers": workers }))
}

/// `GET /stats/aggregator`: how finals met their speakers.
#[utoipa::path(get, path = "/stats/aggregator", tag = "statistics", responses((status = 200, body = AggregatorCounts)))]
pub async fn aggregator_stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.aggregator.snapshot()))
}

/// `GET /metrics`: Prometheus exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::telemetry::render(&state);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

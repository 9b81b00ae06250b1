//! REST endpoints: health, sessions and statistics.

use std::sync::atomic::Ordering;

use axum::extract::State;

use super::extract::{ApiPath, ApiQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use super::state::AppState;
use crate::engine::device::Placement;
use crate::offline::{render, Format, Transcription};
use crate::protocol::rest::ErrorBody;
use crate::protocol::rest::{
    ComponentState, Components, DetailedHealth, DeviceHealth, EngineHealth, EngineStats, Health, ModelHealth,
    Readiness, Ready, SessionCount, SessionList, SessionStats, SessionsHealth, Stats, StoreHealth, Terminating,
    WorkerStats,
};
use crate::registry::{Page, SessionSnapshot, TerminateError};
use crate::session::aggregate::AggregatorCounts;
use crate::store::StoreState;

/// `GET /health`: liveness.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The process answers", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

fn up_or_down(up: bool) -> ComponentState {
    if up {
        ComponentState::Up
    } else {
        ComponentState::Down
    }
}

fn diarization_health(state: &AppState) -> EngineHealth {
    let Some(d) = &state.shared.engines.diarize else {
        return EngineHealth {
            state: ComponentState::Disabled,
            model: None,
            workers: None,
            queue_depth: None,
            restarts: None,
        };
    };
    let stats = d.stats().snapshot();
    EngineHealth {
        state: up_or_down(stats.alive > 0),
        model: None,
        workers: Some(stats.alive),
        queue_depth: Some(d.queue_depth()),
        restarts: Some(stats.restarts),
    }
}

/// `GET /health/detailed`: each component's state; 503 when a required one is down.
#[utoipa::path(get, path = "/health/detailed", tag = "health",
    responses((status = 200, description = "Every component is up", body = DetailedHealth), (status = 503, description = "A required component is down", body = DetailedHealth)))]
pub async fn health_detailed(State(state): State<AppState>) -> Response {
    let workers = state.shared.engines.asr.stats().worker.snapshot();
    let asr = EngineHealth {
        state: up_or_down(workers.alive > 0),
        model: Some(state.shared.engines.asr.model().to_owned()),
        workers: Some(workers.alive),
        queue_depth: Some(state.shared.engines.asr.queue_depth()),
        restarts: Some(workers.restarts),
    };
    let components = Components {
        diarization: diarization_health(&state),
        vad: ModelHealth { state: ComponentState::Up, model: "silero-vad 6.2.3".into() },
        sessions: SessionsHealth {
            state: ComponentState::Up,
            active: state.shared.registry.totals().active,
            limit: state.config().limits.max_sessions,
        },
        store: store_health(&state).await,
        asr,
    };
    let down = [&components.asr.state, &components.diarization.state, &components.store.state];
    let healthy = !down.contains(&&ComponentState::Down);
    let overall = match (healthy, down.contains(&&ComponentState::Degraded)) {
        (false, _) => ComponentState::Down,
        (true, true) => ComponentState::Degraded,
        (true, false) => ComponentState::Ok,
    };
    let body = DetailedHealth {
        status: overall,
        uptime_seconds: state.started.elapsed().as_secs(),
        config_version: state.config_version.load(Ordering::Relaxed),
        version: env!("CARGO_PKG_VERSION").into(),
        device: device_health(&state.shared.engines.device),
        components,
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

fn device_health(placed: &Placement) -> DeviceHealth {
    DeviceHealth {
        requested: placed.choice.as_str().into(),
        used: placed.name(),
        segmentation: placed.segmentation_name(),
        reason: placed.reason.clone(),
        gpu: placed.gpu.as_ref().map(|g| g.name.clone()),
        gpu_memory_mib: placed.gpu.as_ref().map(|g| g.memory_total >> 20),
    }
}

/// `GET /health/ready`: readiness for new streams. 503 while the server is at capacity (a new
/// stream would be refused) or draining for shutdown, so a load balancer sends streams
/// elsewhere; `/health` stays the liveness check.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "New streams are admitted", body = Ready), (status = 503, description = "At capacity or draining", body = Ready)))]
pub async fn health_ready(State(state): State<AppState>) -> Response {
    let config = state.config();
    let load = state.load_status();
    let sessions_full = state.session_slots.available_permits() == 0;
    let status = if *state.shared.shutdown.borrow() {
        Readiness::Draining
    } else if load.at_capacity || sessions_full {
        Readiness::AtCapacity
    } else {
        Readiness::Ready
    };
    let code = if status == Readiness::Ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let sessions = SessionCount { active: state.shared.registry.totals().active, limit: config.limits.max_sessions };
    (code, Json(Ready { status, load, sessions })).into_response()
}

async fn store_health(state: &AppState) -> StoreHealth {
    let Some((kind, store)) = store_state(state).await else {
        return StoreHealth { state: ComponentState::Disabled, kind: None };
    };
    let state = match store {
        StoreState::Up => ComponentState::Up,
        StoreState::Degraded => ComponentState::Degraded,
        StoreState::Down => ComponentState::Down,
    };
    StoreHealth { state, kind: Some(kind.to_owned()) }
}

/// The store's kind and state, read off the async workers (it may touch the database); `None`
/// without a store.
async fn store_state(state: &AppState) -> Option<(&'static str, StoreState)> {
    let store = state.shared.registry.store().cloned()?;
    let kind = store.kind();
    Some((kind, tokio::task::spawn_blocking(move || store.state()).await.unwrap_or(StoreState::Down)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `ended` or `all` (default).
    state: Option<StateFilter>,
    /// At most this many ended sessions (default 100, at most 1000).
    limit: Option<usize>,
    /// Only sessions that ended before this Unix time: the last `ended_at` of the previous page.
    before: Option<f64>,
}

/// Which sessions `GET /sessions` lists.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    Active,
    Ended,
    All,
}

/// The formats `GET /sessions/{id}/transcript` renders.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptFormat {
    Json,
    Text,
    Srt,
    Vtt,
}

/// Ended sessions listed when the request does not say.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `GET /sessions`: live sessions, then recently ended ones (from the store when there is one).
#[utoipa::path(get, path = "/sessions", tag = "sessions",
    params(("state" = Option<StateFilter>, Query, description = "active, ended or all (default)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "at most this many ended sessions: 1 to 1000, default 100"),
        ("before" = Option<f64>, Query, description = "only sessions that ended before this Unix time (the previous page's last ended_at)")),
    responses((status = 200, description = "Sessions without transcripts", body = SessionList), (status = 400, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let (active, ended) = match q.state.unwrap_or(StateFilter::All) {
        StateFilter::All => (true, true),
        StateFilter::Active => (true, false),
        StateFilter::Ended => (false, true),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidParameter(format!("limit must be 1 to {MAX_LIMIT}, got {limit}")));
    }
    let page = Page { limit, before: q.before };
    let mut sessions = state.shared.registry.list_with_stored(active, ended, page).await?;
    sessions.iter_mut().for_each(|s| s.transcript.clear());
    Ok(Json(SessionList { sessions }))
}

/// A session from memory, or else from the store.
async fn find_session(state: &AppState, id: String) -> Result<SessionSnapshot, ApiError> {
    state.shared.registry.find(&id).await?.ok_or(ApiError::SessionNotFound(id))
}

/// `GET /sessions/{id}`: one session with its transcript so far.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionSnapshot), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionSnapshot>, ApiError> {
    Ok(Json(find_session(&state, id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    format: Option<TranscriptFormat>,
}

/// `GET /sessions/{id}/transcript?format=json|text|srt|vtt`.
#[utoipa::path(get, path = "/sessions/{id}/transcript", tag = "sessions",
    params(("id" = String, Path, description = "Session id"), ("format" = Option<TranscriptFormat>, Query, description = "json (default), text, srt or vtt")),
    responses((status = 200, description = "The transcript in the format asked for", content(
        (serde_json::Value = "application/json"), (String = "text/plain"), (String = "application/x-subrip"), (String = "text/vtt"))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> Result<Response, ApiError> {
    let (format, content_type) = match q.format.unwrap_or(TranscriptFormat::Json) {
        TranscriptFormat::Json => (Format::Json, "application/json"),
        TranscriptFormat::Text => (Format::Text, "text/plain; charset=utf-8"),
        TranscriptFormat::Srt => (Format::Srt, "application/x-subrip"),
        TranscriptFormat::Vtt => (Format::Vtt, "text/vtt"),
    };
    let session = find_session(&state, id).await?;
    let body =
        render(&Transcription { segments: session.transcript, ..Default::default() }, format, &session.header.id);
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `DELETE /sessions/{id}`: ends a live session gracefully (its client gets the remaining finals
/// and `closed` with reason `terminated`).
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 202, description = "The session is ending gracefully", body = Terminating), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_session(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let registry = &state.shared.registry;
    match registry.terminate(&id) {
        Ok(()) => {}
        Err(TerminateError::AlreadyEnded) => return Err(ApiError::SessionEnded(id)),
        // Not here: another replica may serve it (it ends it at its next heartbeat), or it
        // may have ended there.
        Err(TerminateError::NotFound) if registry.terminate_elsewhere(&id).await? => {}
        Err(TerminateError::NotFound) => {
            return Err(match registry.find(&id).await? {
                Some(_) => ApiError::SessionEnded(id),
                None => ApiError::SessionNotFound(id),
            })
        }
    }
    let body = Terminating { id, status: "terminating".into() };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /stats`: sessions, audio, segments, errors by kind, real-time factor.
#[utoipa::path(get, path = "/stats", tag = "statistics", responses((status = 200, description = "Sessions, audio, segments, errors by kind, real-time factor", body = Stats)))]
pub async fn stats(State(state): State<AppState>) -> Json<Stats> {
    let sessions = state.shared.registry.totals();
    let asr = state.shared.engines.asr.stats();
    let audio = asr.audio_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let busy = asr.worker.snapshot().busy_seconds;
    Json(Stats {
        sessions: SessionStats { active: sessions.active, total: sessions.total, rejected: sessions.rejected },
        audio_seconds: sessions.audio_seconds,
        segments: sessions.segments,
        errors: sessions.errors,
        asr_audio_seconds: audio,
        real_time_factor: (audio > 0.0).then(|| busy / audio),
        process: crate::process::usage(),
        load: state.load_status(),
    })
}

/// `GET /stats/workers`: per engine, jobs, busy time, queue depth and job-time percentiles.
#[utoipa::path(get, path = "/stats/workers", tag = "statistics", responses((status = 200, description = "Per engine: queue depth and worker statistics", body = WorkerStats)))]
pub async fn worker_stats(State(state): State<AppState>) -> Json<WorkerStats> {
    let asr = state.shared.engines.asr.stats();
    let count = |n: &std::sync::atomic::AtomicU64| Some(n.load(Ordering::Relaxed));
    let mut workers = vec![EngineStats {
        name: "asr".into(),
        queue_depth: state.shared.engines.asr.queue_depth(),
        partial_jobs: count(&asr.partial_jobs),
        skipped_stale_partials: count(&asr.skipped_stale),
        refused_partials: count(&asr.refused_partials),
        speculative_jobs: count(&asr.speculative_jobs),
        final_wait_p90_seconds: asr.final_waits.p90_within(std::time::Duration::from_secs(60)),
        stats: asr.worker.snapshot(),
    }];
    if let Some(d) = &state.shared.engines.diarize {
        workers.push(EngineStats {
            name: "diarization".into(),
            queue_depth: d.queue_depth(),
            partial_jobs: None,
            skipped_stale_partials: None,
            refused_partials: None,
            speculative_jobs: None,
            final_wait_p90_seconds: None,
            stats: d.stats().snapshot(),
        });
    }
    Json(WorkerStats { workers })
}

/// `GET /stats/aggregator`: how finals met their speakers.
#[utoipa::path(get, path = "/stats/aggregator", tag = "statistics", responses((status = 200, body = AggregatorCounts)))]
pub async fn aggregator_stats(State(state): State<AppState>) -> Json<AggregatorCounts> {
    Json(state.shared.aggregator.snapshot())
}

/// `GET /metrics`: Prometheus exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let store = store_state(&state).await.map(|(_, store)| store);
    let body = super::metrics::render(&state, store);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

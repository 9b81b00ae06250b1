//! The REST API's bodies (docs/API.md), one serde type each, both ways, with the schemas
//! `/openapi.json` documents (a test validates real responses against them). The HTTP layer
//! fills and routes them; clients (the load tool, the soak test) read them back as these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CloseReason, SessionHeader};
use crate::domain::Segment;
use crate::process::ProcessUsage;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `session_not_found`.
    pub code: String,
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// Up or down, for the whole server and for each component. `degraded`: serving, with a part
/// impaired (the shared store unreachable, its writes waiting in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Ok,
    Up,
    Down,
    Degraded,
    Disabled,
}

/// `GET /health/detailed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetailedHealth {
    /// `ok` or `down`.
    pub status: ComponentState,
    pub uptime_seconds: u64,
    /// 1 at start, one more for each reload that changed something.
    pub config_version: u64,
    pub version: String,
    pub device: DeviceHealth,
    pub components: Components,
}

/// Where inference runs (`engine.device`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceHealth {
    /// The setting: `auto`, `cpu` or `cuda`.
    pub requested: String,
    /// Where Whisper and the speaker embeddings run: `cpu` or `cuda:N` (Silero is always on the CPU).
    pub used: String,
    /// Where speaker segmentation runs (ONNX Runtime): on the GPU only with a library that has
    /// the CUDA provider.
    pub segmentation: String,
    /// Why there: the setting, or what `auto` found.
    pub reason: String,
    /// The GPU's name, when on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Components {
    pub asr: EngineHealth,
    pub diarization: EngineHealth,
    pub vad: ModelHealth,
    pub sessions: SessionsHealth,
    pub store: StoreHealth,
}

/// An engine: its state, and while it runs its workers and queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EngineHealth {
    pub state: ComponentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<usize>,
    /// Panics its workers caught and recovered from since start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelHealth {
    pub state: ComponentState,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionsHealth {
    pub state: ComponentState,
    pub active: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreHealth {
    pub state: ComponentState,
    /// `sqlite` or `postgres` when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Whether a new stream would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    AtCapacity,
    Draining,
}

/// `GET /health/ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    pub status: Readiness,
    pub load: LoadStatus,
    pub sessions: SessionCount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionCount {
    pub active: usize,
    pub limit: usize,
}

/// `GET /sessions`: sessions without their transcripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionSnapshot>,
}

/// `DELETE /sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Terminating {
    pub id: String,
    /// Always `terminating`.
    pub status: String,
}

/// `GET /stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub sessions: SessionStats,
    /// Audio received from clients, in seconds.
    pub audio_seconds: f64,
    pub segments: u64,
    /// Errors sent to clients, by code.
    pub errors: BTreeMap<String, u64>,
    /// Audio the ASR engine decoded, in seconds.
    pub asr_audio_seconds: f64,
    /// ASR busy time over audio decoded; null before any audio.
    pub real_time_factor: Option<f64>,
    pub process: ProcessUsage,
    pub load: LoadStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionStats {
    pub active: usize,
    pub total: u64,
    pub rejected: u64,
}

/// `GET /stats/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerStats {
    pub workers: Vec<EngineStats>,
}

/// One engine's queue and workers; the partial and speculative counts are the ASR engine's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EngineStats {
    /// `asr` or `diarization`.
    pub name: String,
    pub queue_depth: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_jobs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_stale_partials: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_partials: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculative_jobs: Option<u64>,
    /// 90th percentile of how long finals waited in the queue over the last minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_wait_p90_seconds: Option<f64>,
    pub stats: WorkerSnapshot,
}

/// Whether a session is still streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    Ended,
}

/// A session as seen from outside: what `GET /sessions/{id}` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionSnapshot {
    #[serde(flatten)]
    pub header: SessionHeader,
    pub state: SessionState,
    pub ended_at: Option<f64>,
    pub close_reason: Option<CloseReason>,
    pub audio_seconds: f64,
    pub segments: u64,
    pub speakers: Vec<String>,
    /// The final segments so far; empty in lists.
    pub transcript: Vec<Segment>,
    /// For a live session another replica serves (a shared PostgreSQL store): that replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// What admission sees now; served by `/health/ready` and `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadStatus {
    /// Sessions streaming now (idle ones left out), and those of them labelling speakers.
    pub streams: usize,
    pub diarizing_streams: usize,
    /// Streams the ASR workers can serve at the target load, at the current cost.
    pub asr_capacity: usize,
    /// Streams with speakers the labelling worker can serve.
    pub diarize_capacity: usize,
    /// Share of the ASR workers one real-time stream takes (measured, or the prior).
    pub asr_cost: f64,
    /// Share of the labelling worker one stream with speakers takes.
    pub diarize_cost: f64,
    /// Whether the costs come from measurement (rather than the configured priors).
    pub cost_measured: bool,
    /// Share of the ASR workers' time spent on finals over the last seconds.
    pub asr_final_share: f64,
    /// Share of the speaker labelling worker's time over the last seconds.
    pub diarize_share: f64,
    /// 90th percentile of recent finals' delay after their utterance ended (s), if any.
    pub final_delay_p90_s: Option<f64>,
    /// Whether a new stream would be refused now.
    pub at_capacity: bool,
    /// Why, when it would.
    pub reason: Option<String>,
}

/// A snapshot for the statistics API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerSnapshot {
    pub jobs: u64,
    pub busy_seconds: f64,
    pub alive: usize,
    /// Panics caught and recovered from (see `engine::supervise`).
    pub restarts: u64,
    pub job_seconds_p50: Option<f64>,
    pub job_seconds_p95: Option<f64>,
}

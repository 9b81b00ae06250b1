//! The service's typed configuration. Every section has defaults that suit a small machine.
//! `load` reads it from a file and the environment; docs/CONFIGURATION.md lists every setting.

pub mod host;
pub mod load;
pub mod restart;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::InvalidSetting;
use crate::engine::device::DeviceChoice;
use crate::engine::diarize::DiarizeConfig;
use crate::pipeline::segmenter::SegmenterConfig;
use crate::speaker::cluster::ClusterConfig;
use crate::store::StoreConfig;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub models: ModelsConfig,
    pub engine: EngineConfig,
    pub asr: AsrConfig,
    pub vad: SegmenterConfig,
    pub streaming: StreamingConfig,
    pub diarization: DiarizeConfig,
    pub speakers: ClusterConfig,
    pub limits: LimitsConfig,
    pub admission: AdmissionConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
}

/// Logging. `--log` / `SPEECH_LOG` take precedence and then fix the filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `speech_service=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// Error tracking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A Sentry DSN (`https://KEY@HOST/PROJECT`): error-level logs and panics go there, tagged
    /// with the session id, without audio or transcript text. Off when unset.
    pub sentry_dsn: Option<String>,
}

/// API keys. With none configured, the API is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub api_keys: Vec<String>,
    /// A file with more keys, one per line (blank lines and `#` comments skipped), read at start
    /// and at every reload, so keys can be rotated without writing them into the config file.
    pub api_keys_file: Option<PathBuf>,
    /// Live streams one key may hold at once; 0 means no limit beyond `limits.max_sessions`.
    pub max_sessions_per_key: usize,
    /// `/health` and `/health/detailed` answer without a key.
    pub public_health: bool,
    /// `/metrics` answers without a key.
    pub public_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            api_keys_file: None,
            max_sessions_per_key: 0,
            public_health: true,
            public_metrics: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Seconds that open sessions get to finish on shutdown.
    pub shutdown_grace_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { host: "127.0.0.1".into(), port: 8000, shutdown_grace_s: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: PathBuf,
    /// `tiny.en`, `base`, or the path of a whisper.cpp ggml file.
    pub whisper: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self { dir: crate::models::default_models_dir(), whisper: "tiny.en".into() }
    }
}

/// Where inference runs (docs/DEPLOY.md, "GPUs").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// `auto` (the GPU when the binary has CUDA and one is present, else the CPU), `cpu` or
    /// `cuda` (an error at start when there is none).
    pub device: DeviceChoice,
    /// The ONNX Runtime library to load instead of the one the models step fetched: on a GPU,
    /// a build with the CUDA provider (onnxruntime-gpu's `libonnxruntime.so`).
    pub onnxruntime_library: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    /// Worker threads, each with its own Whisper state.
    pub workers: usize,
    /// ggml threads per worker; keep workers x threads within the free cores.
    pub threads: usize,
    pub final_queue: usize,
    pub partial_queue: usize,
    /// Workers that may decode partials at once; 0 means all but one (at least one), which
    /// keeps a worker free for finals.
    pub partial_workers: usize,
    /// How long a final may wait for room in a full queue before the client is told it is overloaded.
    pub final_timeout_s: u64,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self { workers: 2, threads: 1, final_queue: 32, partial_queue: 16, partial_workers: 0, final_timeout_s: 60 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingConfig {
    /// New speech between two partial hypotheses.
    pub partial_interval_ms: u32,
    /// No partial before the utterance is this long.
    pub min_partial_ms: u32,
    /// Decode an utterance at a pause before the pause is long enough to end it, so its final
    /// is ready as it ends (spare capacity only; the work is thrown away if speech resumes).
    pub speculative_finals: bool,
    /// Make the stable start of an utterance final while it goes on (words two successive
    /// partial hypotheses agree on), instead of only at pauses: in continuous speech a word is
    /// final within about two to four seconds instead of up to twenty. Partials are decoded for
    /// it even when the client does not ask for them. Off by default: words at the cuts are
    /// still lost or doubled (docs/BENCHMARKS.md).
    pub progressive_finals: bool,
    /// End an utterance where the speaker changes (seen by the segmentation model while it is
    /// open), as a pause would: in quick turn-taking each turn's words are final soon after it
    /// ends instead of at the next pause. Streams with speakers only.
    pub speaker_cuts: bool,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            partial_interval_ms: 600,
            min_partial_ms: 400,
            speculative_finals: true,
            progressive_finals: false,
            speaker_cuts: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_sessions: usize,
    /// Largest binary or text frame a client may send.
    pub max_frame_bytes: usize,
    pub idle_timeout_s: u64,
    /// Longest stream, in seconds of audio.
    pub max_session_audio_s: u64,
    /// A client that does not read its messages for this long is disconnected.
    pub send_timeout_s: u64,
    /// Largest request body of the file API (`POST /v1/audio/*`), like OpenAI's 25 MB.
    pub max_upload_bytes: usize,
    /// Most channels a `multichannel` stream or file may have (each is a stream of its own).
    pub max_channels: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            // A ceiling on connections; how many streams are served is admission's call.
            max_sessions: 128,
            max_frame_bytes: 1 << 20,
            idle_timeout_s: 30,
            max_session_audio_s: 4 * 3600,
            send_timeout_s: 10,
            max_upload_bytes: 25 << 20,
            max_channels: 8,
        }
    }
}

impl LimitsConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }
}

/// Admission settings (`[admission]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Refuse streams beyond measured capacity; off, only `limits.max_sessions` applies.
    pub enabled: bool,
    /// Share of each engine's time (ASR finals, speaker labelling) that admitted streams may
    /// plan to use; the rest absorbs bursts and runs partials.
    pub target_load: f64,
    /// Recent finals (90th percentile) ready later than this after their utterance ended
    /// close admission, while any stream runs, until they are quick again.
    pub max_final_delay_ms: u64,
    /// Share of the ASR workers one real-time stream is assumed to take before any was measured
    /// (measured on 2 cores with tiny.en: 0.055-0.075).
    pub prior_asr_cost: f64,
    /// The same for the speaker labelling worker and a stream with speakers (measured: 0.095).
    pub prior_diarize_cost: f64,
    /// `Retry-After` on a refusal, in seconds.
    pub retry_after_s: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            target_load: 0.8,
            max_final_delay_ms: 1000,
            prior_asr_cost: 0.06,
            prior_diarize_cost: 0.095,
            retry_after_s: 5,
        }
    }
}

impl AdmissionConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.05..=1.0).contains(&self.target_load) {
            return Err(InvalidSetting::new(
                "admission.target_load",
                format!("must be within 0.05..1, got {}", self.target_load),
            ));
        }
        let costs = [
            ("admission.prior_asr_cost", self.prior_asr_cost),
            ("admission.prior_diarize_cost", self.prior_diarize_cost),
        ];
        for (name, cost) in costs {
            if !(0.001..=1.0).contains(&cost) {
                return Err(InvalidSetting::new(name, format!("must be within 0.001..1, got {cost}")));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Replaces secrets before the configuration is shown.
    pub fn redact_secrets(&mut self) {
        self.auth.api_keys.iter_mut().for_each(|k| *k = "<redacted>".into());
        if self.telemetry.sentry_dsn.is_some() {
            self.telemetry.sentry_dsn = Some("<redacted>".into());
        }
        // postgres://user:PASSWORD@host/db: the password goes, the rest helps debugging.
        if let Some(url) = self.store.url.as_mut() {
            if let Some((credentials, rest)) = url.split_once('@') {
                if let Some((user, _)) = credentials.rsplit_once(':').filter(|(u, _)| u.contains("//")) {
                    *url = format!("{user}:<redacted>@{rest}");
                }
            }
        }
    }

    /// Rejects values the service cannot run with; the error names the setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.vad.validate()?;
        self.admission.validate()?;
        crate::logging::valid_filter(&self.log.level).map_err(|e| InvalidSetting::new("log.level", e))?;
        if let Some(problem) = host::host_problem(&self.server.host) {
            return Err(InvalidSetting::new("server.host", problem));
        }
        let checks = [
            (self.asr.workers == 0, "asr.workers", "must be at least 1"),
            (self.asr.threads == 0, "asr.threads", "must be at least 1"),
            (self.limits.max_sessions == 0, "limits.max_sessions", "must be at least 1"),
            (self.limits.max_frame_bytes < 1024, "limits.max_frame_bytes", "must be at least 1024"),
            (self.limits.idle_timeout_s == 0, "limits.idle_timeout_s", "must be at least 1"),
            (self.streaming.partial_interval_ms < 100, "streaming.partial_interval_ms", "must be at least 100"),
            (self.auth.api_keys.iter().any(|k| k.len() < 8), "auth.api_keys:", "every key needs at least 8 characters"),
            (self.speakers.max_speakers == 0, "speakers.max_speakers", "must be at least 1"),
            (
                self.speakers.min_speakers > self.speakers.max_speakers,
                "speakers.min_speakers",
                "must not exceed max_speakers",
            ),
            (!(-1.0..=1.0).contains(&self.speakers.threshold), "speakers.threshold", "must be within -1..1"),
            (
                !(-1.0..=1.0).contains(&self.speakers.narrowband_threshold),
                "speakers.narrowband_threshold",
                "must be within -1..1",
            ),
            (!(0.0..=0.5).contains(&self.speakers.short_slack), "speakers.short_slack", "must be within 0..0.5"),
            (
                self.store
                    .url
                    .as_deref()
                    .is_some_and(|u| !u.starts_with("postgres://") && !u.starts_with("postgresql://")),
                "store.url",
                "must be a postgres:// URL",
            ),
            (
                self.store.heartbeat_timeout_s < 2 * self.store.heartbeat_s.max(1),
                "store.heartbeat_timeout_s",
                "must be at least twice store.heartbeat_s",
            ),
        ];
        match checks.iter().find(|(bad, ..)| *bad) {
            Some((_, setting, problem)) => Err(InvalidSetting::new(setting, *problem)),
            None => Ok(()),
        }
    }
}

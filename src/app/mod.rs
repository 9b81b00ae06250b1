//! Start-up wiring (the seed's "DI container"): loads models, starts engines, builds the state
//! every route and session shares.

mod fleet;
mod reload;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::domain::InvalidSetting;
use crate::engine::asr::AsrError;
use crate::engine::asr::{AsrHandle, EngineOptions, Transcriber};
use crate::engine::device::{self, DeviceChoice, DeviceError, Placement};
use crate::engine::diarize::{DiarizeHandle, Diarizer};
use crate::engine::diarize::{Loading, SpeakerModelError};
use crate::engine::whisper::WhisperModelFile;
use crate::engine::Engines;
use crate::http::{self, AppState};
use crate::logging::LogHandle;
use crate::models::{self, catalog::paths, WhisperModel};
use crate::onnx;
use crate::onnx::OnnxError;
use crate::pipeline::vad::VadModel;
use crate::registry::admission::Admission;
use crate::registry::SessionRegistry;
use crate::session::aggregate::AggregatorStats;
use crate::session::SessionDeps;
use crate::store::StoreError;
use crate::store::{self, OpenStore, TranscriptStore};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration")]
    Config(#[from] InvalidSetting),
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cannot start ONNX Runtime or load the VAD model")]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Whisper(#[from] AsrError),
    #[error(transparent)]
    Speakers(#[from] SpeakerModelError),
    #[error("cannot open the transcript store")]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped with an I/O error")]
    Serve(#[from] std::io::Error),
    #[error("writing the last transcripts was interrupted")]
    StoreClose(#[from] tokio::task::JoinError),
}

/// Starts the diarization thread, which loads the speaker models itself: a file's transcription
/// starts without waiting for them; the server waits for them before it serves.
fn start_diarizer(config: &Config, device: &Placement) -> Result<Option<(DiarizeHandle, Loading)>, StartupError> {
    if !config.diarization.enabled {
        return Ok(None);
    }
    let dir = &config.models.dir;
    let segmentation = models::require(dir, paths::SEGMENTATION)?;
    let campplus = models::require(dir, paths::CAMPPLUS)?;
    let settings = config.diarization.clone();
    let gpus = (device.segmentation_gpu(), device.gpu_index());
    let load = move || Diarizer::load(&segmentation, &campplus, settings, gpus);
    Ok(Some(DiarizeHandle::spawn(load, config.diarization.queue)))
}

/// What the engines are loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The server: live streams (partials, many sessions' VAD) and files.
    Serve,
    /// One file on the command line: no partials, one VAD session; without `word_timings`
    /// (text, SRT, RTTM) Whisper is loaded without DTW word alignment.
    File { word_timings: bool },
}

/// Loads ONNX Runtime, Silero and Whisper from the models directory and starts the ASR workers.
pub fn load_engines(config: &Config) -> Result<Engines, StartupError> {
    load_engines_for(config, Workload::Serve)
}

/// [`load_engines`] for a workload: a file needs neither the partials' second Whisper context
/// nor a Silero session per core, and skipping them is most of its start-up time.
pub fn load_engines_for(config: &Config, workload: Workload) -> Result<Engines, StartupError> {
    let vad = load_vad(config, workload)?;
    load_engines_with(config, workload, vad)
}

/// Loads ONNX Runtime and Silero: all a file needs to start finding its utterances.
pub fn load_vad(config: &Config, workload: Workload) -> Result<VadModel, StartupError> {
    // CAM++ runs on candle, whose thread pool would otherwise take every core that Whisper
    // needs. Set before the engines' threads start, since the environment is process-wide.
    if config.diarization.enabled && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let dir = &config.models.dir;
    onnx::init(&onnx_library(config)?)?;
    // One Silero session per runtime worker thread: frames are scored on those threads.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let sessions = if workload == Workload::Serve { cores } else { 1 };
    Ok(VadModel::load(&models::require(dir, paths::SILERO_VAD)?, sessions)?)
}

/// The ONNX Runtime library to load: the configured one; else, for a CUDA binary that may run
/// on a GPU, the GPU build when `models fetch --onnxruntime-gpu` put it there; else the CPU one.
fn onnx_library(config: &Config) -> Result<std::path::PathBuf, StartupError> {
    let dir = &config.models.dir;
    if let Some(path) = &config.engine.onnxruntime_library {
        return Ok(path.clone());
    }
    let gpu_build = dir.join(paths::ORT_GPU_LIBRARY);
    if device::CUDA_BUILT && config.engine.device != DeviceChoice::Cpu && gpu_build.is_file() {
        return Ok(gpu_build);
    }
    Ok(models::require(dir, paths::ORT_LIBRARY)?)
}

/// Loads Whisper and the speaker models beside `vad` and starts their workers.
pub fn load_engines_with(config: &Config, workload: Workload, vad: VadModel) -> Result<Engines, StartupError> {
    let dir = &config.models.dir;
    let model = WhisperModel::parse(&config.models.whisper)?;
    let path = model.ggml_path(dir);
    if !path.is_file() {
        return Err(models::ModelError::NotFetched(path).into());
    }
    let dtw = match model {
        _ if workload == (Workload::File { word_timings: false }) => None,
        WhisperModel::TinyEn(_) => Some(whisper_rs::DtwModelPreset::TinyEn),
        WhisperModel::Base(_) => Some(whisper_rs::DtwModelPreset::Base),
        WhisperModel::File(_) => None,
    };
    let device = place_engines(config.engine.device)?;
    // The speaker models load on their own thread, beside Whisper.
    let diarize = start_diarizer(config, &device)?;
    let whisper = WhisperModelFile::load(&path, dtw, workload == Workload::Serve, device.gpu_index())?;
    let diarize = match diarize {
        // The server must not announce itself ready with its speaker models still loading.
        Some((handle, loading)) if workload == Workload::Serve => loading.wait().map(|()| Some(handle))?,
        Some((handle, _)) => Some(handle),
        None => None,
    };
    let backends = (0..config.asr.workers)
        .map(|_| whisper.backend(config.asr.threads).map(|b| Box::new(b) as Box<dyn Transcriber>))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = EngineOptions {
        final_queue: config.asr.final_queue,
        partial_queue: config.asr.partial_queue,
        partial_workers: (config.asr.partial_workers > 0).then_some(config.asr.partial_workers),
    };
    let asr = AsrHandle::spawn(backends, &model.name(), whisper.is_multilingual(), &opts);
    tracing::info!(model = %model.name(), workers = config.asr.workers, threads = config.asr.threads, diarize = diarize.is_some(), "engines ready");
    Ok(Engines { asr, diarize, vad, device })
}

/// Where Whisper and the speaker models run, said in the log. Silero stays on the CPU: one tiny
/// call per 32 ms frame of every stream is the work a GPU's launch and copy costs suit worst
/// (not yet measured on a GPU: docs/DEPLOY.md).
fn place_engines(choice: DeviceChoice) -> Result<Placement, DeviceError> {
    // ONNX Runtime is loaded by now (`load_vad`), so its providers can be asked.
    let placed = device::place(choice)?.with_onnx(onnx::has_cuda_provider())?;
    match &placed.gpu {
        Some(gpu) => {
            tracing::info!(device = %placed.name(), gpu = %gpu.name, memory_mib = gpu.memory_total >> 20, reason = %placed.reason, "inference on a GPU")
        }
        None => tracing::info!(device = "cpu", reason = %placed.reason, "inference on the CPU"),
    }
    Ok(placed)
}

/// Opens the transcript store when enabled, and starts its retention sweep.
fn open_store(config: &Config) -> Result<Option<OpenStore>, StoreError> {
    if !config.store.enabled {
        return Ok(None);
    }
    // On its own thread: the PostgreSQL client runs its own small runtime, which must not start
    // on one of ours.
    let store = std::thread::scope(|scope| {
        scope.spawn(|| store::open(&config.store)).join().expect("opening the store does not panic")
    })?;
    if config.store.retention_days > 0 {
        tokio::spawn(retention(store.transcripts.clone(), config.store.retention_days));
    }
    Ok(Some(store))
}

/// Deletes sessions past the retention period, at start and then hourly.
async fn retention(store: Arc<dyn TranscriptStore>, days: u32) {
    loop {
        let cutoff = store::unix_now() - f64::from(days) * 86_400.0;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.delete_ended_before(cutoff)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, days, "retention removed old sessions"),
            Ok(Err(e)) => tracing::error!(error = %crate::logging::chain(&e), "retention sweep failed"),
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

/// The state shared by routes and sessions, and the sender that starts a graceful shutdown.
pub fn app_state(config: Arc<Config>, engines: Engines) -> Result<(AppState, watch::Sender<bool>), StoreError> {
    // Install the metrics recorder before any engine or session records into it.
    crate::telemetry::handle();
    let store = open_store(&config)?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let admission = Admission::new(engines.asr.clone(), engines.diarize.clone());
    admission.spawn_sampler();
    let heartbeat = Duration::from_secs(config.store.heartbeat_s.max(1));
    let fleet = store.as_ref().and_then(|s| s.fleet.clone());
    let registry = Arc::new(SessionRegistry::with_store(store, config.store.replica()));
    let state = AppState {
        admission,
        session_slots: Arc::new(Semaphore::new(config.limits.max_sessions)),
        config: Arc::new(watch::channel(config).0),
        shared: SessionDeps { engines, aggregator: Arc::new(AggregatorStats::default()), shutdown, registry },
        started: std::time::Instant::now(),
        config_version: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        key_sessions: Arc::default(),
        log: None,
    };
    if let Some(fleet) = fleet {
        tokio::spawn(fleet::heartbeat(state.shared.registry.clone(), fleet, heartbeat));
    }
    Ok((state, shutdown_tx))
}

/// Listens on `server.host`: an address (IPv6 too, bracketed or not) or a name to look up.
async fn bind(server: &crate::config::ServerConfig) -> Result<TcpListener, StartupError> {
    let (host, port) = (server.host.as_str(), server.port);
    let bound = match crate::config::host::bare_ip(host) {
        Some(ip) => TcpListener::bind(std::net::SocketAddr::new(ip, port)).await,
        None => TcpListener::bind((host, port)).await,
    };
    bound.map_err(|source| StartupError::Bind { address: format!("{host}:{port}"), source })
}

/// Binds, serves until SIGINT/SIGTERM, drains sessions and stops the engines. With a config
/// `file`, SIGHUP or a change of the file reloads it.
pub async fn serve(
    config: Config,
    file: Option<std::path::PathBuf>,
    log: Option<LogHandle>,
) -> Result<(), StartupError> {
    config.validate()?;
    let config = Arc::new(config);
    let engines = load_engines(&config)?;
    let listener = bind(&config.server).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let (mut state, shutdown_tx) = app_state(config, engines.clone())?;
    state.log = log;
    if let Some(file) = file {
        reload::spawn_watcher(file, state.clone());
    }
    let store = state.shared.registry.store().cloned();
    http::serve(listener, state, shutdown_tx, shutdown_signal()).await?;
    engines.close();
    // Sessions ended while draining are queued for the store: write them before exiting.
    if let Some(store) = store {
        tokio::task::spawn_blocking(move || store.close()).await?;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    async fn bound_ip(host: &str) -> std::net::IpAddr {
        let server = ServerConfig { host: host.into(), port: 0, ..ServerConfig::default() };
        bind(&server).await.unwrap_or_else(|e| panic!("{host}: {e}")).local_addr().unwrap().ip()
    }

    #[tokio::test]
    async fn a_host_is_bound_as_an_address_or_a_name() {
        assert_eq!(bound_ip("127.0.0.1").await.to_string(), "127.0.0.1");
        assert!(bound_ip("localhost").await.is_loopback());
        // IPv6, written bare or bracketed, where this machine has it.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            assert_eq!(bound_ip("::1").await.to_string(), "::1");
            assert_eq!(bound_ip("[::1]").await.to_string(), "::1");
        }
    }
}

//! ONNX Runtime, loaded at run time from the library the models step fetched.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("ONNX Runtime is not initialised; call engine::onnx::init first")]
    NotInitialised,
    #[error("cannot load ONNX Runtime or a model: {0}")]
    Load(String),
    #[error("ONNX inference failed: {0}")]
    Run(String),
}

impl OnnxError {
    pub fn run(e: impl std::fmt::Display) -> Self {
        Self::Run(e.to_string())
    }
}

/// Loads `libonnxruntime.so` from `library` once per process; later calls are no-ops.
pub fn init(library: &Path) -> Result<(), OnnxError> {
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let builder = ort::init_from(library).map_err(|e| OnnxError::Load(format!("{}: {e}", library.display())))?;
    let env = builder.with_name("speech-service").build().map_err(|e| OnnxError::Load(e.to_string()))?;
    let _ = ENVIRONMENT.set(env);
    Ok(())
}

/// A session on `model` bytes with `threads` intra-op threads.
pub fn session_from_memory(model: &[u8], threads: usize) -> Result<Session, OnnxError> {
    let env = ENVIRONMENT.get().ok_or(OnnxError::NotInitialised)?;
    let builder = Session::builder(env).map_err(|e| OnnxError::Load(e.to_string()))?;
    let builder = builder.with_intra_threads(threads).map_err(|e| OnnxError::Load(e.to_string()))?;
    let mut builder = builder.with_inter_threads(1).map_err(|e| OnnxError::Load(e.to_string()))?;
    builder.commit_from_memory(model).map_err(|e| OnnxError::Load(e.to_string()))
}

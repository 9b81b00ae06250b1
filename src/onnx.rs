//! ONNX Runtime, loaded at run time from the library the models step fetched.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use ort::session::Session;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("ONNX Runtime is not initialised; call onnx::init first")]
    NotInitialised,
    #[error("cannot load ONNX Runtime from {}", path.display())]
    Library {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot start ONNX Runtime")]
    Environment(#[source] ort::Error),
    #[error("cannot read the model {}", path.display())]
    ReadModel {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build an ONNX Runtime session")]
    Session(#[source] ort::Error),
    #[error(
        "ONNX Runtime cannot run on CUDA device {device}: load a build with the CUDA provider \
         (engine.onnxruntime_library, docs/DEPLOY.md)"
    )]
    Cuda {
        device: usize,
        #[source]
        source: Option<ort::Error>,
    },
    #[error("ONNX inference failed")]
    Run(#[from] ort::Error),
}

/// Reads an ONNX model file into memory.
pub fn read_model(path: &Path) -> Result<Vec<u8>, OnnxError> {
    std::fs::read(path).map_err(|source| OnnxError::ReadModel { path: path.to_owned(), source })
}

/// Loads `libonnxruntime.so` from `library` once per process; later calls are no-ops.
pub fn init(library: &Path) -> Result<(), OnnxError> {
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let builder = ort::init_from(library).map_err(|source| OnnxError::Library { path: library.to_owned(), source })?;
    let env = builder.with_name("speech-service").build().map_err(OnnxError::Environment)?;
    let _ = ENVIRONMENT.set(env);
    Ok(())
}

/// Whether the loaded library has the CUDA provider (a GPU build of ONNX Runtime).
pub fn has_cuda_provider() -> bool {
    #[cfg(feature = "cuda")]
    {
        use ort::ep::ExecutionProvider;
        ENVIRONMENT.get().is_some() && ort::ep::CUDA::is_available().unwrap_or(false)
    }
    #[cfg(not(feature = "cuda"))]
    false
}

/// A session on `model` bytes with `threads` intra-op threads, on the CPU.
pub fn session_from_memory(model: &[u8], threads: usize) -> Result<Session, OnnxError> {
    session_on(model, threads, None)
}

/// A session on `model` bytes, on CUDA device `gpu` when given: then a library without the
/// CUDA provider, or a device it cannot use, is an error rather than a quiet fall back to the
/// CPU.
pub fn session_on(model: &[u8], threads: usize, gpu: Option<usize>) -> Result<Session, OnnxError> {
    let env = ENVIRONMENT.get().ok_or(OnnxError::NotInitialised)?;
    let session = |e: ort::Error| OnnxError::Session(e);
    let builder = Session::builder(env).map_err(session)?;
    let builder = builder.with_intra_threads(threads).map_err(|e| session(e.into()))?;
    let mut builder = builder.with_inter_threads(1).map_err(|e| session(e.into()))?;
    if let Some(device) = gpu {
        builder = on_cuda(builder, device)?;
    }
    builder.commit_from_memory(model).map_err(session)
}

#[cfg(feature = "cuda")]
fn on_cuda(builder: SessionBuilder, device: usize) -> Result<SessionBuilder, OnnxError> {
    let cuda = ort::ep::CUDA::default().with_device_id(device as i32).build().error_on_failure();
    builder.with_execution_providers([cuda]).map_err(|e| OnnxError::Cuda { device, source: Some(e.into()) })
}

/// A CPU build never places a model on a GPU (`engine::device` refuses first); should it be
/// asked, it answers with the same error as a library without the provider.
#[cfg(not(feature = "cuda"))]
fn on_cuda(_builder: SessionBuilder, device: usize) -> Result<SessionBuilder, OnnxError> {
    Err(OnnxError::Cuda { device, source: None })
}

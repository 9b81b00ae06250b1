//! What can go wrong with models: one error type for fetching, checking and converting them,
//! kept apart from `mod.rs` so the files that make models name it without naming their parent.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while fetching or converting a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checksum mismatch for {path}: expected {expected}, got {actual}")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("cannot run the registry client for {spec}")]
    ClientMissing {
        spec: String,
        #[source]
        source: std::io::Error,
    },
    /// The client ran and failed; its own error output says why.
    #[error("registry client failed for {spec}: {stderr}")]
    Client { spec: String, stderr: String },
    #[error("{member} is missing from {archive}")]
    MissingMember { archive: PathBuf, member: String },
    #[error("cannot read archive {}", .0.display())]
    Archive(PathBuf, #[source] zip::result::ZipError),
    #[error("model format: {0}")]
    Format(String),
    #[error("writing the ggml file: {0}")]
    Write(std::io::Error),
    #[error("unknown model {0:?}: use tiny.en, base (either with -q8_0), or the path of a whisper.cpp ggml file")]
    UnknownModel(String),
    #[error("model file {0} does not exist; run `speech-service models fetch`")]
    NotFetched(PathBuf),
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}

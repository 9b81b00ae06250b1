//! What can stop a load run.

use std::path::PathBuf;

use crate::client::ClientError;

/// Why a load run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no recordings to stream")]
    NoRecordings,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the recording {}", path.display())]
    Audio {
        path: PathBuf,
        #[source]
        source: crate::audio::AudioError,
    },
    #[error("{} is not load JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

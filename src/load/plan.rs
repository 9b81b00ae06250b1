//! What a load run streams, and how.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::LoadError;
use crate::audio::wav::{self, WavAudio};

/// A recording to stream, with the text that was said (for WER), if known.
pub struct LoadFile {
    pub name: String,
    pub audio: Arc<WavAudio>,
    pub reference: Option<String>,
}

impl LoadFile {
    /// Reads `path`; `reference` is text or a file holding it. Without one, the references the
    /// project ships (jfk.wav's text, sample.wav's STM beside it) are used for those recordings.
    /// `repeat` plays the recording that many times back to back (a longer, busier stream).
    pub fn open(path: &Path, reference: Option<&str>, repeat: usize) -> Result<Self, LoadError> {
        let audio = wav::read(path).map_err(|source| LoadError::Audio { path: path.to_owned(), source });
        let mut audio = audio?;
        audio.samples = audio.samples.repeat(repeat.max(1));
        let name = path.file_name().map_or_else(|| "audio".into(), |n| n.to_string_lossy().into_owned());
        let reference = match reference {
            Some(r) if Path::new(r).is_file() => {
                Some(std::fs::read_to_string(r).map_err(|source| LoadError::Read { path: r.into(), source })?)
            }
            Some(r) => Some(r.to_owned()),
            None => known_reference(path),
        };
        let reference = reference.map(|r| vec![r.trim(); repeat.max(1)].join(" "));
        Ok(Self { name, audio: Arc::new(audio), reference })
    }
}

fn known_reference(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    match name {
        "jfk.wav" => Some(crate::eval::reference::JFK_TEXT.to_owned()),
        _ => crate::eval::reference::stm_text(&path.with_extension("stm")).ok(),
    }
}

/// One run's settings.
pub struct LoadOptions {
    /// `ws://host:port/v1/listen`.
    pub url: String,
    pub files: Vec<LoadFile>,
    /// Delay between the starts of consecutive streams.
    pub stagger: Duration,
    /// `diarize=` on every stream; `None` leaves the server's default.
    pub diarize: Option<bool>,
    /// Extra query parameters for every stream (`endpointing_ms=300`, ...).
    pub query: Vec<(String, String)>,
    /// 1.0 = real time.
    pub speed: f64,
    pub token: Option<String>,
}

/// The recordings the project ships, streamed round robin when no `--file` is given.
pub fn default_files(models_dir: &Path) -> Vec<PathBuf> {
    use crate::models::catalog::paths;
    vec![models_dir.join(paths::JFK_WAV), models_dir.join(paths::SAMPLE_WAV)]
}

//! Offline transcription of a whole file through the same VAD, segmenter and ASR engine.

use std::path::Path;
use std::time::Duration;

use crate::audio::{decode, AudioError};
use crate::config::Config;
use crate::engine::asr::{AsrError, DecodeOptions};
use crate::engine::diarize::DiarizeError;
use crate::engine::Engines;
use crate::onnx::OnnxError;
use crate::pipeline::segmenter::{SegmentEvent, Segmenter, Utterance};
use crate::pipeline::vad::VadFramer;

mod render;
mod speakers;

pub use render::{render, Format, Transcription};

/// Runs VAD and the segmenter over 16 kHz `samples` (on the calling thread).
/// Why a file could not be transcribed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("voice activity detection failed")]
    Vad(#[from] OnnxError),
    #[error(transparent)]
    Asr(#[from] AsrError),
    #[error("speaker labelling failed")]
    Diarize(#[from] DiarizeError),
    #[error("the voice activity pass stopped")]
    Interrupted(#[from] tokio::task::JoinError),
}

pub fn find_utterances(samples: &[f32], engines: &Engines, config: &Config) -> Result<Vec<Utterance>, OnnxError> {
    let mut framer = VadFramer::new(engines.vad.detector());
    let mut segmenter = Segmenter::new(&config.vad);
    let mut utterances = Vec::new();
    let mut frames = framer.push(samples)?;
    frames.extend(framer.finish()?);
    for frame in frames {
        for event in segmenter.push(&frame.samples, frame.probability) {
            if let SegmentEvent::Ended(u) = event {
                utterances.push(u);
            }
        }
    }
    utterances.extend(segmenter.finalize());
    Ok(utterances)
}

/// Transcribes an audio file in any format `audio::decode` reads, labelling speakers when
/// `diarize` and the engine allow.
pub async fn transcribe_file(
    path: &Path,
    engines: &Engines,
    config: &Config,
    language: Option<String>,
    diarize: bool,
) -> Result<Transcription, OfflineError> {
    let path = path.to_owned();
    let samples = tokio::task::spawn_blocking(move || decode::read_16k(&path)).await??;
    let options = DecodeOptions { language, ..Default::default() };
    transcribe_samples(samples, engines, config, options, diarize, &mut |_| {}).await
}

/// Transcribes 16 kHz mono `samples`; `on_text` sees each utterance's text as soon as it is
/// recognised (before speakers are settled), in order.
pub async fn transcribe_samples(
    samples: Vec<f32>,
    engines: &Engines,
    config: &Config,
    options: DecodeOptions,
    diarize: bool,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Transcription, OfflineError> {
    let (e, c) = (engines.clone(), config.clone());
    let utterances = tokio::task::spawn_blocking(move || find_utterances(&samples, &e, &c)).await??;
    let timeout = Duration::from_secs(config.asr.final_timeout_s);
    let diarizer = engines.diarize.as_ref().filter(|_| diarize);
    let mut results = Vec::with_capacity(utterances.len());
    for u in utterances {
        let turns = match diarizer {
            Some(d) => Some(d.submit(u.samples.clone(), 0, timeout).await?),
            None => None,
        };
        let transcript = engines.asr.transcribe(u.samples, options.clone(), timeout).await?;
        on_text(&transcript.text);
        let turns = match turns {
            Some(rx) => rx.await.unwrap_or(Err(DiarizeError::WorkerLost))?,
            None => Vec::new(),
        };
        results.push((u.id, u.start, u.end, transcript, turns));
    }
    Ok(speakers::attribute(results, config, diarizer.is_some()))
}

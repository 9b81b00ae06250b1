//! Offline transcription of a whole file through the same VAD, segmenter and ASR engine.

use std::path::Path;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use self::speakers::UtteranceResult;

use crate::audio::decode::FileDecoder;
use crate::audio::AudioError;
use crate::config::Config;
use crate::domain::Transcript;
use crate::engine::asr::{AsrError, DecodeOptions};
use crate::engine::diarize::{DiarizeError, DiarizeHandle};
use crate::engine::Engines;
use crate::eval::rttm::Turn;
use crate::onnx::OnnxError;
use crate::pipeline::segmenter::{SegmentEvent, Segmenter, SegmenterConfig, Utterance};
use crate::pipeline::vad::{ScoredFrame, VadFramer, VadModel};

mod render;
mod speakers;

pub use render::{render, Format, Transcription};

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

/// Runs VAD and the segmenter over 16 kHz `samples` (on the calling thread).
pub fn find_utterances(samples: &[f32], engines: &Engines, config: &Config) -> Result<Vec<Utterance>, OnnxError> {
    let mut framer = VadFramer::new(engines.vad.detector());
    let mut segmenter = Segmenter::new(&config.vad);
    let mut frames = framer.push(samples)?;
    frames.extend(framer.finish()?);
    let mut utterances = ended_utterances(&mut segmenter, frames);
    utterances.extend(segmenter.finalize());
    Ok(utterances)
}

/// The utterances that `frames` end.
fn ended_utterances(segmenter: &mut Segmenter, frames: Vec<ScoredFrame>) -> Vec<Utterance> {
    let events = frames.into_iter().flat_map(|f| segmenter.push(&f.samples, f.probability)).collect::<Vec<_>>();
    events.into_iter().filter_map(|e| if let SegmentEvent::Ended(u) = e { Some(u) } else { None }).collect()
}

/// A transcribed file and its length.
#[derive(Debug, Clone, Default)]
pub struct FileTranscription {
    pub transcription: Transcription,
    /// Seconds of audio decoded.
    pub duration: f64,
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
    let decoder = FileDecoder::open(path)?;
    let options = DecodeOptions { language, ..Default::default() };
    let utterances = Utterances::of(decoder, engines, config);
    Ok(transcribe_utterances(utterances, engines, config, options, diarize, &mut |_, _| {}).await?.transcription)
}

/// Utterances found but not yet recognised: what bounds the audio a file holds in memory (each
/// is at most `vad.max_utterance_s` long), whatever the file's length.
const UTTERANCES_AHEAD: usize = 4;

/// A file being decoded and split into utterances on a blocking thread, ahead of recognition.
pub struct Utterances {
    rx: tokio::sync::mpsc::Receiver<Utterance>,
    splitter: tokio::task::JoinHandle<Result<usize, OfflineError>>,
}

impl Utterances {
    /// Starts splitting `decoder` with the engines' VAD and the configured segmenter.
    pub fn of(decoder: FileDecoder, engines: &Engines, config: &Config) -> Self {
        Self::start(decoder, engines.vad.clone(), &config.vad)
    }

    /// Starts decoding `decoder`, running VAD and the segmenter over it; at most
    /// [`UTTERANCES_AHEAD`] utterances wait for recognition. It needs only the VAD model, so a
    /// command can start it while Whisper is still loading.
    pub fn start(decoder: FileDecoder, vad: VadModel, config: &SegmenterConfig) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(UTTERANCES_AHEAD);
        let config = config.clone();
        let splitter = tokio::task::spawn_blocking(move || split_utterances(decoder, &vad, &config, &tx));
        Self { rx, splitter }
    }
}

/// Transcribes each of a file's `channels` as a stream of its own (`multichannel`): `open`
/// opens the file afresh for each channel (one channel's audio at a time is decoded). Every
/// segment carries its channel, and the channel is its speaker (`S1` left, `S2` right); segments
/// and speaker turns of all channels are in time order.
pub async fn transcribe_channels(
    open: &(dyn Fn() -> Result<FileDecoder, AudioError> + Sync),
    channels: usize,
    engines: &Engines,
    config: &Config,
    options: DecodeOptions,
) -> Result<FileTranscription, OfflineError> {
    let mut all = FileTranscription::default();
    for channel in 0..channels {
        let utterances = Utterances::of(open()?.channel(channel)?, engines, config);
        let file = transcribe_utterances(utterances, engines, config, options.clone(), false, &mut |_, _| {}).await?;
        let (channel, n) = (channel as u32, channels as u32);
        let id = |segment_id: u64| crate::domain::channel_segment_id(segment_id, channel, n);
        all.transcription.quality.extend(file.transcription.quality.into_iter().map(|(k, q)| (id(k), q)));
        all.transcription.segments.extend(file.transcription.segments.into_iter().map(|mut s| {
            s.segment_id = id(s.segment_id);
            s.speaker = Some(crate::domain::channel_speaker(channel, None));
            s.channel = Some(channel);
            s
        }));
        all.duration = all.duration.max(file.duration);
    }
    all.transcription.segments.sort_by(|a, b| a.start.total_cmp(&b.start));
    all.transcription.turns = all
        .transcription
        .segments
        .iter()
        .filter_map(|s| Some(Turn { start: s.start, end: s.end, speaker: s.speaker.clone()? }))
        .collect();
    Ok(all)
}

/// Recognises each utterance as the splitter hands it over: one at a time beside live streams
/// (a file then keeps at most one job in the recognition queue), as many at once as there are
/// workers without them (`AsrHandle::transcribe` keys file clips to match). `on_utterance` sees
/// each utterance's transcript as soon as it is recognised (before speakers are settled), in
/// order, with where it ends in the file (seconds): for streamed text and progress bars.
pub async fn transcribe_utterances(
    utterances: Utterances,
    engines: &Engines,
    config: &Config,
    options: DecodeOptions,
    diarize: bool,
    on_utterance: &mut (dyn FnMut(&Transcript, f64) + Send),
) -> Result<FileTranscription, OfflineError> {
    let Utterances { mut rx, splitter } = utterances;
    let timeout = Duration::from_secs(config.asr.final_timeout_s);
    let diarizer = engines.diarize.as_ref().filter(|_| diarize);
    let mut results = Vec::new();
    let mut in_flight = FuturesOrdered::new();
    let mut more = true;
    loop {
        // Beside live streams a file keeps one clip in the recognition queue (live streams come
        // first); while there are none, as many as there are workers. Results keep their order.
        let room = if engines.asr.serves_live_streams() { 1 } else { engines.asr.workers() };
        tokio::select! {
            biased;
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                let result: UtteranceResult = result?;
                on_utterance(&result.3, crate::domain::seconds(result.2));
                results.push(result);
            }
            next = rx.recv(), if more && in_flight.len() < room => match next {
                Some(u) => in_flight.push_back(recognise(u, engines, diarizer, options.clone(), timeout)),
                None => more = false,
            },
            else => break,
        }
    }
    let n_samples = splitter.await??;
    let transcription = speakers::attribute(results, config, diarizer.is_some());
    Ok(FileTranscription { transcription, duration: crate::domain::seconds(n_samples) })
}

/// One utterance through the recognition engine and, when labelling, the speaker engine (both
/// at once).
async fn recognise(
    u: Utterance,
    engines: &Engines,
    diarizer: Option<&DiarizeHandle>,
    options: DecodeOptions,
    timeout: Duration,
) -> Result<UtteranceResult, OfflineError> {
    let turns = match diarizer {
        Some(d) => Some(d.submit(u.samples.clone(), 0, timeout).await?),
        None => None,
    };
    let transcript = engines.asr.transcribe(u.samples, options, timeout).await?;
    let turns = match turns {
        Some(rx) => rx.await.unwrap_or(Err(DiarizeError::WorkerLost))?,
        None => Vec::new(),
    };
    Ok((u.id, u.start, u.end, transcript, turns))
}

/// Decodes, scores and segments the whole file, sending each utterance as it ends; returns the
/// samples decoded. Stops early when the receiver is gone (the request failed or was dropped).
fn split_utterances(
    mut decoder: FileDecoder,
    vad: &VadModel,
    config: &SegmenterConfig,
    tx: &tokio::sync::mpsc::Sender<Utterance>,
) -> Result<usize, OfflineError> {
    let mut framer = VadFramer::new(vad.detector());
    let mut segmenter = Segmenter::new(config);
    let mut n_samples = 0;
    let hand_over = |frames: Vec<ScoredFrame>, segmenter: &mut Segmenter| {
        ended_utterances(segmenter, frames).into_iter().try_for_each(|u| tx.blocking_send(u).map_err(drop))
    };
    while let Some(chunk) = decoder.next_chunk()? {
        n_samples += chunk.len();
        if hand_over(framer.push(&chunk)?, &mut segmenter).is_err() {
            return Ok(n_samples);
        }
    }
    if hand_over(framer.finish()?, &mut segmenter).is_ok() {
        if let Some(u) = segmenter.finalize() {
            let _ = tx.blocking_send(u);
        }
    }
    Ok(n_samples)
}

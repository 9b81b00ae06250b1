//! The bottom layer: the domain types every other module shares. It imports nothing from the
//! crate, so any module may use it (docs/ARCHITECTURE.md, "Layers").

use serde::{Deserialize, Serialize};

/// The rate every model here runs at, and the rate of every sample count in the crate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Samples in one millisecond at [`SAMPLE_RATE`].
pub const SAMPLES_PER_MS: usize = SAMPLE_RATE as usize / 1000;

/// Seconds of audio in `n_samples`.
pub fn seconds(n_samples: usize) -> f64 {
    n_samples as f64 / f64::from(SAMPLE_RATE)
}

/// Samples in `t` seconds of audio (negative times count as 0).
pub fn seconds_to_samples(t: f64) -> usize {
    (t.max(0.0) * f64::from(SAMPLE_RATE)).round() as usize
}

/// Samples in `ms` milliseconds of audio.
pub const fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLES_PER_MS
}

/// Rounds seconds to whole milliseconds: every time a client sees has this precision.
pub fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// One recognised word; times are seconds from the start of the clip (or of the stream, once in
/// a [`Segment`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

impl Word {
    /// Its middle: where a word counts as said (speaker turns, cuts).
    pub fn middle(&self) -> f64 {
        (self.start + self.end) / 2.0
    }

    /// The word moved by `offset` seconds, rounded to milliseconds.
    pub fn shifted(mut self, offset: f64) -> Self {
        self.start = round_ms(self.start + offset);
        self.end = round_ms(self.end + offset);
        self
    }
}

/// What Whisper made of one clip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub text: String,
    pub words: Vec<Word>,
    pub language: String,
    pub quality: DecodeQuality,
}

/// How sure a decode was, as OpenAI's `verbose_json` reports it per segment: the mean log
/// probability of its tokens, its text's compression ratio (a repetition loop compresses far
/// better than speech) and Whisper's probability that the clip holds no speech.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecodeQuality {
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

/// One speaker turn within an utterance, in samples relative to the clip, with the speaker
/// embedding of its audio when it was long enough to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedTurn {
    pub start: usize,
    pub end: usize,
    pub embedding: Option<Vec<f32>>,
    pub reliable: bool,
    /// The turn's clip is telephone band (`speaker::band`): its embedding is judged by
    /// `speakers.narrowband_threshold`.
    pub narrowband: bool,
    /// How many samples the embedding was computed from (a long turn's middle, or a turn that
    /// began in the context before the clip's new audio, all of it): shorter embeddings are
    /// looser, so the clustering asks less similarity of them.
    pub embedded: usize,
}

impl EmbeddedTurn {
    /// The turn moved `offset` samples later.
    pub fn shifted(self, offset: usize) -> Self {
        Self { start: self.start + offset, end: self.end + offset, ..self }
    }

    /// The turn as seen from sample `context` of its clip on (moved `context` samples earlier),
    /// `None` when it ended before.
    pub fn after(self, context: usize) -> Option<Self> {
        (self.end > context).then(|| Self { start: self.start.max(context) - context, end: self.end - context, ..self })
    }
}

/// A final segment: an utterance's transcript joined with its speaker, times in seconds from
/// the start of the stream (or file). The one shape a final has from the moment text and
/// speakers meet: the wire message, the session registry, the store and the renderers use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub segment_id: u64,
    /// 0 unless the utterance was split at a speaker change: then 0, 1, ... in time order.
    pub part: u32,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<Word>,
    pub language: String,
    pub speaker: Option<String>,
    /// The audio channel (0 = left) of a `multichannel` stream or file; absent for mono.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
}

/// The speaker of a segment of channel `channel` (0 = left) of a multichannel stream or file:
/// the channel itself (`S1`, `S2`, ...), or, with speakers also labelled within channels, that
/// channel's speaker (its `S2` in channel 0 is `S1.2`).
pub fn channel_speaker(channel: u32, within: Option<&str>) -> String {
    match within {
        None => format!("S{}", channel + 1),
        Some(speaker) => format!("S{}.{}", channel + 1, speaker.trim_start_matches('S')),
    }
}

/// The id of a channel's segment `id` in a multichannel stream or file of `channels`: unique
/// across channels, and the channel is `id % channels`.
pub fn channel_segment_id(id: u64, channel: u32, channels: u32) -> u64 {
    id * u64::from(channels) + u64::from(channel)
}

/// A setting the service cannot run with: names the setting (`vad.threshold`) and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{setting} {problem}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub problem: String,
}

impl InvalidSetting {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self { setting, problem: problem.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_after_its_context_keeps_only_what_follows_it() {
        let turn = |start, end| EmbeddedTurn {
            start,
            end,
            embedding: Some(vec![1.0]),
            reliable: true,
            narrowband: false,
            embedded: 16_000,
        };
        assert_eq!(turn(100, 500).after(300).map(|t| (t.start, t.end)), Some((0, 200)), "began in the context");
        assert_eq!(turn(400, 500).after(300).map(|t| (t.start, t.end)), Some((100, 200)));
        assert!(turn(0, 300).after(300).is_none(), "all in the context");
        assert_eq!(turn(0, 10).after(0).map(|t| t.end), Some(10));
    }

    #[test]
    fn sample_counts_and_seconds_agree() {
        assert_eq!(ms_to_samples(250), 4_000);
        assert_eq!(seconds(ms_to_samples(1500)), 1.5);
        let w = Word { word: "a".into(), start: 0.1234, end: 0.2, probability: 1.0 }.shifted(1.0);
        assert_eq!((w.start, w.end), (1.123, 1.2));
    }
}

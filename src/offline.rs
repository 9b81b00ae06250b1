//! Offline transcription of a whole file through the same VAD, segmenter and ASR engine.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::app::Engines;
use crate::audio::{seconds, wav};
use crate::config::Config;
use crate::engine::asr::Word;
use crate::pipeline::segmenter::{SegmentEvent, Segmenter, Utterance};
use crate::pipeline::vad::VadFramer;

/// One transcribed segment with stream-relative times in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<Word>,
    pub language: String,
    pub speaker: Option<String>,
}

/// Runs VAD and the segmenter over 16 kHz `samples` (on the calling thread).
pub fn find_utterances(samples: &[f32], engines: &Engines, config: &Config) -> anyhow::Result<Vec<Utterance>> {
    let mut framer = VadFramer::new(engines.vad.detector()?);
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

/// Transcribes a WAV file of any rate.
pub async fn transcribe_file(
    path: &Path,
    engines: &Engines,
    config: &Config,
    language: Option<String>,
) -> anyhow::Result<Vec<Segment>> {
    let samples = wav::read_16k(path)?;
    let (e, c) = (engines.clone(), config.clone());
    let utterances = tokio::task::spawn_blocking(move || find_utterances(&samples, &e, &c)).await??;
    let timeout = Duration::from_secs(config.asr.final_timeout_s);
    let mut segments = Vec::with_capacity(utterances.len());
    for u in utterances {
        let t = engines.asr.transcribe(u.samples, language.clone(), timeout).await?;
        let offset = seconds(u.start);
        let words = t.words.into_iter().map(|w| Word { start: w.start + offset, end: w.end + offset, ..w }).collect();
        segments.push(Segment {
            id: u.id,
            start: offset,
            end: seconds(u.end),
            text: t.text,
            words,
            language: t.language,
            speaker: None,
        });
    }
    Ok(segments)
}

/// Output formats of `transcribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Srt,
    Vtt,
}

fn timestamp(secs: f64, decimal: char) -> String {
    let ms = (secs * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}{decimal}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// Renders segments in `format`.
pub fn render(segments: &[Segment], format: Format) -> String {
    let spoken = segments.iter().filter(|s| !s.text.is_empty());
    match format {
        Format::Text => spoken.map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n") + "\n",
        Format::Json => {
            serde_json::to_string_pretty(&serde_json::json!({ "segments": segments })).expect("segments serialise")
                + "\n"
        }
        Format::Srt => spoken
            .enumerate()
            .map(|(i, s)| {
                format!("{}\n{} --> {}\n{}\n\n", i + 1, timestamp(s.start, ','), timestamp(s.end, ','), s.text)
            })
            .collect(),
        Format::Vtt => {
            let cues: String = spoken
                .map(|s| format!("{} --> {}\n{}\n\n", timestamp(s.start, '.'), timestamp(s.end, '.'), s.text))
                .collect();
            format!("WEBVTT\n\n{cues}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: f64, end: f64, text: &str) -> Segment {
        Segment { id: 0, start, end, text: text.into(), words: vec![], language: "en".into(), speaker: None }
    }

    #[test]
    fn subtitles_use_their_timestamp_styles() {
        let segs = [segment(0.5, 3723.25, "Hello there."), segment(4000.0, 4001.0, "")];
        assert_eq!(render(&segs, Format::Srt), "1\n00:00:00,500 --> 01:02:03,250\nHello there.\n\n");
        assert_eq!(render(&segs, Format::Vtt), "WEBVTT\n\n00:00:00.500 --> 01:02:03.250\nHello there.\n\n");
        assert_eq!(render(&segs, Format::Text), "Hello there.\n");
    }
}

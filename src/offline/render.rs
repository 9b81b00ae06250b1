//! Output formats of `transcribe`.

use std::collections::BTreeMap;

use crate::domain::{DecodeQuality, Segment};
use crate::eval::rttm::{self, Turn};

/// A transcribed file: its segments, when diarized its speaker turns, and how sure each
/// segment's decode was (by `segment_id`: the parts of one utterance share its decode).
#[derive(Debug, Clone, Default)]
pub struct Transcription {
    pub segments: Vec<Segment>,
    pub turns: Vec<Turn>,
    pub quality: BTreeMap<u64, DecodeQuality>,
}

/// Output formats of `transcribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Srt,
    Vtt,
    /// Speaker turns as RTTM (needs diarization).
    Rttm,
}

impl Format {
    /// Whether the output carries each word's time (JSON's `words`, WebVTT's word tags).
    pub fn has_word_timings(self) -> bool {
        matches!(self, Self::Json | Self::Vtt)
    }
}

fn timestamp(secs: f64, decimal: char) -> String {
    let ms = (secs * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}{decimal}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// `S1: text`, or the text alone when the speaker is unknown.
fn with_speaker(s: &Segment, style: fn(&str, &str) -> String) -> String {
    match &s.speaker {
        Some(speaker) => style(speaker, &s.text),
        None => s.text.clone(),
    }
}

/// The cue text of a segment with a WebVTT timestamp tag before every word after the first
/// (players highlight each word as it is spoken); `None` without word timings.
fn timed_words(s: &Segment) -> Option<String> {
    let (first, rest) = s.words.split_first()?;
    let mut text = first.word.trim().to_owned();
    for w in rest {
        text.push_str(&format!(" <{}>{}", timestamp(w.start, '.'), w.word.trim()));
    }
    Some(text)
}

/// Renders a transcription of recording `file` in `format`.
pub fn render(t: &Transcription, format: Format, file: &str) -> String {
    let spoken = t.segments.iter().filter(|s| !s.text.is_empty());
    let colon = |who: &str, text: &str| format!("{who}: {text}");
    match format {
        Format::Text => spoken.map(|s| with_speaker(s, colon) + "\n").collect(),
        Format::Json => {
            let turns: Vec<_> = t
                .turns
                .iter()
                .map(|x| serde_json::json!({"start": x.start, "end": x.end, "speaker": x.speaker}))
                .collect();
            let body = serde_json::json!({ "segments": t.segments, "speaker_turns": turns });
            serde_json::to_string_pretty(&body).expect("segments serialise") + "\n"
        }
        Format::Srt => spoken
            .enumerate()
            .map(|(i, s)| {
                let (a, b) = (timestamp(s.start, ','), timestamp(s.end, ','));
                format!("{}\n{a} --> {b}\n{}\n\n", i + 1, with_speaker(s, |who, text| format!("[{who}] {text}")))
            })
            .collect(),
        Format::Vtt => {
            let cues: String = spoken
                .map(|s| {
                    let (a, b) = (timestamp(s.start, '.'), timestamp(s.end, '.'));
                    let text = timed_words(s).unwrap_or_else(|| s.text.trim().to_owned());
                    let cue = match &s.speaker {
                        Some(who) => format!("<v {who}>{text}"),
                        None => text,
                    };
                    format!("{a} --> {b}\n{cue}\n\n")
                })
                .collect();
            format!("WEBVTT\n\n{cues}")
        }
        Format::Rttm => rttm::write(file, &t.turns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Word;

    fn segment(start: f64, end: f64, text: &str, speaker: Option<&str>) -> Segment {
        let speaker = speaker.map(str::to_owned);
        Segment {
            segment_id: 0,
            part: 0,
            start,
            end,
            text: text.into(),
            words: vec![],
            language: "en".into(),
            speaker,
            channel: None,
        }
    }

    #[test]
    fn subtitles_use_their_timestamp_styles() {
        let segments = vec![segment(0.5, 3723.25, "Hello there.", None), segment(4000.0, 4001.0, "", None)];
        let t = Transcription { segments, turns: vec![], quality: BTreeMap::new() };
        assert_eq!(render(&t, Format::Srt, "f"), "1\n00:00:00,500 --> 01:02:03,250\nHello there.\n\n");
        assert_eq!(render(&t, Format::Vtt, "f"), "WEBVTT\n\n00:00:00.500 --> 01:02:03.250\nHello there.\n\n");
        assert_eq!(render(&t, Format::Text, "f"), "Hello there.\n");
    }

    #[test]
    fn speakers_appear_in_every_format() {
        let turns = vec![Turn { start: 0.5, end: 2.0, speaker: "S1".into() }];
        let t = Transcription { segments: vec![segment(0.5, 2.0, "Hi.", Some("S1"))], turns, quality: BTreeMap::new() };
        assert_eq!(render(&t, Format::Text, "f"), "S1: Hi.\n");
        assert!(render(&t, Format::Srt, "f").contains("[S1] Hi."));
        assert!(render(&t, Format::Vtt, "f").contains("<v S1>Hi."));
        assert_eq!(render(&t, Format::Rttm, "call"), "SPEAKER call 1 0.500 1.500 <NA> <NA> S1 <NA> <NA>\n");
        assert!(render(&t, Format::Json, "f").contains("\"speaker_turns\""));
    }

    #[test]
    fn vtt_cues_carry_word_timings() {
        let word = |w: &str, start: f64| Word { word: w.into(), start, end: start + 0.3, probability: 0.9 };
        let mut s = segment(1.0, 2.0, " Ask not.", Some("S2"));
        s.words = vec![word(" Ask", 1.0), word(" not.", 1.42)];
        let t = Transcription { segments: vec![s], turns: vec![], quality: BTreeMap::new() };
        let vtt = render(&t, Format::Vtt, "f");
        assert_eq!(vtt, "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v S2>Ask <00:00:01.420>not.\n\n");
    }
}

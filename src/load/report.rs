//! What a load run measured, per stream and for the run, as a table or JSON.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stream::{ServerUsage, StreamOutcome};
use crate::client::Received;
use crate::engine::stats::percentile;
use crate::eval::wer::word_error_rate;
use crate::protocol::ServerMessage;

/// One admitted stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamReport {
    pub file: String,
    /// Per utterance: end of its last word -> arrival of its last `final` part (s).
    pub final_latency: Vec<f64>,
    /// Per word: its end -> arrival of the `final` carrying it (s).
    #[serde(default)]
    pub word_latency: Vec<f64>,
    /// Per utterance: `speech_started.start` -> its first `partial` (s).
    pub first_partial: Vec<f64>,
    pub partials: usize,
    /// Seconds of speech in the finals.
    pub speech_seconds: f64,
    pub wer: Option<f64>,
    /// `error` messages received, by code.
    pub errors: Vec<String>,
    /// The finals' text, joined.
    pub text: String,
}

impl StreamReport {
    /// `speed` is the pace the audio was sent at (1 = real time); latencies are measured against
    /// when each word was sent, and not at all for `speed` 0 (as fast as possible).
    pub fn from_messages(file: &str, reference: Option<&str>, received: &[Received], speed: f64) -> Self {
        let mut speech_start: HashMap<u64, f64> = HashMap::new();
        let mut first_partial: HashMap<u64, f64> = HashMap::new();
        let mut last_final: HashMap<u64, (f64, f64)> = HashMap::new();
        let mut utterance_ends = Vec::new();
        let mut word_latency = Vec::new();
        let (mut partials, mut speech, mut errors, mut text) = (0, 0.0, Vec::new(), Vec::new());
        for r in received {
            match &r.message {
                ServerMessage::SpeechStarted { segment_id, start, .. } => {
                    speech_start.insert(*segment_id, *start);
                }
                ServerMessage::Partial { segment_id, .. } => {
                    partials += 1;
                    first_partial.entry(*segment_id).or_insert(r.wall);
                }
                ServerMessage::Final(f) => {
                    speech += f.end - f.start;
                    text.push(f.text.clone());
                    if let Some(last_word) = f.words.last() {
                        last_final.insert(f.segment_id, (last_word.end, r.wall));
                    }
                    word_latency.extend(f.words.iter().map(|w| r.wall - w.end / speed));
                }
                ServerMessage::UtteranceEnd { segment_id, .. } => utterance_ends.push(*segment_id),
                ServerMessage::Error { code, .. } => errors.push(code.name()),
                _ => {}
            }
        }
        let partial_delay = first_partial.iter().filter_map(|(id, t)| Some(t - speech_start.get(id)? / speed));
        let partial_delay = partial_delay.filter(|_| speed > 0.0).collect();
        let text = text.join(" ");
        // An utterance's last final is the one its end names; a server that does not mark
        // utterance ends has one final segment per utterance.
        if !utterance_ends.is_empty() {
            last_final.retain(|id, _| utterance_ends.contains(id));
        }
        let timed = speed > 0.0;
        Self {
            file: file.to_owned(),
            final_latency: if timed {
                last_final.values().map(|(end, arrived)| arrived - end / speed).collect()
            } else {
                Vec::new()
            },
            word_latency: if timed { word_latency } else { Vec::new() },
            first_partial: partial_delay,
            partials,
            speech_seconds: speech,
            wer: reference.map(|r| word_error_rate(r, &text).wer()),
            errors,
            text,
        }
    }

    /// Partials per 2 s of speech: the floor for "still gets partials" is 1.
    pub fn partials_per_2s(&self) -> f64 {
        if self.speech_seconds > 0.0 {
            self.partials as f64 * 2.0 / self.speech_seconds
        } else {
            0.0
        }
    }
}

/// Percentiles of a sample; `None` when empty.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Self { p50: percentile(&v, 50.0), p95: percentile(&v, 95.0), max: v.last().copied() }
    }
}

/// One run with `streams` clients offered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelReport {
    pub streams: usize,
    pub admitted: usize,
    /// Refusals at the upgrade, by `HTTP status code` (e.g. `503 at_capacity`).
    pub refused: BTreeMap<String, usize>,
    /// Streams that failed after admission, and `error` messages, by code.
    pub errors: BTreeMap<String, usize>,
    pub final_latency: Spread,
    /// Word end -> arrival of the final carrying it, over every word of every stream.
    #[serde(default)]
    pub word_latency: Spread,
    pub first_partial: Spread,
    pub partials_per_stream: f64,
    /// The fewest partials per 2 s of speech of any stream.
    pub min_partials_per_2s: Option<f64>,
    pub wall_seconds: f64,
    pub server: ServerUsage,
    pub per_stream: Vec<StreamReport>,
}

impl LevelReport {
    pub fn new(
        streams: usize,
        outcomes: &[(String, Option<String>, StreamOutcome)],
        server: ServerUsage,
        took: Duration,
        speed: f64,
    ) -> Self {
        let (mut refused, mut errors, mut per_stream) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
        for (file, reference, outcome) in outcomes {
            match outcome {
                StreamOutcome::Done(received) => {
                    let report = StreamReport::from_messages(file, reference.as_deref(), received, speed);
                    for code in &report.errors {
                        *errors.entry(code.clone()).or_insert(0) += 1;
                    }
                    per_stream.push(report);
                }
                StreamOutcome::Refused(r) => *refused.entry(format!("{} {}", r.status, r.code)).or_insert(0) += 1,
                // Already the error's chain (`logging::chain`).
                StreamOutcome::Failed(chain) => {
                    tracing::warn!(error = %chain, "load stream failed");
                    *errors.entry("stream_failed".into()).or_insert(0) += 1;
                }
            }
        }
        let all = |f: fn(&StreamReport) -> &Vec<f64>| per_stream.iter().flat_map(f).copied().collect::<Vec<_>>();
        let n = per_stream.len();
        Self {
            streams,
            admitted: n,
            refused,
            errors,
            final_latency: Spread::of(&all(|s| &s.final_latency)),
            word_latency: Spread::of(&all(|s| &s.word_latency)),
            first_partial: Spread::of(&all(|s| &s.first_partial)),
            partials_per_stream: if n > 0 {
                per_stream.iter().map(|s| s.partials).sum::<usize>() as f64 / n as f64
            } else {
                0.0
            },
            min_partials_per_2s: per_stream.iter().map(StreamReport::partials_per_2s).min_by(f64::total_cmp),
            wall_seconds: took.as_secs_f64(),
            server,
            per_stream,
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    map.iter().map(|(k, v)| format!("{v} x {k}")).collect::<Vec<_>>().join(", ")
}

/// WER of every stream of each file, as `file min-max`.
fn wer_summary(r: &LevelReport) -> String {
    let mut by_file: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in &r.per_stream {
        if let Some(w) = s.wer {
            by_file.entry(&s.file).or_default().push(w * 100.0);
        }
    }
    let spans = by_file.iter().map(|(file, w)| {
        let (lo, hi) = w.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        format!("{file} {lo:.1}-{hi:.1}%")
    });
    spans.collect::<Vec<_>>().join(", ")
}

/// The Markdown table header for [`table_row`].
pub const TABLE_HEADER: &str = "| streams | admitted | refused | final p50 / p95 / max (s) | word -> final p50 / p95 (s) | first partial p50 / p95 (s) | partials per stream (min per 2 s of speech) | WER per stream | errors | server CPU (cores) | server RSS start / max (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|";

/// One level as a Markdown table row (also readable on a terminal).
pub fn table_row(r: &LevelReport) -> String {
    let f = &r.final_latency;
    format!(
        "| {} | {} | {} | {} / {} / {} | {} / {} | {} / {} | {:.1} ({}) | {} | {} | {} | {} / {} |",
        r.streams,
        r.admitted,
        counts(&r.refused),
        secs(f.p50),
        secs(f.p95),
        secs(f.max),
        secs(r.word_latency.p50),
        secs(r.word_latency.p95),
        secs(r.first_partial.p50),
        secs(r.first_partial.p95),
        r.partials_per_stream,
        r.min_partials_per_2s.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
        wer_summary(r),
        counts(&r.errors),
        secs(r.server.cpu_cores),
        r.server.rss_mb_start.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
        r.server.rss_mb_max.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(wall: f64, message: serde_json::Value) -> Received {
        Received { message: serde_json::from_value(message).expect("a server message"), wall, audio_sent: wall }
    }

    #[test]
    fn measures_latency_partials_and_wer_from_messages() {
        let messages = [
            got(0.1, serde_json::json!({"type":"speech_started","segment_id":0,"start":0.2})),
            got(1.0, serde_json::json!({"type":"partial","segment_id":0,"start":0.2,"end":1.0,"text":"ask"})),
            got(1.6, serde_json::json!({"type":"partial","segment_id":0,"start":0.2,"end":1.6,"text":"ask not"})),
            got(
                3.4,
                serde_json::json!({"type":"final","segment_id":0,"part":0,"start":0.2,"end":2.2,"text":"ask not",
                "words":[{"word":"ask","start":0.2,"end":0.8,"probability":0.9},
                         {"word":"not","start":0.8,"end":2.0,"probability":0.9}],
                "language":"en","speaker":null}),
            ),
            got(3.5, serde_json::json!({"type":"error","code":"overloaded","message":"x"})),
        ];
        let r = StreamReport::from_messages("a.wav", Some("ask not what"), &messages, 1.0);
        assert_eq!(r.partials, 2);
        assert!((r.final_latency[0] - 1.4).abs() < 1e-9);
        assert_eq!(r.word_latency.len(), 2);
        assert!((r.word_latency[0] - 2.6).abs() < 1e-9 && (r.word_latency[1] - 1.4).abs() < 1e-9);
        assert!((r.first_partial[0] - 0.8).abs() < 1e-9);
        assert!((r.wer.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.partials_per_2s() - 2.0).abs() < 1e-9);
        assert_eq!(r.errors, vec!["overloaded".to_owned()]);
    }

    #[test]
    fn an_utterance_cut_into_progressive_finals_is_timed_at_its_end() {
        let word =
            |w: &str, start: f64, end: f64| serde_json::json!({"word":w,"start":start,"end":end,"probability":0.9});
        let fin = |id: u64, words: Vec<serde_json::Value>| {
            serde_json::json!({"type":"final","segment_id":id,"part":0,"start":0.0,"end":3.0,"text":"x",
                "words":words,"language":"en","speaker":null})
        };
        let messages = [
            got(2.0, fin(0, vec![word("one", 0.0, 0.5), word("two", 0.5, 1.0)])),
            got(3.5, fin(1, vec![word("three", 1.0, 3.0)])),
            got(3.5, serde_json::json!({"type":"utterance_end","segment_id":1,"end":3.2})),
        ];
        let r = StreamReport::from_messages("a.wav", None, &messages, 1.0);
        assert_eq!(r.final_latency, vec![0.5], "segment 0 was a piece, not an utterance's end");
        assert_eq!(r.word_latency, vec![1.5, 1.0, 0.5]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.p50, s.p95, s.max), (Some(3.0), Some(10.0), Some(10.0)));
        assert_eq!(Spread::of(&[]).p50, None);
    }
}

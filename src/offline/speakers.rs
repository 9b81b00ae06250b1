//! Offline speaker attribution: the same online clustering as live sessions, then a second pass
//! that relabels every turn with its nearest final speaker (offline can look back).

use super::render::Transcription;
use crate::config::Config;
use crate::domain::{seconds, EmbeddedTurn, Transcript};
use crate::eval::rttm::Turn;
use crate::speaker::attribution::{label_turns, to_segments, SpeakerTurn};
use crate::speaker::cluster::{label, SpeakerTracker};

/// One utterance's results: id, start and end sample, transcript, speaker turns.
pub type UtteranceResult = (u64, usize, usize, Transcript, Vec<EmbeddedTurn>);

pub fn attribute(results: Vec<UtteranceResult>, config: &Config, diarized: bool) -> Transcription {
    let mut tracker = SpeakerTracker::new(config.speakers.clone());
    // First pass: online clustering, as a live session would.
    let mut first_pass = |turns: &[EmbeddedTurn]| {
        let labelled = label_turns(&mut tracker, turns).turns;
        // Speakers found to be two or one change here too; the second pass relabels every turn.
        tracker.review();
        labelled
    };
    let first: Vec<Vec<SpeakerTurn>> = results.iter().map(|r| first_pass(&r.4)).collect();
    let mut out = Transcription::default();
    for ((id, start, end, transcript, turns), labelled) in results.into_iter().zip(first) {
        let labelled = relabel(&tracker, &turns, labelled);
        let offset = seconds(start);
        out.turns.extend(labelled.iter().map(|t| Turn {
            start: offset + seconds(t.start),
            end: offset + seconds(t.end),
            speaker: label(t.speaker),
        }));
        out.quality.insert(id, transcript.quality);
        let turns = diarized.then_some(labelled.as_slice());
        out.segments.extend(to_segments(id, &transcript, turns, end - start, offset));
    }
    out.turns = merge_adjacent(out.turns);
    out
}

/// Second pass: each embedded turn takes its nearest final speaker; the rest keep their label.
fn relabel(tracker: &SpeakerTracker, turns: &[EmbeddedTurn], labelled: Vec<SpeakerTurn>) -> Vec<SpeakerTurn> {
    labelled
        .into_iter()
        .map(|t| {
            let embedding = turns.iter().find(|e| e.start == t.start).and_then(|e| e.embedding.as_ref());
            let speaker = embedding.and_then(|e| tracker.nearest_speaker(e)).unwrap_or(tracker.resolve(t.speaker));
            SpeakerTurn { speaker, ..t }
        })
        .collect()
}

fn merge_adjacent(turns: Vec<Turn>) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        match out.last_mut() {
            Some(last) if last.speaker == t.speaker && t.start - last.end < 0.01 => last.end = t.end,
            _ => out.push(t),
        }
    }
    out
}

//! Joins speaker turns with the words of a transcript: labels the turns through the session's
//! tracker, then splits the words into per-speaker parts.

use super::cluster::{label, Evidence, SpeakerTracker};
use crate::domain::{round_ms, seconds, EmbeddedTurn, Segment, Transcript, Word};

/// A turn with its speaker id, in samples relative to the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerTurn {
    pub start: usize,
    pub end: usize,
    pub speaker: usize,
}

/// An embedded turn's place in its clip (samples) and its id in the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnMember {
    pub start: usize,
    pub end: usize,
    pub member: u64,
}

/// What [`label_turns`] found.
#[derive(Debug, Default)]
pub struct Labelled {
    pub turns: Vec<SpeakerTurn>,
    /// Merges the assignments caused: (merged id, surviving id).
    pub merged: Vec<(usize, usize)>,
    pub members: Vec<TurnMember>,
}

/// Labels every turn: embedded turns through the tracker (reliable ones first, longest first, so
/// the centroids are built from the best evidence), the others from their nearest labelled
/// neighbour.
pub fn label_turns(tracker: &mut SpeakerTracker, turns: &[EmbeddedTurn]) -> Labelled {
    let (mut merged, mut members) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..turns.len()).collect();
    order.sort_by_key(|&i| (!turns[i].reliable, std::cmp::Reverse(turns[i].end - turns[i].start)));
    let mut labels: Vec<Option<usize>> = vec![None; turns.len()];
    for i in order {
        let t = &turns[i];
        let Some(embedding) = t.embedding.as_ref() else { continue };
        let evidence = Evidence {
            weight: seconds(t.end - t.start) as f32,
            reliable: t.reliable,
            narrowband: t.narrowband,
            span: seconds(t.embedded) as f32,
        };
        let a = tracker.assign(embedding, evidence);
        merged.extend(a.merged);
        labels[i] = Some(a.speaker);
        members.push(TurnMember { start: t.start, end: t.end, member: a.member });
    }
    // Unlabelled turns take the previous label, or failing that the next.
    for i in 0..labels.len() {
        if labels[i].is_none() {
            labels[i] = labels[..i]
                .iter()
                .rev()
                .flatten()
                .next()
                .copied()
                .or_else(|| labels[i..].iter().flatten().next().copied());
        }
    }
    let labelled = turns
        .iter()
        .zip(labels)
        .filter_map(|(t, l)| Some(SpeakerTurn { start: t.start, end: t.end, speaker: tracker.resolve(l?) }))
        .collect();
    Labelled { turns: labelled, merged, members }
}

/// The speaker who talks longest in the clip.
pub fn dominant_speaker(turns: &[SpeakerTurn]) -> Option<usize> {
    let mut totals: Vec<(usize, usize)> = Vec::new();
    for t in turns {
        match totals.iter_mut().find(|(s, _)| *s == t.speaker) {
            Some((_, total)) => *total += t.end - t.start,
            None => totals.push((t.speaker, t.end - t.start)),
        }
    }
    totals.into_iter().max_by_key(|&(_, total)| total).map(|(s, _)| s)
}

/// Words of one speaker, with times in seconds relative to the clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub speaker: Option<usize>,
    pub start: f64,
    pub end: f64,
    pub words: Vec<Word>,
}

fn speaker_at(turns: &[SpeakerTurn], seconds: f64) -> Option<usize> {
    let sample = (seconds * f64::from(crate::domain::SAMPLE_RATE)) as usize;
    let inside = turns.iter().find(|t| sample >= t.start && sample < t.end);
    let nearest = || turns.iter().min_by_key(|t| t.start.abs_diff(sample).min(t.end.abs_diff(sample)));
    inside.or_else(nearest).map(|t| t.speaker)
}

/// The text of a part: its words joined by spaces.
pub fn join_words(words: &[Word]) -> String {
    words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>().join(" ")
}

/// Splits words into consecutive parts of one speaker each (by each word's midpoint). Parts tile
/// the clip `[0, clip_end]`: a part starts where its first word starts (the first at 0) and ends
/// where the next begins (the last at `clip_end`).
pub fn split_words(words: &[Word], turns: &[SpeakerTurn], clip_end: f64) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for w in words {
        let speaker = speaker_at(turns, w.middle());
        match parts.last_mut() {
            Some(p) if p.speaker == speaker => p.words.push(w.clone()),
            _ => parts.push(Part { speaker, start: w.start, end: clip_end, words: vec![w.clone()] }),
        }
    }
    if parts.is_empty() {
        return vec![Part { speaker: dominant_speaker(turns), start: 0.0, end: clip_end, words: Vec::new() }];
    }
    parts[0].start = 0.0;
    for i in 1..parts.len() {
        parts[i - 1].end = parts[i].start;
    }
    parts
}

/// The final segments of one utterance (`segment_id`, `n_samples` long, starting `offset`
/// seconds into the stream): its words split by speaker where `turns` are known, one segment
/// otherwise, with times moved to the stream and rounded to milliseconds. The one place where a
/// transcript and its speakers become segments, live and offline alike.
pub fn to_segments(
    segment_id: u64,
    transcript: &Transcript,
    turns: Option<&[SpeakerTurn]>,
    n_samples: usize,
    offset: f64,
) -> Vec<Segment> {
    let clip_end = seconds(n_samples);
    let parts = match turns {
        Some(turns) => split_words(&transcript.words, turns, clip_end),
        None => vec![Part { speaker: None, start: 0.0, end: clip_end, words: transcript.words.clone() }],
    };
    let single = parts.len() == 1;
    let segment = |(i, part): (usize, Part)| Segment {
        segment_id,
        part: i as u32,
        start: round_ms(part.start + offset),
        end: round_ms(part.end + offset),
        // A whole utterance keeps Whisper's own text (its spacing and punctuation).
        text: if single { transcript.text.clone() } else { join_words(&part.words) },
        words: part.words.into_iter().map(|w| w.shifted(offset)).collect(),
        language: transcript.language.clone(),
        speaker: part.speaker.map(label),
        channel: None,
    };
    parts.into_iter().enumerate().map(segment).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str, start: f64, end: f64) -> Word {
        Word { word: w.into(), start, end, probability: 0.9 }
    }

    #[test]
    fn words_follow_the_speaker_active_at_their_midpoint() {
        let turns =
            [SpeakerTurn { start: 0, end: 32_000, speaker: 0 }, SpeakerTurn { start: 32_000, end: 64_000, speaker: 1 }];
        let words = [word("hello", 0.2, 0.6), word("there", 0.7, 1.9), word("hi", 2.1, 2.4), word("you", 2.5, 3.0)];
        let parts = split_words(&words, &turns, 4.0);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].speaker, parts[0].start, parts[0].end, parts[0].words.len()), (Some(0), 0.0, 2.1, 2));
        assert_eq!((parts[1].speaker, parts[1].end, parts[1].words[0].word.as_str()), (Some(1), 4.0, "hi"));
    }

    #[test]
    fn no_words_gives_one_part_for_the_dominant_speaker() {
        let turns = [SpeakerTurn { start: 0, end: 100, speaker: 2 }, SpeakerTurn { start: 100, end: 900, speaker: 1 }];
        let parts = split_words(&[], &turns, 1.0);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].speaker, Some(1));
    }

    #[test]
    fn segments_take_stream_times_and_split_only_at_a_speaker_change() {
        let words = vec![word("hello", 0.2, 0.6), word("there", 0.7, 1.9), word("hi", 2.1, 2.4)];
        let transcript =
            Transcript { text: " Hello there, hi.".into(), words, language: "en".into(), ..Default::default() };
        let whole = to_segments(4, &transcript, None, 48_000, 10.0);
        assert_eq!(whole.len(), 1);
        assert_eq!((whole[0].start, whole[0].end, whole[0].text.as_str()), (10.0, 13.0, " Hello there, hi."));
        assert_eq!((whole[0].words[2].start, whole[0].speaker.as_deref()), (12.1, None));
        let turns =
            [SpeakerTurn { start: 0, end: 32_000, speaker: 0 }, SpeakerTurn { start: 32_000, end: 48_000, speaker: 1 }];
        let split = to_segments(4, &transcript, Some(&turns), 48_000, 10.0);
        let summary: Vec<_> = split.iter().map(|s| (s.part, s.end, s.text.as_str(), s.speaker.clone())).collect();
        assert_eq!(summary, [(0, 12.1, "hello there", Some(label(0))), (1, 13.0, "hi", Some(label(1)))]);
    }
}

//! Speaker changes inside an open utterance. In quick turn-taking nobody pauses, so one
//! utterance runs on across several turns: its words wait for the next pause, and a progressive
//! cut puts the old voice in front of the new one as the continuation's lead-in, after which
//! Whisper often stops (docs/BENCHMARKS.md). So while an utterance is open, the stream's latest
//! audio goes through the segmentation model every [`STEP`]; where one speaker gives way to
//! another who then goes on for [`CONFIRM`], and the two turns' embeddings are further apart
//! than one speaker's (the segmentation model alone also changes speaker inside a sentence),
//! the core ends the utterance there and the new speaker's opens, as a pause would have done.

use crate::domain::{ms_to_samples, EmbeddedTurn};
use crate::engine::diarize::Embed;
use crate::speaker::campplus::cosine;
use crate::speaker::segmentation::WINDOW;

/// New audio between two looks (0.4 s).
const STEP: usize = ms_to_samples(400);
/// The new speaker must have gone on this long (0.8 s) past the change: the model is least
/// sure of a clip's last frames, and a short answer is often absorbed into the turn before.
const CONFIRM: usize = ms_to_samples(800);
/// The utterance must have run this long (0.5 s) before a change counts: less is the onset.
const MIN_BEFORE: usize = ms_to_samples(500);

/// Watches one stream for speaker changes; one look in flight at a time.
#[derive(Debug, Default)]
pub struct ChangeWatch {
    /// Two turns whose embeddings are less alike than this are two speakers.
    threshold: f32,
    /// The stream's latest audio (between one and two windows of it once that much has come),
    /// from stream sample `recent_start`: the look's context reaches back before the open
    /// utterance, so the model compares the new voice with the one before it.
    recent: Vec<f32>,
    recent_start: usize,
    /// Stream position of the last look.
    looked_at: usize,
    /// Where the clip of the look in flight begins (stream samples).
    pending: Option<usize>,
}

impl ChangeWatch {
    pub fn new(threshold: f32) -> Self {
        Self { threshold, ..Self::default() }
    }

    /// More audio of the stream.
    pub fn push(&mut self, samples: &[f32]) {
        self.recent.extend_from_slice(samples);
        if self.recent.len() >= 2 * WINDOW {
            let drop = self.recent.len() - WINDOW;
            self.recent.drain(..drop);
            self.recent_start += drop;
        }
    }

    fn end(&self) -> usize {
        self.recent_start + self.recent.len()
    }

    /// The clip to look at now, for an open utterance that began at stream sample `start`, and
    /// which turns the speaker thread should embed: the last window of audio, once the
    /// utterance could hold a change and [`STEP`] is new since the last look, and none is in
    /// flight.
    pub fn next_look(&mut self, start: usize) -> Option<(Vec<f32>, Embed)> {
        let end = self.end();
        if self.pending.is_some() || end < start + MIN_BEFORE + CONFIRM || end < self.looked_at + STEP {
            return None;
        }
        let from = self.recent.len().saturating_sub(WINDOW);
        let clip_start = self.recent_start + from;
        self.looked_at = end;
        self.pending = Some(clip_start);
        let embed = Embed::FirstChange { after: (start + MIN_BEFORE).saturating_sub(clip_start), confirm: CONFIRM };
        Some((self.recent[from..].to_vec(), embed))
    }

    /// The look came back with the clip's turns (relative to the clip; none when the look
    /// failed), the two either side of its change embedded if it found one. Returns that change
    /// (stream samples) when it lies in the utterance now open from `open_start` and the two
    /// turns sound like two speakers.
    pub fn change(&mut self, turns: &[EmbeddedTurn], open_start: Option<usize>) -> Option<usize> {
        let clip_start = self.pending.take()?;
        let open_start = open_start?;
        let (before, after, start) =
            turns.windows(2).find_map(|pair| match (&pair[0].embedding, &pair[1].embedding) {
                (Some(a), Some(b)) => Some((a, b, pair[1].start)),
                _ => None,
            })?;
        let at = clip_start + start;
        let similarity = cosine(before, after);
        tracing::debug!(at = crate::domain::seconds(at), similarity, "a speaker change, if the voices differ");
        (at >= open_start + MIN_BEFORE && similarity < self.threshold).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SAMPLE_RATE;

    const S: usize = SAMPLE_RATE as usize;

    fn turn(start: usize, end: usize, voice: Option<[f32; 2]>) -> EmbeddedTurn {
        EmbeddedTurn {
            start,
            end,
            embedding: voice.map(|v| v.to_vec()),
            reliable: true,
            narrowband: false,
            embedded: 16_000,
        }
    }

    fn watch_with(seconds: usize) -> ChangeWatch {
        let mut watch = ChangeWatch::new(0.5);
        watch.push(&vec![0.0; seconds * S]);
        watch
    }

    const A: Option<[f32; 2]> = Some([1.0, 0.0]);
    const B: Option<[f32; 2]> = Some([0.0, 1.0]);

    #[test]
    fn a_look_needs_room_for_a_change_and_new_audio() {
        let mut watch = watch_with(1);
        assert!(watch.next_look(0).is_none(), "1 s holds no confirmed change");
        watch.push(&vec![0.0; S / 2]);
        let (clip, embed) = watch.next_look(0).expect("a look at 1.5 s");
        assert_eq!(clip.len(), 3 * S / 2);
        assert_eq!(embed, Embed::FirstChange { after: MIN_BEFORE, confirm: CONFIRM });
        watch.push(&vec![0.0; S]);
        assert!(watch.next_look(0).is_none(), "one look at a time");
        watch.change(&[], Some(0));
        assert!(watch.next_look(0).is_some());
        watch.change(&[], Some(0));
        watch.push(&vec![0.0; S / 10]);
        assert!(watch.next_look(0).is_none(), "0.1 s is not new enough");
    }

    #[test]
    fn the_clip_is_the_last_window_of_the_stream() {
        let mut watch = watch_with(25);
        let (clip, embed) = watch.next_look(20 * S).expect("a look");
        assert_eq!(clip.len(), WINDOW);
        // The clip starts at 15 s: changes count from 5.5 s of it on.
        assert_eq!(embed, Embed::FirstChange { after: 5 * S + MIN_BEFORE, confirm: CONFIRM });
        // Turns at 0-6 s and 6-10 s of the clip: the change is at 21 s of the stream.
        assert_eq!(watch.change(&[turn(0, 6 * S, A), turn(6 * S, WINDOW, B)], Some(20 * S)), Some(21 * S));
    }

    #[test]
    fn only_two_voices_unlike_each_other_make_a_change() {
        let turns = |second| [turn(0, 3 * S, None), turn(3 * S, 6 * S, A), turn(6 * S, 8 * S, second)];
        let mut watch = watch_with(8);
        watch.next_look(2 * S).expect("a look");
        assert_eq!(watch.change(&turns(B), Some(2 * S)), Some(6 * S));
        watch.push(&vec![0.0; S]);
        watch.next_look(2 * S).expect("a look");
        assert_eq!(watch.change(&turns(Some([0.8, 0.6])), Some(2 * S)), None, "cosine 0.8: one speaker");
        watch.push(&vec![0.0; S]);
        watch.next_look(2 * S).expect("a look");
        assert_eq!(watch.change(&turns(None), Some(2 * S)), None, "no change was embedded");
        watch.push(&vec![0.0; S]);
        watch.next_look(7 * S).expect("a look");
        assert_eq!(watch.change(&turns(B), Some(7 * S)), None, "the change is before the open utterance");
        assert_eq!(watch.change(&turns(B), Some(0)), None, "no look in flight");
    }
}

//! Speaker turns of the open utterance, worked out while it grows. Every few seconds the new
//! audio is diarized; turns that have ended are settled (embedding and all), so when the
//! utterance ends only its last stretch is left to diarize, and the final's speakers are not
//! much later than its text.

use std::ops::Range;

use crate::domain::EmbeddedTurn;
use crate::speaker::segmentation::WINDOW;

/// Samples at the end of a prefix job that are not settled: the speaker may change there.
const MARGIN: usize = crate::domain::SAMPLE_RATE as usize;
/// A last turn at least this long is settled up to the margin.
const SETTLE_LAST: usize = 2 * MARGIN;
/// A pause triggers a job only when this much audio (0.3 s) is new.
const MIN_NEW: usize = crate::domain::ms_to_samples(300);

#[derive(Debug)]
pub struct SpeakerProgress {
    pub utterance: u64,
    /// Settled turns, in samples relative to the utterance start.
    settled: Vec<EmbeddedTurn>,
    /// Audio before this (relative) sample is settled.
    covered: usize,
    /// The range of the prefix job in flight, and whether it was sent in a pause (then every
    /// turn it finds has ended).
    pending: Option<(Range<usize>, bool)>,
}

impl SpeakerProgress {
    pub fn new(utterance: u64) -> Self {
        Self { utterance, settled: Vec::new(), covered: 0, pending: None }
    }

    /// The job to run now, if none is in flight and either the speaker has paused (`paused`:
    /// the utterance may be about to end, so its turns are worked out during the silence that
    /// ends it) or the open utterance holds at least `first` samples and has grown `step` past
    /// what is settled. Returns its range (up to one segmentation window, so earlier audio gives
    /// context) and where its new turns begin.
    pub fn next_job(
        &mut self,
        open_len: usize,
        step: usize,
        first: usize,
        paused: bool,
    ) -> Option<(Range<usize>, usize)> {
        let grown = open_len >= first && open_len >= self.covered + step;
        let paused = paused && open_len >= self.covered + MIN_NEW;
        if self.pending.is_some() || !(grown || paused) {
            return None;
        }
        let job = self.job_for(open_len);
        self.pending = Some((job.0.clone(), paused));
        Some(job)
    }

    /// The range to diarize for audio up to `len`, and the offset of `covered` within it.
    fn job_for(&self, len: usize) -> (Range<usize>, usize) {
        let start = len.saturating_sub(WINDOW).min(self.covered);
        (start..len, self.covered - start)
    }

    /// A prefix job came back with turns relative to its own start. All but its last turn are
    /// settled; so is a long last turn, up to a margin before the job's end.
    pub fn settle(&mut self, turns: Vec<EmbeddedTurn>) {
        let Some((range, paused)) = self.pending.take() else { return };
        let mut turns: Vec<EmbeddedTurn> = turns
            .into_iter()
            .map(|t| EmbeddedTurn { start: t.start + range.start, end: t.end + range.start, ..t })
            .collect();
        let Some(last) = turns.pop() else { return };
        self.settled.extend(turns);
        if paused {
            self.settled.push(last);
            self.covered = range.end;
        } else if last.end - last.start >= SETTLE_LAST && last.embedding.is_some() {
            let end = range.end - MARGIN;
            self.settled.push(EmbeddedTurn { end, ..last });
            self.covered = end;
        } else {
            self.covered = last.start;
        }
    }

    /// A prefix job failed: its range will be diarized again.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// The settled turns, and the job that diarizes the rest of an utterance of `len` samples
    /// (`None` when less than `min_tail` is left).
    pub fn finish(mut self, len: usize, min_tail: usize) -> (Vec<EmbeddedTurn>, Option<(Range<usize>, usize)>) {
        let job = (len >= self.covered + min_tail).then(|| self.job_for(len));
        if job.is_none() {
            // The few samples left are the trailing silence: the last turn reaches the end.
            if let Some(last) = self.settled.last_mut() {
                last.end = len;
            }
        }
        (self.settled, job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start: usize, end: usize) -> EmbeddedTurn {
        EmbeddedTurn { start, end, embedding: Some(vec![1.0]), reliable: true, narrowband: false }
    }

    #[test]
    fn ended_turns_settle_and_the_last_one_is_redone() {
        let mut p = SpeakerProgress::new(4);
        assert_eq!(p.next_job(30_000, 64_000, 0, false), None, "not grown enough");
        assert_eq!(p.next_job(70_000, 64_000, 100_000, false), None, "shorter than the first job needs");
        assert_eq!(p.next_job(100_000, 64_000, 100_000, false), Some((0..100_000, 0)));
        assert_eq!(p.next_job(140_000, 64_000, 100_000, true), None, "one job at a time");
        p.settle(vec![turn(0, 70_000), turn(70_000, 100_000)]);
        // The second turn is 30 000 samples: shorter than two margins, so it is redone, with the
        // audio before it as context up to one window.
        assert_eq!(p.next_job(130_000, 64_000, 100_000, false), None);
        assert_eq!(p.next_job(200_000, 64_000, 100_000, false), Some((40_000..200_000, 30_000)));
        // One long new turn (the job returns only turns from its `from` on).
        p.settle(vec![turn(30_000, 160_000)]);
        let (settled, tail) = p.finish(250_000, 1_600);
        assert_eq!(settled.iter().map(|t| (t.start, t.end)).collect::<Vec<_>>(), vec![(0, 70_000), (70_000, 184_000)]);
        assert_eq!(tail, Some((90_000..250_000, 94_000)));
    }

    #[test]
    fn a_pause_settles_every_turn_and_the_silence_after_needs_no_job() {
        let mut p = SpeakerProgress::new(1);
        assert_eq!(p.next_job(3_000, 64_000, 128_000, true), None, "too little audio");
        assert_eq!(p.next_job(40_000, 64_000, 128_000, true), Some((0..40_000, 0)));
        p.settle(vec![turn(0, 10_000), turn(10_000, 40_000)]);
        let (settled, tail) = p.finish(44_000, 6_400);
        assert_eq!(tail, None);
        assert_eq!(settled.iter().map(|t| (t.start, t.end)).collect::<Vec<_>>(), vec![(0, 10_000), (10_000, 44_000)]);
    }
}

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
/// An utterance cut from a longer run of speech (a progressive final's piece, or a turn after a
/// speaker cut) is diarized with up to this much (3 s) of the speech before it: alone, a second
/// or two of audio gives embeddings that open speakers a whole utterance would not
/// (docs/BENCHMARKS.md).
pub const SPEAKER_CONTEXT: usize = 3 * crate::domain::SAMPLE_RATE as usize;

/// One diarization job of an utterance: the utterance's samples `range`, heard after the last
/// `heard` samples of the speech before it; turns from sample `from` of that clip on are new
/// (and embedded from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerJob {
    pub range: Range<usize>,
    pub from: usize,
    pub heard: usize,
}

impl SpeakerJob {
    /// The clip the job diarizes: `heard` samples of `before` (the speech before the utterance),
    /// then `range` of `utterance`.
    pub fn clip(&self, before: &[f32], utterance: &[f32]) -> Vec<f32> {
        [&before[before.len() - self.heard..], &utterance[self.range.clone()]].concat()
    }

    /// The job's turns (relative to its clip) relative to the utterance: what was heard before
    /// it is cut off, and a turn that began there keeps the embedding of all of it.
    pub fn place(&self, turns: Vec<EmbeddedTurn>) -> impl Iterator<Item = EmbeddedTurn> + '_ {
        turns.into_iter().filter_map(|t| t.after(self.heard)).map(|t| t.shifted(self.range.start))
    }
}

#[derive(Debug)]
pub struct SpeakerProgress {
    pub utterance: u64,
    /// Settled turns, in samples relative to the utterance start.
    settled: Vec<EmbeddedTurn>,
    /// Audio before this (relative) sample is settled.
    covered: usize,
    /// The prefix job in flight, and whether it was sent in a pause (then every turn it finds
    /// has ended).
    pending: Option<(SpeakerJob, bool)>,
    /// The utterance continues its speaker's speech (a progressive cut, not a pause or a speaker
    /// change): a turn that began before it is embedded whole. Otherwise the speech before it
    /// is context for the segmentation model only.
    continues: bool,
}

impl SpeakerProgress {
    pub fn new(utterance: u64, continues: bool) -> Self {
        Self { utterance, settled: Vec::new(), covered: 0, pending: None, continues }
    }

    /// The job to run now, if none is in flight and either the speaker has paused (`paused`:
    /// the utterance may be about to end, so its turns are worked out during the silence that
    /// ends it) or the open utterance holds at least `first` samples and has grown `step` past
    /// what is settled. Its range reaches up to one segmentation window back, so earlier audio
    /// gives context; the first job also hears up to [`SPEAKER_CONTEXT`] of the `before`
    /// samples of speech that preceded the utterance.
    pub fn next_job(
        &mut self,
        open_len: usize,
        step: usize,
        first: usize,
        paused: bool,
        before: usize,
    ) -> Option<SpeakerJob> {
        let grown = open_len >= first && open_len >= self.covered + step;
        let paused = paused && open_len >= self.covered + MIN_NEW;
        if self.pending.is_some() || !(grown || paused) {
            return None;
        }
        let job = self.job_for(open_len, before);
        self.pending = Some((job.clone(), paused));
        Some(job)
    }

    /// The job for audio up to `len`, with `before` samples of speech before the utterance.
    fn job_for(&self, len: usize, before: usize) -> SpeakerJob {
        let start = len.saturating_sub(WINDOW).min(self.covered);
        let heard = if self.covered == 0 { before.min(SPEAKER_CONTEXT) } else { 0 };
        let from = self.covered - start + if self.continues { 0 } else { heard };
        SpeakerJob { range: start..len, from, heard }
    }

    /// A prefix job came back with turns relative to its own start. All but its last turn are
    /// settled; so is a long last turn, up to a margin before the job's end.
    pub fn settle(&mut self, turns: Vec<EmbeddedTurn>) {
        let Some((job, paused)) = self.pending.take() else { return };
        let mut turns: Vec<EmbeddedTurn> = job.place(turns).collect();
        let range = job.range;
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
    /// (`None` when less than `min_tail` is left), preceded by `before` samples of speech.
    pub fn finish(mut self, len: usize, min_tail: usize, before: usize) -> (Vec<EmbeddedTurn>, Option<SpeakerJob>) {
        let job = (len >= self.covered + min_tail).then(|| self.job_for(len, before));
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

    fn job(range: Range<usize>, from: usize) -> SpeakerJob {
        SpeakerJob { range, from, heard: 0 }
    }

    fn turn(start: usize, end: usize) -> EmbeddedTurn {
        EmbeddedTurn { start, end, embedding: Some(vec![1.0]), reliable: true, narrowband: false, embedded: 16_000 }
    }

    #[test]
    fn ended_turns_settle_and_the_last_one_is_redone() {
        let mut p = SpeakerProgress::new(4, false);
        assert_eq!(p.next_job(30_000, 64_000, 0, false, 0), None, "not grown enough");
        assert_eq!(p.next_job(70_000, 64_000, 100_000, false, 0), None, "shorter than the first job needs");
        assert_eq!(p.next_job(100_000, 64_000, 100_000, false, 0), Some(job(0..100_000, 0)));
        assert_eq!(p.next_job(140_000, 64_000, 100_000, true, 0), None, "one job at a time");
        p.settle(vec![turn(0, 70_000), turn(70_000, 100_000)]);
        // The second turn is 30 000 samples: shorter than two margins, so it is redone, with the
        // audio before it as context up to one window.
        assert_eq!(p.next_job(130_000, 64_000, 100_000, false, 0), None);
        assert_eq!(p.next_job(200_000, 64_000, 100_000, false, 0), Some(job(40_000..200_000, 30_000)));
        // One long new turn (the job returns only turns from its `from` on).
        p.settle(vec![turn(30_000, 160_000)]);
        let (settled, tail) = p.finish(250_000, 1_600, 0);
        assert_eq!(settled.iter().map(|t| (t.start, t.end)).collect::<Vec<_>>(), vec![(0, 70_000), (70_000, 184_000)]);
        assert_eq!(tail, Some(job(90_000..250_000, 94_000)));
    }

    #[test]
    fn a_cut_utterance_is_diarized_after_the_speech_before_it() {
        let before: Vec<f32> = (0..60_000).map(|i| i as f32).collect();
        let utterance = vec![-1.0; 40_000];
        // A progressive cut's piece: the same voice goes on, so a turn that began before the
        // cut is embedded whole (`from` 0) and kept from the cut on.
        let mut piece = SpeakerProgress::new(2, true);
        let job = piece.next_job(40_000, 64_000, 128_000, true, before.len()).unwrap();
        assert_eq!(job, SpeakerJob { range: 0..40_000, from: 0, heard: SPEAKER_CONTEXT });
        let clip = job.clip(&before, &utterance);
        assert_eq!((clip.len(), clip[0], clip[SPEAKER_CONTEXT]), (SPEAKER_CONTEXT + 40_000, 12_000.0, -1.0));
        let heard = vec![turn(0, 30_000), turn(30_000, 50_000), turn(50_000, 88_000)];
        let placed: Vec<_> = job.place(heard).map(|t| (t.start, t.end)).collect();
        assert_eq!(placed, vec![(0, 2_000), (2_000, 40_000)], "what lay before the cut is gone");
        // After a speaker change the speech before is the other voice: context for the
        // segmentation only, turns begin at the utterance.
        let mut turn_after_change = SpeakerProgress::new(3, false);
        let job = turn_after_change.next_job(40_000, 64_000, 128_000, true, before.len()).unwrap();
        assert_eq!(job, SpeakerJob { range: 0..40_000, from: SPEAKER_CONTEXT, heard: SPEAKER_CONTEXT });
        // Later jobs of the utterance hear none of it.
        piece.settle(vec![turn(0, 88_000)]);
        let (_, tail) = piece.finish(60_000, 1_600, before.len());
        assert_eq!(tail.map(|j| j.heard), Some(0));
    }

    #[test]
    fn a_pause_settles_every_turn_and_the_silence_after_needs_no_job() {
        let mut p = SpeakerProgress::new(1, false);
        assert_eq!(p.next_job(3_000, 64_000, 128_000, true, 0), None, "too little audio");
        assert_eq!(p.next_job(40_000, 64_000, 128_000, true, 0), Some(job(0..40_000, 0)));
        p.settle(vec![turn(0, 10_000), turn(10_000, 40_000)]);
        let (settled, tail) = p.finish(44_000, 6_400, 0);
        assert_eq!(tail, None);
        assert_eq!(settled.iter().map(|t| (t.start, t.end)).collect::<Vec<_>>(), vec![(0, 10_000), (10_000, 44_000)]);
    }
}

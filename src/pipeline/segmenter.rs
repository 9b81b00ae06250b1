//! Turns per-frame speech probabilities into utterances.
//!
//! Rules: speech starts when the probability reaches `threshold` and stays above
//! `neg_threshold` for `min_speech_ms`; it ends after `min_silence_ms` below `neg_threshold`
//! (hysteresis between the two thresholds). Utterances get `speech_pad_ms` of context on both
//! sides, never overlapping the previous one. Past half of `max_utterance_s` the silence needed
//! to end an utterance shrinks linearly towards one frame, so long turns end at a short pause
//! instead of waiting for the limit; one that still reaches `max_utterance_s` is cut at its
//! quietest frame in the second half.

use serde::{Deserialize, Serialize};

use super::FRAME_SAMPLES;
use crate::domain::{ms_to_samples, InvalidSetting, SAMPLE_RATE};

/// A continuation's lead-in (see [`Segmenter::cut`]) holds the whole piece before the cut, so
/// that a word the cut misplaced is heard again, and this much (2 s) of the speech before it
/// for context; never more than `MAX_LEAD_IN` (10 s: with `max_utterance_s` at most 20 s, a
/// continuation's decode stays within Whisper's 30 s window).
const LEAD_IN_CONTEXT: usize = 2 * SAMPLE_RATE as usize;
const MAX_LEAD_IN: usize = 10 * SAMPLE_RATE as usize;

/// The utterance after a split at a speaker change is decoded with up to this much (2 s) of the
/// speech before it, whose words are then taken off by their times: without it, Whisper drops
/// the first words of a turn that starts with no pause (docs/BENCHMARKS.md).
const SPLIT_LEAD_IN: usize = 2 * SAMPLE_RATE as usize;

/// Segmenter settings; times are in milliseconds of audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmenterConfig {
    pub threshold: f32,
    pub neg_threshold: f32,
    pub min_speech_ms: u32,
    pub min_silence_ms: u32,
    pub speech_pad_ms: u32,
    pub max_utterance_s: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 500,
            speech_pad_ms: 200,
            max_utterance_s: 20.0,
        }
    }
}

impl SegmenterConfig {
    /// Checks the values make sense together; the message names the setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(InvalidSetting::new("vad.threshold", format!("must be within 0..1, got {}", self.threshold)));
        }
        if !(0.0..=self.threshold).contains(&self.neg_threshold) {
            let got = self.neg_threshold;
            return Err(InvalidSetting::new("vad.neg_threshold", format!("must be within 0..threshold, got {got}")));
        }
        if !(2.0..=30.0).contains(&self.max_utterance_s) {
            let got = self.max_utterance_s;
            return Err(InvalidSetting::new(
                "vad.max_utterance_s",
                format!("must be within 2..30 (Whisper's window), got {got}"),
            ));
        }
        Ok(())
    }
}

/// A finished stretch of speech. Positions are absolute 16 kHz sample indices in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub id: u64,
    pub start: usize,
    pub end: usize,
    pub samples: Vec<f32>,
    /// Audio just before `start` that its decode hears first: when the utterance continues one
    /// cut for a progressive final, the speech before the cut (see [`Segmenter::cut`]); when it
    /// follows a split at a speaker change, up to 2 s of the turn before ([`Segmenter::split`]);
    /// else empty.
    pub lead_in: Vec<f32>,
    /// Where its last frame the VAD called speech ends (absolute samples, `start..=end`): a
    /// decode whose words stop well before it missed some.
    pub voiced_end: usize,
}

/// What the segmenter reports as frames arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentEvent {
    SpeechStarted { id: u64, start: usize },
    Ended(Utterance),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Silence,
    /// Probability crossed the threshold at `onset`; not yet long enough to count.
    Onset {
        onset: usize,
    },
    /// Inside an utterance that began at `start`; `quiet_since` marks a run of low probability.
    Speech {
        start: usize,
        quiet_since: Option<usize>,
    },
}

/// The segmenter itself: it keeps the audio of the open utterance (plus padding) and nothing more.
pub struct Segmenter {
    min_speech: usize,
    min_silence: usize,
    pad: usize,
    max_len: usize,
    threshold: f32,
    neg_threshold: f32,
    /// Audio from `buf_start` to `pos`, and one RMS value per frame of it.
    buf: Vec<f32>,
    frame_rms: Vec<f32>,
    buf_start: usize,
    pos: usize,
    /// No utterance may start before this (the end of the previous one).
    floor: usize,
    state: State,
    next_id: u64,
    /// Audio kept before the open utterance when it continues one that was cut or split: its
    /// lead-in.
    lead_in: usize,
    /// Where the speech the open utterance belongs to began: the lead-in reaches back no further.
    origin: usize,
    /// The end of the latest frame at or over the threshold.
    voiced_end: usize,
}

impl Segmenter {
    /// The silence that ends an utterance from now on (a client changed its endpointing).
    pub fn set_min_silence_ms(&mut self, ms: u32) {
        self.min_silence = ms_to_samples(ms);
    }

    pub fn new(cfg: &SegmenterConfig) -> Self {
        Self {
            min_speech: ms_to_samples(cfg.min_speech_ms),
            min_silence: ms_to_samples(cfg.min_silence_ms),
            pad: ms_to_samples(cfg.speech_pad_ms),
            max_len: (cfg.max_utterance_s * SAMPLE_RATE as f32) as usize,
            threshold: cfg.threshold,
            neg_threshold: cfg.neg_threshold,
            buf: Vec::new(),
            frame_rms: Vec::new(),
            buf_start: 0,
            pos: 0,
            floor: 0,
            state: State::Silence,
            next_id: 0,
            lead_in: 0,
            origin: 0,
            voiced_end: 0,
        }
    }

    /// Samples pushed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The open utterance's id, start and audio so far, if speech is in progress.
    pub fn open_utterance(&self) -> Option<(u64, usize, &[f32])> {
        match self.state {
            State::Speech { start, .. } => Some((self.next_id, start, &self.buf[start - self.buf_start..])),
            _ => None,
        }
    }

    /// The open utterance as it would end if its current pause goes on: its id, the absolute end
    /// sample (pause start plus padding) and its audio. `None` until the pause has lasted as long
    /// as the padding, which is when that audio is complete.
    pub fn clip_if_pause_ends(&self) -> Option<(u64, usize, &[f32])> {
        let State::Speech { start, quiet_since: Some(since) } = self.state else { return None };
        let end = since + self.pad;
        if self.pos < end || self.silence_needed(since - start) < self.pad {
            // Late in a long utterance a pause shorter than the padding ends it, cut short.
            return None;
        }
        Some((self.next_id, end, &self.buf[start - self.buf_start..end - self.buf_start]))
    }

    /// How long the open utterance has been quiet (below `neg_threshold`), in samples; 0 while
    /// speech goes on or none is open.
    pub fn quiet_samples(&self) -> usize {
        match self.state {
            State::Speech { quiet_since: Some(since), .. } => self.pos - since,
            _ => 0,
        }
    }

    /// Feeds one frame of samples with its speech probability.
    pub fn push(&mut self, frame: &[f32], probability: f32) -> Vec<SegmentEvent> {
        let frame_start = self.pos;
        self.buf.extend_from_slice(frame);
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32).sqrt();
        self.frame_rms.push(rms);
        self.pos += frame.len();
        if probability >= self.threshold {
            self.voiced_end = self.pos;
        }
        let mut events = Vec::new();
        self.state = match self.state {
            State::Silence if probability >= self.threshold => self.onset(frame_start, &mut events),
            State::Silence => State::Silence,
            State::Onset { .. } if probability < self.neg_threshold => State::Silence,
            State::Onset { onset } => self.onset(onset, &mut events),
            State::Speech { start, quiet_since } => self.speech(start, quiet_since, probability, &mut events),
        };
        if matches!(self.state, State::Silence) {
            self.trim_to(self.pos.saturating_sub(self.pad));
        }
        events
    }

    fn onset(&mut self, onset: usize, events: &mut Vec<SegmentEvent>) -> State {
        if self.pos - onset < self.min_speech {
            return State::Onset { onset };
        }
        let start = onset.saturating_sub(self.pad).max(self.floor).max(self.buf_start);
        events.push(SegmentEvent::SpeechStarted { id: self.next_id, start });
        self.lead_in = 0;
        self.origin = start;
        State::Speech { start, quiet_since: None }
    }

    fn speech(&mut self, start: usize, quiet: Option<usize>, p: f32, events: &mut Vec<SegmentEvent>) -> State {
        let quiet_since = match quiet {
            _ if p >= self.threshold => None,
            None if p < self.neg_threshold => Some(self.pos - FRAME_SAMPLES),
            other => other,
        };
        if let Some(since) = quiet_since {
            if self.pos - since >= self.silence_needed(since - start) {
                let end = (since + self.pad).min(self.pos);
                events.push(SegmentEvent::Ended(self.close(start, end, 0)));
                return State::Silence;
            }
        }
        if self.pos - start >= self.max_len {
            let cut = self.quietest_cut(start);
            return self.reopen(start, (cut, 0), quiet_since, events);
        }
        State::Speech { start, quiet_since }
    }

    /// Ends the open utterance at `cut` and opens the next there, as a fresh one.
    fn reopen(
        &mut self,
        start: usize,
        (cut, keep): (usize, usize),
        quiet: Option<usize>,
        events: &mut Vec<SegmentEvent>,
    ) -> State {
        events.push(SegmentEvent::Ended(self.close(start, cut, keep)));
        self.origin = cut;
        events.push(SegmentEvent::SpeechStarted { id: self.next_id, start: cut });
        State::Speech { start: cut, quiet_since: quiet.filter(|&q| q >= cut) }
    }

    /// Silence that ends an utterance which has run `len` samples: the full `min_silence` up to
    /// half the maximum length, then shrinking linearly to one frame at the maximum.
    fn silence_needed(&self, len: usize) -> usize {
        let half = self.max_len / 2;
        if len <= half {
            return self.min_silence;
        }
        let remaining = self.max_len.saturating_sub(len) as f64 / half.max(1) as f64;
        ((self.min_silence as f64 * remaining) as usize).max(FRAME_SAMPLES)
    }

    /// The start of the lowest-energy frame in the second half of the open utterance.
    fn quietest_cut(&self, start: usize) -> usize {
        let first_frame = (start + self.max_len / 2 - self.buf_start).div_ceil(FRAME_SAMPLES);
        let last_frame = self.frame_rms.len().saturating_sub(1);
        let quietest = (first_frame..last_frame.max(first_frame + 1))
            .filter(|&f| f < self.frame_rms.len())
            .min_by(|&a, &b| self.frame_rms[a].total_cmp(&self.frame_rms[b]));
        quietest.map_or(self.pos, |f| self.buf_start + f * FRAME_SAMPLES)
    }

    /// Ends the open utterance at `end`, keeping `keep` samples before `end` buffered (a split's
    /// overlap).
    fn close(&mut self, start: usize, end: usize, keep: usize) -> Utterance {
        let samples = self.buf[start - self.buf_start..end - self.buf_start].to_vec();
        let lead_in = self.buf[start - self.lead_in - self.buf_start..start - self.buf_start].to_vec();
        let voiced_end = self.voiced_end.clamp(start, end);
        let utterance = Utterance { id: self.next_id, start, end, samples, lead_in, voiced_end };
        self.next_id += 1;
        self.lead_in = 0;
        self.floor = end;
        self.trim_to((end - keep.min(end - start)).min(self.pos.saturating_sub(self.pad)).max(self.buf_start));
        utterance
    }

    /// Drops buffered audio before `new_start`, keeping frame alignment of the RMS list.
    fn trim_to(&mut self, new_start: usize) {
        let drop_frames = new_start.saturating_sub(self.buf_start) / FRAME_SAMPLES;
        if drop_frames == 0 {
            return;
        }
        self.buf.drain(..drop_frames * FRAME_SAMPLES);
        self.frame_rms.drain(..drop_frames);
        self.buf_start += drop_frames * FRAME_SAMPLES;
    }

    /// Ends the open utterance early, at the start of its quietest frame within `lo..hi`
    /// (absolute samples), for a progressive final: the speech goes on as a new utterance from
    /// the cut, without a new onset. Returns the part before the cut and the new utterance's id;
    /// `None` when no utterance is open or no frame of it lies in the range.
    pub fn cut(&mut self, lo: usize, hi: usize) -> Option<(Utterance, u64)> {
        let State::Speech { start, quiet_since } = self.state else { return None };
        let cut = self.quietest_in(start, lo, hi)?;
        let samples = self.buf[start - self.buf_start..cut - self.buf_start].to_vec();
        let lead_in = self.buf[start - self.lead_in - self.buf_start..start - self.buf_start].to_vec();
        let voiced_end = self.voiced_end.clamp(start, cut);
        let utterance = Utterance { id: self.next_id, start, end: cut, samples, lead_in, voiced_end };
        self.next_id += 1;
        self.floor = cut;
        // The speech before the cut is kept as the continuation's lead-in: Whisper drops the
        // first words of a clip that starts mid-sentence unless it hears what came before.
        let keep_from = start.saturating_sub(LEAD_IN_CONTEXT).max(self.origin);
        self.trim_to(keep_from.max(cut.saturating_sub(MAX_LEAD_IN)));
        self.lead_in = cut - self.buf_start.min(cut);
        self.state = State::Speech { start: cut, quiet_since: quiet_since.filter(|&q| q >= cut) };
        Some((utterance, self.next_id))
    }

    /// The start of the open utterance's quietest frame within `lo..hi` (absolute samples),
    /// leaving at least a frame on each side; `None` when no frame lies there.
    fn quietest_in(&self, start: usize, lo: usize, hi: usize) -> Option<usize> {
        let lo = lo.max(start + FRAME_SAMPLES).max(self.buf_start);
        let hi = hi.min(self.pos.saturating_sub(FRAME_SAMPLES));
        if lo >= hi {
            return None;
        }
        let frames = (lo - self.buf_start).div_ceil(FRAME_SAMPLES)..(hi - self.buf_start) / FRAME_SAMPLES + 1;
        let quietest = frames
            .filter(|&f| f < self.frame_rms.len())
            .min_by(|&a, &b| self.frame_rms[a].total_cmp(&self.frame_rms[b]))?;
        Some(self.buf_start + quietest * FRAME_SAMPLES)
    }

    /// Ends the open utterance at its quietest frame within `lo..hi` (absolute samples) where
    /// the speaker changed, and opens the next at the same sample, as a pause would have (a new
    /// onset and origin, so a later progressive cut's lead-in never reaches into the other
    /// voice). The new speaker's utterance keeps only [`SPLIT_LEAD_IN`] of the speech before it
    /// as its lead-in, not the whole of it: after a long lead-in of another voice Whisper often
    /// stops. Returns the two events, or none when no utterance is open or no frame of it lies
    /// in the range.
    pub fn split(&mut self, lo: usize, hi: usize) -> Vec<SegmentEvent> {
        let State::Speech { start, quiet_since } = self.state else { return Vec::new() };
        let Some(cut) = self.quietest_in(start, lo, hi) else { return Vec::new() };
        let mut events = Vec::new();
        self.state = self.reopen(start, (cut, SPLIT_LEAD_IN), quiet_since, &mut events);
        self.lead_in = cut - self.buf_start.min(cut);
        events
    }

    /// The audio just before the open utterance when it continues one that was cut (see
    /// [`cut`](Self::cut)) or split ([`split`](Self::split)); empty otherwise.
    pub fn lead_in(&self) -> &[f32] {
        match self.state {
            State::Speech { start, .. } => &self.buf[start - self.lead_in - self.buf_start..start - self.buf_start],
            _ => &[],
        }
    }

    /// Ends the open utterance now (client `finalize`, end of stream). An onset shorter than
    /// `min_speech_ms` is not speech and is dropped.
    pub fn finalize(&mut self) -> Option<Utterance> {
        let State::Speech { start, .. } = self.state else {
            self.state = State::Silence;
            return None;
        };
        self.state = State::Silence;
        Some(self.close(start, self.pos, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a probability per frame; the frame's samples encode its index for checking.
    fn run(seg: &mut Segmenter, probs: &[f32]) -> Vec<SegmentEvent> {
        let mut events = Vec::new();
        for &p in probs {
            let level = if p >= 0.5 { 0.5 } else { 0.01 };
            events.extend(seg.push(&[level; FRAME_SAMPLES], p));
        }
        events
    }

    fn cfg() -> SegmenterConfig {
        SegmenterConfig { speech_pad_ms: 64, min_speech_ms: 96, min_silence_ms: 160, ..Default::default() }
    }

    fn frames(n: usize) -> usize {
        n * FRAME_SAMPLES
    }

    #[test]
    fn the_clip_at_a_pause_is_the_utterance_that_pause_ends() {
        let cfg = SegmenterConfig::default();
        let mut seg = Segmenter::new(&cfg);
        let frame = vec![0.1f32; FRAME_SAMPLES];
        let mut clip = None;
        let mut ended = None;
        for i in 0..80 {
            let p = if (10..40).contains(&i) { 0.9 } else { 0.0 };
            for event in seg.push(&frame, p) {
                if let SegmentEvent::Ended(u) = event {
                    ended = Some(u);
                }
            }
            if ended.is_none() {
                if let Some((id, end, audio)) = seg.clip_if_pause_ends() {
                    clip.get_or_insert((id, end, audio.to_vec()));
                }
            }
        }
        let (id, end, audio) = clip.expect("a clip once the pause reached the padding");
        let utterance = ended.expect("the pause ended the utterance");
        assert_eq!((id, end, audio), (utterance.id, utterance.end, utterance.samples));
    }

    #[test]
    fn speech_between_silences_becomes_one_padded_utterance() {
        let mut seg = Segmenter::new(&cfg());
        let mut probs = vec![0.1; 10];
        probs.extend([0.9; 20]);
        probs.extend([0.1; 10]);
        let events = run(&mut seg, &probs);
        assert_eq!(events[0], SegmentEvent::SpeechStarted { id: 0, start: frames(10) - 1024 });
        let SegmentEvent::Ended(u) = &events[1] else { panic!("expected an end, got {events:?}") };
        assert_eq!((u.start, u.end), (frames(10) - 1024, frames(30) + 1024));
        assert_eq!(u.samples.len(), u.end - u.start);
        assert_eq!(u.voiced_end, frames(30), "the last frame over the threshold ends there");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_cut_piece_and_its_continuation_each_know_where_their_speech_ends() {
        let mut seg = Segmenter::new(&cfg());
        let mut probs = vec![0.9; 20];
        probs.extend([0.4; 10]); // middling: still the utterance, but not voiced
        run(&mut seg, &probs);
        let (piece, _) = seg.cut(frames(10), frames(11)).expect("an open utterance to cut");
        assert_eq!(piece.voiced_end, piece.end, "voiced up to the cut");
        let rest = seg.finalize().expect("the continuation");
        assert_eq!(rest.voiced_end, frames(20));
    }

    #[test]
    fn a_blip_shorter_than_min_speech_is_ignored() {
        let mut seg = Segmenter::new(&cfg());
        let events = run(&mut seg, &[0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]);
        assert!(events.is_empty(), "{events:?}");
        assert!(seg.finalize().is_none());
    }

    #[test]
    fn hysteresis_keeps_speech_through_middling_probabilities() {
        let mut seg = Segmenter::new(&cfg());
        let mut probs = vec![0.9; 5];
        probs.extend([0.4; 20]); // between neg_threshold and threshold: still speech
        let events = run(&mut seg, &probs);
        assert_eq!(events.len(), 1, "{events:?}");
        let u = seg.finalize().expect("speech is open");
        assert_eq!(u.end, frames(25));
    }

    #[test]
    fn a_short_pause_does_not_end_the_utterance() {
        let mut seg = Segmenter::new(&cfg());
        let mut probs = vec![0.9; 5];
        probs.extend([0.1; 4]); // 128 ms < 160 ms
        probs.extend([0.9; 5]);
        let events = run(&mut seg, &probs);
        assert_eq!(events.len(), 1);
        assert!(seg.open_utterance().is_some());
    }

    #[test]
    fn a_split_at_a_speaker_change_opens_the_next_turn_with_the_speech_before_it() {
        let mut seg = Segmenter::new(&cfg());
        for i in 0..150 {
            // Frame 100 (3.2 s) is the quiet moment between the two speakers.
            let level = if i == 100 { 0.001 } else { 0.5 };
            seg.push(&[level; FRAME_SAMPLES], 0.9);
        }
        let events = seg.split(frames(95), frames(105));
        let [SegmentEvent::Ended(piece), SegmentEvent::SpeechStarted { id: 1, start }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!((piece.id, piece.end, *start), (0, frames(100), frames(100)));
        assert!(piece.lead_in.is_empty(), "the first turn began at an onset");
        // 2 s of the first speaker lead into the second (whole frames: up to one more).
        let lead_in = seg.lead_in().len();
        assert!((SPLIT_LEAD_IN..SPLIT_LEAD_IN + FRAME_SAMPLES).contains(&lead_in), "{lead_in}");
        assert!(seg.split(frames(149), frames(200)).is_empty(), "a cut needs a frame after it");
        let ended = run(&mut seg, &[0.0; 20]);
        let [SegmentEvent::Ended(second)] = &ended[..] else { panic!("{ended:?}") };
        assert_eq!((second.id, second.start, second.lead_in.len()), (1, frames(100), lead_in));
    }

    #[test]
    fn long_speech_is_cut_at_the_quietest_frame() {
        let config = SegmenterConfig { max_utterance_s: 2.0, ..cfg() };
        let mut seg = Segmenter::new(&config);
        let mut events = Vec::new();
        for i in 0..80 {
            // Frame 45 (1.44 s) is nearly silent but still scored as speech.
            let level = if i == 45 { 0.001 } else { 0.5 };
            events.extend(seg.push(&[level; FRAME_SAMPLES], 0.9));
        }
        let ends: Vec<_> =
            events.iter().filter_map(|e| if let SegmentEvent::Ended(u) = e { Some(u) } else { None }).collect();
        assert_eq!(ends[0].end, frames(45));
        assert!(matches!(events[2], SegmentEvent::SpeechStarted { id: 1, start } if start == frames(45)));
    }

    #[test]
    fn an_open_utterance_is_cut_at_its_quietest_frame_in_range_and_goes_on() {
        let mut seg = Segmenter::new(&cfg());
        let mut events = Vec::new();
        for i in 0..60 {
            // Frame 30 is the quiet gap between two words, still scored as speech.
            let level = if i == 30 { 0.01 } else { 0.5 };
            events.extend(seg.push(&[level; FRAME_SAMPLES], 0.9));
        }
        assert_eq!(events.len(), 1, "only speech_started: {events:?}");
        let (piece, next) = seg.cut(frames(26), frames(34)).expect("speech is open");
        assert_eq!((piece.id, piece.start, piece.end, next), (0, 0, frames(30), 1));
        assert_eq!(piece.samples.len(), frames(30));
        let (id, start, audio) = seg.open_utterance().expect("speech goes on after the cut");
        assert_eq!((id, start, audio.len()), (1, frames(30), frames(30)));
        assert_eq!(seg.lead_in().len(), frames(30), "the piece is the continuation's lead-in");
        assert!(seg.cut(frames(70), frames(80)).is_none(), "a range past the audio cuts nothing");
        let rest = seg.finalize().expect("the rest is an utterance of its own");
        assert_eq!((rest.id, rest.start, rest.end), (1, frames(30), frames(60)));
        assert_eq!(rest.lead_in.len(), frames(30));
        assert!(piece.lead_in.is_empty(), "the first piece continues nothing");
    }

    #[test]
    fn long_utterances_end_at_shorter_pauses() {
        let config = SegmenterConfig { max_utterance_s: 4.0, ..cfg() };
        let mut seg = Segmenter::new(&config);
        // 3 s of speech (past half of the 4 s limit), then a 96 ms pause: it ends the utterance
        // although it is below min_silence (160 ms); about 80 ms are needed at that length.
        let mut probs = vec![0.9; 94];
        probs.extend([0.1; 3]);
        let ends: Vec<_> = run(&mut seg, &probs).into_iter().filter(|e| matches!(e, SegmentEvent::Ended(_))).collect();
        assert_eq!(ends.len(), 1, "a short pause ends a long utterance");
        // Early on, the same pause does not.
        let mut seg = Segmenter::new(&config);
        let mut probs = vec![0.9; 20];
        probs.extend([0.1; 3]);
        probs.extend([0.9; 2]);
        assert_eq!(run(&mut seg, &probs).len(), 1, "only speech_started");
    }

    #[test]
    fn utterances_never_overlap() {
        let mut seg = Segmenter::new(&cfg());
        let mut probs = Vec::new();
        for _ in 0..3 {
            probs.extend([0.9; 6]);
            probs.extend([0.1; 6]);
        }
        let ends: Vec<Utterance> = run(&mut seg, &probs)
            .into_iter()
            .filter_map(|e| if let SegmentEvent::Ended(u) = e { Some(u) } else { None })
            .collect();
        assert_eq!(ends.len(), 3);
        for pair in ends.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "{:?} overlaps {:?}",
                (pair[0].start, pair[0].end),
                (pair[1].start, pair[1].end)
            );
        }
    }
}

//! A session's state machine, without I/O: [`Session::handle`] takes one [`Input`] (scored audio,
//! a client message, an engine result, a timer) and returns the [`Action`]s it calls for
//! (messages to send, engine jobs to submit, the end of the session). It never awaits, never
//! reads a clock and holds no engine handle, so it is unit-tested without models; the `select!`
//! loop in `mod.rs` and the jobs in `jobs.rs` do all waiting and I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;
use crate::domain::{
    ms_to_samples, round_ms, seconds, seconds_to_samples, EmbeddedTurn, Transcript, SAMPLES_PER_MS, SAMPLE_RATE,
};
use crate::engine::asr::AsrError;
use crate::engine::diarize::{DiarizeError, Embed};
use crate::onnx::OnnxError;
use crate::pipeline::commit::{agreed_words, CommitConfig, CommitPolicy};
use crate::pipeline::continuation::{key, strip_committed, LeadIn};
use crate::pipeline::policy::PartialPolicy;
use crate::pipeline::segmenter::{SegmentEvent, Segmenter, Utterance};
use crate::pipeline::vad::ScoredFrame;
use crate::protocol::vocabulary::Vocabulary;
use crate::protocol::{check_endpointing, ClientMessage, CloseReason, ErrorCode, ListenParams, ServerMessage};
use crate::speaker::attribution::{join_words, to_segments};
use crate::speaker::cluster::ClusterConfig;

use super::changes::ChangeWatch;
use super::progress::SpeakerProgress;
use super::speakers::SessionSpeakers;

/// Quiet this long (0.2 s) inside an utterance starts its speaker job, hiding the work behind the
/// silence that may end it.
const PAUSE: usize = ms_to_samples(200);
/// The first speaker job of an utterance waits for 8 s of audio.
const FIRST_PREFIX: usize = 8 * SAMPLE_RATE as usize;
/// A speaker change found by the segmentation model is cut at the quietest frame this close
/// (0.15 s) to it: its frames are finer than Whisper's, but a word may straddle the change.
const CHANGE_SEARCH: usize = ms_to_samples(150);

/// What happens to a session.
#[derive(Debug)]
pub enum Input {
    /// Scored 16 kHz frames of the client's latest audio frame.
    Audio(Vec<ScoredFrame>),
    /// Voice activity detection failed on the client's audio.
    AudioFailed(OnnxError),
    /// A frame over the limit: its size, or `None` when the socket layer refused it unread.
    TooLarge(Option<usize>),
    Text(String),
    /// A partial decode came back; `turnaround` is how long it took, in samples of audio time.
    Partial {
        job: PartialJob,
        turnaround: usize,
        result: Result<Transcript, AsrError>,
    },
    /// The engine had no room for the partial asked for.
    PartialRefused,
    /// The partial asked for was not sent: a speculative decode is in flight.
    PartialWithdrawn,
    /// An utterance's transcript is back. `speakers` is `None` when there are no labels yet
    /// (speakers disabled, or late: they come as [`Input::LateSpeakers`]).
    Final(FinalResult),
    /// The final of `segment_id` could not be queued.
    FinalRefused {
        segment_id: u64,
        error: AsrError,
    },
    LateSpeakers {
        segment_id: u64,
        result: Result<Vec<EmbeddedTurn>, DiarizeError>,
    },
    /// Speaker turns of the open utterance's audio so far, or the job could not run.
    SpeakerPrefix(Result<Vec<EmbeddedTurn>, DiarizeError>),
    /// The turns of the stream's latest audio (the two either side of its first change
    /// embedded), asked for by [`Action::FindSpeakerChange`], or the look could not run.
    SpeakerChange(Result<Vec<EmbeddedTurn>, DiarizeError>),
    /// No frame for the idle timeout (seconds).
    Idle(u64),
    /// The client closed or dropped the connection.
    ClientGone,
    Shutdown,
    /// `DELETE /sessions/{id}`.
    Terminated,
    /// The stream is over: the audio stages' last frames, and bytes that made no whole sample.
    EndOfAudio {
        frames: Result<Vec<ScoredFrame>, OnnxError>,
        dropped_bytes: usize,
    },
}

/// What the session asks its driver to do, in order.
#[derive(Debug)]
pub enum Action {
    Send(ServerMessage),
    /// Decode an ended utterance and, with `speakers`, finish its speaker turns.
    Final(FinalJob),
    /// Decode the open utterance so far.
    Partial(PartialJob),
    /// Find the speaker turns of `samples` (the open utterance's audio, after the speech before
    /// it when it was cut from a longer run); turns from sample `from` of them on are new.
    SpeakerPrefix {
        samples: Vec<f32>,
        from: usize,
    },
    /// A speaker job for the open utterance is no longer wanted (a new utterance began).
    DropSpeakerPrefix,
    /// Find the speaker turns of the stream's latest audio, embedding only what `embed` says:
    /// where the speaker changes inside the open utterance (`changes.rs`).
    FindSpeakerChange {
        clip: Vec<f32>,
        embed: Embed,
    },
    /// Decode the open utterance as the current pause would end it (`speculation.rs`).
    Speculate {
        segment_id: u64,
        end: usize,
        samples: Vec<f32>,
    },
    /// The pause is over: the speculative decode is no longer wanted.
    StopSpeculating,
    /// Decode from now on with this vocabulary (the stream's changed).
    Vocabulary(Vocabulary),
    Close(CloseReason),
}

#[derive(Debug)]
pub struct FinalJob {
    pub utterance: Utterance,
    /// For a progressive final, the words partial hypotheses agreed on: they are its text, so it
    /// is not decoded again (a short clip cut from running speech decodes worse than the longer
    /// clips those hypotheses came from).
    pub agreed: Option<Transcript>,
    /// The utterance's speaker turns so far, when the session labels speakers.
    pub speakers: Option<SpeakerProgress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartialJob {
    pub segment_id: u64,
    pub start: usize,
    pub end: usize,
    /// What `samples` begin with from before `start`: its length and the words already final
    /// it holds, taken off the hypothesis.
    pub lead_in: LeadIn,
    /// Whether the hypothesis needs word times (progressive finals compare and cut by them).
    pub word_times: bool,
    pub samples: Vec<f32>,
}

/// A final's results, in samples of the stream.
#[derive(Debug)]
pub struct FinalResult {
    pub segment_id: u64,
    pub start: usize,
    pub end: usize,
    pub result: Result<Transcript, AsrError>,
    pub speakers: Option<Result<Vec<EmbeddedTurn>, DiarizeError>>,
}

/// The settings a session reads, taken from the configuration when it opens.
#[derive(Debug, Clone)]
struct Settings {
    max_frame_bytes: usize,
    max_audio_samples: u64,
    max_session_audio_s: u64,
    speculative_finals: bool,
    prefix_step: usize,
}

pub struct Session {
    params: ListenParams,
    settings: Settings,
    segmenter: Segmenter,
    policy: PartialPolicy,
    /// Present when this session labels speakers.
    speakers: Option<SessionSpeakers>,
    /// Speaker turns of the open utterance, when this session labels speakers.
    progress: Option<SpeakerProgress>,
    /// Present when utterances are ended at speaker changes (`streaming.speaker_cuts`).
    changes: Option<ChangeWatch>,
    /// The clip (utterance, end) being decoded speculatively, if any.
    speculating: Option<(u64, usize)>,
    /// Present when stable words are made final before a pause (progressive finals).
    commit: Option<CommitPolicy>,
    /// Finals cut from an utterance that went on: their results carry no utterance end.
    pieces: BTreeSet<u64>,
    /// Utterances ended at a speaker change: their words are in the next one's lead-in.
    split: BTreeSet<u64>,
    /// The words made final so far of the speech the open utterance belongs to, with their
    /// ends (absolute samples): a continuation's decode hears them again in its lead-in.
    committed: Vec<(String, usize)>,
    /// Continuations being decoded with a lead-in: what to take off their transcripts.
    lead_ins: BTreeMap<u64, LeadIn>,
    finals_sent: u64,
    actions: Vec<Action>,
}

fn secs(samples: usize) -> f64 {
    round_ms(seconds(samples))
}

impl Session {
    /// A new session; the `ready` message is its first action.
    pub fn new(id: String, params: ListenParams, config: &Config, model: &str) -> Self {
        let ms = |v: u32| v as usize * SAMPLES_PER_MS;
        let policy = PartialPolicy::new(ms(config.streaming.partial_interval_ms), ms(config.streaming.min_partial_ms));
        let ready = ServerMessage::Ready {
            session_id: id,
            sample_rate: params.sample_rate,
            encoding: params.encoding,
            model: model.to_owned(),
            language: params.language.clone(),
            interim_results: params.interim_results,
            diarize: params.diarize,
            channels: None,
        };
        let speakers = params.diarize.then(|| {
            let defaults = &config.speakers;
            SessionSpeakers::new(ClusterConfig {
                max_speakers: params.max_speakers.unwrap_or(defaults.max_speakers),
                min_speakers: params.min_speakers.unwrap_or(defaults.min_speakers),
                ..defaults.clone()
            })
        });
        let mut vad = config.vad.clone();
        if let Some(ms) = params.endpointing_ms {
            vad.min_silence_ms = ms;
        }
        let settings = Settings {
            max_frame_bytes: config.limits.max_frame_bytes,
            max_audio_samples: config.limits.max_session_audio_s * u64::from(SAMPLE_RATE),
            max_session_audio_s: config.limits.max_session_audio_s,
            speculative_finals: config.streaming.speculative_finals,
            prefix_step: config.diarization.incremental_step_ms as usize * SAMPLES_PER_MS,
        };
        Self {
            segmenter: Segmenter::new(&vad),
            settings,
            policy,
            speakers,
            progress: None,
            changes: (config.streaming.speaker_cuts && params.diarize)
                .then(|| ChangeWatch::new(config.speakers.threshold)),
            speculating: None,
            commit: config.streaming.progressive_finals.then(|| CommitPolicy::new(CommitConfig::default())),
            pieces: BTreeSet::new(),
            split: BTreeSet::new(),
            committed: Vec::new(),
            lead_ins: BTreeMap::new(),
            finals_sent: 0,
            actions: vec![Action::Send(ready)],
            params,
        }
    }

    /// The actions queued so far (the `ready` message, before any input).
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Reacts to one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Audio(frames) => self.on_audio(frames),
            Input::AudioFailed(e) => self.fail(format!("voice activity detection failed: {e}")),
            Input::TooLarge(size) => self.too_large(size),
            Input::Text(text) => self.on_text(&text),
            Input::Partial { job, turnaround, result } => self.on_partial(job, turnaround, result),
            Input::PartialRefused => self.policy.completed(0),
            Input::PartialWithdrawn => self.policy.withdraw(),
            Input::Final(result) => self.on_final(result),
            Input::FinalRefused { segment_id, error } => {
                let code =
                    if matches!(error, AsrError::Overloaded(_)) { ErrorCode::Overloaded } else { ErrorCode::AsrFailed };
                self.error(code, format!("segment {segment_id}: {error}"));
            }
            Input::LateSpeakers { segment_id, result } => self.on_late_speakers(segment_id, result),
            Input::SpeakerPrefix(result) => self.on_speaker_prefix(result),
            Input::SpeakerChange(result) => self.on_speaker_change(result),
            Input::Idle(seconds) => {
                self.error(ErrorCode::IdleTimeout, format!("no frames received for {seconds} s"));
                self.actions.push(Action::Close(CloseReason::IdleTimeout));
            }
            Input::ClientGone => self.actions.push(Action::Close(CloseReason::Disconnected)),
            Input::Shutdown => self.actions.push(Action::Close(CloseReason::Shutdown)),
            Input::Terminated => self.actions.push(Action::Close(CloseReason::Terminated)),
            Input::EndOfAudio { frames, dropped_bytes } => self.end_of_audio(frames, dropped_bytes),
        }
        self.take_actions()
    }

    pub fn audio_seconds(&self) -> f64 {
        secs(self.segmenter.position())
    }

    pub fn finals_sent(&self) -> u64 {
        self.finals_sent
    }

    /// The last message of the session.
    pub fn closed(&self, reason: CloseReason) -> ServerMessage {
        ServerMessage::Closed { reason, audio_seconds: self.audio_seconds(), segments: self.finals_sent }
    }

    fn send(&mut self, message: ServerMessage) {
        self.actions.push(Action::Send(message));
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::Error { code, message: message.into() });
    }

    fn fail(&mut self, message: String) {
        self.error(ErrorCode::Internal, message);
        self.actions.push(Action::Close(CloseReason::Error));
    }

    fn too_large(&mut self, size: Option<usize>) {
        let limit = self.settings.max_frame_bytes;
        let message = match size {
            Some(n) => format!("frame of {n} bytes exceeds the limit of {limit} bytes"),
            None => format!("frame exceeds the limit of {limit} bytes"),
        };
        self.error(ErrorCode::FrameTooLarge, message);
        self.actions.push(Action::Close(CloseReason::FrameTooLarge));
    }

    /// Whether a binary frame of `n_bytes` is within the limit (checked before it is decoded).
    pub fn accepts_frame(&self, n_bytes: usize) -> bool {
        n_bytes <= self.settings.max_frame_bytes
    }

    fn on_audio(&mut self, frames: Vec<ScoredFrame>) {
        self.on_frames(frames);
        if self.settings.speculative_finals {
            self.update_speculation();
        }
        self.maybe_request_partial();
        self.maybe_diarize_prefix();
        self.maybe_look_for_change();
        if self.segmenter.position() as u64 > self.settings.max_audio_samples {
            let limit = self.settings.max_session_audio_s;
            self.error(ErrorCode::SessionTooLong, format!("stream exceeds the limit of {limit} s of audio"));
            self.actions.push(Action::Close(CloseReason::SessionTooLong));
        }
    }

    fn on_frames(&mut self, frames: Vec<ScoredFrame>) {
        for frame in frames {
            if let Some(changes) = self.changes.as_mut() {
                changes.push(&frame.samples);
            }
            for event in self.segmenter.push(&frame.samples, frame.probability) {
                self.on_segment_event(event);
            }
        }
    }

    fn on_segment_event(&mut self, event: SegmentEvent) {
        match event {
            SegmentEvent::SpeechStarted { id, start } => {
                self.policy.reset();
                self.committed.clear();
                if self.speakers.is_some() {
                    self.actions.push(Action::DropSpeakerPrefix);
                    self.progress = Some(SpeakerProgress::new(id, false));
                }
                self.send(ServerMessage::SpeechStarted { segment_id: id, start: secs(start), channel: None });
            }
            SegmentEvent::Ended(utterance) => self.submit_final(utterance),
        }
    }

    /// Hands an ended utterance to the engines, with its speaker progress when labelling.
    fn submit_final(&mut self, utterance: Utterance) {
        self.submit(utterance, None);
    }

    fn submit(&mut self, utterance: Utterance, agreed: Option<Transcript>) {
        self.policy.reset();
        if agreed.is_none() && !utterance.lead_in.is_empty() {
            let lead_in = self.lead_in_of(utterance.start, utterance.lead_in.len());
            self.lead_ins.insert(utterance.id, lead_in);
        }
        self.speculating = None;
        let speakers = self.speakers.as_ref().map(|_| {
            self.progress
                .take()
                .filter(|p| p.utterance == utterance.id)
                .unwrap_or_else(|| SpeakerProgress::new(utterance.id, false))
        });
        self.actions.push(Action::Final(FinalJob { utterance, agreed, speakers }));
    }

    /// Starts, keeps or stops the speculative decode after new frames: one per pause, stopped as
    /// soon as the pause is over.
    fn update_speculation(&mut self) {
        let Some((segment_id, end, audio)) = self.segmenter.clip_if_pause_ends() else {
            return self.stop_speculating();
        };
        if self.speculating == Some((segment_id, end)) {
            return;
        }
        self.speculating = Some((segment_id, end));
        // Decoded as the final will be: with the lead-in of a continuation.
        let samples = [self.segmenter.lead_in(), audio].concat();
        self.actions.push(Action::Speculate { segment_id, end, samples });
    }

    /// The speculative decode, if any, is no longer wanted (its utterance ended or went on).
    fn stop_speculating(&mut self) {
        if self.speculating.take().is_some() {
            self.actions.push(Action::StopSpeculating);
        }
    }

    /// Partials are asked for when the client wants them, and for progressive finals, which
    /// compare successive hypotheses.
    fn maybe_request_partial(&mut self) {
        if !self.params.interim_results && self.commit.is_none() {
            return;
        }
        let Some((segment_id, start, audio)) = self.segmenter.open_utterance() else { return };
        if !self.policy.should_request(audio.len()) {
            return;
        }
        let lead_in = self.segmenter.lead_in();
        let samples = [lead_in, audio].concat();
        let (end, word_times) = (start + audio.len(), self.commit.is_some());
        let lead_in = self.lead_in_of(start, lead_in.len());
        let job = PartialJob { segment_id, start, end, lead_in, word_times, samples };
        self.actions.push(Action::Partial(job));
    }

    /// Diarizes the open utterance's new audio every few seconds, one job at a time.
    fn maybe_diarize_prefix(&mut self) {
        let Some(progress) = self.progress.as_mut() else { return };
        let Some((id, _, audio)) = self.segmenter.open_utterance() else { return };
        if id != progress.utterance {
            return;
        }
        // The segmentation model needs several seconds of context to tell speakers apart.
        let paused = self.segmenter.quiet_samples() >= PAUSE;
        let step = self.settings.prefix_step;
        let before = self.segmenter.lead_in();
        let Some(job) = progress.next_job(audio.len(), step, FIRST_PREFIX, paused, before.len()) else { return };
        self.actions.push(Action::SpeakerPrefix { samples: job.clip(before, audio), from: job.from });
    }

    fn on_speaker_prefix(&mut self, result: Result<Vec<EmbeddedTurn>, DiarizeError>) {
        let Some(progress) = self.progress.as_mut() else { return };
        match result {
            Ok(turns) => progress.settle(turns),
            Err(_) => progress.abandon(),
        }
    }

    /// Looks for a speaker change in the open utterance every few hundred milliseconds.
    fn maybe_look_for_change(&mut self) {
        let Some(changes) = self.changes.as_mut() else { return };
        let Some((_, start, _)) = self.segmenter.open_utterance() else { return };
        if let Some((clip, embed)) = changes.next_look(start) {
            self.actions.push(Action::FindSpeakerChange { clip, embed });
        }
    }

    /// A look for a speaker change came back: where it found one in the open utterance, the
    /// utterance ends there (its final decoded whole, as at a pause) and the new speaker's begins.
    fn on_speaker_change(&mut self, result: Result<Vec<EmbeddedTurn>, DiarizeError>) {
        let Some(changes) = self.changes.as_mut() else { return };
        let open_start = self.segmenter.open_utterance().map(|(_, start, _)| start);
        let turns = result.unwrap_or_default();
        let Some(at) = changes.change(&turns, open_start) else { return };
        tracing::debug!(at = secs(at), "speaker change: the open utterance ends there");
        let events = self.segmenter.split(at.saturating_sub(CHANGE_SEARCH), at + CHANGE_SEARCH);
        let mut agreed = None;
        if let Some(SegmentEvent::Ended(piece)) = events.first() {
            self.split.insert(piece.id);
            self.stop_speculating();
            agreed = self.commit.as_ref().and_then(|c| c.final_at_cut(piece.id, piece.start, piece.end));
            tracing::debug!(words = agreed.as_ref().map(|t| t.words.len()), "the piece before the change");
        }
        for event in events {
            match (event, agreed.take()) {
                // Its words are already agreed on: they need no decode of their own.
                (SegmentEvent::Ended(piece), Some(transcript)) => self.submit(piece, Some(transcript)),
                (event, _) => self.on_segment_event(event),
            }
        }
    }

    /// A partial came back; it is shown only while its utterance is still open.
    fn on_partial(&mut self, job: PartialJob, turnaround: usize, result: Result<Transcript, AsrError>) {
        self.policy.completed(turnaround);
        let still_open = self.segmenter.open_utterance().is_some_and(|(id, ..)| id == job.segment_id);
        match result.map(|t| strip_committed(t, &job.lead_in)) {
            Ok(t) if still_open => {
                if self.params.interim_results && !t.text.is_empty() {
                    let (start, end) = (secs(job.start), secs(job.end));
                    let text = t.text.clone();
                    self.send(ServerMessage::Partial { segment_id: job.segment_id, start, end, text, channel: None });
                }
                self.maybe_commit(&job, &t);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %crate::logging::chain(&e), "partial failed"),
        }
    }

    /// Makes the stable start of the open utterance final (`pipeline::commit`): it is cut there,
    /// the agreed words are its final, and the rest goes on as the open utterance, decoded with
    /// the piece as its lead-in (`pipeline::continuation`), its hypothesis shown as that
    /// utterance's partial.
    fn maybe_commit(&mut self, job: &PartialJob, hypothesis: &Transcript) {
        let Some(commit) = self.commit.as_mut() else { return };
        let words =
            || hypothesis.words.iter().map(|w| format!("{}@{:.2}-{:.2}", w.word, w.start, w.end)).collect::<Vec<_>>();
        tracing::trace!(clip = ?(secs(job.start), secs(job.end)), words = ?words(), "a hypothesis offered");
        let Some(cut) = commit.offer(job.segment_id, job.start, job.end, hypothesis) else { return };
        tracing::debug!(
            clip = ?(secs(job.start), secs(job.end)),
            words = ?words(),
            n = cut.words,
            "progressive commit"
        );
        let Some((piece, next)) = self.segmenter.cut(cut.lo, cut.hi) else { return };
        let cut_at = piece.end;
        self.pieces.insert(piece.id);
        self.stop_speculating();
        // The piece holds the agreed words, wherever their coarse times put them: the
        // continuation hears them again in its lead-in and takes them off by their text.
        let (piece_start, piece_len, n) = (piece.start, seconds(piece.samples.len()), cut.words);
        let committed = hypothesis.words[..n].iter().map(|w| (key(&w.word), piece_start + seconds_to_samples(w.end)));
        self.committed.extend(committed);
        self.submit(piece, Some(agreed_words(hypothesis, n, piece_len)));
        self.policy.reset_after_cut();
        if self.speakers.is_some() {
            self.progress = Some(SpeakerProgress::new(next, true));
        }
        let rest = join_words(&hypothesis.words[n..]);
        if self.params.interim_results && !rest.is_empty() {
            let (start, end) = (secs(cut_at), secs(job.end));
            self.send(ServerMessage::Partial { segment_id: next, start, end, text: rest, channel: None });
        }
    }

    /// The lead-in of a clip of `context` samples before `start`: its length and the committed
    /// words heard in it.
    fn lead_in_of(&self, start: usize, context: usize) -> LeadIn {
        let from = start.saturating_sub(context);
        let committed = self.committed.iter().filter(|(_, end)| *end > from).map(|(k, _)| k.clone()).collect();
        LeadIn { seconds: seconds(context), committed }
    }

    /// A final came back: split it by speaker where known, and move times to the stream.
    fn on_final(&mut self, done: FinalResult) {
        let (segment_id, end) = (done.segment_id, done.end);
        self.send_final(done);
        // The last final of an utterance is followed by its end, for clients that want whole
        // utterances; a piece cut before a pause is not an end.
        if !self.pieces.remove(&segment_id) {
            self.send(ServerMessage::UtteranceEnd { segment_id, end: secs(end), channel: None });
        }
    }

    fn send_final(&mut self, done: FinalResult) {
        let lead_in = self.lead_ins.remove(&done.segment_id).unwrap_or_default();
        let transcript = match done.result {
            Ok(t) => strip_committed(t, &lead_in),
            Err(e) => return self.error(ErrorCode::AsrFailed, format!("segment {}: {e}", done.segment_id)),
        };
        let mut outbox = Vec::new();
        if self.split.remove(&done.segment_id) {
            self.heard_before_next(done.segment_id, done.start, &transcript);
        }
        let labelled = match (done.speakers, self.speakers.as_mut()) {
            (Some(Ok(turns)), Some(speakers)) => Some(speakers.label(done.segment_id, &turns, &mut outbox)),
            (Some(Err(e)), _) => {
                tracing::warn!(segment_id = done.segment_id, error = %crate::logging::chain(&e), "speaker labels failed");
                None
            }
            _ => None,
        };
        outbox.into_iter().for_each(|m| self.send(m));
        let (n_samples, offset) = (done.end - done.start, seconds(done.start));
        let segments = to_segments(done.segment_id, &transcript, labelled.as_deref(), n_samples, offset);
        if let (Some(speakers), true) = (self.speakers.as_mut(), labelled.is_some()) {
            speakers.sent(&segments, offset);
        }
        for segment in segments {
            self.send(ServerMessage::Final(segment));
            self.finals_sent += 1;
        }
    }

    /// The final of an utterance ended at a speaker change: the next one, if still open, heard
    /// its last words in its lead-in, and takes them off its decodes by their text from now on
    /// (its first partials, before this final, went by times).
    fn heard_before_next(&mut self, segment_id: u64, start: usize, transcript: &Transcript) {
        if self.segmenter.open_utterance().is_none_or(|(id, ..)| id != segment_id + 1) {
            return;
        }
        let words = transcript.words.iter().map(|w| (key(&w.word), start + seconds_to_samples(w.end)));
        self.committed.extend(words);
        self.committed.sort_by_key(|(_, end)| *end);
    }

    /// Speakers that missed their final's deadline.
    fn on_late_speakers(&mut self, segment_id: u64, result: Result<Vec<EmbeddedTurn>, DiarizeError>) {
        let mut outbox = Vec::new();
        match (result, self.speakers.as_mut()) {
            (Ok(turns), Some(speakers)) => speakers.late(segment_id, &turns, &mut outbox),
            (Err(e), _) => tracing::warn!(segment_id, error = %crate::logging::chain(&e), "late speaker labels failed"),
            _ => {}
        }
        outbox.into_iter().for_each(|m| self.send(m));
    }

    /// A JSON text frame.
    fn on_text(&mut self, text: &str) {
        if text.len() > self.settings.max_frame_bytes {
            self.error(ErrorCode::FrameTooLarge, format!("text frame of {} bytes exceeds the limit", text.len()));
            return self.actions.push(Action::Close(CloseReason::FrameTooLarge));
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Keepalive) => {}
            Ok(ClientMessage::Close) => self.actions.push(Action::Close(CloseReason::ClientClose)),
            Ok(ClientMessage::Finalize) => {
                if let Some(utterance) = self.segmenter.finalize() {
                    self.submit_final(utterance);
                }
            }
            Ok(ClientMessage::Configure { keyterms, prompt, endpointing_ms }) => {
                self.configure(keyterms, prompt, endpointing_ms)
            }
            Err((code, message)) => self.error(code, message),
        }
    }

    /// A new vocabulary for the utterances to come: what is given replaces, what is absent stays.
    fn configure(&mut self, keyterms: Option<Vec<String>>, prompt: Option<String>, endpointing_ms: Option<u32>) {
        if let Some(Err(e)) = endpointing_ms.map(|ms| check_endpointing("endpointing_ms", ms)) {
            return self.error(ErrorCode::InvalidVocabulary, e.0);
        }
        let current = &self.params.vocabulary;
        let keyterms = keyterms.unwrap_or_else(|| current.keyterms.clone());
        let prompt = prompt.or_else(|| current.prompt.clone());
        match Vocabulary::checked(keyterms, prompt) {
            Ok(vocabulary) => {
                if let Some(ms) = endpointing_ms {
                    self.segmenter.set_min_silence_ms(ms);
                    self.params.endpointing_ms = Some(ms);
                }
                self.actions.push(Action::Vocabulary(vocabulary.clone()));
                self.send(ServerMessage::Configured { vocabulary: vocabulary.clone(), endpointing_ms });
                self.params.vocabulary = vocabulary;
            }
            Err(e) => self.error(ErrorCode::InvalidVocabulary, e.0),
        }
    }

    /// End of stream: flush every stage and queue the last utterance.
    fn end_of_audio(&mut self, frames: Result<Vec<ScoredFrame>, OnnxError>, dropped_bytes: usize) {
        match frames {
            Ok(frames) => self.on_frames(frames),
            Err(e) => self.error(ErrorCode::Internal, format!("voice activity detection failed: {e}")),
        }
        if dropped_bytes > 0 {
            let message = format!("dropped {dropped_bytes} trailing byte(s) that do not make a whole sample");
            self.error(ErrorCode::IncompleteSample, message);
        }
        if let Some(utterance) = self.segmenter.finalize() {
            self.submit_final(utterance);
        }
    }
}

fn parse_client_message(text: &str) -> Result<ClientMessage, (ErrorCode, String)> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| (ErrorCode::InvalidJson, format!("text frame is not valid JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()).map(str::to_owned) else {
        return Err((ErrorCode::InvalidJson, "a message must be a JSON object with a string `type`".into()));
    };
    serde_json::from_value(value).map_err(|_| {
        (
            ErrorCode::UnknownMessageType,
            format!("unknown message type `{kind}`; expected finalize, close, keepalive or configure"),
        )
    })
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

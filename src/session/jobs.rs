//! The engine side of a session: carries out the jobs the core asks for on the ASR and
//! diarization engines, and holds what is in flight so the event loop can await it. All of a
//! session's clocks live here (real-time due times, partial turnaround, final latency).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::StreamExt;

use super::aggregate::{self, FinalDone, LateSpeakers, SpeakerFuture, Speakers};
use super::core::{Action, FinalJob, FinalResult, Input, PartialJob, Session};
use super::deps::SessionDeps;
use super::progress::{SpeakerProgress, SPEAKER_CONTEXT};
use super::speculation::Speculation;
use crate::config::Config;
use crate::domain::{seconds, SAMPLE_RATE};
use crate::engine::asr::{AsrHandle, LiveStream, Reply, StreamContext};
use crate::engine::diarize::{DiarizeError, DiarizeHandle, DiarizeReply, Embed};
use crate::engine::queue::{clock_ms, clock_ms_at};
use crate::protocol::vocabulary::Vocabulary;
use crate::protocol::{CloseReason, ListenParams, ServerMessage};
use crate::registry::admission::StreamTicket;

/// Less audio than this (0.4 s) left at the end of an utterance is not worth a diarization job:
/// it is the silence that ended it.
const MIN_TAIL: usize = crate::domain::ms_to_samples(400);

/// Finals one session may have queued or running; past this it waits for its oldest, so a
/// client sending faster than real time holds back only itself.
const MAX_FINALS_IN_FLIGHT: usize = 4;

pub struct PendingPartial {
    pub job: PartialJob,
    pub rx: Reply,
    pub requested: Instant,
}

/// A reply that is already there: a progressive final's agreed words.
fn ready(transcript: crate::domain::Transcript) -> Reply {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The receiver is alive: it is returned below.
    let _ = tx.send(Ok(transcript));
    rx
}

/// Engine requests in flight.
#[derive(Default)]
pub struct Inflight {
    /// Yields finals in the order their utterances ended.
    pub finals: FuturesOrdered<BoxFuture<'static, FinalDone>>,
    /// The segments of `finals`, oldest first: named in an `overloaded` error if given up.
    pub final_ids: VecDeque<u64>,
    pub partial: Option<PendingPartial>,
    /// Speakers still on their way for finals already sent.
    pub late: FuturesUnordered<BoxFuture<'static, LateSpeakers>>,
    /// Speaker turns of the open utterance's audio so far.
    pub speaker_prefix: Option<DiarizeReply>,
    /// Turns of the stream's latest audio: is there a speaker change?
    pub speaker_change: Option<DiarizeReply>,
    /// A decode of the open utterance at its current pause (`speculation.rs`).
    speculation: Option<Speculation>,
}

pub struct Jobs {
    asr: AsrHandle,
    /// Present when the session labels speakers.
    diarize: Option<DiarizeHandle>,
    aggregator: Arc<aggregate::AggregatorStats>,
    ticket: Arc<StreamTicket>,
    /// The stream's language and vocabulary, for every clip it sends.
    pub context: StreamContext,
    final_timeout: Duration,
    join_timeout: Duration,
    /// When the session began: with a stream position it tells when that audio was due in real
    /// time (`due`).
    opened: Instant,
    /// When this session's last partial came back: the key that orders its partials.
    last_partial_ms: u64,
    pub inflight: Inflight,
    /// Counts this stream as live while it is open: file work yields to it.
    _live: LiveStream,
}

/// What every clip of the stream is decoded with: its language, its key terms favoured token
/// by token (`engine::bias`), its prompt as the recogniser's context. Key terms stay out of the
/// prompt: as a prompt they were found as often but changed other words too (docs/BENCHMARKS.md,
/// "Key terms").
fn stream_context(language: Option<String>, vocabulary: &Vocabulary) -> StreamContext {
    let Vocabulary { keyterms, prompt } = vocabulary.clone();
    StreamContext { language, prompt, keyterms }
}

impl Jobs {
    pub fn new(deps: &SessionDeps, config: &Config, ticket: Arc<StreamTicket>, params: &ListenParams) -> Self {
        let opened = Instant::now();
        Self {
            asr: deps.engines.asr.clone(),
            diarize: deps.engines.diarize.clone().filter(|_| params.diarize),
            aggregator: deps.aggregator.clone(),
            ticket,
            context: stream_context(params.language.clone(), &params.vocabulary),
            final_timeout: Duration::from_secs(config.asr.final_timeout_s),
            join_timeout: Duration::from_millis(config.diarization.join_timeout_ms),
            opened,
            last_partial_ms: clock_ms_at(opened),
            inflight: Inflight::default(),
            _live: deps.engines.asr.live_stream(),
        }
    }

    pub fn final_timeout(&self) -> Duration {
        self.final_timeout
    }

    /// Audio arrived: admission counts this stream as streaming.
    pub fn heard(&self) {
        self.ticket.heard();
    }

    /// Nothing more will be streamed: admission stops counting this stream.
    pub fn stream_ended(&self) {
        self.ticket.end();
    }

    /// When the audio up to stream sample `position` was due, had the client sent in real time.
    fn due(&self, position: usize) -> Instant {
        self.opened + Duration::from_secs_f64(seconds(position))
    }

    /// Carries out `actions` in order; messages go to `outbox`. Returns the first close asked for.
    pub async fn run(
        &mut self,
        session: &mut Session,
        actions: Vec<Action>,
        outbox: &mut Vec<ServerMessage>,
    ) -> Option<CloseReason> {
        let mut queue = VecDeque::from(actions);
        let mut close = None;
        while let Some(action) = queue.pop_front() {
            // Reactions to what an action brought back come before the actions queued after it.
            let follow = match action {
                Action::Send(message) => {
                    outbox.push(message);
                    Vec::new()
                }
                Action::Final(job) => self.submit_final(session, job).await,
                Action::Partial(job) => self.request_partial(session, job),
                Action::SpeakerPrefix { samples, from } => self.diarize_prefix(session, samples, from).await,
                Action::FindSpeakerChange { clip, embed } => self.look_for_change(session, clip, embed).await,
                Action::DropSpeakerPrefix => {
                    self.inflight.speaker_prefix = None;
                    Vec::new()
                }
                Action::Speculate { segment_id, end, samples } => {
                    let started = Speculation::start(segment_id, end, samples, &self.asr, &self.context);
                    self.inflight.speculation = Some(started);
                    Vec::new()
                }
                Action::StopSpeculating => {
                    self.inflight.speculation = None;
                    Vec::new()
                }
                Action::Vocabulary(vocabulary) => {
                    self.context = stream_context(self.context.language.take(), &vocabulary);
                    Vec::new()
                }
                Action::Close(reason) => {
                    close = close.or(Some(reason));
                    Vec::new()
                }
            };
            for action in follow.into_iter().rev() {
                queue.push_front(action);
            }
        }
        close
    }

    fn request_partial(&mut self, session: &mut Session, job: PartialJob) -> Vec<Action> {
        if Speculation::in_flight(&self.inflight.speculation) {
            // The speculative decode will be the utterance's text soon: a partial is not worth it.
            return session.handle(Input::PartialWithdrawn);
        }
        match self.asr.try_partial(job.samples.clone(), self.context.clone(), job.word_times, self.last_partial_ms) {
            Some(rx) => {
                self.inflight.partial = Some(PendingPartial { job, rx, requested: Instant::now() });
                Vec::new()
            }
            None => session.handle(Input::PartialRefused),
        }
    }

    /// A partial came back: what the core is told.
    pub fn partial_done(&mut self, result: Result<crate::domain::Transcript, crate::engine::asr::AsrError>) -> Input {
        let pending = self.inflight.partial.take().expect("a partial result implies a pending partial");
        let turnaround = (pending.requested.elapsed().as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
        self.last_partial_ms = clock_ms();
        Input::Partial { job: pending.job, turnaround, result }
    }

    /// Diarizes the open utterance's new audio; a full queue just skips it (the final diarizes
    /// what is left).
    async fn diarize_prefix(&mut self, session: &mut Session, samples: Vec<f32>, from: usize) -> Vec<Action> {
        let Some(diarize) = &self.diarize else { return Vec::new() };
        match diarize.submit(samples, from, Duration::ZERO).await {
            Ok(rx) => {
                self.inflight.speaker_prefix = Some(rx);
                Vec::new()
            }
            Err(e) => session.handle(Input::SpeakerPrefix(Err(e))),
        }
    }

    /// Asks the speaker thread for the turns of the latest audio; with no room now, the look is
    /// skipped (the next one covers the same audio).
    async fn look_for_change(&mut self, session: &mut Session, clip: Vec<f32>, embed: Embed) -> Vec<Action> {
        let Some(diarize) = &self.diarize else {
            return session.handle(Input::SpeakerChange(Err(DiarizeError::NotLoaded)));
        };
        match diarize.submit_look(clip, embed).await {
            Ok(rx) => {
                self.inflight.speaker_change = Some(rx);
                Vec::new()
            }
            Err(e) => session.handle(Input::SpeakerChange(Err(e))),
        }
    }

    /// Hands an ended utterance to the engines. A partial still in flight is dropped, which also
    /// tells the worker to skip it.
    async fn submit_final(&mut self, session: &mut Session, job: FinalJob) -> Vec<Action> {
        self.inflight.partial = None;
        let mut follow = Vec::new();
        while self.inflight.finals.len() >= MAX_FINALS_IN_FLIGHT {
            match tokio::time::timeout(self.final_timeout, self.inflight.finals.next()).await {
                Ok(Some(done)) => follow.extend(session.handle(Input::Final(self.final_done(done)))),
                // The engines are stuck; this utterance goes ahead and its own timeout applies.
                Ok(None) | Err(_) => break,
            }
        }
        let FinalJob { utterance, agreed, speakers } = job;
        let (id, start, end) = (utterance.id, utterance.start, utterance.end);
        // Finals are served in the order their audio was due in real time.
        let key = clock_ms_at(self.due(end));
        let speculated = Speculation::take_for(&mut self.inflight.speculation, id, end, &self.asr, key);
        let before = utterance.lead_in[utterance.lead_in.len().saturating_sub(SPEAKER_CONTEXT)..].to_vec();
        let diarization =
            speakers.and_then(|progress| self.speaker_future(progress, utterance.samples.clone(), before));
        let result = match (agreed, speculated) {
            (Some(transcript), _) => Ok(ready(transcript)),
            (None, Some(rx)) => Ok(rx),
            (None, None) if utterance.lead_in.is_empty() => {
                self.asr.submit_final(utterance.samples, self.context.clone(), key, self.final_timeout).await
            }
            (None, None) => {
                // A continuation is decoded with its lead-in; the core takes the words heard there off.
                let speech_until = seconds(utterance.lead_in.len() + utterance.voiced_end - start);
                let audio = [utterance.lead_in, utterance.samples].concat();
                let context = self.context.clone();
                self.asr.submit_continuation(audio, context, speech_until, key, self.final_timeout).await
            }
        };
        match result {
            Ok(rx) => {
                let joined =
                    aggregate::join((id, start, end), rx, diarization, self.join_timeout, self.aggregator.clone());
                self.inflight.finals.push_back(joined);
                self.inflight.final_ids.push_back(id);
            }
            Err(error) => follow.extend(session.handle(Input::FinalRefused { segment_id: id, error })),
        }
        follow
    }

    /// The utterance's speaker turns: those settled while it grew, plus its last stretch. A job
    /// still in flight for its earlier audio is awaited and used rather than thrown away, so the
    /// last job is short.
    /// `before`: the speech just before the utterance when it was cut from a longer run, which
    /// the job for an utterance with nothing settled yet hears first (`SpeakerJob`).
    fn speaker_future(
        &mut self,
        mut progress: SpeakerProgress,
        samples: Vec<f32>,
        before: Vec<f32>,
    ) -> Option<SpeakerFuture> {
        let diarize = self.diarize.clone()?;
        let pending = self.inflight.speaker_prefix.take();
        let timeout = self.final_timeout;
        // Spawned, so the last speaker job runs while Whisper decodes the text: the join only
        // starts waiting for speakers once the transcript is back.
        let task = tokio::spawn(async move {
            if let Some(rx) = pending {
                match aggregate::from_reply(rx).await {
                    Ok(turns) => progress.settle(turns),
                    Err(_) => progress.abandon(),
                }
            }
            let (mut turns, tail) = progress.finish(samples.len(), MIN_TAIL, before.len());
            if let Some(job) = tail {
                let rx = diarize.submit(job.clip(&before, &samples), job.from, timeout).await?;
                turns.extend(job.place(aggregate::from_reply(rx).await?));
            }
            Ok(turns)
        });
        Some(Box::pin(async move { task.await.unwrap_or(Err(DiarizeError::WorkerLost)) }))
    }

    /// A final's transcript is back: counts it, sends late speakers on their way, and says what
    /// the core is told.
    pub fn final_done(&mut self, done: FinalDone) -> FinalResult {
        self.inflight.final_ids.retain(|id| *id != done.segment_id);
        crate::telemetry::record_final_latency(done.submitted.elapsed().as_secs_f64());
        // Admission watches how long finals take; a client ahead of real time is timed from
        // when its audio was due, since its finals rightly wait for live ones.
        self.ticket.final_ready(done.submitted.max(self.due(done.end)).elapsed());
        let speakers = match done.speakers {
            Speakers::Disabled => None,
            Speakers::Ready(result) => Some(result),
            Speakers::Late(rx) => {
                self.inflight.late.push(aggregate::late(done.segment_id, rx, self.aggregator.clone()));
                None
            }
        };
        FinalResult { segment_id: done.segment_id, start: done.start, end: done.end, result: done.result, speakers }
    }
}

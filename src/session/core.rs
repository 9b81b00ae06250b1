//! A session's state and its reactions to events, without any socket I/O: every reaction
//! appends messages to an outbox and engine requests to `Inflight`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use super::aggregate::{self, FinalDone, LateSpeakers, SpeakerFuture, Speakers};
use super::front::AudioFront;
use super::progress::SpeakerProgress;
use super::speakers::SessionSpeakers;
use super::speculation::Speculation;
use super::SessionDeps;
use crate::domain::{round_ms, EmbeddedTurn, Transcript};
use crate::domain::{seconds, SAMPLES_PER_MS, SAMPLE_RATE};
use crate::engine::asr::{AsrError, Reply};
use crate::engine::diarize::{DiarizeError, DiarizeReply};
use crate::engine::queue::{clock_ms, clock_ms_at};

/// Less audio than this (0.4 s) left at the end of an utterance is not worth a diarization job:
/// it is the silence that ended it.
const MIN_TAIL: usize = 6_400;
/// Quiet this long (0.2 s) inside an utterance starts its speaker job, hiding the work behind the
/// silence that may end it.
const PAUSE: usize = 3_200;
/// The first speaker job of an utterance waits for 8 s of audio.
const FIRST_PREFIX: usize = 8 * SAMPLE_RATE as usize;
use crate::pipeline::policy::PartialPolicy;
use crate::pipeline::segmenter::{SegmentEvent, Segmenter, Utterance};
use crate::pipeline::vad::ScoredFrame;
use crate::protocol::{ClientMessage, CloseReason, ErrorCode, ListenParams, ServerMessage};
use crate::speaker::attribution::to_segments;
use crate::speaker::cluster::ClusterConfig;

pub struct PendingPartial {
    pub segment_id: u64,
    pub start: usize,
    pub end: usize,
    pub rx: Reply,
    pub requested: std::time::Instant,
}

/// Engine requests in flight; kept apart from `Session` so the event loop can await them
/// while the session is borrowed.
#[derive(Default)]
pub struct Inflight {
    /// Yields finals in the order their utterances ended.
    pub finals: FuturesOrdered<BoxFuture<'static, FinalDone>>,
    /// The segments of `finals`, oldest first: named in an `overloaded` error if given up.
    pub final_ids: std::collections::VecDeque<u64>,
    pub partial: Option<PendingPartial>,
    /// Speakers still on their way for finals already sent.
    pub late: futures_util::stream::FuturesUnordered<BoxFuture<'static, LateSpeakers>>,
    /// Speaker turns of the open utterance's audio so far.
    pub speaker_prefix: Option<DiarizeReply>,
    /// A decode of the open utterance at its current pause (`speculation.rs`).
    pub speculation: Option<Speculation>,
}

/// Finals one session may have queued or running; past this it waits for its oldest, so a
/// client sending faster than real time holds back only itself.
const MAX_FINALS_IN_FLIGHT: usize = 4;

/// What the event loop should do after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close(CloseReason),
}

pub struct Session {
    pub params: ListenParams,
    front: AudioFront,
    segmenter: Segmenter,
    policy: PartialPolicy,
    deps: SessionDeps,
    /// Present when this session labels speakers.
    speakers: Option<SessionSpeakers>,
    /// Speaker turns of the open utterance, when this session labels speakers.
    progress: Option<SpeakerProgress>,
    pub outbox: Vec<ServerMessage>,
    pub finals_sent: u64,
    /// When the session began: with a stream position it tells when that audio was due in real
    /// time (`due`).
    opened: std::time::Instant,
    /// When this session's last partial came back: the key that orders its partials.
    last_partial_ms: u64,
    /// Admission's view of this stream: told when audio arrives.
    ticket: std::sync::Arc<super::admission::StreamTicket>,
}

fn secs(samples: usize) -> f64 {
    round_ms(seconds(samples))
}

impl Session {
    pub fn new(
        id: String,
        params: ListenParams,
        front: AudioFront,
        deps: SessionDeps,
        ticket: std::sync::Arc<super::admission::StreamTicket>,
    ) -> Self {
        let config = deps.config.clone();
        let ms = |v: u32| v as usize * SAMPLE_RATE as usize / 1000;
        let policy = PartialPolicy::new(ms(config.streaming.partial_interval_ms), ms(config.streaming.min_partial_ms));
        let ready = ServerMessage::Ready {
            session_id: id,
            sample_rate: params.sample_rate,
            encoding: params.encoding,
            model: deps.asr.model().to_owned(),
            language: params.language.clone(),
            interim_results: params.interim_results,
            diarize: params.diarize,
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
        let opened = std::time::Instant::now();
        Self {
            front,
            segmenter: Segmenter::new(&vad),
            policy,
            deps,
            speakers,
            progress: None,
            outbox: vec![ready],
            finals_sent: 0,
            last_partial_ms: clock_ms_at(opened),
            opened,
            ticket,
            params,
        }
    }

    /// When the audio up to stream sample `position` was due, had the client sent in real time.
    fn due(&self, position: usize) -> std::time::Instant {
        self.opened + Duration::from_secs_f64(seconds(position))
    }

    pub fn audio_seconds(&self) -> f64 {
        secs(self.segmenter.position())
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.outbox.push(ServerMessage::Error { code, message: message.into() });
    }

    /// A frame over the limit, refused by the WebSocket layer itself.
    pub fn reject_oversized(&mut self) -> Flow {
        let limit = self.deps.config.limits.max_frame_bytes;
        self.error(ErrorCode::FrameTooLarge, format!("frame exceeds the limit of {limit} bytes"));
        Flow::Close(CloseReason::FrameTooLarge)
    }

    /// A binary frame of audio.
    pub async fn on_audio(&mut self, bytes: &[u8], inflight: &mut Inflight) -> Flow {
        if bytes.len() > self.deps.config.limits.max_frame_bytes {
            let limit = self.deps.config.limits.max_frame_bytes;
            self.error(
                ErrorCode::FrameTooLarge,
                format!("frame of {} bytes exceeds the limit of {limit} bytes", bytes.len()),
            );
            return Flow::Close(CloseReason::FrameTooLarge);
        }
        self.ticket.heard();
        let frames = match self.front.push(bytes) {
            Ok(frames) => frames,
            Err(e) => {
                self.error(ErrorCode::Internal, format!("voice activity detection failed: {e}"));
                return Flow::Close(CloseReason::Error);
            }
        };
        self.on_frames(frames, inflight).await;
        if self.deps.config.streaming.speculative_finals {
            Speculation::update(&mut inflight.speculation, &self.segmenter, &self.deps.asr, &self.params.language);
        }
        self.maybe_request_partial(inflight);
        self.maybe_diarize_prefix(inflight).await;
        if self.segmenter.position() as u64 > self.deps.config.limits.max_session_audio_s * u64::from(SAMPLE_RATE) {
            let limit = self.deps.config.limits.max_session_audio_s;
            self.error(ErrorCode::SessionTooLong, format!("stream exceeds the limit of {limit} s of audio"));
            return Flow::Close(CloseReason::SessionTooLong);
        }
        Flow::Continue
    }

    async fn on_frames(&mut self, frames: Vec<ScoredFrame>, inflight: &mut Inflight) {
        for frame in frames {
            for event in self.segmenter.push(&frame.samples, frame.probability) {
                self.on_segment_event(event, inflight).await;
            }
        }
    }

    async fn on_segment_event(&mut self, event: SegmentEvent, inflight: &mut Inflight) {
        match event {
            SegmentEvent::SpeechStarted { id, start } => {
                self.policy.reset();
                inflight.speaker_prefix = None;
                self.progress = self.speakers.as_ref().map(|_| SpeakerProgress::new(id));
                self.outbox.push(ServerMessage::SpeechStarted { segment_id: id, start: secs(start) });
            }
            SegmentEvent::Ended(utterance) => self.submit_final(utterance, inflight).await,
        }
    }

    /// Hands an ended utterance to the engine. A partial of it still in flight is dropped, which
    /// also tells the worker to skip it.
    async fn submit_final(&mut self, utterance: Utterance, inflight: &mut Inflight) {
        inflight.partial = None;
        self.policy.reset();
        let timeout = Duration::from_secs(self.deps.config.asr.final_timeout_s);
        while inflight.finals.len() >= MAX_FINALS_IN_FLIGHT {
            match tokio::time::timeout(timeout, inflight.finals.next()).await {
                Ok(Some(done)) => self.on_final(done, inflight),
                // The engines are stuck; this utterance goes ahead and its own timeout applies.
                Ok(None) | Err(_) => break,
            }
        }
        let Utterance { id, start, end, samples } = utterance;
        // Finals are served in the order their audio was due in real time.
        let key = clock_ms_at(self.due(end));
        let speculated = Speculation::take_for(&mut inflight.speculation, id, end, &self.deps.asr, key);
        let diarization = self.submit_diarization(id, samples.clone(), timeout, inflight).await;
        let result = match speculated {
            Some(rx) => Ok(rx),
            None => self.deps.asr.submit_final(samples, self.params.language.clone(), key, timeout).await,
        };
        let rx = match result {
            Ok(rx) => rx,
            Err(e) => {
                let code =
                    if matches!(e, AsrError::Overloaded(_)) { ErrorCode::Overloaded } else { ErrorCode::AsrFailed };
                self.error(code, format!("segment {id}: {e}"));
                return;
            }
        };
        let join_timeout = Duration::from_millis(self.deps.config.diarization.join_timeout_ms);
        let stats = self.deps.aggregator.clone();
        inflight.finals.push_back(aggregate::join((id, start, end), rx, diarization, join_timeout, stats));
        inflight.final_ids.push_back(id);
    }

    /// The utterance's speaker turns: those settled while it grew, plus its last stretch. A job
    /// still in flight for its earlier audio is awaited and used rather than thrown away, so the
    /// last job is short. `None` when this session does not label speakers.
    async fn submit_diarization(
        &mut self,
        id: u64,
        samples: Vec<f32>,
        timeout: Duration,
        inflight: &mut Inflight,
    ) -> Option<SpeakerFuture> {
        let diarize = self.deps.diarize.clone().filter(|_| self.speakers.is_some())?;
        let pending = inflight.speaker_prefix.take();
        let mut progress =
            self.progress.take().filter(|p| p.utterance == id).unwrap_or_else(|| SpeakerProgress::new(id));
        Some(Box::pin(async move {
            if let Some(rx) = pending {
                match aggregate::from_reply(rx).await {
                    Ok(turns) => progress.settle(turns),
                    Err(_) => progress.abandon(),
                }
            }
            let (mut turns, tail) = progress.finish(samples.len(), MIN_TAIL);
            if let Some((range, from)) = tail {
                let rx = diarize.submit(samples[range.clone()].to_vec(), from, timeout).await?;
                let tail = aggregate::from_reply(rx).await?;
                let offset = range.start;
                turns.extend(tail.into_iter().map(|t| EmbeddedTurn {
                    start: t.start + offset,
                    end: t.end + offset,
                    ..t
                }));
            }
            Ok(turns)
        }))
    }

    /// Diarizes the open utterance's new audio every few seconds, one job at a time; a full
    /// queue just skips it (the final diarizes what is left).
    async fn maybe_diarize_prefix(&mut self, inflight: &mut Inflight) {
        let (Some(progress), Some(diarize)) = (self.progress.as_mut(), self.deps.diarize.as_ref()) else { return };
        let Some((id, _, audio)) = self.segmenter.open_utterance() else { return };
        let step = self.deps.config.diarization.incremental_step_ms as usize * SAMPLES_PER_MS;
        if id != progress.utterance {
            return;
        }
        // The segmentation model needs several seconds of context to tell speakers apart.
        let paused = self.segmenter.quiet_samples() >= PAUSE;
        let Some((range, from)) = progress.next_job(audio.len(), step, FIRST_PREFIX, paused) else { return };
        match diarize.submit(audio[range].to_vec(), from, Duration::ZERO).await {
            Ok(rx) => inflight.speaker_prefix = Some(rx),
            Err(_) => progress.abandon(),
        }
    }

    /// Speaker turns of the open utterance's audio so far came back.
    pub fn on_speaker_prefix(&mut self, result: Result<Vec<EmbeddedTurn>, DiarizeError>) {
        let Some(progress) = self.progress.as_mut() else { return };
        match result {
            Ok(turns) => progress.settle(turns),
            Err(_) => progress.abandon(),
        }
    }

    fn maybe_request_partial(&mut self, inflight: &mut Inflight) {
        if !self.params.interim_results || Speculation::in_flight(&inflight.speculation) {
            return;
        }
        let Some((segment_id, start, audio)) = self.segmenter.open_utterance() else { return };
        if !self.policy.should_request(audio.len()) {
            return;
        }
        let end = start + audio.len();
        match self.deps.asr.try_partial(audio.to_vec(), self.params.language.clone(), self.last_partial_ms) {
            Some(rx) => {
                let requested = std::time::Instant::now();
                inflight.partial = Some(PendingPartial { segment_id, start, end, rx, requested });
            }
            None => self.policy.completed(0),
        }
    }

    /// A partial came back; it is shown only while its utterance is still open.
    pub fn on_partial(&mut self, pending: PendingPartial, result: Result<Transcript, AsrError>) {
        let turnaround = pending.requested.elapsed().as_secs_f64() * f64::from(SAMPLE_RATE);
        self.policy.completed(turnaround as usize);
        self.last_partial_ms = clock_ms();
        let still_open = self.segmenter.open_utterance().is_some_and(|(id, ..)| id == pending.segment_id);
        match result {
            Ok(t) if still_open && !t.text.is_empty() => self.outbox.push(ServerMessage::Partial {
                segment_id: pending.segment_id,
                start: secs(pending.start),
                end: secs(pending.end),
                text: t.text,
            }),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "partial failed"),
        }
    }

    /// A final came back: split it by speaker where known, and move times to the stream.
    pub fn on_final(&mut self, done: FinalDone, inflight: &mut Inflight) {
        inflight.final_ids.retain(|id| *id != done.segment_id);
        crate::telemetry::record_final_latency(done.submitted.elapsed().as_secs_f64());
        // Admission watches how long finals take; a client ahead of real time is timed from
        // when its audio was due, since its finals rightly wait for live ones.
        self.ticket.final_ready(done.submitted.max(self.due(done.end)).elapsed());
        let transcript = match done.result {
            Ok(t) => t,
            Err(e) => return self.error(ErrorCode::AsrFailed, format!("segment {}: {e}", done.segment_id)),
        };
        let labelled = match (done.speakers, self.speakers.as_mut()) {
            (Speakers::Ready(Ok(turns)), Some(speakers)) => Some(speakers.label(&turns, &mut self.outbox)),
            (Speakers::Ready(Err(e)), _) => {
                tracing::warn!(segment_id = done.segment_id, error = %e, "speaker labels failed");
                None
            }
            (Speakers::Late(rx), _) => {
                inflight.late.push(aggregate::late(done.segment_id, rx, self.deps.aggregator.clone()));
                None
            }
            _ => None,
        };
        let n_samples = done.end - done.start;
        for segment in to_segments(done.segment_id, &transcript, labelled.as_deref(), n_samples, seconds(done.start)) {
            self.outbox.push(ServerMessage::Final(segment));
            self.finals_sent += 1;
        }
    }

    /// Speakers that missed their final's deadline.
    pub fn on_late_speakers(&mut self, late: LateSpeakers) {
        match (late.result, self.speakers.as_mut()) {
            (Ok(turns), Some(speakers)) => speakers.late(late.segment_id, &turns, &mut self.outbox),
            (Err(e), _) => tracing::warn!(segment_id = late.segment_id, error = %e, "late speaker labels failed"),
            _ => {}
        }
    }

    /// A JSON text frame.
    pub async fn on_text(&mut self, text: &str, inflight: &mut Inflight) -> Flow {
        if text.len() > self.deps.config.limits.max_frame_bytes {
            self.error(ErrorCode::FrameTooLarge, format!("text frame of {} bytes exceeds the limit", text.len()));
            return Flow::Close(CloseReason::FrameTooLarge);
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Keepalive) => Flow::Continue,
            Ok(ClientMessage::Close) => Flow::Close(CloseReason::ClientClose),
            Ok(ClientMessage::Finalize) => {
                if let Some(utterance) = self.segmenter.finalize() {
                    self.submit_final(utterance, inflight).await;
                }
                Flow::Continue
            }
            Err((code, message)) => {
                self.error(code, message);
                Flow::Continue
            }
        }
    }

    /// End of stream: flush every stage and queue the last utterance.
    pub async fn finish_audio(&mut self, inflight: &mut Inflight) {
        match self.front.finish() {
            Ok(frames) => self.on_frames(frames, inflight).await,
            Err(e) => self.error(ErrorCode::Internal, format!("voice activity detection failed: {e}")),
        }
        if self.front.dropped_bytes > 0 {
            let n = self.front.dropped_bytes;
            self.error(
                ErrorCode::IncompleteSample,
                format!("dropped {n} trailing byte(s) that do not make a whole sample"),
            );
        }
        if let Some(utterance) = self.segmenter.finalize() {
            self.submit_final(utterance, inflight).await;
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
        (ErrorCode::UnknownMessageType, format!("unknown message type `{kind}`; expected finalize, close or keepalive"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_message_errors_are_specific() {
        assert_eq!(parse_client_message("{oops").unwrap_err().0, ErrorCode::InvalidJson);
        assert_eq!(parse_client_message("[1]").unwrap_err().0, ErrorCode::InvalidJson);
        let (code, message) = parse_client_message(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(code, ErrorCode::UnknownMessageType);
        assert!(message.contains("dance"));
        assert_eq!(parse_client_message(r#"{"type":"close"}"#).unwrap(), ClientMessage::Close);
    }
}

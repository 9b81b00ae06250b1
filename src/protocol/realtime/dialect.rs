//! Our session's messages as OpenAI Realtime transcription events, and the client's events as
//! our frames.
//!
//! An item is one utterance when the server detects turns (`server_vad`), or everything between
//! two commits when the client commits (`items`). Deltas are never revised: while an utterance
//! is open, the words two successive partials agree on (but the last, which may be cut short) go
//! out as deltas; its finals then add only the words after them (lined up by their text). The
//! `completed` transcript is the finals' text, which early deltas may have missed words of.
//! `speech_stopped`, `committed` and `completed` follow the item's end.

use base64::Engine as _;

use super::events::{
    AudioInputView, AudioView, BetaSessionUpdate, BetaSessionView, ClientEvent, ErrorDetail, LogProb, ServerEvent,
    SessionUpdate, SessionView, Transcription, Usage,
};
use super::items::{Item, Items};
use super::{is_model_alias, Format, Settings, MAX_EVENT_BYTES};
use crate::audio::pcm::PcmDecoder;
use crate::audio::resample::StreamResampler;
use crate::domain::Segment;
use crate::protocol::dialect::{to_json, Dialect, Frame, Inbound};
use crate::protocol::vocabulary::Vocabulary;
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage};

/// Samples per frame handed to the session (2 s at 16 kHz, 128 KiB of floats).
const FRAME_SAMPLES: usize = 32_000;

/// What the dialect needs to know of the server.
#[derive(Debug, Clone)]
pub struct Server {
    /// The loaded model's name.
    pub model: String,
    /// The language the session decodes in (`None`: detected).
    pub language: Option<String>,
    /// The silence that ends an utterance by default (ms).
    pub silence_ms: u32,
    /// The client connected with the beta SDK (`OpenAI-Beta: realtime=v1`): beta event names.
    pub beta: bool,
    /// Deltas from agreeing partials while an utterance is open (the session sends partials).
    /// Off where the server cuts progressive finals: those are the early words already.
    pub partial_deltas: bool,
}

pub struct RealtimeDialect {
    server: Server,
    settings: Settings,
    session_id: String,
    next_event: u64,
    audio: AudioIn,
    /// Audio was appended since the connection opened: the format is fixed from then on.
    heard: bool,
    /// Audio was appended since the last commit (manual turns).
    heard_since_commit: bool,
    items: Items,
    previous_item: Option<String>,
    /// The utterance open in the session (its latest segment id).
    open: Option<u64>,
    /// Segments up to this id were cleared by the client: their results are dropped.
    cleared_through: Option<u64>,
}

impl RealtimeDialect {
    pub fn new(server: Server) -> Self {
        let settings = Settings::new(server.silence_ms);
        let audio = AudioIn::new(settings.format);
        Self {
            server,
            settings,
            session_id: String::new(),
            next_event: 0,
            audio,
            heard: false,
            heard_since_commit: false,
            items: Items::default(),
            previous_item: None,
            open: None,
            cleared_through: None,
        }
    }

    fn event_id(&mut self) -> String {
        self.next_event += 1;
        format!("event_{}", self.next_event)
    }

    fn session_event(&mut self, created: bool) -> ServerEvent {
        let event_id = self.event_id();
        let s = &self.settings;
        let (id, object) = (format!("sess_{}", self.session_id), "realtime.transcription_session".to_owned());
        if self.server.beta {
            let session = BetaSessionView {
                id,
                object,
                input_audio_format: s.format.beta().into(),
                input_audio_transcription: s.transcription.clone(),
                turn_detection: s.turn_detection.clone(),
                input_audio_noise_reduction: s.noise_reduction.clone(),
                include: s.include.clone(),
            };
            return if created {
                ServerEvent::BetaSessionCreated { event_id, session }
            } else {
                ServerEvent::BetaSessionUpdated { event_id, session }
            };
        }
        let input = AudioInputView {
            format: s.format.ga(),
            transcription: s.transcription.clone(),
            turn_detection: s.turn_detection.clone(),
            noise_reduction: s.noise_reduction.clone(),
        };
        let session = SessionView {
            kind: "transcription".into(),
            id,
            object,
            audio: AudioView { input },
            include: s.include.clone(),
        };
        if created {
            ServerEvent::SessionCreated { event_id, session }
        } else {
            ServerEvent::SessionUpdated { event_id, session }
        }
    }

    fn error(&mut self, kind: &str, code: &str, message: String, param: Option<&str>, about: Option<String>) -> String {
        let error = ErrorDetail {
            kind: kind.into(),
            code: Some(code.into()),
            message,
            param: param.map(str::to_owned),
            event_id: about,
        };
        let event_id = self.event_id();
        to_json(&ServerEvent::Error { event_id, error })
    }

    fn invalid(&mut self, code: &str, message: String, param: Option<&str>, about: Option<String>) -> Inbound {
        Inbound::reply(self.error("invalid_request_error", code, message, param, about))
    }

    /// A `session.update` in either form, as the settings it leaves.
    fn update(&mut self, next: Result<Settings, (String, &'static str)>, about: Option<String>) -> Inbound {
        let next = match next {
            Ok(next) => next,
            Err((message, param)) => return self.invalid("invalid_value", message, Some(param), about),
        };
        if next.format != self.settings.format && self.heard {
            let message = "the audio format cannot change once audio has been appended".to_owned();
            return self.invalid("invalid_value", message, Some("session.audio.input.format"), about);
        }
        if let Err(message) = self.check_transcription(&next.transcription) {
            return self.invalid("invalid_value", message.0, Some(message.1), about);
        }
        let prompt = next.transcription.prompt.clone();
        let vocabulary = match Vocabulary::checked(Vec::new(), prompt.clone()) {
            Ok(v) => v,
            Err(e) => {
                return self.invalid("invalid_value", e.0, Some("session.audio.input.transcription.prompt"), about)
            }
        };
        let mut inbound = Inbound::default();
        let silence = |s: &Settings| s.turn_detection.as_ref().and_then(|t| t.silence_duration_ms);
        let endpointing_ms = silence(&next).filter(|ms| Some(*ms) != silence(&self.settings));
        if prompt != self.settings.transcription.prompt || endpointing_ms.is_some() {
            let configure = ClientMessage::Configure {
                keyterms: None,
                prompt: Some(vocabulary.prompt.unwrap_or_default()),
                endpointing_ms,
            };
            inbound.frames.push(Frame::Text(to_json(&configure)));
        }
        if next.format != self.settings.format {
            self.audio = AudioIn::new(next.format);
        }
        self.settings = next;
        let updated = self.session_event(false);
        inbound.replies.push(to_json(&updated));
        inbound
    }

    fn check_transcription(&self, t: &Transcription) -> Result<(), (String, &'static str)> {
        if let Some(model) = t.model.as_deref().filter(|m| !is_model_alias(m, &self.server.model)) {
            let message = format!(
                "model `{model}` is not available: this server runs `{}`, which also answers to whisper-1 and \
                 gpt-4o-transcribe",
                self.server.model
            );
            return Err((message, "session.audio.input.transcription.model"));
        }
        let language = t.language.as_deref().filter(|l| !l.is_empty());
        if let Some(language) = language.filter(|l| Some(*l) != self.server.language.as_deref()) {
            let message = match &self.server.language {
                Some(ours) => format!("language `{language}` is not available: this session transcribes `{ours}`"),
                None => format!(
                    "language `{language}` can only be chosen when connecting (?language={language}); this session \
                     detects the language"
                ),
            };
            return Err((message, "session.audio.input.transcription.language"));
        }
        Ok(())
    }

    fn append(&mut self, audio: &str, about: Option<String>) -> Inbound {
        if audio.len() > MAX_EVENT_BYTES {
            let message = format!("an append holds at most {MAX_EVENT_BYTES} bytes of base64, got {}", audio.len());
            return self.invalid("audio_too_large", message, Some("audio"), about);
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(audio) {
            Ok(bytes) => bytes,
            Err(e) => return self.invalid("invalid_base64", format!("audio is not base64: {e}"), Some("audio"), about),
        };
        self.heard = true;
        self.heard_since_commit |= !bytes.is_empty();
        Inbound { frames: self.audio.push(&bytes), replies: Vec::new() }
    }

    fn commit(&mut self, about: Option<String>) -> Inbound {
        if let Some(open) = self.open.filter(|&open| !self.cleared(open)) {
            // The item holding the open utterance completes with its end; later speech starts
            // the next one.
            let session_id = self.session_id.clone();
            self.items.of_segment(&session_id, open, 0.0).through = Some(open);
            return Inbound::frame(Frame::Text(to_json(&ClientMessage::Finalize)));
        }
        let manual = self.settings.turn_detection.is_none();
        if manual && (!self.items.is_empty() || self.heard_since_commit) {
            let mut replies = Vec::new();
            let item = self.items.take_newest().unwrap_or_else(|| self.new_item(0.0));
            self.complete(item, None, &mut replies);
            return Inbound { frames: Vec::new(), replies };
        }
        let message = "nothing to commit: no audio was appended since the last commit".to_owned();
        self.invalid("input_audio_buffer_commit_empty", message, None, about)
    }

    fn clear(&mut self) -> Inbound {
        self.cleared_through = self.open.or(self.cleared_through);
        self.items.clear();
        self.heard_since_commit = false;
        let event_id = self.event_id();
        Inbound::reply(to_json(&ServerEvent::Cleared { event_id }))
    }

    fn cleared(&self, segment_id: u64) -> bool {
        self.cleared_through.is_some_and(|through| segment_id <= through)
    }

    /// An item that holds nothing, for a commit of audio with no speech in it.
    fn new_item(&mut self, start: f64) -> Item {
        let session_id = self.session_id.clone();
        self.items.open(&session_id, self.open.unwrap_or_default(), start);
        self.items.take_newest().expect("just opened")
    }

    /// The item that holds `segment`.
    fn item_of(&mut self, segment: u64, start: f64) -> &mut Item {
        let session_id = self.session_id.clone();
        self.items.of_segment(&session_id, segment, start)
    }

    fn on_speech_started(&mut self, segment_id: u64, start: f64, out: &mut Vec<String>) {
        self.open = Some(segment_id);
        let session_id = self.session_id.clone();
        // With the server's turns every utterance is an item of its own, even while the one
        // before still waits for its final; with the client's, an item takes speech until a
        // commit closes it.
        if self.settings.turn_detection.is_none() {
            match self.items.taking() {
                Some(item) => item.start_utterance(segment_id),
                None => {
                    self.items.open(&session_id, segment_id, start);
                }
            }
            return;
        }
        let item_id = self.items.open(&session_id, segment_id, start).id.clone();
        let (event_id, audio_start_ms) = (self.event_id(), (start * 1000.0) as u64);
        out.push(to_json(&ServerEvent::SpeechStarted { event_id, audio_start_ms, item_id }));
    }

    fn on_final(&mut self, segment: &Segment, out: &mut Vec<String>) {
        if self.cleared(segment.segment_id) {
            return;
        }
        let logprobs = self.settings.logprobs();
        let text = segment.text.trim().to_owned();
        let word_probs: Vec<LogProb> = segment.words.iter().map(log_prob).collect();
        let item = self.item_of(segment.segment_id, segment.start);
        let rest = item.early(segment.segment_id).after_sent(&text);
        item.end = item.end.max(segment.end);
        item.final_text = [item.final_text.as_str(), text.as_str()].join(" ").trim().to_owned();
        item.logprobs.extend(word_probs.iter().cloned());
        let item_id = item.id.clone();
        let logprobs = logprobs.then_some(word_probs);
        self.delta(segment.segment_id, rest, logprobs, out);
        if let Some(speaker) = &segment.speaker {
            let event_id = self.event_id();
            let id = format!("seg_{}_{}", segment.segment_id, segment.part);
            let (start, end) = (segment.start, segment.end);
            let speaker = speaker.clone();
            let event = ServerEvent::Segment { event_id, item_id, content_index: 0, id, start, end, text, speaker };
            out.push(to_json(&event));
        }
    }

    /// Words added to the transcript of the item holding `segment`, as one delta.
    fn delta(&mut self, segment: u64, words: String, logprobs: Option<Vec<LogProb>>, out: &mut Vec<String>) {
        if words.is_empty() {
            return;
        }
        let item = self.item_of(segment, 0.0);
        let delta = if item.transcript.is_empty() { words } else { format!(" {words}") };
        item.transcript.push_str(&delta);
        let item_id = item.id.clone();
        let event_id = self.event_id();
        out.push(to_json(&ServerEvent::Delta { event_id, item_id, content_index: 0, delta, logprobs }));
    }

    /// A partial of the open utterance: the words it and the one before agree on go out early.
    fn on_partial(&mut self, segment_id: u64, start: f64, text: &str, out: &mut Vec<String>) {
        self.open = Some(segment_id);
        if !self.server.partial_deltas || self.cleared(segment_id) {
            return;
        }
        let words = self.item_of(segment_id, start).early(segment_id).agree(text);
        self.delta(segment_id, words, None, out);
    }

    fn on_utterance_end(&mut self, segment_id: u64, end: f64, out: &mut Vec<String>) {
        if self.open == Some(segment_id) {
            self.open = None;
        }
        if self.cleared(segment_id) {
            return;
        }
        if let Some(item) = self.items.find(segment_id) {
            item.end_utterance(segment_id);
        }
        // Turns detected by the server end the item here; the client's own turns, at its commit.
        let detecting = self.settings.turn_detection.is_some();
        for item in self.items.ended(segment_id, detecting) {
            self.complete(item, Some(end), out);
        }
    }

    /// The item is over: stopped, committed, completed.
    fn complete(&mut self, mut item: Item, end: Option<f64>, out: &mut Vec<String>) {
        item.end = end.unwrap_or(item.end).max(item.end);
        self.heard_since_commit = false;
        if self.settings.turn_detection.is_some() {
            let (event_id, audio_end_ms) = (self.event_id(), (item.end * 1000.0) as u64);
            out.push(to_json(&ServerEvent::SpeechStopped { event_id, audio_end_ms, item_id: item.id.clone() }));
        }
        let event_id = self.event_id();
        let previous_item_id = self.previous_item.replace(item.id.clone());
        out.push(to_json(&ServerEvent::Committed { event_id, item_id: item.id.clone(), previous_item_id }));
        let event_id = self.event_id();
        let usage = Usage { kind: "duration".into(), seconds: (item.end - item.start).max(0.0) };
        let logprobs = self.settings.logprobs().then_some(item.logprobs);
        let completed = ServerEvent::Completed {
            event_id,
            item_id: item.id,
            content_index: 0,
            // Early words no final replaced (its text was empty) still stand.
            transcript: if item.final_text.is_empty() { item.transcript } else { item.final_text },
            usage,
            logprobs,
        };
        out.push(to_json(&completed));
    }

    fn on_error(&mut self, code: ErrorCode, message: &str, out: &mut Vec<String>) {
        let kind = if code.is_server_fault() { "server_error" } else { "invalid_request_error" };
        let error = ErrorDetail {
            kind: kind.into(),
            code: Some(code.name()),
            message: message.into(),
            param: None,
            event_id: None,
        };
        let event_id = self.event_id();
        let event = match (self.items.oldest(), code) {
            (Some(item), ErrorCode::AsrFailed) => {
                ServerEvent::Failed { event_id, item_id: item.id.clone(), content_index: 0, error }
            }
            _ => ServerEvent::Error { event_id, error },
        };
        out.push(to_json(&event));
    }
}

impl Dialect for RealtimeDialect {
    fn inbound(&mut self, frame: Frame) -> Inbound {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Close => {
                let mut frames = self.audio.finish();
                frames.push(Frame::Close);
                return Inbound { frames, replies: Vec::new() };
            }
            Frame::Binary(_) => {
                let message = "binary frames are not part of this protocol: send input_audio_buffer.append".into();
                return self.invalid("invalid_event", message, None, None);
            }
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => return self.invalid("invalid_json", format!("the event is not JSON: {e}"), None, None),
        };
        let about = value.get("event_id").and_then(|v| v.as_str()).map(str::to_owned);
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        match serde_json::from_value::<ClientEvent>(value) {
            Ok(ClientEvent::SessionUpdate { session, .. }) => {
                let next = ga_settings(&self.settings, session);
                self.update(next, about)
            }
            Ok(ClientEvent::BetaSessionUpdate { session, .. }) => {
                let next = beta_settings(&self.settings, session);
                self.update(next, about)
            }
            Ok(ClientEvent::Append { audio, .. }) => self.append(&audio, about),
            Ok(ClientEvent::Commit { .. }) => self.commit(about),
            Ok(ClientEvent::Clear { .. }) => self.clear(),
            Err(e) if KNOWN.contains(&kind.as_str()) => {
                self.invalid("invalid_value", format!("malformed `{kind}` event: {e}"), None, about)
            }
            Err(_) => {
                let message =
                    format!("unknown event type `{kind}`; a transcription session takes {}", KNOWN.join(", "));
                self.invalid("unknown_event_type", message, Some("type"), about)
            }
        }
    }

    fn outbound(&mut self, message: &ServerMessage, out: &mut Vec<String>) {
        match message {
            ServerMessage::Ready { session_id, .. } => {
                self.session_id.clone_from(session_id);
                let created = self.session_event(true);
                out.push(to_json(&created));
            }
            ServerMessage::SpeechStarted { segment_id, start, .. } => self.on_speech_started(*segment_id, *start, out),
            ServerMessage::Partial { segment_id, start, text, .. } => self.on_partial(*segment_id, *start, text, out),
            ServerMessage::Final(segment) => self.on_final(segment, out),
            ServerMessage::UtteranceEnd { segment_id, end, .. } => self.on_utterance_end(*segment_id, *end, out),
            ServerMessage::Error { code, message } => self.on_error(*code, message, out),
            // session.updated went out when the update was read; speaker relabels and the close
            // have no event of their own.
            ServerMessage::Configured { .. } | ServerMessage::SpeakerUpdate { .. } | ServerMessage::Closed { .. } => {}
        }
    }

    fn max_frame_bytes(&self) -> usize {
        MAX_EVENT_BYTES + 4096
    }
}

/// The client event types a transcription session takes.
const KNOWN: &[&str] = &[
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
];

fn ga_settings(current: &Settings, update: SessionUpdate) -> Result<Settings, (String, &'static str)> {
    if let Some(kind) = update.kind.as_deref().filter(|k| *k != "transcription") {
        return Err((format!("session.type must be `transcription` on this endpoint, got `{kind}`"), "session.type"));
    }
    let mut next = current.clone();
    let input = update.audio.and_then(|a| a.input).unwrap_or_default();
    if let Some(format) = &input.format {
        next.format = Format::from_ga(format).map_err(|m| (m, "session.audio.input.format"))?;
    }
    merge(&mut next, input.transcription, input.turn_detection, input.noise_reduction, update.include)?;
    Ok(next)
}

fn beta_settings(current: &Settings, update: BetaSessionUpdate) -> Result<Settings, (String, &'static str)> {
    let mut next = current.clone();
    if let Some(format) = &update.input_audio_format {
        next.format = Format::from_beta(format).map_err(|m| (m, "session.input_audio_format"))?;
    }
    let (transcription, turns) = (update.input_audio_transcription, update.turn_detection);
    merge(&mut next, transcription, turns, update.input_audio_noise_reduction, update.include)?;
    Ok(next)
}

/// The parts both forms share; what is absent stays as it was.
fn merge(
    next: &mut Settings,
    transcription: Option<Transcription>,
    turn_detection: Option<Option<super::events::TurnDetection>>,
    noise_reduction: Option<serde_json::Value>,
    include: Option<Vec<String>>,
) -> Result<(), (String, &'static str)> {
    if let Some(t) = transcription {
        next.transcription = Transcription {
            model: t.model.or(next.transcription.model.take()),
            language: t.language.or(next.transcription.language.take()),
            prompt: t.prompt.or(next.transcription.prompt.take()),
        };
    }
    if let Some(turns) = turn_detection {
        if let Some(kind) =
            turns.as_ref().map(|t| t.kind.as_str()).filter(|k| !["server_vad", "semantic_vad"].contains(k))
        {
            return Err((format!("turn_detection.type must be server_vad, got `{kind}`"), "turn_detection.type"));
        }
        if let Some(ms) = turns.as_ref().and_then(|t| t.silence_duration_ms) {
            let checked = crate::protocol::check_endpointing("silence_duration_ms", ms);
            checked.map_err(|e| (e.0, "turn_detection.silence_duration_ms"))?;
        }
        next.turn_detection = turns;
    }
    if noise_reduction.is_some() {
        next.noise_reduction = noise_reduction;
    }
    if include.is_some() {
        next.include = include;
    }
    Ok(())
}

fn log_prob(word: &crate::domain::Word) -> LogProb {
    let token = word.word.clone();
    let bytes = token.as_bytes().to_vec();
    LogProb { token, logprob: f64::from(word.probability.max(1e-6)).ln(), bytes }
}

/// The client's audio, in whatever format the session is set to, as the session's frames:
/// 32-bit floats at 16 kHz.
struct AudioIn {
    decoder: PcmDecoder,
    resampler: Option<StreamResampler>,
}

impl AudioIn {
    fn new(format: Format) -> Self {
        // Both rates are ones the resampler takes; a failure would leave the audio unresampled
        // rather than stop the session.
        let resampler = StreamResampler::new(format.sample_rate()).ok();
        Self { decoder: PcmDecoder::new(format.encoding()), resampler }
    }

    fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let samples = self.decoder.push(bytes);
        let samples = match &mut self.resampler {
            Some(resampler) => resampler.push(&samples),
            None => samples,
        };
        frames(&samples)
    }

    fn finish(&mut self) -> Vec<Frame> {
        let tail = self.resampler.as_mut().map(StreamResampler::finish).unwrap_or_default();
        frames(&tail)
    }
}

fn frames(samples: &[f32]) -> Vec<Frame> {
    samples
        .chunks(FRAME_SAMPLES)
        .map(|chunk| Frame::Binary(chunk.iter().flat_map(|s| s.to_le_bytes()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_completed_transcript_is_the_finals_where_early_deltas_missed_words() {
        let mut dialect = dialect(false);
        let mut out = Vec::new();
        let early = "Hello? I didn't know you were there. I";
        for text in [early, early] {
            let partial =
                ServerMessage::Partial { segment_id: 1, start: 0.0, end: 3.0, text: text.into(), channel: None };
            dialect.outbound(&partial, &mut out);
        }
        let parts = ["Hello?", "Hello. Oh hello. I didn't know you were", "there. I need to"];
        for (part, text) in parts.into_iter().enumerate() {
            let segment = Segment {
                segment_id: 1,
                part: part as u32,
                start: part as f64,
                end: part as f64 + 1.0,
                text: text.into(),
                words: Vec::new(),
                language: "en".into(),
                speaker: Some(format!("S{}", part % 2 + 1)),
                channel: None,
            };
            dialect.outbound(&ServerMessage::Final(segment), &mut out);
        }
        dialect.outbound(&ServerMessage::UtteranceEnd { segment_id: 1, end: 3.0, channel: None }, &mut out);
        let events: Vec<serde_json::Value> = out.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let of_type = |kind: &'static str| events.iter().filter(move |e| e["type"] == kind);
        let deltas: String = of_type("conversation.item.input_audio_transcription.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Hello? I didn't know you were there. I need to", "no early word sent twice");
        let completed = of_type("conversation.item.input_audio_transcription.completed").next().unwrap();
        assert_eq!(completed["transcript"], "Hello? Hello. Oh hello. I didn't know you were there. I need to");
    }

    #[test]
    fn an_utterance_that_starts_before_the_last_ones_final_is_an_item_of_its_own() {
        // The beta SDK test on a busy machine: the next utterance's speech started before the
        // last one's final was decoded, and took its words (a completed item of 0 s).
        let mut dialect = dialect(true);
        let mut out = Vec::new();
        let messages = [
            ServerMessage::SpeechStarted { segment_id: 2, start: 6.5, channel: None },
            ServerMessage::SpeechStarted { segment_id: 3, start: 8.3, channel: None },
            final_of(2, 6.5, 8.0, "can do for you."),
            ServerMessage::UtteranceEnd { segment_id: 2, end: 8.0, channel: None },
            final_of(3, 8.3, 11.0, "ask what you can do for your country."),
            ServerMessage::UtteranceEnd { segment_id: 3, end: 11.0, channel: None },
        ];
        for message in &messages {
            dialect.outbound(message, &mut out);
        }
        let events: Vec<serde_json::Value> = out.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let of_type = |kind: &'static str| events.iter().filter(move |e| e["type"] == kind);
        let started: Vec<&serde_json::Value> =
            of_type("input_audio_buffer.speech_started").map(|e| &e["item_id"]).collect();
        let completed: Vec<_> = of_type("conversation.item.input_audio_transcription.completed").collect();
        assert_eq!(completed.len(), 2, "{events:?}");
        for (i, (text, seconds)) in
            [("can do for you.", 1.5), ("ask what you can do for your country.", 2.7)].iter().enumerate()
        {
            assert_eq!(&completed[i]["item_id"], started[i], "each utterance completes the item its speech started");
            assert_eq!(completed[i]["transcript"], *text);
            assert!((completed[i]["usage"]["seconds"].as_f64().unwrap() - seconds).abs() < 1e-9, "{}", completed[i]);
        }
        let stopped: Vec<_> =
            of_type("input_audio_buffer.speech_stopped").map(|e| e["audio_end_ms"].as_u64()).collect();
        assert_eq!(stopped, [Some(8000), Some(11000)]);
    }

    fn final_of(segment_id: u64, start: f64, end: f64, text: &str) -> ServerMessage {
        let (text, language) = (text.to_owned(), "en".to_owned());
        let segment =
            Segment { segment_id, part: 0, start, end, text, words: vec![], language, speaker: None, channel: None };
        ServerMessage::Final(segment)
    }

    fn completed(out: &[String]) -> Vec<(String, f64)> {
        let events = out.iter().map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap());
        let done = events.filter(|e| e["type"] == "conversation.item.input_audio_transcription.completed");
        done.map(|e| (e["transcript"].as_str().unwrap().to_owned(), e["usage"]["seconds"].as_f64().unwrap())).collect()
    }

    #[test]
    fn with_the_clients_turns_a_commit_closes_the_item_of_the_open_utterance_only() {
        let mut d = dialect(false);
        d.settings.turn_detection = None;
        let mut out = Vec::new();
        d.outbound(&ServerMessage::SpeechStarted { segment_id: 1, start: 0.5, channel: None }, &mut out);
        let commit = d.inbound(Frame::Text(r#"{"type":"input_audio_buffer.commit"}"#.into()));
        assert!(matches!(&commit.frames[..], [Frame::Text(t)] if t.contains("finalize")), "{:?}", commit.frames);
        // Speech goes on after the commit and starts the next utterance before the first's final.
        let partial = |text: &str| ServerMessage::Partial {
            segment_id: 2,
            start: 3.0,
            end: 4.0,
            text: text.into(),
            channel: None,
        };
        let messages = [
            ServerMessage::SpeechStarted { segment_id: 2, start: 3.0, channel: None },
            partial("what your"),
            partial("what your country"),
            final_of(1, 0.5, 3.0, "ask not"),
            ServerMessage::UtteranceEnd { segment_id: 1, end: 3.0, channel: None },
            final_of(2, 3.0, 5.0, "what your country"),
            ServerMessage::UtteranceEnd { segment_id: 2, end: 5.0, channel: None },
        ];
        for message in &messages {
            d.outbound(message, &mut out);
        }
        assert_eq!(completed(&out), [("ask not".to_owned(), 2.5)], "the second item waits for its commit");
        let commit = d.inbound(Frame::Text(r#"{"type":"input_audio_buffer.commit"}"#.into()));
        assert!(commit.frames.is_empty(), "nothing open: the item completes at once");
        assert_eq!(completed(&commit.replies), [("what your country".to_owned(), 2.0)]);
        // The second utterance's early word went to its own item, and its final added the rest.
        let deltas: Vec<(String, String)> = out
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
            .filter(|e| e["type"] == "conversation.item.input_audio_transcription.delta")
            .map(|e| (e["item_id"].as_str().unwrap().to_owned(), e["delta"].as_str().unwrap().to_owned()))
            .collect();
        let second = deltas[0].0.clone();
        let expected = [
            (second.clone(), "what".to_owned()),
            (deltas[1].0.clone(), "ask not".to_owned()),
            (second, " your country".to_owned()),
        ];
        assert_eq!(deltas, expected);
        assert_ne!(deltas[0].0, deltas[1].0);
    }

    fn dialect(beta: bool) -> RealtimeDialect {
        let server = Server {
            model: "tiny.en".into(),
            language: Some("en".into()),
            silence_ms: 500,
            beta,
            partial_deltas: true,
        };
        let mut dialect = RealtimeDialect::new(server);
        let ready = ServerMessage::Ready {
            session_id: "abc".into(),
            sample_rate: 16_000,
            encoding: crate::audio::pcm::Encoding::PcmF32le,
            model: "tiny.en".into(),
            language: Some("en".into()),
            interim_results: true,
            diarize: true,
            channels: None,
        };
        dialect.outbound(&ready, &mut Vec::new());
        dialect
    }

    fn reply(inbound: &Inbound) -> serde_json::Value {
        serde_json::from_str(&inbound.replies[0]).unwrap()
    }

    #[test]
    fn bad_events_get_openai_errors_and_the_session_goes_on() {
        let mut d = dialect(false);
        let cases = [
            ("{nope", "invalid_json"),
            (r#"{"type":"response.create"}"#, "unknown_event_type"),
            (r#"{"type":"input_audio_buffer.append","audio":"%%%"}"#, "invalid_base64"),
            (r#"{"type":"input_audio_buffer.append"}"#, "invalid_value"),
            (r#"{"type":"input_audio_buffer.commit","event_id":"e9"}"#, "input_audio_buffer_commit_empty"),
            (r#"{"type":"session.update","session":{"type":"realtime"}}"#, "invalid_value"),
        ];
        for (event, code) in cases {
            let inbound = d.inbound(Frame::Text(event.into()));
            let error = reply(&inbound);
            assert_eq!(
                (error["type"].as_str(), error["error"]["code"].as_str()),
                (Some("error"), Some(code)),
                "{event}"
            );
            assert!(inbound.frames.is_empty());
        }
        let commit = d.inbound(Frame::Text(r#"{"type":"input_audio_buffer.commit","event_id":"e9"}"#.into()));
        assert_eq!(reply(&commit)["error"]["event_id"], "e9", "the error names the event it is about");
    }

    #[test]
    fn the_format_is_fixed_once_audio_flows() {
        let mut d = dialect(true);
        let update = r#"{"type":"transcription_session.update","session":{"input_audio_format":"g711_ulaw"}}"#;
        assert_eq!(reply(&d.inbound(Frame::Text(update.into())))["type"], "transcription_session.updated");
        let audio = base64::engine::general_purpose::STANDARD.encode([0xffu8; 8000]);
        let append = d.inbound(Frame::Text(format!(r#"{{"type":"input_audio_buffer.append","audio":"{audio}"}}"#)));
        let bytes: usize = append.frames.iter().map(|f| if let Frame::Binary(b) = f { b.len() } else { 0 }).sum();
        // The resampler keeps back its delay and a part chunk.
        assert!((8_000 * 4..=16_000 * 4).contains(&bytes), "1 s at 8 kHz became {bytes} bytes of 16 kHz floats");
        let change = r#"{"type":"transcription_session.update","session":{"input_audio_format":"pcm16"}}"#;
        let refused = reply(&d.inbound(Frame::Text(change.into())));
        assert_eq!(refused["error"]["param"], "session.audio.input.format");
    }
}

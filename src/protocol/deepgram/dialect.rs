//! Our session's messages as Deepgram's, and Deepgram's client messages as ours.
//!
//! A final is held back until the next message: if that is the end of its utterance, the final
//! goes out with `speech_final`, as Deepgram marks the last result before a pause. The core
//! sends an utterance's end right behind its last final, so nothing waits longer than the batch
//! (`flush` lets it go at the end of each).

use super::messages::{
    Alternative, Channel, ClientEvent, Metadata, ModelInfo, Results, ResultsMetadata, ServerEvent, Word,
};
use super::Options;
use crate::domain::Segment;
use crate::protocol::dialect::{rfc3339, to_json, Dialect, Frame, Inbound};
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage};

pub struct DeepgramDialect {
    options: Options,
    interim_results: bool,
    request_id: String,
    model: ModelInfo,
    created: String,
    /// The last final, waiting to learn whether its utterance ends with it.
    held: Option<(u64, Results)>,
    /// The utterance being heard (the id of its latest segment).
    open: Option<u64>,
    /// The utterance a `Finalize` cut: its finals answer it.
    finalized: Option<u64>,
    /// The end of the last result: where an empty answer to `Finalize` sits.
    heard_to: f64,
}

impl DeepgramDialect {
    /// `model` is the loaded model's name; `opened_at` the Unix time the stream opened.
    pub fn new(options: Options, interim_results: bool, model: &str, opened_at: f64) -> Self {
        let model = ModelInfo { name: options.model.clone(), version: model.to_owned(), arch: "whisper".into() };
        Self {
            options,
            interim_results,
            request_id: String::new(),
            model,
            created: rfc3339(opened_at),
            held: None,
            open: None,
            finalized: None,
            heard_to: 0.0,
        }
    }

    fn results(&self, start: f64, end: f64, words: Vec<Word>, transcript: String, is_final: bool) -> Results {
        let confidence =
            if words.is_empty() { 0.0 } else { words.iter().map(|w| w.confidence).sum::<f64>() / words.len() as f64 };
        Results {
            channel_index: vec![0, 1],
            duration: (end - start).max(0.0),
            start,
            is_final,
            speech_final: false,
            from_finalize: false,
            channel: Channel { alternatives: vec![Alternative { transcript, confidence, words }] },
            metadata: ResultsMetadata {
                request_id: self.request_id.clone(),
                model_info: self.model.clone(),
                model_uuid: self.request_id.clone(),
            },
        }
    }

    fn final_results(&self, segment: &Segment) -> Results {
        let speaker = segment.speaker.as_deref().and_then(speaker_number);
        let words: Vec<Word> = segment
            .words
            .iter()
            .filter_map(|w| {
                let said = w.word.trim();
                let word = bare(said);
                (!word.is_empty()).then(|| Word {
                    word,
                    start: w.start,
                    end: w.end,
                    confidence: f64::from(w.probability),
                    punctuated_word: self.options.punctuate.then(|| said.to_owned()),
                    speaker,
                })
            })
            .collect();
        let transcript = self.transcript(&segment.text, &words);
        let mut results = self.results(segment.start, segment.end, words, transcript, true);
        results.from_finalize = self.finalized == Some(segment.segment_id);
        results
    }

    /// An interim result: the partial's words, spread evenly over its span (a partial is text
    /// only; its word times come with the final).
    fn interim_results(&self, start: f64, end: f64, text: &str) -> Results {
        let said: Vec<&str> = text.split_whitespace().filter(|w| !bare(w).is_empty()).collect();
        let step = (end - start) / said.len().max(1) as f64;
        let words = (0..said.len())
            .map(|i| Word {
                word: bare(said[i]),
                start: start + step * i as f64,
                end: start + step * (i + 1) as f64,
                confidence: 0.0,
                punctuated_word: self.options.punctuate.then(|| said[i].to_owned()),
                speaker: None,
            })
            .collect::<Vec<_>>();
        let transcript = self.transcript(text, &words);
        self.results(start, end, words, transcript, false)
    }

    fn transcript(&self, text: &str, words: &[Word]) -> String {
        if self.options.punctuate {
            text.trim().to_owned()
        } else {
            words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>().join(" ")
        }
    }

    fn release(&mut self, speech_final: bool, out: &mut Vec<String>) {
        if let Some((_, mut results)) = self.held.take() {
            results.speech_final = speech_final;
            out.push(to_json(&ServerEvent::Results(results)));
        }
    }

    fn finalize(&mut self) -> Inbound {
        let mut inbound = Inbound::frame(our(&ClientMessage::Finalize));
        match self.open {
            Some(open) => self.finalized = Some(open),
            // Nothing is open: the answer is an empty final, at once.
            None => {
                let mut empty = self.results(self.heard_to, self.heard_to, Vec::new(), String::new(), true);
                empty.from_finalize = true;
                inbound.replies.push(to_json(&ServerEvent::Results(empty)));
            }
        }
        inbound
    }
}

impl Dialect for DeepgramDialect {
    fn inbound(&mut self, frame: Frame) -> Inbound {
        let text = match frame {
            Frame::Text(text) => text,
            other => return Inbound::frame(other),
        };
        match serde_json::from_str::<ClientEvent>(&text) {
            Ok(ClientEvent::KeepAlive) => Inbound::frame(our(&ClientMessage::Keepalive)),
            Ok(ClientEvent::Finalize) => self.finalize(),
            Ok(ClientEvent::CloseStream) => Inbound::frame(our(&ClientMessage::Close)),
            Ok(ClientEvent::Configure { keyterms: None, .. }) => {
                Inbound::reply(to_json(&ServerEvent::ConfigureSuccess { keyterms: None }))
            }
            Ok(ClientEvent::Configure { keyterms, .. }) => {
                Inbound::frame(our(&ClientMessage::Configure { keyterms, prompt: None, endpointing_ms: None }))
            }
            Err(e) => Inbound::reply(to_json(&ServerEvent::Error {
                variant: "INVALID_MESSAGE".into(),
                description: format!(
                    "cannot read the message: {e}; expected KeepAlive, Finalize, CloseStream or Configure"
                ),
                code: "INVALID_MESSAGE".into(),
                message: "invalid message".into(),
            })),
        }
    }

    fn outbound(&mut self, message: &ServerMessage, out: &mut Vec<String>) {
        let ends_held = matches!((message, &self.held),
            (ServerMessage::UtteranceEnd { segment_id, .. }, Some((held, _))) if held == segment_id);
        if !ends_held {
            self.release(false, out);
        }
        match message {
            ServerMessage::Ready { session_id, .. } => self.request_id.clone_from(session_id),
            ServerMessage::SpeechStarted { segment_id, start, .. } => {
                self.open = Some(*segment_id);
                if self.options.vad_events {
                    out.push(to_json(&ServerEvent::SpeechStarted { channel: vec![0, 1], timestamp: *start }));
                }
            }
            ServerMessage::Partial { segment_id, start, end, text, .. } => {
                self.open = Some(*segment_id);
                if self.interim_results {
                    out.push(to_json(&ServerEvent::Results(self.interim_results(*start, *end, text))));
                }
            }
            ServerMessage::Final(segment) => {
                self.heard_to = self.heard_to.max(segment.end);
                self.held = Some((segment.segment_id, self.final_results(segment)));
            }
            ServerMessage::UtteranceEnd { segment_id, end, .. } => {
                self.release(true, out);
                self.heard_to = self.heard_to.max(*end);
                if self.open == Some(*segment_id) {
                    self.open = None;
                }
                if self.finalized == Some(*segment_id) {
                    self.finalized = None;
                }
                if self.options.utterance_end {
                    out.push(to_json(&ServerEvent::UtteranceEnd { channel: vec![0, 1], last_word_end: *end }));
                }
            }
            ServerMessage::Configured { vocabulary, .. } => {
                out.push(to_json(&ServerEvent::ConfigureSuccess { keyterms: Some(vocabulary.keyterms.clone()) }));
            }
            ServerMessage::Error { code: ErrorCode::InvalidVocabulary, message } => {
                let code = "CONFIGURE_KEYTERM_LIMIT_EXCEEDED".to_owned();
                out.push(to_json(&ServerEvent::ConfigureFailure { code, description: message.clone() }));
            }
            ServerMessage::Error { code, message } => out.push(to_json(&ServerEvent::Error {
                variant: code.name(),
                description: message.clone(),
                code: code.name(),
                message: message.clone(),
            })),
            ServerMessage::Closed { audio_seconds, .. } => out.push(to_json(&ServerEvent::Metadata(Metadata {
                transaction_key: "deprecated".into(),
                request_id: self.request_id.clone(),
                sha256: String::new(),
                created: self.created.clone(),
                duration: *audio_seconds,
                channels: 1,
            }))),
            // Deepgram has no message for labels that change after the fact.
            ServerMessage::SpeakerUpdate { .. } => {}
        }
    }

    fn flush(&mut self, out: &mut Vec<String>) {
        self.release(false, out);
    }
}

fn our(message: &ClientMessage) -> Frame {
    Frame::Text(to_json(message))
}

/// A word as Deepgram's `word` field has it: lower case, no punctuation around it.
fn bare(said: &str) -> String {
    said.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase()
}

/// `S1` -> 0, `S2` -> 1, ...
fn speaker_number(label: &str) -> Option<u32> {
    label.strip_prefix('S')?.parse::<u32>().ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Word as OurWord;

    fn options(punctuate: bool) -> Options {
        Options { model: "nova-3".into(), punctuate, vad_events: true, utterance_end: true }
    }

    fn segment(id: u64, text: &str, speaker: &str) -> Segment {
        let words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| OurWord { word: format!(" {w}"), start: i as f64, end: i as f64 + 0.5, probability: 0.9 })
            .collect();
        Segment {
            segment_id: id,
            part: 0,
            start: 0.0,
            end: 2.0,
            text: format!(" {text}"),
            words,
            language: "en".into(),
            speaker: Some(speaker.into()),
            channel: None,
        }
    }

    fn events(dialect: &mut DeepgramDialect, messages: &[ServerMessage]) -> Vec<ServerEvent> {
        let mut out = Vec::new();
        for message in messages {
            dialect.outbound(message, &mut out);
        }
        dialect.flush(&mut out);
        out.iter().map(|text| serde_json::from_str(text).unwrap()).collect()
    }

    #[test]
    fn the_last_final_before_a_pause_is_speech_final() {
        let mut dialect = DeepgramDialect::new(options(false), true, "tiny.en", 0.0);
        let sent = events(
            &mut dialect,
            &[
                ServerMessage::Final(segment(1, "Hello, there.", "S2")),
                ServerMessage::UtteranceEnd { segment_id: 1, end: 2.0, channel: None },
            ],
        );
        let [ServerEvent::Results(results), ServerEvent::UtteranceEnd { last_word_end, .. }] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert!(results.is_final && results.speech_final && !results.from_finalize);
        let alternative = &results.channel.alternatives[0];
        assert_eq!(alternative.transcript, "hello there", "unpunctuated unless asked");
        assert_eq!((alternative.words[0].word.as_str(), alternative.words[0].speaker), ("hello", Some(1)));
        assert!((alternative.confidence - 0.9).abs() < 1e-6);
        assert_eq!(*last_word_end, 2.0);
    }

    #[test]
    fn a_final_cut_from_running_speech_is_not_speech_final() {
        let mut dialect = DeepgramDialect::new(options(true), true, "tiny.en", 0.0);
        let sent = events(&mut dialect, &[ServerMessage::Final(segment(1, "So we went", "S1"))]);
        let [ServerEvent::Results(results)] = &sent[..] else { panic!("{sent:?}") };
        assert!(results.is_final && !results.speech_final);
        assert_eq!(results.channel.alternatives[0].transcript, "So we went");
        assert_eq!(results.channel.alternatives[0].words[2].punctuated_word.as_deref(), Some("went"));
    }

    #[test]
    fn finalize_marks_the_open_utterance_or_answers_at_once() {
        let mut dialect = DeepgramDialect::new(options(true), true, "tiny.en", 0.0);
        let idle = dialect.inbound(Frame::Text(r#"{"type":"Finalize"}"#.into()));
        let answer: ServerEvent = serde_json::from_str(&idle.replies[0]).unwrap();
        assert!(matches!(answer, ServerEvent::Results(r) if r.from_finalize && r.is_final));
        events(&mut dialect, &[ServerMessage::SpeechStarted { segment_id: 4, start: 1.0, channel: None }]);
        let cut = dialect.inbound(Frame::Text(r#"{"type":"Finalize"}"#.into()));
        assert_eq!(cut.frames, vec![Frame::Text(r#"{"type":"finalize"}"#.into())]);
        assert!(cut.replies.is_empty());
        let sent = events(&mut dialect, &[ServerMessage::Final(segment(4, "Stop.", "S1"))]);
        assert!(matches!(&sent[0], ServerEvent::Results(r) if r.from_finalize));
    }

    #[test]
    fn client_messages_become_ours_and_bad_ones_get_an_error() {
        let mut dialect = DeepgramDialect::new(options(true), true, "tiny.en", 0.0);
        let keep = dialect.inbound(Frame::Text(r#"{"type":"KeepAlive"}"#.into()));
        assert_eq!(keep.frames, vec![Frame::Text(r#"{"type":"keepalive"}"#.into())]);
        let close = dialect.inbound(Frame::Text(r#"{"type":"CloseStream"}"#.into()));
        assert_eq!(close.frames, vec![Frame::Text(r#"{"type":"close"}"#.into())]);
        let configure = dialect.inbound(Frame::Text(r#"{"type":"Configure","keyterms":["Ada"]}"#.into()));
        assert_eq!(
            configure.frames,
            vec![Frame::Text(r#"{"type":"configure","keyterms":["Ada"],"prompt":null}"#.into())]
        );
        let bad = dialect.inbound(Frame::Text("{not json".into()));
        assert!(bad.frames.is_empty() && bad.replies[0].contains(r#""type":"Error""#));
    }
}

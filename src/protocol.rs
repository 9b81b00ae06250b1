//! The WebSocket protocol: query parameters and the JSON messages both ways (docs/protocol.md).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::audio::pcm::Encoding;
use crate::engine::asr::Word;

/// Parameters of `GET /v1/listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenParams {
    pub sample_rate: u32,
    pub encoding: Encoding,
    /// `None`: the model's language, or detection for multilingual models.
    pub language: Option<String>,
    pub interim_results: bool,
}

/// A query parameter that cannot be used; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

impl ListenParams {
    /// Parses the query, refusing unknown names and bad values.
    pub fn parse(query: &HashMap<String, String>, multilingual: bool) -> Result<Self, ParamError> {
        const KNOWN: &[&str] = &["sample_rate", "encoding", "language", "interim_results"];
        if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ParamError(format!(
                "unknown query parameter `{unknown}`; expected one of {}",
                KNOWN.join(", ")
            )));
        }
        let sample_rate =
            match query.get("sample_rate") {
                None => 16_000,
                Some(v) => v.parse::<u32>().ok().filter(|r| (8_000..=192_000).contains(r)).ok_or_else(|| {
                    ParamError(format!("sample_rate must be an integer from 8000 to 192000, got `{v}`"))
                })?,
            };
        let encoding = match query.get("encoding") {
            None => Encoding::PcmS16le,
            Some(v) => Encoding::parse(v)
                .ok_or_else(|| ParamError(format!("encoding must be pcm_s16le or pcm_f32le, got `{v}`")))?,
        };
        let interim_results = match query.get("interim_results").map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(ParamError(format!("interim_results must be true or false, got `{v}`"))),
        };
        let language = parse_language(query.get("language").map(String::as_str), multilingual)?;
        Ok(Self { sample_rate, encoding, language, interim_results })
    }
}

fn parse_language(value: Option<&str>, multilingual: bool) -> Result<Option<String>, ParamError> {
    match value {
        None | Some("auto") if multilingual => Ok(None),
        None | Some("en") => Ok(Some("en".into())),
        Some(lang) if multilingual && whisper_rs::get_lang_id(lang).is_some() => Ok(Some(lang.to_owned())),
        Some(lang) if multilingual => Err(ParamError(format!("language `{lang}` is not a Whisper language code"))),
        Some(lang) => {
            Err(ParamError(format!("language `{lang}` is not available: the model is English-only (use en)")))
        }
    }
}

/// Text messages a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Finalize,
    Close,
    Keepalive,
}

/// Specific error codes sent in `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownMessageType,
    FrameTooLarge,
    IncompleteSample,
    IdleTimeout,
    SessionTooLong,
    Overloaded,
    AsrFailed,
    Internal,
}

/// Messages the server sends, as JSON text frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ready {
        session_id: String,
        sample_rate: u32,
        encoding: &'static str,
        model: String,
        language: Option<String>,
        interim_results: bool,
    },
    SpeechStarted {
        segment_id: u64,
        start: f64,
    },
    Partial {
        segment_id: u64,
        start: f64,
        end: f64,
        text: String,
    },
    Final {
        segment_id: u64,
        start: f64,
        end: f64,
        text: String,
        words: Vec<Word>,
        language: String,
        speaker: Option<String>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Closed {
        reason: CloseReason,
        audio_seconds: f64,
        segments: u64,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    ClientClose,
    Disconnected,
    IdleTimeout,
    FrameTooLarge,
    SessionTooLong,
    Shutdown,
    Error,
}

impl CloseReason {
    /// The WebSocket close code that goes with the reason.
    pub fn close_code(self) -> u16 {
        match self {
            Self::ClientClose | Self::Disconnected => 1000,
            Self::Shutdown => 1001,
            Self::FrameTooLarge => 1009,
            Self::Error => 1011,
            Self::IdleTimeout => 4001,
            Self::SessionTooLong => 4002,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_for_an_english_model() {
        let p = ListenParams::parse(&query(&[]), false).unwrap();
        assert_eq!(
            p,
            ListenParams {
                sample_rate: 16_000,
                encoding: Encoding::PcmS16le,
                language: Some("en".into()),
                interim_results: true
            }
        );
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        let cases = [
            (("sample_rate", "44.1k"), "sample_rate"),
            (("sample_rate", "100"), "sample_rate"),
            (("encoding", "mp3"), "encoding"),
            (("interim_results", "yes"), "interim_results"),
            (("language", "fr"), "language"),
            (("colour", "blue"), "colour"),
        ];
        for ((k, v), name) in cases {
            let err = ListenParams::parse(&query(&[(k, v)]), false).unwrap_err();
            assert!(err.0.contains(name), "{k}={v}: {}", err.0);
        }
    }

    #[test]
    fn multilingual_models_detect_or_take_a_code() {
        assert_eq!(ListenParams::parse(&query(&[]), true).unwrap().language, None);
        assert_eq!(ListenParams::parse(&query(&[("language", "de")]), true).unwrap().language, Some("de".into()));
        assert!(ListenParams::parse(&query(&[("language", "xx")]), true).is_err());
    }

    #[test]
    fn client_messages_parse_strictly() {
        assert_eq!(serde_json::from_str::<ClientMessage>(r#"{"type":"finalize"}"#).unwrap(), ClientMessage::Finalize);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }
}

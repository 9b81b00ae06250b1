//! The WebSocket protocol: query parameters and the JSON messages both ways (docs/protocol.md),
//! and the vendors' live protocols the same sessions speak (`deepgram`, `realtime`).

pub mod deepgram;
pub mod dialect;
mod error;
pub mod openai;
pub mod realtime;
pub mod rest;
pub mod vocabulary;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use self::vocabulary::Vocabulary;
use crate::audio::pcm::Encoding;
use crate::domain::Segment;

/// What describes a session from the moment it opens, one shape wherever it is shown or kept:
/// the registry's records, REST's views (flattened into them), the store's rows and the fleet's
/// live records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionHeader {
    pub id: String,
    /// The client's address.
    pub client: String,
    pub sample_rate: u32,
    pub encoding: Encoding,
    pub language: Option<String>,
    pub diarize: bool,
    /// Unix time in seconds.
    pub started_at: f64,
}

impl SessionHeader {
    /// The header of stream `id` from `client`, opened with `params` at `started_at`.
    pub fn of_stream(id: String, client: String, params: &ListenParams, started_at: f64) -> Self {
        let ListenParams { sample_rate, encoding, diarize, .. } = *params;
        Self { id, client, sample_rate, encoding, language: params.language.clone(), diarize, started_at }
    }
}

/// Parameters of `GET /v1/listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenParams {
    pub sample_rate: u32,
    pub encoding: Encoding,
    /// `None`: the model's language, or detection for multilingual models.
    pub language: Option<String>,
    pub interim_results: bool,
    /// Label finals with speakers.
    pub diarize: bool,
    pub max_speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    /// Silence that ends an utterance (ms); `None` keeps `vad.min_silence_ms`.
    pub endpointing_ms: Option<u32>,
    /// Interleaved channels in the audio (1 = mono).
    pub channels: u32,
    /// Each channel is its own stream (finals carry `channel`); otherwise they are mixed down.
    pub multichannel: bool,
    /// Key terms and a prompt for the recogniser (`keyterm`, repeatable, and `prompt`).
    pub vocabulary: Vocabulary,
}

impl Default for ListenParams {
    /// A mono stream of 16 kHz 16-bit samples, with partials, in the model's language.
    fn default() -> Self {
        Self {
            sample_rate: crate::domain::SAMPLE_RATE,
            encoding: Encoding::PcmS16le,
            language: None,
            interim_results: true,
            diarize: false,
            max_speakers: None,
            min_speakers: None,
            endpointing_ms: None,
            channels: 1,
            multichannel: false,
            vocabulary: Vocabulary::default(),
        }
    }
}

/// The range `endpointing_ms` may take: below 100 ms a breath ends an utterance; above 2 s a
/// final waits longer than a caller would.
pub const ENDPOINTING_MS: std::ops::RangeInclusive<u32> = 100..=2000;

/// The most speakers a session may ask for.
pub const SPEAKER_LIMIT: usize = 32;

pub use self::error::ParamError;

/// What the server can do: decides the defaults and what a client may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Abilities {
    /// The model detects and transcribes languages other than English.
    pub multilingual: bool,
    /// The server has the speaker models (speaker labels are then on by default).
    pub diarization: bool,
    /// Whether a language code is one the model knows (asked only when multilingual).
    pub is_language: fn(&str) -> bool,
    /// The most channels a stream may have (`limits.max_channels`).
    pub max_channels: u32,
}

impl ListenParams {
    /// Parses the query (name, value pairs in order), refusing unknown names and bad values.
    pub fn parse(pairs: &[(String, String)], abilities: &Abilities) -> Result<Self, ParamError> {
        let Abilities { multilingual, diarization, is_language, max_channels } = *abilities;
        let query: HashMap<String, String> = pairs.iter().cloned().collect();
        let query = &query;
        const KNOWN: &[&str] = &[
            "sample_rate",
            "encoding",
            "language",
            "interim_results",
            "diarize",
            "max_speakers",
            "min_speakers",
            "endpointing_ms",
            "channels",
            "multichannel",
            "keyterm",
            "prompt",
            "token",
        ];
        if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ParamError(format!(
                "unknown query parameter `{unknown}`; expected one of {}",
                KNOWN.join(", ")
            )));
        }
        let sample_rate = parse_sample_rate(query.get("sample_rate").map(String::as_str))?;
        let encoding = match query.get("encoding") {
            None => Encoding::PcmS16le,
            Some(v) => Encoding::parse(v).ok_or_else(|| {
                ParamError(format!("encoding must be pcm_s16le, pcm_f32le, mulaw or alaw, got `{v}`"))
            })?,
        };
        let interim_results = parse_bool(query, "interim_results")?.unwrap_or(true);
        let (channels, multichannel) = parse_channels(query, max_channels)?;
        let diarize = match parse_bool(query, "diarize")? {
            Some(true) if !diarization => {
                return Err(ParamError("diarize: speaker labels are disabled on this server".into()))
            }
            Some(v) => v,
            // A multichannel stream's speakers are its channels unless asked within them.
            None => diarization && !multichannel,
        };
        let max_speakers = parse_count(query, "max_speakers")?;
        let min_speakers = parse_count(query, "min_speakers")?;
        if let (Some(min), Some(max)) = (min_speakers, max_speakers) {
            if min > max {
                return Err(ParamError(format!("min_speakers ({min}) must not exceed max_speakers ({max})")));
            }
        }
        let language = parse_language(query.get("language").map(String::as_str), multilingual, is_language)?;
        let endpointing_ms = parse_endpointing(query)?;
        let keyterms = pairs.iter().filter(|(k, _)| k == "keyterm").map(|(_, v)| v.clone()).collect();
        let vocabulary = Vocabulary::checked(keyterms, query.get("prompt").cloned())?;
        Ok(Self {
            sample_rate,
            encoding,
            language,
            interim_results,
            diarize,
            max_speakers,
            min_speakers,
            endpointing_ms,
            channels,
            multichannel,
            vocabulary,
        })
    }

    /// The parameters of one channel of a multichannel stream: mono samples at the same rate,
    /// as 32-bit floats (what the split leaves them as).
    pub fn one_channel(&self) -> Self {
        Self { channels: 1, multichannel: false, encoding: Encoding::PcmF32le, ..self.clone() }
    }
}

/// `channels` (1 to `max`, default 1) and `multichannel` (needs at least 2 channels).
fn parse_channels(query: &HashMap<String, String>, max: u32) -> Result<(u32, bool), ParamError> {
    let channels = parse_channel_count(query.get("channels").map(String::as_str), max)?;
    let multichannel = parse_bool(query, "multichannel")?.unwrap_or(false);
    if multichannel && channels < 2 {
        return Err(ParamError(format!(
            "multichannel needs channels from 2 to {max} (one stream per channel), got channels={channels}"
        )));
    }
    Ok((channels, multichannel))
}

fn parse_bool(query: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ParamError> {
    match query.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(ParamError(format!("{name} must be true or false, got `{v}`"))),
    }
}

/// `sample_rate`: 8000 to 192000 Hz, 16000 when absent (our protocol's and Deepgram's).
pub(crate) fn parse_sample_rate(value: Option<&str>) -> Result<u32, ParamError> {
    let Some(v) = value else { return Ok(crate::domain::SAMPLE_RATE) };
    v.parse::<u32>()
        .ok()
        .filter(|r| (8_000..=192_000).contains(r))
        .ok_or_else(|| ParamError(format!("sample_rate must be an integer from 8000 to 192000, got `{v}`")))
}

/// `channels`: 1 to `max`, 1 when absent (our protocol's and Deepgram's).
pub(crate) fn parse_channel_count(value: Option<&str>, max: u32) -> Result<u32, ParamError> {
    let Some(v) = value else { return Ok(1) };
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ParamError(format!("channels must be an integer from 1 to {max}, got `{v}`")))
}

/// `ms` as the silence that ends an utterance, if within `ENDPOINTING_MS`; the message names
/// the setting (`endpointing_ms`, or a vendor's name for it).
pub fn check_endpointing(name: &str, ms: u32) -> Result<u32, ParamError> {
    let (lo, hi) = (ENDPOINTING_MS.start(), ENDPOINTING_MS.end());
    if ENDPOINTING_MS.contains(&ms) {
        Ok(ms)
    } else {
        Err(ParamError(format!("{name} must be from {lo} to {hi}, got {ms}")))
    }
}

fn parse_endpointing(query: &HashMap<String, String>) -> Result<Option<u32>, ParamError> {
    let Some(v) = query.get("endpointing_ms") else { return Ok(None) };
    let ms = v.parse::<u32>().ok().filter(|ms| ENDPOINTING_MS.contains(ms));
    ms.map(Some).ok_or_else(|| {
        let (lo, hi) = (ENDPOINTING_MS.start(), ENDPOINTING_MS.end());
        ParamError(format!("endpointing_ms must be an integer from {lo} to {hi}, got `{v}`"))
    })
}

fn parse_count(query: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ParamError> {
    let Some(v) = query.get(name) else { return Ok(None) };
    let n = v.parse::<usize>().ok().filter(|n| (1..=SPEAKER_LIMIT).contains(n));
    n.map(Some).ok_or_else(|| ParamError(format!("{name} must be an integer from 1 to {SPEAKER_LIMIT}, got `{v}`")))
}

pub(crate) fn parse_language(
    value: Option<&str>,
    multilingual: bool,
    is_language: fn(&str) -> bool,
) -> Result<Option<String>, ParamError> {
    match value {
        None | Some("auto") if multilingual => Ok(None),
        None | Some("en") => Ok(Some("en".into())),
        Some(lang) if multilingual && is_language(lang) => Ok(Some(lang.to_owned())),
        Some(lang) if multilingual => Err(ParamError(format!("language `{lang}` is not a Whisper language code"))),
        Some(lang) => {
            Err(ParamError(format!("language `{lang}` is not available: the model is English-only (use en)")))
        }
    }
}

/// Text messages a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Finalize,
    Close,
    Keepalive,
    /// Replaces the stream's key terms and/or prompt from the next utterance on; a field left
    /// out keeps its value, an empty list or prompt clears it.
    Configure {
        #[serde(default)]
        keyterms: Option<Vec<String>>,
        #[serde(default)]
        prompt: Option<String>,
        /// The silence that ends an utterance from now on (as the `endpointing_ms` parameter).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpointing_ms: Option<u32>,
    },
}

/// Specific error codes sent in `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A `configure` message with too many or too long key terms, too long a prompt, or an
    /// endpointing out of range.
    InvalidVocabulary,
}

impl ErrorCode {
    /// Whether the server, not the client, is at fault.
    pub fn is_server_fault(self) -> bool {
        matches!(self, Self::Overloaded | Self::AsrFailed | Self::Internal)
    }

    /// The code as it appears on the wire (`invalid_json`, ...).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// Messages the server sends, as JSON text frames. Clients parse them back with serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ready {
        session_id: String,
        sample_rate: u32,
        encoding: Encoding,
        model: String,
        language: Option<String>,
        interim_results: bool,
        diarize: bool,
        /// Present for a `multichannel` stream: how many channels it has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<u32>,
    },
    SpeechStarted {
        segment_id: u64,
        start: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<u32>,
    },
    Partial {
        segment_id: u64,
        start: f64,
        end: f64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<u32>,
    },
    /// A final segment; its fields sit beside `type` in the JSON object.
    Final(Segment),
    /// The utterance whose last final was segment `segment_id` has ended (a pause, `finalize`
    /// or the end of the stream) at `end`; finals cut from it before that carry no such mark.
    UtteranceEnd {
        segment_id: u64,
        end: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<u32>,
    },
    /// The vocabulary in force after a `configure` message.
    Configured {
        #[serde(flatten)]
        vocabulary: Vocabulary,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpointing_ms: Option<u32>,
    },
    /// Speaker labels that changed or arrived late, and speakers found to be one.
    SpeakerUpdate {
        segments: Vec<SpeakerLabel>,
        merged: BTreeMap<String, String>,
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

/// A speaker label for one part of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerLabel {
    pub segment_id: u64,
    pub part: u32,
    pub speaker: String,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    ClientClose,
    Disconnected,
    /// Ended through `DELETE /sessions/{id}`.
    Terminated,
    IdleTimeout,
    FrameTooLarge,
    SessionTooLong,
    Shutdown,
    Error,
    /// The replica serving the session stopped without ending it (a crash, a lost machine);
    /// recorded by another replica sharing the store, never sent to a client.
    Interrupted,
}

impl CloseReason {
    /// The WebSocket close code that goes with the reason.
    pub fn close_code(self) -> u16 {
        match self {
            Self::ClientClose | Self::Disconnected => 1000,
            Self::Shutdown => 1001,
            Self::FrameTooLarge => 1009,
            Self::Error | Self::Interrupted => 1011,
            Self::IdleTimeout => 4001,
            Self::SessionTooLong => 4002,
            Self::Terminated => 4003,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abilities(multilingual: bool, diarization: bool) -> Abilities {
        Abilities { multilingual, diarization, is_language: |code| ["en", "de", "fr"].contains(&code), max_channels: 8 }
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_for_an_english_model() {
        let p = ListenParams::parse(&query(&[]), &abilities(false, true)).unwrap();
        let expected = ListenParams { language: Some("en".into()), diarize: true, ..ListenParams::default() };
        assert_eq!(p, expected);
        assert!(
            !ListenParams::parse(&query(&[]), &abilities(false, false)).unwrap().diarize,
            "off where the server has no models"
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
            (("diarize", "1"), "diarize"),
            (("max_speakers", "0"), "max_speakers"),
            (("min_speakers", "99"), "min_speakers"),
            (("endpointing_ms", "50"), "endpointing_ms"),
            (("endpointing_ms", "fast"), "endpointing_ms"),
            (("channels", "0"), "channels"),
            (("channels", "9"), "channels"),
            (("multichannel", "true"), "multichannel"),
        ];
        for ((k, v), name) in cases {
            let err = ListenParams::parse(&query(&[(k, v)]), &abilities(false, true)).unwrap_err();
            assert!(err.0.contains(name), "{k}={v}: {}", err.0);
        }
    }

    #[test]
    fn multichannel_takes_two_to_the_limit_and_labels_by_channel() {
        let stereo = query(&[("channels", "2"), ("multichannel", "true")]);
        let p = ListenParams::parse(&stereo, &abilities(false, true)).unwrap();
        assert_eq!((p.channels, p.multichannel, p.diarize), (2, true, false), "speakers are the channels");
        let lane = p.one_channel();
        assert_eq!((lane.channels, lane.multichannel, lane.encoding), (1, false, Encoding::PcmF32le));
        let mixed = ListenParams::parse(&query(&[("channels", "2")]), &abilities(false, true)).unwrap();
        assert_eq!((mixed.multichannel, mixed.diarize), (false, true), "mixed down by default");
        let err = ListenParams::parse(&query(&[("channels", "1"), ("multichannel", "true")]), &abilities(false, true));
        assert!(err.unwrap_err().0.contains("multichannel needs channels from 2 to 8"));
    }

    #[test]
    fn endpointing_is_taken_within_its_range() {
        let p = ListenParams::parse(&query(&[("endpointing_ms", "300")]), &abilities(false, true)).unwrap();
        assert_eq!(p.endpointing_ms, Some(300));
        assert!(ListenParams::parse(&query(&[("endpointing_ms", "2001")]), &abilities(false, true)).is_err());
    }

    #[test]
    fn multilingual_models_detect_or_take_a_code() {
        assert_eq!(ListenParams::parse(&query(&[]), &abilities(true, true)).unwrap().language, None);
        assert_eq!(
            ListenParams::parse(&query(&[("language", "de")]), &abilities(true, true)).unwrap().language,
            Some("de".into())
        );
        assert!(ListenParams::parse(&query(&[("language", "xx")]), &abilities(true, true)).is_err());
    }

    #[test]
    fn speaker_counts_must_be_consistent() {
        let err = ListenParams::parse(&query(&[("min_speakers", "3"), ("max_speakers", "2")]), &abilities(false, true))
            .unwrap_err();
        assert!(err.0.contains("min_speakers"));
        let err = ListenParams::parse(&query(&[("diarize", "true")]), &abilities(false, false)).unwrap_err();
        assert!(err.0.contains("diarize"));
    }

    #[test]
    fn messages_round_trip_through_serde_in_their_wire_shape() {
        let word = crate::domain::Word { word: "Hi".into(), start: 0.5, end: 0.9, probability: 0.8 };
        let messages = [
            ServerMessage::Ready {
                session_id: "s".into(),
                sample_rate: 16_000,
                encoding: Encoding::PcmS16le,
                model: "tiny.en".into(),
                language: Some("en".into()),
                interim_results: true,
                diarize: true,
                channels: Some(2),
            },
            ServerMessage::Partial { segment_id: 5, start: 0.0, end: 1.0, text: "Hi".into(), channel: Some(1) },
            ServerMessage::UtteranceEnd { segment_id: 5, end: 1.0, channel: None },
            ServerMessage::Final(Segment {
                segment_id: 3,
                part: 1,
                start: 0.5,
                end: 1.0,
                text: "Hi".into(),
                words: vec![word],
                language: "en".into(),
                speaker: Some("S2".into()),
                channel: Some(1),
            }),
            ServerMessage::SpeakerUpdate {
                segments: vec![SpeakerLabel { segment_id: 3, part: 1, speaker: "S1".into() }],
                merged: BTreeMap::from([("S2".to_owned(), "S1".to_owned())]),
            },
            ServerMessage::Error { code: ErrorCode::FrameTooLarge, message: "big".into() },
            ServerMessage::Closed { reason: CloseReason::IdleTimeout, audio_seconds: 1.5, segments: 1 },
        ];
        for message in messages {
            let json = serde_json::to_value(&message).unwrap();
            assert_eq!(serde_json::from_value::<ServerMessage>(json.clone()).unwrap(), message, "{json}");
        }
        let final_json = serde_json::to_value(messages_final()).unwrap();
        assert_eq!((final_json["type"].as_str(), final_json["segment_id"].as_u64()), (Some("final"), Some(3)));
        assert_eq!(ErrorCode::FrameTooLarge.name(), "frame_too_large");
        for message in [ClientMessage::Finalize, ClientMessage::Close, ClientMessage::Keepalive] {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(serde_json::from_str::<ClientMessage>(&text).unwrap(), message);
        }
    }

    fn messages_final() -> ServerMessage {
        let segment = Segment {
            segment_id: 3,
            part: 0,
            start: 0.0,
            end: 1.0,
            text: String::new(),
            words: vec![],
            language: "en".into(),
            speaker: None,
            channel: None,
        };
        ServerMessage::Final(segment)
    }

    #[test]
    fn client_messages_parse_strictly() {
        assert_eq!(serde_json::from_str::<ClientMessage>(r#"{"type":"finalize"}"#).unwrap(), ClientMessage::Finalize);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }
}

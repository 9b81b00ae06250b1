//! Deepgram's live-streaming messages (`/v1/listen`), both ways, as its SDKs read and write
//! them. Only the fields this server fills are typed; the SDKs accept the rest as absent.

use serde::{Deserialize, Serialize};

/// What a Deepgram client sends as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    KeepAlive,
    /// Finish what has been heard so far, now.
    Finalize,
    /// No more audio: finish everything, then close.
    CloseStream,
    /// Replaces the stream's key terms (absent: keep them; empty: clear them).
    Configure {
        #[serde(default)]
        keyterms: Option<Vec<String>>,
        #[serde(default)]
        features: Option<serde_json::Map<String, serde_json::Value>>,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    Results(Results),
    Metadata(Metadata),
    SpeechStarted {
        channel: Vec<u32>,
        timestamp: f64,
    },
    UtteranceEnd {
        channel: Vec<u32>,
        last_word_end: f64,
    },
    ConfigureSuccess {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyterms: Option<Vec<String>>,
    },
    ConfigureFailure {
        code: String,
        description: String,
    },
    Error {
        variant: String,
        description: String,
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// `[this channel, channels in all]`.
    pub channel_index: Vec<u32>,
    pub duration: f64,
    pub start: f64,
    pub is_final: bool,
    /// The speaker paused: the utterance is over.
    pub speech_final: bool,
    /// The result of a `Finalize`.
    pub from_finalize: bool,
    pub channel: Channel,
    pub metadata: ResultsMetadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub transcript: String,
    pub confidence: f64,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// Lower case, without punctuation.
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f64,
    /// As said, with its punctuation and case (with `punctuate` or `smart_format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punctuated_word: Option<String>,
    /// 0, 1, ... (with `diarize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsMetadata {
    pub request_id: String,
    pub model_info: ModelInfo,
    pub model_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// The last message of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub transaction_key: String,
    pub request_id: String,
    pub sha256: String,
    /// When the stream opened (RFC 3339).
    pub created: String,
    /// Seconds of audio heard.
    pub duration: f64,
    pub channels: u32,
}

/// The body of a refused connection (HTTP 400 at the upgrade), as Deepgram words it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusalBody {
    pub err_code: String,
    pub err_msg: String,
    pub request_id: String,
}

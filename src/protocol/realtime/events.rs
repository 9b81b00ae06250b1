//! OpenAI Realtime transcription events, both ways, in the current (GA) form and the earlier
//! beta form, as OpenAI's SDKs write and read them. Fields this server does not use are read
//! past, never refused.

use serde::{Deserialize, Deserializer, Serialize};

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    #[serde(rename = "session.update")]
    SessionUpdate {
        #[serde(default)]
        event_id: Option<String>,
        session: SessionUpdate,
    },
    /// The beta form of `session.update`.
    #[serde(rename = "transcription_session.update")]
    BetaSessionUpdate {
        #[serde(default)]
        event_id: Option<String>,
        session: BetaSessionUpdate,
    },
    #[serde(rename = "input_audio_buffer.append")]
    Append {
        #[serde(default)]
        event_id: Option<String>,
        /// Base64 of samples in the session's format.
        audio: String,
    },
    #[serde(rename = "input_audio_buffer.commit")]
    Commit {
        #[serde(default)]
        event_id: Option<String>,
    },
    #[serde(rename = "input_audio_buffer.clear")]
    Clear {
        #[serde(default)]
        event_id: Option<String>,
    },
}

/// `session.update`'s session (GA).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub audio: Option<AudioConfig>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    #[serde(default)]
    pub input: Option<AudioInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    #[serde(default)]
    pub format: Option<AudioFormat>,
    #[serde(default)]
    pub transcription: Option<Transcription>,
    /// Absent: unchanged; `null`: no turn detection (the client commits).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub turn_detection: Option<Option<TurnDetection>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_reduction: Option<serde_json::Value>,
}

/// `transcription_session.update`'s session (beta).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BetaSessionUpdate {
    /// `pcm16`, `g711_ulaw` or `g711_alaw`.
    #[serde(default)]
    pub input_audio_format: Option<String>,
    #[serde(default)]
    pub input_audio_transcription: Option<Transcription>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub turn_detection: Option<Option<TurnDetection>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_audio_noise_reduction: Option<serde_json::Value>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
}

/// An audio format as GA sessions name it: `audio/pcm` (with its rate, 24000), `audio/pcmu`,
/// `audio/pcma`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnDetection {
    /// `server_vad` (or `semantic_vad`, taken as `server_vad`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<u32>,
}

/// Tells a `null` (Some(None)) from an absent field (None).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    #[serde(rename = "session.created")]
    SessionCreated { event_id: String, session: SessionView },
    #[serde(rename = "session.updated")]
    SessionUpdated { event_id: String, session: SessionView },
    #[serde(rename = "transcription_session.created")]
    BetaSessionCreated { event_id: String, session: BetaSessionView },
    #[serde(rename = "transcription_session.updated")]
    BetaSessionUpdated { event_id: String, session: BetaSessionView },
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted { event_id: String, audio_start_ms: u64, item_id: String },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped { event_id: String, audio_end_ms: u64, item_id: String },
    #[serde(rename = "input_audio_buffer.committed")]
    Committed { event_id: String, item_id: String, previous_item_id: Option<String> },
    #[serde(rename = "input_audio_buffer.cleared")]
    Cleared { event_id: String },
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    Delta {
        event_id: String,
        item_id: String,
        content_index: u32,
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<LogProb>>,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.segment")]
    Segment {
        event_id: String,
        item_id: String,
        content_index: u32,
        /// The segment's own id.
        id: String,
        start: f64,
        end: f64,
        text: String,
        speaker: String,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    Completed {
        event_id: String,
        item_id: String,
        content_index: u32,
        transcript: String,
        usage: Usage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<LogProb>>,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.failed")]
    Failed { event_id: String, item_id: String, content_index: u32, error: ErrorDetail },
    #[serde(rename = "error")]
    Error { event_id: String, error: ErrorDetail },
}

/// The session as GA events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub object: String,
    pub audio: AudioView,
    pub include: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioView {
    pub input: AudioInputView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInputView {
    pub format: AudioFormat,
    pub transcription: Transcription,
    pub turn_detection: Option<TurnDetection>,
    pub noise_reduction: Option<serde_json::Value>,
}

/// The session as beta events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BetaSessionView {
    pub id: String,
    pub object: String,
    pub input_audio_format: String,
    pub input_audio_transcription: Transcription,
    pub turn_detection: Option<TurnDetection>,
    pub input_audio_noise_reduction: Option<serde_json::Value>,
    pub include: Option<Vec<String>>,
}

/// How much audio an item took, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(rename = "type")]
    pub kind: String,
    pub seconds: f64,
}

/// A word's log-probability (asked with `include: ["item.input_audio_transcription.logprobs"]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogProb {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

/// OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    /// The client event the error is about, where it had an id.
    pub event_id: Option<String>,
}

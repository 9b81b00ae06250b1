//! OpenAI's Realtime transcription protocol at `GET /v1/realtime?intent=transcription`, so that
//! OpenAI's SDKs (`client.realtime.connect`, `client.beta.realtime.connect`) stream to this
//! server unmodified (docs/protocol.md, "OpenAI Realtime"). The session behind it takes 32-bit
//! float samples at 16 kHz; the dialect decodes and resamples the client's format into them, so
//! that a format chosen by `session.update` after the connection opened needs no new session.

pub mod dialect;
pub mod events;
mod items;

use self::events::{AudioFormat, Transcription, TurnDetection};
use crate::audio::pcm::Encoding;

/// The largest client event OpenAI accepts (an append of about 10 minutes of 24 kHz audio).
pub const MAX_EVENT_BYTES: usize = 15 * 1024 * 1024;

/// Model names users' code sends; each is taken as the loaded model.
const MODEL_ALIASES: &[&str] = &[
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "gpt-4o-transcribe-latest",
];

/// The client's audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 16-bit little-endian PCM at 24 kHz (`audio/pcm`, beta `pcm16`).
    Pcm24k,
    /// G.711 mu-law at 8 kHz (`audio/pcmu`, beta `g711_ulaw`).
    Pcmu,
    /// G.711 A-law at 8 kHz (`audio/pcma`, beta `g711_alaw`).
    Pcma,
}

impl Format {
    pub fn encoding(self) -> Encoding {
        match self {
            Self::Pcm24k => Encoding::PcmS16le,
            Self::Pcmu => Encoding::Mulaw,
            Self::Pcma => Encoding::Alaw,
        }
    }

    pub fn sample_rate(self) -> u32 {
        match self {
            Self::Pcm24k => 24_000,
            Self::Pcmu | Self::Pcma => 8_000,
        }
    }

    pub fn from_ga(format: &AudioFormat) -> Result<Self, String> {
        match (format.kind.as_str(), format.rate) {
            ("audio/pcm", None | Some(24_000)) => Ok(Self::Pcm24k),
            ("audio/pcm", Some(rate)) => Err(format!("audio/pcm is taken at 24000 Hz, got rate {rate}")),
            ("audio/pcmu", _) => Ok(Self::Pcmu),
            ("audio/pcma", _) => Ok(Self::Pcma),
            (other, _) => Err(format!("unsupported audio format `{other}`; use audio/pcm, audio/pcmu or audio/pcma")),
        }
    }

    pub fn from_beta(name: &str) -> Result<Self, String> {
        match name {
            "pcm16" => Ok(Self::Pcm24k),
            "g711_ulaw" => Ok(Self::Pcmu),
            "g711_alaw" => Ok(Self::Pcma),
            other => Err(format!("unsupported input_audio_format `{other}`; use pcm16, g711_ulaw or g711_alaw")),
        }
    }

    pub fn ga(self) -> AudioFormat {
        match self {
            Self::Pcm24k => AudioFormat { kind: "audio/pcm".into(), rate: Some(24_000) },
            Self::Pcmu => AudioFormat { kind: "audio/pcmu".into(), rate: None },
            Self::Pcma => AudioFormat { kind: "audio/pcma".into(), rate: None },
        }
    }

    pub fn beta(self) -> &'static str {
        match self {
            Self::Pcm24k => "pcm16",
            Self::Pcmu => "g711_ulaw",
            Self::Pcma => "g711_alaw",
        }
    }
}

/// The session's settings, from the form the client used (GA or beta) to one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub format: Format,
    pub transcription: Transcription,
    /// `None`: the client commits each item itself.
    pub turn_detection: Option<TurnDetection>,
    pub noise_reduction: Option<serde_json::Value>,
    pub include: Option<Vec<String>>,
}

impl Settings {
    /// OpenAI's defaults, with the server's silence for turn detection.
    pub fn new(silence_ms: u32) -> Self {
        Self {
            format: Format::Pcm24k,
            transcription: Transcription { model: Some("whisper-1".into()), language: None, prompt: None },
            turn_detection: Some(server_vad(silence_ms)),
            noise_reduction: None,
            include: None,
        }
    }

    pub fn logprobs(&self) -> bool {
        self.include.iter().flatten().any(|i| i == "item.input_audio_transcription.logprobs")
    }
}

pub fn server_vad(silence_ms: u32) -> TurnDetection {
    TurnDetection {
        kind: "server_vad".into(),
        threshold: Some(0.5),
        prefix_padding_ms: Some(300),
        silence_duration_ms: Some(silence_ms),
    }
}

/// Whether `model` names the loaded model (`loaded`) or one of OpenAI's transcription models.
pub fn is_model_alias(model: &str, loaded: &str) -> bool {
    model == loaded || MODEL_ALIASES.contains(&model) || model.starts_with("gpt-realtime")
}

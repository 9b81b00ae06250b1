//! OpenAI's file transcription API bodies (`/v1/audio/transcriptions`, `/v1/audio/translations`,
//! `/v1/models`), as its SDKs read them: each JSON body and server-sent event is a serde type
//! here, both ways; the HTTP layer only fills and sends them.

use serde::{Deserialize, Serialize};

/// An error, `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// `response_format=json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBody {
    pub text: String,
}

/// `response_format=verbose_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerboseBody {
    pub task: String,
    pub language: String,
    pub duration: f64,
    pub text: String,
    pub segments: Vec<VerboseSegment>,
    /// With `timestamp_granularities[]=word`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<VerboseWord>>,
}

/// A segment as `verbose_json` carries it (the fields its clients parse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerboseSegment {
    pub id: usize,
    pub seek: u32,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f64,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerboseWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

/// `response_format=diarized_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiarizedBody {
    pub task: String,
    pub duration: f64,
    pub text: String,
    pub segments: Vec<StreamEvent>,
}

/// What `stream=true` sends, one server-sent event each (and `diarized_json`'s segments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    #[serde(rename = "transcript.text.delta")]
    Delta { delta: String },
    #[serde(rename = "transcript.text.segment")]
    Segment { id: String, start: f64, end: f64, text: String, speaker: Option<String> },
    #[serde(rename = "transcript.text.done")]
    Done { text: String },
    #[serde(rename = "error")]
    Error { error: StreamError },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

impl Model {
    pub fn named(id: &str) -> Self {
        Self { id: id.to_owned(), object: "model".into(), created: 0, owned_by: "speech-service".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_bodies_have_openais_shapes() {
        let delta = serde_json::to_value(StreamEvent::Delta { delta: "Hi".into() }).unwrap();
        assert_eq!(delta, serde_json::json!({"type": "transcript.text.delta", "delta": "Hi"}));
        let error = ErrorBody {
            error: ErrorObject { message: "m".into(), kind: "invalid_request_error".into(), param: None, code: None },
        };
        let value = serde_json::to_value(&error).unwrap();
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert!(value["error"]["param"].is_null(), "present, as null");
        let verbose = VerboseBody {
            task: "transcribe".into(),
            language: "english".into(),
            duration: 1.0,
            text: "x".into(),
            segments: Vec::new(),
            words: None,
        };
        assert!(serde_json::to_value(verbose).unwrap().get("words").is_none(), "only when asked");
    }
}

//! `GET /v1/realtime?intent=transcription`: OpenAI's Realtime transcription protocol over the
//! same sessions as `/v1/listen` (`protocol::realtime`), admitted the same way.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::key_limits::PresentedKey;
use super::openai::OpenAiError;
use super::state::AppState;
use super::ws::{abilities, open_stream, query_pairs};
use crate::audio::pcm::Encoding;
use crate::protocol::realtime::dialect::{RealtimeDialect, Server};
use crate::protocol::{parse_language, ListenParams};

pub async fn realtime(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    key: Option<Extension<PresentedKey>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("intent") != Some("transcription") {
        let message = "this server serves transcription sessions only: connect with ?intent=transcription";
        return OpenAiError::invalid("intent", "invalid_intent", message).into_response();
    }
    let abilities = abilities(&state);
    let language = match parse_language(get("language"), abilities.multilingual, abilities.is_language) {
        Ok(language) => language,
        Err(e) => return OpenAiError::invalid("language", "invalid_value", e.0).into_response(),
    };
    let config = state.config();
    // Partials feed the early deltas, unless progressive finals already send words early.
    let partial_deltas = !config.streaming.progressive_finals;
    // The dialect hands the session 32-bit floats at 16 kHz, whatever the client's format.
    let params = ListenParams {
        sample_rate: crate::domain::SAMPLE_RATE,
        encoding: Encoding::PcmF32le,
        language: language.clone(),
        interim_results: partial_deltas,
        diarize: abilities.diarization,
        ..ListenParams::default()
    };
    let beta = headers.get("openai-beta").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("realtime=v1"));
    let server = Server {
        model: state.shared.engines.asr.model().to_owned(),
        language,
        silence_ms: config.vad.min_silence_ms,
        beta,
        partial_deltas,
    };
    let dialect = Box::new(RealtimeDialect::new(server));
    match open_stream(state, (client, key), params, Some(dialect), upgrade) {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

//! `GET /v1/listen`: checks parameters and admission before upgrading to a WebSocket. The path
//! speaks our protocol, or Deepgram's when the query is Deepgram's (`protocol::deepgram`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::error::ApiError;
use super::key_limits::{KeySlot, PresentedKey};
use super::state::AppState;
use crate::protocol::deepgram::dialect::DeepgramDialect;
use crate::protocol::deepgram::{self, messages::RefusalBody};
use crate::protocol::dialect::Dialect;
use crate::protocol::{Abilities, ListenParams};
use crate::session;

pub async fn listen(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    key: Option<Extension<PresentedKey>>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let abilities = abilities(&state);
    if !deepgram::is_deepgram(&pairs) {
        let params = ListenParams::parse(&pairs, &abilities).map_err(|e| ApiError::InvalidParameter(e.0))?;
        return open_stream(state, (client, key), params, None, upgrade);
    }
    let model = state.shared.engines.asr.model().to_owned();
    match deepgram::parse(&pairs, &abilities, &model) {
        Ok((params, options)) => {
            let opened_at = crate::store::unix_now();
            let dialect = DeepgramDialect::new(options, params.interim_results, &model, opened_at);
            open_stream(state, (client, key), params, Some(Box::new(dialect)), upgrade)
        }
        Err(e) => {
            let request_id = uuid::Uuid::new_v4().to_string();
            let body = RefusalBody { err_code: "INVALID_QUERY_PARAMETER".into(), err_msg: e.0, request_id };
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
    }
}

/// The query's name, value pairs in order (a name may repeat: `keyterm`), percent-decoded.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// What this server's models let a stream ask for.
pub fn abilities(state: &AppState) -> Abilities {
    Abilities {
        multilingual: state.shared.engines.asr.is_multilingual(),
        diarization: state.shared.engines.diarize.is_some(),
        is_language: crate::engine::whisper::is_language,
        max_channels: state.config().limits.max_channels,
    }
}

/// Admits a stream (the server's state, the key's and the engines' capacity) and upgrades the
/// connection to its session, which speaks our protocol or, through `dialect`, a vendor's.
pub fn open_stream(
    state: AppState,
    (client, key): (SocketAddr, Option<Extension<PresentedKey>>),
    params: ListenParams,
    dialect: Option<Box<dyn Dialect>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if *state.shared.shutdown.borrow() {
        return Err(ApiError::ShuttingDown);
    }
    // One reading of the configuration for every check, even if a reload lands meanwhile.
    let config = state.config();
    let key_slot = take_key_slot(&state, key.as_ref().map(|Extension(k)| k), config.auth.max_sessions_per_key)?;
    let permit = state.session_slots.clone().try_acquire_owned().map_err(|_| {
        state.shared.registry.count_rejected();
        ApiError::TooManySessions(config.limits.max_sessions)
    })?;
    // Each channel of a multichannel stream is a stream of its own for admission.
    let streams = if params.multichannel { params.channels } else { 1 };
    let mut tickets = Vec::with_capacity(streams as usize);
    for _ in 0..streams {
        tickets.push(state.admission.admit(&config.admission, params.diarize).map_err(|refusal| {
            state.shared.registry.count_rejected();
            tracing::info!(reason = %refusal.reason, "stream refused: at capacity");
            ApiError::AtCapacity(refusal)
        })?);
    }
    // The socket layer allows twice our limit so that an oversized frame still reaches the
    // session and gets a specific error instead of a bare protocol failure; a vendor's
    // protocol may allow larger frames (OpenAI's appends reach 15 MiB of base64).
    let cap = config.limits.max_frame_bytes.saturating_mul(2).max(dialect.as_ref().map_or(0, |d| d.max_frame_bytes()));
    let deps = state.shared.clone();
    // A browser that offered its key as a subprotocol (`token, KEY`) needs one chosen back.
    let upgrade = upgrade.protocols(["token"]);
    Ok(upgrade.max_message_size(cap).max_frame_size(cap).on_upgrade(move |socket| async move {
        if params.multichannel {
            session::channels::run(socket, params, deps, config, client, tickets).await;
        } else {
            let ticket = tickets.swap_remove(0);
            session::run(socket, params, deps, config, (client, dialect), ticket).await;
        }
        drop((permit, key_slot));
    }))
}

/// A slot under the presenting key's session `limit` (none to take when keys are off).
fn take_key_slot(state: &AppState, key: Option<&PresentedKey>, limit: usize) -> Result<Option<KeySlot>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    match state.key_sessions.acquire(key, limit) {
        Some(slot) => Ok(Some(slot)),
        None => {
            state.shared.registry.count_rejected();
            Err(ApiError::KeySessionLimit(limit))
        }
    }
}

//! `GET /v1/listen`: checks parameters and admission before upgrading to a WebSocket.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::response::Response;
use axum::Extension;

use super::error::ApiError;
use super::key_limits::{KeySlot, PresentedKey};
use super::state::AppState;
use crate::protocol::{Abilities, ListenParams};
use crate::session;

pub async fn listen(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    key: Option<Extension<PresentedKey>>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let abilities = Abilities {
        multilingual: state.shared.engines.asr.is_multilingual(),
        diarization: state.shared.engines.diarize.is_some(),
        is_language: crate::engine::whisper::is_language,
        max_channels: state.config().limits.max_channels,
    };
    let params = ListenParams::parse(&query, &abilities).map_err(|e| ApiError::InvalidParameter(e.0))?;
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
    // session and gets a specific error instead of a bare protocol failure.
    let cap = config.limits.max_frame_bytes.saturating_mul(2);
    let deps = state.shared.clone();
    Ok(upgrade.max_message_size(cap).max_frame_size(cap).on_upgrade(move |socket| async move {
        if params.multichannel {
            session::channels::run(socket, params, deps, config, client, tickets).await;
        } else {
            let ticket = tickets.swap_remove(0);
            session::run(socket, params, deps, config, client, ticket).await;
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

//! Optional API keys: when any are configured, every request needs `Authorization: Bearer KEY`
//! (or `Token KEY`, as Deepgram's clients send it, or `?token=KEY` or the subprotocols
//! `token, KEY` on the WebSocket, which browsers cannot give headers), except the health and
//! metrics endpoints when they are configured as public. Checked before any audio is accepted.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::key_limits::PresentedKey;
use super::state::AppState;

/// Compares without stopping at the first difference, so timing does not reveal a key's prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_key(request: &Request) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // `Token KEY` is how Deepgram's clients present theirs.
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("Token ")));
    if let Some(key) = bearer {
        return Some(key.trim().to_owned());
    }
    if request.uri().path() != "/v1/listen" {
        return None;
    }
    // Deepgram's browser clients, which cannot set headers on a WebSocket, offer the key as the
    // second of two subprotocols: `Sec-WebSocket-Protocol: token, KEY`.
    let offered = request.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    if let Some(key) = offered.and_then(|v| v.split_once(',')).filter(|(kind, _)| kind.trim() == "token") {
        return Some(key.1.trim().to_owned());
    }
    // Percent-decoded, as a browser's encodeURIComponent writes it.
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

fn is_public(state: &AppState, path: &str) -> bool {
    let config = state.config();
    let auth = &config.auth;
    super::page::is_page(path)
        || (auth.public_health && (path == "/health" || path == "/health/detailed" || path == "/health/ready"))
        || (auth.public_metrics && path == "/metrics")
}

pub async fn require_key(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let config = state.config();
    let keys = &config.auth.api_keys;
    if keys.is_empty() || is_public(&state, request.uri().path()) {
        return next.run(request).await;
    }
    match presented_key(&request) {
        Some(key) if keys.iter().any(|k| same(k.as_bytes(), key.as_bytes())) => {
            // The stream route counts sessions per key.
            request.extensions_mut().insert(PresentedKey(key.into()));
            next.run(request).await
        }
        presented => {
            let message =
                if presented.is_some() { "invalid API key" } else { "missing API key: send Authorization: Bearer KEY" };
            ApiError::Unauthorized(message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn keys_compare_exactly() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }
}

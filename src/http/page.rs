//! The browser page: static files compiled into the binary (no build step, nothing on disk),
//! served with their content types, validators for caching, and a Content-Security-Policy
//! that allows only what the page itself does (its own scripts and styles, its own server's
//! HTTP and WebSocket endpoints, the microphone).

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset =
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_str!("web/index.html") };

const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("web/app.js") },
    Asset { name: "capture.js", content_type: "text/javascript; charset=utf-8", body: include_str!("web/capture.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_str!("web/style.css") },
];

/// Everything the page loads comes from this server; the socket goes back to it too.
/// `'self'` covers `ws:`/`wss:` to the same host in current browsers; `blob:` is for the
/// transcript downloads the page builds.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Static assets may be reused for an hour, then revalidated with their ETag; the page itself is
/// always revalidated, so a new server version's page arrives at once.
const ASSET_CACHE: &str = "public, max-age=3600";
const PAGE_CACHE: &str = "no-cache";

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    let mut response = serve(&INDEX, PAGE_CACHE, &headers);
    let policy = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (HeaderName::from_static("permissions-policy"), "microphone=(self), camera=(), geolocation=()"),
    ];
    for (name, value) in policy {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /assets/{name}`: the page's scripts and styles.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, ASSET_CACHE, &headers),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such asset\n")
            .into_response(),
    }
}

/// Each file's ETag (the start of its SHA-256), computed once: the files never change while
/// the server runs.
fn etag(asset: &Asset) -> String {
    static TAGS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
        let tag = |body: &str| format!("\"{}\"", hex::encode(&Sha256::digest(body.as_bytes())[..8]));
        std::iter::once(&INDEX).chain(ASSETS).map(|a| (a.name, tag(a.body))).collect()
    });
    TAGS[asset.name].clone()
}

/// The asset, or 304 when the client's copy (`If-None-Match`) is current.
fn serve(asset: &Asset, cache: &'static str, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
    let common = [
        (header::CACHE_CONTROL, cache.to_owned()),
        (header::ETAG, tag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::REFERRER_POLICY, "no-referrer".to_owned()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

/// Paths the page needs before the user has typed an API key.
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

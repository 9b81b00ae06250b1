//! What the store keeps: sessions with their segments, as records of its own whatever the REST
//! API shows, and the errors reading or writing them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::audio::pcm::Encoding;
use crate::domain::Segment;
use crate::protocol::{CloseReason, SessionHeader};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error")]
    Postgres(#[from] ::postgres::Error),
    #[error("no PostgreSQL connection")]
    Pool(#[from] r2d2::Error),
    #[error("cannot create the data directory {}", .0.display())]
    Dir(PathBuf, #[source] std::io::Error),
    #[error("a stored session is unreadable")]
    Corrupt(#[from] serde_json::Error),
    #[error("the store is closed")]
    Closed,
    #[error("the database has schema version {found}, newer than this build's {supported}: a newer release wrote it")]
    NewerSchema { found: i64, supported: i64 },
}

/// A session as the store keeps it: the store's own record, whatever the REST API shows.
/// Live sessions of the fleet use it too, with `ended_at` their last heartbeat and no reason.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub header: SessionHeader,
    pub ended_at: f64,
    pub close_reason: Option<CloseReason>,
    pub audio_seconds: f64,
    /// Empty in lists ([`TranscriptStore::recent`]).
    pub segments: Vec<Segment>,
}

/// An ended session as lists show it: its record without the segments, and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSession {
    pub session: StoredSession,
    pub segments: u64,
    /// The distinct speakers of its segments, sorted.
    pub speakers: Vec<String>,
}

/// The header's fields kept as JSON in the `meta` column (the others have columns of their
/// own); unknown fields, such as those schema 1 wrote there, are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionMeta {
    sample_rate: u32,
    encoding: Encoding,
    language: Option<String>,
    diarize: bool,
}

/// The `meta` column of `header`.
pub(super) fn meta_json(header: &SessionHeader) -> Result<String, StoreError> {
    let SessionHeader { sample_rate, encoding, ref language, diarize, .. } = *header;
    Ok(serde_json::to_string(&SessionMeta { sample_rate, encoding, language: language.clone(), diarize })?)
}

/// A header from its columns: `id`, `client`, `meta` (JSON) and `started_at`.
pub(super) fn header_of(id: String, client: String, meta: &str, started_at: f64) -> Result<SessionHeader, StoreError> {
    let SessionMeta { sample_rate, encoding, language, diarize } = serde_json::from_str(meta)?;
    Ok(SessionHeader { id, client, sample_rate, encoding, language, diarize, started_at })
}

/// Whether the store takes writes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Up,
    /// Reachable, or not, with writes waiting in memory for the database to come back.
    Degraded,
    Down,
}

/// A live session of another replica, as the fleet sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSession {
    pub replica: String,
    pub session: StoredSession,
}

pub(super) fn reason_text(reason: CloseReason) -> Option<String> {
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned))
}

pub(super) fn reason_from_text(text: Option<String>) -> Option<CloseReason> {
    text.and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

//! Persistence of sessions and their final segments, behind `TranscriptStore`: SQLite in the
//! data directory (the default, embedded, zero set-up) or PostgreSQL (`store.url`), which
//! several replicas share. With PostgreSQL the store is also the fleet's view of live sessions
//! (`Fleet`): each replica publishes its own, and any replica can list them or end one.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::Segment;
use crate::protocol::CloseReason;

mod postgres;
mod sqlite;
mod writer;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

/// Store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub enabled: bool,
    /// The data directory: `SPEECH_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// Sessions that ended longer ago than this are deleted (0 keeps them for ever).
    pub retention_days: u32,
    /// `postgres://user:password@host:port/db`: keep sessions in PostgreSQL, shared by every
    /// replica that names the same database, instead of SQLite in `data_dir`.
    pub url: Option<String>,
    /// This server's name in the fleet (PostgreSQL only); default: host name and process id.
    pub replica_id: Option<String>,
    /// How often each replica publishes its live sessions (PostgreSQL only).
    pub heartbeat_s: u64,
    /// A replica silent this long is taken for dead: its live sessions become `interrupted`.
    pub heartbeat_timeout_s: u64,
    /// Connecting to PostgreSQL, and taking a pooled connection, give up after this long.
    pub connect_timeout_s: u64,
    /// Ended sessions held in memory while PostgreSQL is unreachable (then the oldest are lost,
    /// with an error in the log).
    pub buffer_sessions: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os("SPEECH_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);
        Self {
            enabled: true,
            data_dir,
            retention_days: 30,
            url: None,
            replica_id: None,
            heartbeat_s: 2,
            heartbeat_timeout_s: 10,
            connect_timeout_s: 3,
            buffer_sessions: 10_000,
        }
    }
}

impl StoreConfig {
    /// The replica id to publish under.
    pub fn replica(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }
}

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
    pub id: String,
    pub client: String,
    pub meta: SessionMeta,
    pub started_at: f64,
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

/// How the session was opened; kept as JSON in `sessions.meta` (unknown fields, such as those
/// schema 1 wrote there, are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub sample_rate: u32,
    pub encoding: String,
    pub language: Option<String>,
    pub diarize: bool,
}

/// Whether the store takes writes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Up,
    /// Reachable, or not, with writes waiting in memory for the database to come back.
    Degraded,
    Down,
}

/// Where transcripts are kept.
pub trait TranscriptStore: Send + Sync {
    /// Queues a session that just opened for writing, so a crash leaves a record; never blocks.
    /// (PostgreSQL keeps live sessions through the fleet's heartbeat instead.)
    fn begin(&self, _session: StoredSession) {}
    /// Queues one final of a live session, as it is sent; never blocks.
    fn append(&self, _id: &str, _segment: &Segment, _audio_seconds: f64) {}
    /// Queues an ended session for writing, with every segment as it finally is; never blocks.
    fn save(&self, session: StoredSession);
    fn get(&self, id: &str) -> Result<Option<StoredSession>, StoreError>;
    /// The sessions that ended last (before `before`, Unix seconds, when given), newest first,
    /// without their segments but with how many there are and who spoke in them.
    fn recent(&self, limit: usize, before: Option<f64>) -> Result<Vec<ListedSession>, StoreError>;
    /// Deletes sessions that ended before `unix_seconds`; returns how many.
    fn delete_ended_before(&self, unix_seconds: f64) -> Result<usize, StoreError>;
    fn state(&self) -> StoreState;
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Writes everything queued, then stops accepting writes (at shutdown).
    fn close(&self);
    /// The fleet's live sessions, when the store is shared.
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }
}

/// A live session of another replica, as the fleet sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSession {
    pub replica: String,
    pub session: StoredSession,
}

/// Live sessions across replicas sharing one database.
pub trait Fleet: Send + Sync {
    /// Records this replica's live sessions (with their finals so far) and its heartbeat;
    /// drops its records of sessions no longer in `live`.
    fn publish(&self, replica: &str, live: &[StoredSession]) -> Result<(), StoreError>;
    /// Live sessions of the other replicas.
    fn live_elsewhere(&self, replica: &str) -> Result<Vec<RemoteSession>, StoreError>;
    /// Asks the replica holding live session `id` to end it; false when no replica holds it.
    fn request_end(&self, id: &str) -> Result<bool, StoreError>;
    /// Sessions of `replica` that another replica was asked to end (each returned once).
    fn take_end_requests(&self, replica: &str) -> Result<Vec<String>, StoreError>;
    /// Ends, as `interrupted`, the live sessions of replicas silent longer than the timeout;
    /// returns how many.
    fn interrupt_stale(&self) -> Result<usize, StoreError>;
}

/// Opens the store the configuration names: PostgreSQL when `url` is set, else SQLite.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn TranscriptStore>, StoreError> {
    Ok(match &config.url {
        Some(url) => Arc::new(PostgresStore::open(url, config)?),
        None => Arc::new(SqliteStore::open(config)?),
    })
}

fn reason_text(reason: CloseReason) -> Option<String> {
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned))
}

fn reason_from_text(text: Option<String>) -> Option<CloseReason> {
    text.and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

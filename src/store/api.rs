//! What a store does: keep transcripts (`TranscriptStore`) and, when shared by replicas, show
//! the fleet's live sessions (`Fleet`).

use super::record::{ListedSession, RemoteSession, StoreError, StoreState, StoredSession};
use crate::domain::Segment;

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
}

/// Live sessions across replicas sharing one database.
pub trait Fleet: Send + Sync {
    /// Records this replica's live sessions (with their finals so far) and its heartbeat;
    /// drops its records of sessions no longer in `live`.
    fn publish(&self, replica: &str, live: &[StoredSession]) -> Result<(), StoreError>;
    /// Live sessions of the other replicas.
    fn live_elsewhere(&self, replica: &str) -> Result<Vec<RemoteSession>, StoreError>;
    /// Live session `id` if another replica than `replica` serves it: one lookup by key.
    fn live_session(&self, id: &str, replica: &str) -> Result<Option<RemoteSession>, StoreError>;
    /// Asks the replica holding live session `id` to end it; false when no replica holds it.
    fn request_end(&self, id: &str) -> Result<bool, StoreError>;
    /// Sessions of `replica` that another replica was asked to end (each returned once).
    fn take_end_requests(&self, replica: &str) -> Result<Vec<String>, StoreError>;
    /// Ends, as `interrupted`, the live sessions of replicas silent longer than the timeout;
    /// returns how many.
    fn interrupt_stale(&self) -> Result<usize, StoreError>;
}

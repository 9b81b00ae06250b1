//! The server-wide view of sessions, shared by REST, the fleet and the store: the session
//! manager (every live session's record, recently ended ones, and the totals the statistics
//! API reports) and admission (whether a new stream may start). Sessions write their own
//! record (`record.rs`); REST handlers read snapshots (`snapshot.rs`).

pub mod admission;
mod record;
mod snapshot;

pub use record::SessionRecord;
use record::{lock, Progress, Totals};
pub use snapshot::{SessionSnapshot, SessionState};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::watch;

use crate::protocol::{CloseReason, ListenParams, SessionHeader};
use crate::store::{Fleet, OpenStore, StoreError, StoredSession, TranscriptStore};

/// Ended sessions kept for `GET /sessions`.
const RECENT_ENDED: usize = 256;

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// A session could not be read from the store.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("the transcript store failed")]
    Store(#[from] StoreError),
    #[error("the transcript store lookup stopped")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// Session totals for `GET /stats`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionTotals {
    pub active: usize,
    pub total: u64,
    pub rejected: u64,
    pub audio_seconds: f64,
    pub segments: u64,
    pub errors: BTreeMap<String, u64>,
}

/// Why a session could not be terminated.
#[derive(Debug, PartialEq, Eq)]
pub enum TerminateError {
    NotFound,
    AlreadyEnded,
}

/// Which ended sessions a list shows: at most `limit`, ended before `before` (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub before: Option<f64>,
}

#[derive(Default)]
pub struct SessionRegistry {
    live: Mutex<HashMap<String, Arc<SessionRecord>>>,
    ended: Mutex<VecDeque<SessionSnapshot>>,
    totals: Arc<Totals>,
    /// Where ended sessions are persisted, if anywhere.
    store: Option<Arc<dyn TranscriptStore>>,
    /// The fleet's live sessions, when the store is shared.
    fleet: Option<Arc<dyn Fleet>>,
    /// This server's id in the fleet (a shared store).
    replica: String,
}

impl SessionRegistry {
    pub fn with_store(store: Option<OpenStore>, replica: String) -> Self {
        let (store, fleet) = store.map_or((None, None), |s| (Some(s.transcripts), s.fleet));
        Self { store, fleet, replica, ..Self::default() }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runs `f` on the fleet, off the async workers, when the store is shared.
    async fn with_fleet<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Fleet, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, LookupError> {
        let Some(fleet) = self.fleet.clone() else { return Ok(None) };
        let replica = self.replica.clone();
        let result = tokio::task::spawn_blocking(move || f(fleet.as_ref(), &replica)).await??;
        Ok(Some(result))
    }

    /// Live sessions of the other replicas (none without a shared store).
    async fn live_elsewhere(&self) -> Result<Vec<SessionSnapshot>, LookupError> {
        let remote = self.with_fleet(|fleet, me| fleet.live_elsewhere(me)).await?.unwrap_or_default();
        Ok(remote.into_iter().map(SessionSnapshot::from_remote).collect())
    }

    /// Asks the replica serving live session `id` to end it; false when none does.
    pub async fn terminate_elsewhere(&self, id: &str) -> Result<bool, LookupError> {
        let id = id.to_owned();
        Ok(self.with_fleet(move |fleet, _| fleet.request_end(&id)).await?.unwrap_or(false))
    }

    /// Live sessions as the store keeps them, for the fleet's heartbeat.
    pub fn live_records(&self) -> Vec<StoredSession> {
        lock(&self.live).values().map(|r| r.snapshot().to_stored()).collect()
    }

    pub fn store(&self) -> Option<&Arc<dyn TranscriptStore>> {
        self.store.as_ref()
    }

    /// A session from memory, or else from the store.
    pub async fn find(&self, id: &str) -> Result<Option<SessionSnapshot>, LookupError> {
        if let Some(session) = self.get(id) {
            return Ok(Some(session));
        }
        let Some(store) = self.store.clone() else { return Ok(None) };
        let key = id.to_owned();
        let stored = tokio::task::spawn_blocking(move || store.get(&key)).await??;
        if let Some(stored) = stored {
            return Ok(Some(SessionSnapshot::from_stored(stored)));
        }
        let key = id.to_owned();
        let remote = self.with_fleet(move |fleet, me| fleet.live_session(&key, me)).await?.flatten();
        Ok(remote.map(SessionSnapshot::from_remote))
    }

    /// Like [`list`](Self::list), with the live sessions of other replicas and the ended
    /// sessions from the store when there is one (they survive restarts): up to `page.limit` of
    /// those, ended before `page.before` when given, after those still in memory.
    pub async fn list_with_stored(
        &self,
        active: bool,
        ended: bool,
        page: Page,
    ) -> Result<Vec<SessionSnapshot>, LookupError> {
        let mut sessions = self.list(active, false);
        if active {
            sessions.extend(self.live_elsewhere().await?);
            sessions.sort_by(|a, b| a.header.started_at.total_cmp(&b.header.started_at));
        }
        if !ended {
            return Ok(sessions);
        }
        let in_memory = self
            .list(false, true)
            .into_iter()
            .filter(|s| page.before.is_none_or(|b| s.ended_at.is_some_and(|e| e < b)));
        let mut ended_sessions: Vec<SessionSnapshot> = in_memory.collect();
        if let Some(store) = self.store.clone() {
            let recent = tokio::task::spawn_blocking(move || store.recent(page.limit, page.before)).await??;
            // Sessions that just ended may not be written yet; those in memory come first.
            let seen: HashSet<String> = ended_sessions.iter().map(|s| s.header.id.clone()).collect();
            ended_sessions.extend(
                recent.into_iter().filter(|s| !seen.contains(&s.session.header.id)).map(SessionSnapshot::from_listed),
            );
        }
        ended_sessions.sort_by(|a, b| b.ended_at.unwrap_or(0.0).total_cmp(&a.ended_at.unwrap_or(0.0)));
        ended_sessions.truncate(page.limit);
        sessions.extend(ended_sessions);
        Ok(sessions)
    }

    /// Registers a new live session.
    pub fn open(&self, id: String, client: SocketAddr, params: ListenParams) -> Arc<SessionRecord> {
        self.totals.sessions.fetch_add(1, Ordering::Relaxed);
        let header = SessionHeader::of_stream(id.clone(), client.to_string(), &params, unix_seconds(SystemTime::now()));
        let record = Arc::new(SessionRecord {
            header,
            progress: Mutex::new(Progress::default()),
            terminate: watch::channel(false),
            totals: self.totals.clone(),
            store: self.store.clone(),
        });
        if let Some(store) = &self.store {
            store.begin(record.snapshot().to_stored());
        }
        lock(&self.live).insert(id, record.clone());
        record
    }

    /// Moves a session to the ended list.
    pub fn close(&self, id: &str, reason: CloseReason) {
        let Some(record) = lock(&self.live).remove(id) else { return };
        {
            let mut p = lock(&record.progress);
            p.ended_at = Some(unix_seconds(SystemTime::now()));
            p.close_reason = Some(reason);
            self.totals.ended_audio_ms.fetch_add((p.audio_seconds * 1000.0) as u64, Ordering::Relaxed);
        }
        let snapshot = record.snapshot();
        if let Some(store) = &self.store {
            store.save(snapshot.to_stored());
        }
        let mut ended = lock(&self.ended);
        if ended.len() == RECENT_ENDED {
            ended.pop_front();
        }
        ended.push_back(snapshot);
    }

    pub fn count_rejected(&self) {
        self.totals.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, id: &str) -> Option<SessionSnapshot> {
        if let Some(record) = lock(&self.live).get(id) {
            return Some(record.snapshot());
        }
        lock(&self.ended).iter().find(|s| s.header.id == id).cloned()
    }

    /// Live sessions, then recently ended ones (newest first), each without its transcript.
    pub fn list(&self, active: bool, ended: bool) -> Vec<SessionSnapshot> {
        let mut out: Vec<SessionSnapshot> =
            if active { lock(&self.live).values().map(|r| r.snapshot()).collect() } else { Vec::new() };
        out.sort_by(|a, b| a.header.started_at.total_cmp(&b.header.started_at));
        if ended {
            out.extend(lock(&self.ended).iter().rev().cloned());
        }
        out.iter_mut().for_each(|s| s.transcript.clear());
        out
    }

    /// Asks a live session to end gracefully.
    pub fn terminate(&self, id: &str) -> Result<(), TerminateError> {
        if let Some(record) = lock(&self.live).get(id) {
            record.terminate.0.send_replace(true);
            return Ok(());
        }
        match lock(&self.ended).iter().any(|s| s.header.id == id) {
            true => Err(TerminateError::AlreadyEnded),
            false => Err(TerminateError::NotFound),
        }
    }

    pub fn totals(&self) -> SessionTotals {
        let live = lock(&self.live);
        let live_audio: f64 = live.values().map(|r| lock(&r.progress).audio_seconds).sum();
        SessionTotals {
            active: live.len(),
            total: self.totals.sessions.load(Ordering::Relaxed),
            rejected: self.totals.rejected.load(Ordering::Relaxed),
            audio_seconds: self.totals.ended_audio_ms.load(Ordering::Relaxed) as f64 / 1000.0 + live_audio,
            segments: self.totals.segments.load(Ordering::Relaxed),
            errors: lock(&self.totals.errors).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Segment;
    use crate::protocol::ErrorCode;

    fn params() -> ListenParams {
        ListenParams { diarize: true, ..ListenParams::default() }
    }

    #[test]
    fn a_session_moves_from_live_to_ended_with_its_transcript() {
        let registry = SessionRegistry::default();
        let record = registry.open("a".into(), "127.0.0.1:9".parse().unwrap(), params());
        record.set_audio_seconds(2.5);
        let entry = Segment {
            segment_id: 0,
            part: 0,
            start: 0.1,
            end: 2.0,
            text: "hi".into(),
            words: vec![],
            language: "en".into(),
            speaker: None,
            channel: None,
        };
        record.add_final(entry);
        record.relabel(|e| e.segment_id == 0, "S1");
        record.count_error(ErrorCode::InvalidJson);
        assert_eq!(registry.get("a").unwrap().state, SessionState::Active);
        assert_eq!(registry.terminate("a"), Ok(()));
        assert!(*record.terminate_signal().borrow());
        registry.close("a", CloseReason::Terminated);
        let s = registry.get("a").unwrap();
        assert_eq!(
            (s.state, s.close_reason, s.speakers.clone()),
            (SessionState::Ended, Some(CloseReason::Terminated), vec!["S1".to_owned()])
        );
        assert_eq!(registry.terminate("a"), Err(TerminateError::AlreadyEnded));
        assert_eq!(registry.terminate("b"), Err(TerminateError::NotFound));
        let totals = registry.totals();
        assert_eq!((totals.active, totals.total, totals.segments), (0, 1, 1));
        assert_eq!(totals.audio_seconds, 2.5);
        assert_eq!(totals.errors["invalid_json"], 1);
        assert!(registry.list(true, true)[0].transcript.is_empty(), "lists leave transcripts out");
    }
}

//! What one live session writes about itself as it goes (its finals, labels, errors and audio
//! position), for the registry to show and the store to keep.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::snapshot::{speakers_of, SessionSnapshot, SessionState};
use crate::domain::Segment;
use crate::protocol::{CloseReason, ErrorCode, ServerMessage, SessionHeader};
use crate::store::TranscriptStore;

#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) audio_seconds: f64,
    pub(super) transcript: Vec<Segment>,
    pub(super) ended_at: Option<f64>,
    pub(super) close_reason: Option<CloseReason>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a live session writes as it goes.
pub struct SessionRecord {
    pub header: SessionHeader,
    pub(super) progress: Mutex<Progress>,
    /// Set by `DELETE /sessions/{id}`; the receiver is kept so a request that comes before the
    /// session starts listening is not lost.
    pub(super) terminate: (watch::Sender<bool>, watch::Receiver<bool>),
    pub(super) totals: Arc<Totals>,
    /// Where each final is appended as it is sent (crash safety).
    pub(super) store: Option<Arc<dyn TranscriptStore>>,
}

impl SessionRecord {
    pub fn set_audio_seconds(&self, seconds: f64) {
        lock(&self.progress).audio_seconds = seconds;
    }

    pub fn add_final(&self, entry: Segment) {
        self.totals.segments.fetch_add(1, Ordering::Relaxed);
        let mut progress = lock(&self.progress);
        if let Some(store) = &self.store {
            store.append(&self.header.id, &entry, progress.audio_seconds);
        }
        // In time order: the channels of a multichannel stream send their finals independently.
        let at = progress.transcript.partition_point(|e| e.start <= entry.start);
        progress.transcript.insert(at, entry);
    }

    /// Applies a late label or a merge to what is already recorded.
    pub fn relabel(&self, matches: impl Fn(&Segment) -> bool, speaker: &str) {
        for entry in lock(&self.progress).transcript.iter_mut().filter(|e| matches(e)) {
            entry.speaker = Some(speaker.to_owned());
        }
    }

    /// Records what a message sent to the client says about the session.
    pub fn observe(&self, message: &ServerMessage) {
        match message {
            ServerMessage::Final(segment) => self.add_final(segment.clone()),
            ServerMessage::SpeakerUpdate { segments, merged } => {
                for s in segments {
                    self.relabel(|e| e.segment_id == s.segment_id && e.part == s.part, &s.speaker);
                }
                for (gone, kept) in merged {
                    self.relabel(|e| e.speaker.as_deref() == Some(gone.as_str()), kept);
                }
            }
            ServerMessage::Error { code, message } => {
                self.count_error(*code);
                // The server's own faults (not the client's mistakes) are errors for operators,
                // and for error tracking when configured. The message names segments, never
                // their words.
                if code.is_server_fault() {
                    tracing::error!(session_id = %self.header.id, code = %code.name(), %message, "session error");
                }
            }
            _ => {}
        }
    }

    pub fn count_error(&self, code: ErrorCode) {
        *lock(&self.totals.errors).entry(code.name()).or_default() += 1;
    }

    /// Resolves when `DELETE /sessions/{id}` asks this session to end.
    pub fn terminate_signal(&self) -> watch::Receiver<bool> {
        self.terminate.1.clone()
    }

    pub(super) fn snapshot(&self) -> SessionSnapshot {
        let p = lock(&self.progress);
        SessionSnapshot {
            header: self.header.clone(),
            state: if p.ended_at.is_some() { SessionState::Ended } else { SessionState::Active },
            ended_at: p.ended_at,
            close_reason: p.close_reason,
            audio_seconds: p.audio_seconds,
            segments: p.transcript.len() as u64,
            speakers: speakers_of(&p.transcript),
            transcript: p.transcript.clone(),
            replica: None,
        }
    }
}

/// Counters over every session since the server started.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) sessions: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) segments: AtomicU64,
    /// Audio of ended sessions, in milliseconds (live ones are added when reporting).
    pub(super) ended_audio_ms: AtomicU64,
    pub(super) errors: Mutex<BTreeMap<String, u64>>,
}

//! A session as REST shows it (`GET /sessions/{id}` and the lists), made from a live record,
//! a stored session or another replica's live record: its header as it is, and what happened.

use crate::domain::Segment;
pub use crate::protocol::rest::{SessionSnapshot, SessionState};
use crate::store::{ListedSession, RemoteSession, StoredSession};

impl SessionSnapshot {
    /// The record the store keeps of this session (ended, or live as of now).
    pub(super) fn to_stored(&self) -> StoredSession {
        StoredSession {
            header: self.header.clone(),
            ended_at: self.ended_at.unwrap_or(self.header.started_at),
            close_reason: self.close_reason,
            audio_seconds: self.audio_seconds,
            segments: self.transcript.clone(),
        }
    }

    /// A session read back from the store. `segments` counts what was stored: nothing in lists,
    /// which leave transcripts out.
    pub(super) fn from_stored(s: StoredSession) -> Self {
        Self {
            header: s.header,
            state: SessionState::Ended,
            ended_at: Some(s.ended_at),
            close_reason: s.close_reason,
            audio_seconds: s.audio_seconds,
            segments: s.segments.len() as u64,
            speakers: speakers_of(&s.segments),
            transcript: s.segments,
            replica: None,
        }
    }

    /// An ended session from a store's list: its summary stands for the segments left out.
    pub(super) fn from_listed(listed: ListedSession) -> Self {
        Self { segments: listed.segments, speakers: listed.speakers, ..Self::from_stored(listed.session) }
    }

    /// A live session of another replica (its finals as of its last heartbeat).
    pub(super) fn from_remote(remote: RemoteSession) -> Self {
        let mut session = Self::from_stored(remote.session);
        session.state = SessionState::Active;
        session.ended_at = None;
        session.replica = Some(remote.replica);
        session
    }
}

/// The distinct speakers of a transcript, sorted.
pub(super) fn speakers_of(transcript: &[Segment]) -> Vec<String> {
    let mut speakers: Vec<String> = transcript.iter().filter_map(|e| e.speaker.clone()).collect();
    speakers.sort();
    speakers.dedup();
    speakers
}

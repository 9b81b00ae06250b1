//! What a replica's heartbeat has already written of its live sessions, so the next one writes
//! only what changed. The finals themselves reach the database as they are sent (the writer's
//! appends); a heartbeat writes a session's segments only when it is new to the heartbeat or
//! when finals already written changed since (speaker labels revised by a later utterance).

use std::collections::HashMap;

use super::record::StoredSession;
use crate::domain::Segment;

#[derive(Debug, Default)]
pub struct Published {
    /// The replica the records below were written for.
    replica: String,
    /// Each live session's segments as of the last heartbeat.
    segments: HashMap<String, Vec<Segment>>,
}

/// What one heartbeat must write.
#[derive(Debug, PartialEq)]
pub struct Beat<'a> {
    /// Sessions whose whole record is written: new ones, and those whose finals changed.
    pub rewrite: Vec<&'a StoredSession>,
    /// Whether sessions ended since the last beat, so their live records are removed.
    pub gone: bool,
}

impl Published {
    /// What to write for `live` of `replica`; `full` rewrites everything (after a write the
    /// database may have missed).
    pub fn beat<'a>(&self, replica: &str, live: &'a [StoredSession], full: bool) -> Beat<'a> {
        let full = full || self.replica != replica;
        let mut rewrite: Vec<&StoredSession> = live.iter().filter(|s| full || self.changed(s)).collect();
        // Rows locked in one order by every beat.
        rewrite.sort_by(|a, b| a.header.id.cmp(&b.header.id));
        let gone = full || self.segments.keys().any(|id| !live.iter().any(|s| s.header.id == *id));
        Beat { rewrite, gone }
    }

    /// Records that `live` is what the database now holds.
    pub fn written(&mut self, replica: &str, live: &[StoredSession]) {
        self.replica = replica.to_owned();
        self.segments = live.iter().map(|s| (s.header.id.clone(), s.segments.clone())).collect();
    }

    /// New to the heartbeat, or a final it wrote is no longer as it was (new finals at the end
    /// are the writer's).
    fn changed(&self, session: &StoredSession) -> bool {
        match self.segments.get(&session.header.id) {
            None => true,
            Some(before) => !session.segments.starts_with(before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, speakers: &[&str]) -> StoredSession {
        let segment = |(i, s): (usize, &&str)| Segment {
            segment_id: i as u64,
            part: 0,
            start: 0.0,
            end: 1.0,
            text: "hi".into(),
            words: Vec::new(),
            language: "en".into(),
            speaker: Some((*s).to_owned()),
            channel: None,
        };
        StoredSession {
            header: crate::protocol::SessionHeader {
                id: id.into(),
                client: String::new(),
                sample_rate: 16_000,
                encoding: crate::audio::pcm::Encoding::PcmS16le,
                language: None,
                diarize: true,
                started_at: 0.0,
            },
            ended_at: 0.0,
            close_reason: None,
            audio_seconds: 0.0,
            segments: speakers.iter().enumerate().map(segment).collect(),
        }
    }

    #[test]
    fn only_new_sessions_and_revised_finals_are_rewritten() {
        let mut published = Published::default();
        let first = [session("a", &["S1"]), session("b", &[])];
        assert_eq!(published.beat("r1", &first, false).rewrite.len(), 2, "the first beat writes everything");
        published.written("r1", &first);
        // "a" got a final (the writer's), "b" is unchanged, "c" is new.
        let second = [session("a", &["S1", "S2"]), session("b", &[]), session("c", &["S1"])];
        let beat = published.beat("r1", &second, false);
        assert_eq!(beat.rewrite.iter().map(|s| s.header.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert!(!beat.gone);
        published.written("r1", &second);
        // A later utterance relabelled the first final of "a"; "b" ended.
        let third = [session("a", &["S2", "S2"]), session("c", &["S1"])];
        let beat = published.beat("r1", &third, false);
        assert_eq!(beat.rewrite.iter().map(|s| s.header.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(beat.gone, "b's live record goes");
        assert_eq!(published.beat("r1", &third, true).rewrite.len(), 2, "a full beat writes everything");
        assert_eq!(published.beat("r2", &third, false).rewrite.len(), 2, "another replica name starts over");
    }
}

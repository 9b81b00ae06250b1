//! A session's speakers: the online tracker, and turning joined results into labelled parts and
//! `speaker_update` messages.

use std::collections::BTreeMap;

use crate::domain::EmbeddedTurn;
use crate::protocol::{ServerMessage, SpeakerLabel};
use crate::speaker::attribution::{dominant_speaker, label_turns, SpeakerTurn};
use crate::speaker::cluster::{label, ClusterConfig, SpeakerTracker};

pub struct SessionSpeakers {
    tracker: SpeakerTracker,
}

impl SessionSpeakers {
    pub fn new(config: ClusterConfig) -> Self {
        Self { tracker: SpeakerTracker::new(config) }
    }

    /// Labels the turns of one utterance; merges they cause become a `speaker_update`.
    pub fn label(&mut self, turns: &[EmbeddedTurn], outbox: &mut Vec<ServerMessage>) -> Vec<SpeakerTurn> {
        let (labelled, merged) = label_turns(&mut self.tracker, turns);
        if !merged.is_empty() {
            let merged: BTreeMap<String, String> =
                merged.into_iter().map(|(gone, kept)| (label(gone), label(kept))).collect();
            outbox.push(ServerMessage::SpeakerUpdate { segments: Vec::new(), merged });
        }
        labelled
    }

    /// Speakers that arrived after the final went out unlabelled: label it now.
    pub fn late(&mut self, segment_id: u64, turns: &[EmbeddedTurn], outbox: &mut Vec<ServerMessage>) {
        let labelled = self.label(turns, outbox);
        if let Some(speaker) = dominant_speaker(&labelled) {
            let segments = vec![SpeakerLabel { segment_id, part: 0, speaker: label(speaker) }];
            outbox.push(ServerMessage::SpeakerUpdate { segments, merged: BTreeMap::new() });
        }
    }
}

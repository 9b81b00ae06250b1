//! A session's speakers: the online tracker, turning joined results into labelled parts, and
//! `speaker_update` messages for merges, late labels and speakers found to be two.

use std::collections::{BTreeMap, VecDeque};

use crate::domain::{seconds_to_samples, EmbeddedTurn, Segment};
use crate::protocol::{ServerMessage, SpeakerLabel};
use crate::speaker::attribution::{dominant_speaker, label_turns, Labelled, SpeakerTurn, TurnMember};
use crate::speaker::cluster::{label, Change, ClusterConfig, SpeakerTracker, Split};

/// Parts of finals remembered for relabelling after a split: the most recent this many (the
/// tracker remembers fewer turns than this, so no part it could move is forgotten first).
const REMEMBERED_PARTS: usize = 256;

/// A final's part as sent, with the embedded turns its words fell in.
struct SentPart {
    segment_id: u64,
    part: u32,
    speaker: usize,
    /// (turn id, words of the part in that turn).
    votes: Vec<(u64, usize)>,
}

pub struct SessionSpeakers {
    tracker: SpeakerTracker,
    /// The turns of finals labelled and not yet sent, by segment.
    pending: BTreeMap<u64, Vec<TurnMember>>,
    sent: VecDeque<SentPart>,
}

impl SessionSpeakers {
    pub fn new(config: ClusterConfig) -> Self {
        Self { tracker: SpeakerTracker::new(config), pending: BTreeMap::new(), sent: VecDeque::new() }
    }

    /// Labels the turns of one utterance; merges they cause or the review finds, and parts
    /// already sent that a split moves to a new speaker, become one `speaker_update`. Call
    /// [`Self::sent`] with the segments made from the turns.
    pub fn label(
        &mut self,
        segment_id: u64,
        turns: &[EmbeddedTurn],
        outbox: &mut Vec<ServerMessage>,
    ) -> Vec<SpeakerTurn> {
        let Labelled { mut turns, mut merged, members } = label_turns(&mut self.tracker, turns);
        let mut relabelled = Vec::new();
        for change in self.tracker.review() {
            match change {
                Change::Merged { gone, kept } => merged.push((gone, kept)),
                Change::Split(split) => {
                    let moved = |t: &SpeakerTurn| {
                        members.iter().any(|m| m.start == t.start && split.members.contains(&m.member))
                    };
                    turns.iter_mut().filter(|t| moved(t)).for_each(|t| t.speaker = split.to);
                    relabelled.extend(self.relabel(&split));
                }
            }
        }
        turns.iter_mut().for_each(|t| t.speaker = self.tracker.resolve(t.speaker));
        if !merged.is_empty() || !relabelled.is_empty() {
            let merged = merged.into_iter().map(|(gone, kept)| (label(gone), label(kept))).collect();
            outbox.push(ServerMessage::SpeakerUpdate { segments: relabelled, merged });
        }
        self.pending.insert(segment_id, members);
        turns
    }

    /// Remembers the parts of a final labelled by [`Self::label`], `offset` seconds into the
    /// stream, with the turns their words fell in.
    pub fn sent(&mut self, segments: &[Segment], offset: f64) {
        let Some(members) = segments.first().and_then(|s| self.pending.remove(&s.segment_id)) else { return };
        for segment in segments {
            let Some(speaker) = segment.speaker.as_deref().and_then(speaker_id) else { continue };
            let mut votes: Vec<(u64, usize)> = Vec::new();
            for word in &segment.words {
                let sample = seconds_to_samples(word.middle() - offset);
                let Some(m) = members.iter().find(|m| m.start <= sample && sample < m.end) else { continue };
                match votes.iter_mut().find(|(id, _)| *id == m.member) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((m.member, 1)),
                }
            }
            self.remember(SentPart { segment_id: segment.segment_id, part: segment.part, speaker, votes });
        }
    }

    /// Speakers that arrived after the final went out unlabelled: label it now.
    pub fn late(&mut self, segment_id: u64, turns: &[EmbeddedTurn], outbox: &mut Vec<ServerMessage>) {
        let labelled = self.label(segment_id, turns, outbox);
        let members = self.pending.remove(&segment_id).unwrap_or_default();
        if let Some(speaker) = dominant_speaker(&labelled) {
            let segments = vec![SpeakerLabel { segment_id, part: 0, speaker: label(speaker) }];
            outbox.push(ServerMessage::SpeakerUpdate { segments, merged: BTreeMap::new() });
            let votes = members.iter().map(|m| (m.member, m.end - m.start)).collect();
            self.remember(SentPart { segment_id, part: 0, speaker, votes });
        }
    }

    fn remember(&mut self, part: SentPart) {
        if self.sent.len() == REMEMBERED_PARTS {
            self.sent.pop_front();
        }
        self.sent.push_back(part);
    }

    /// The parts sent as the split speaker whose words lie mostly in moved turns.
    fn relabel(&mut self, split: &Split) -> Vec<SpeakerLabel> {
        let (mut labels, tracker) = (Vec::new(), &self.tracker);
        for part in self.sent.iter_mut().filter(|p| tracker.resolve(p.speaker) == split.from) {
            let total: usize = part.votes.iter().map(|(_, n)| n).sum();
            let moved: usize = part.votes.iter().filter(|(id, _)| split.members.contains(id)).map(|(_, n)| n).sum();
            if moved * 2 > total {
                part.speaker = split.to;
                labels.push(SpeakerLabel { segment_id: part.segment_id, part: part.part, speaker: label(split.to) });
            }
        }
        labels
    }
}

/// The speaker id of a label (`S3` is 2): the inverse of [`label`].
fn speaker_id(label: &str) -> Option<usize> {
    label.strip_prefix('S')?.parse::<usize>().ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Transcript, Word, SAMPLE_RATE};
    use crate::speaker::attribution::to_segments;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// A reliable turn from `from` to `to` seconds of its clip.
    fn turn(from: usize, to: usize, voice: &[f32]) -> EmbeddedTurn {
        let rate = SAMPLE_RATE as usize;
        let (start, end) = (from * rate, to * rate);
        EmbeddedTurn {
            start,
            end,
            embedding: Some(unit(voice)),
            reliable: true,
            narrowband: false,
            embedded: end - start,
        }
    }

    /// Labels and sends utterance `id` (10 s into the stream per id), one word per turn;
    /// returns the speakers of its parts and the messages sent before them.
    fn utterance(speakers: &mut SessionSpeakers, id: u64, turns: &[EmbeddedTurn]) -> (Vec<String>, Vec<ServerMessage>) {
        let mut outbox = Vec::new();
        let labelled = speakers.label(id, turns, &mut outbox);
        let words = turns
            .iter()
            .map(|t| Word {
                word: "word".into(),
                start: t.start as f64 / 16_000.0,
                end: t.end as f64 / 16_000.0,
                probability: 0.9,
            })
            .collect();
        let transcript = Transcript { text: "word".into(), words, language: "en".into(), ..Default::default() };
        let offset = 10.0 * id as f64;
        let segments = to_segments(id, &transcript, Some(&labelled), turns.last().map_or(0, |t| t.end), offset);
        speakers.sent(&segments, offset);
        (segments.into_iter().filter_map(|s| s.speaker).collect(), outbox)
    }

    #[test]
    fn parts_already_sent_follow_a_split_speaker_in_a_speaker_update() {
        let (mix, first, second) = ([1.0, 0.9, 0.5], [1.0, 0.0, 0.5], [0.0, 1.0, 0.5]);
        let mut speakers = SessionSpeakers::new(ClusterConfig::default());
        let (labels, _) = utterance(&mut speakers, 0, &[turn(0, 6, &mix), turn(6, 9, &first)]);
        assert_eq!(labels, ["S1"]);
        let (labels, _) = utterance(&mut speakers, 1, &[turn(0, 3, &second)]);
        assert_eq!(labels, ["S1"], "the second voice joins the mixed speaker");
        assert_eq!(utterance(&mut speakers, 2, &[turn(0, 3, &first)]).0, ["S1"]);
        // Its second turn makes the second voice a group of its own: the final is labelled with
        // the new speaker, and the first final of that voice is relabelled before it.
        let (labels, sent) = utterance(&mut speakers, 3, &[turn(0, 3, &second)]);
        assert_eq!(labels, ["S2"]);
        let expected = SpeakerLabel { segment_id: 1, part: 0, speaker: "S2".into() };
        assert!(
            matches!(&sent[..], [ServerMessage::SpeakerUpdate { segments, merged }] if segments == &[expected] && merged.is_empty()),
            "{sent:?}"
        );
    }

    #[test]
    fn speaker_ids_read_back_from_labels() {
        assert_eq!(speaker_id(&label(2)), Some(2));
        assert_eq!(speaker_id("S0"), None);
        assert_eq!(speaker_id("x1"), None);
    }
}

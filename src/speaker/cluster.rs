//! Online speaker clustering for one session: ids never change once sent; when two clusters
//! turn out to be one speaker, the later id is merged into the earlier and the merge reported.

use serde::{Deserialize, Serialize};

use super::campplus::cosine;

/// Clustering settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cosine similarity to a centroid needed to join it.
    pub threshold: f32,
    /// The same for telephone-band audio, whose voices sound more alike to the embedding
    /// model (docs/BENCHMARKS.md: at 0.5 the 8 kHz call came out as one speaker).
    pub narrowband_threshold: f32,
    /// How much less similarity a short embedding needs: all of this at 1.5 s of audio or less,
    /// none at 3 s (the longest, `diarization.max_embed_ms`), linearly between. Same-speaker
    /// embeddings of 1.5 s are much less alike than of 3 s (docs/BENCHMARKS.md).
    pub short_slack: f32,
    /// Two centroids this similar are one speaker.
    pub merge_threshold: f32,
    pub max_speakers: usize,
    pub min_speakers: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            threshold: 0.50,
            narrowband_threshold: 0.55,
            short_slack: 0.05,
            merge_threshold: 0.70,
            max_speakers: 8,
            min_speakers: 1,
        }
    }
}

/// Seconds of audio at and under which an embedding gets all of `short_slack`, and at and over
/// which it gets none.
const SHORT_SPAN: f32 = 1.5;
const FULL_SPAN: f32 = 3.0;

/// What one embedding stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Seconds of the turn it labels: its weight in the centroid.
    pub weight: f32,
    /// Long enough to open a speaker and move a centroid.
    pub reliable: bool,
    /// Telephone-band audio, judged by `narrowband_threshold`.
    pub narrowband: bool,
    /// Seconds of audio the embedding was computed from.
    pub span: f32,
}

/// A speaker label as clients see it: `S1`, `S2`, ...
pub fn label(id: usize) -> String {
    format!("S{}", id + 1)
}

struct Centroid {
    sum: Vec<f32>,
    /// Set once merged into another speaker.
    merged_into: Option<usize>,
    /// Whether a reliable (long enough) embedding has been assigned to this speaker. A speaker
    /// opened by short turns only (the stream began with them) is provisional: its centroid is
    /// one loose embedding, so the first reliable voice replaces it.
    established: bool,
}

impl Centroid {
    fn direction(&self) -> Vec<f32> {
        let norm = self.sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        self.sum.iter().map(|x| x / norm).collect()
    }
}

/// The result of one assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub speaker: usize,
    /// Merges this assignment caused: (merged id, surviving id).
    pub merged: Vec<(usize, usize)>,
}

pub struct SpeakerTracker {
    config: ClusterConfig,
    centroids: Vec<Centroid>,
}

impl SpeakerTracker {
    pub fn new(config: ClusterConfig) -> Self {
        Self { config, centroids: Vec::new() }
    }

    /// Speakers still standing (not merged away).
    pub fn active(&self) -> usize {
        self.centroids.iter().filter(|c| c.merged_into.is_none()).count()
    }

    /// Follows merges to the speaker an id now belongs to.
    pub fn resolve(&self, mut id: usize) -> usize {
        while let Some(next) = self.centroids.get(id).and_then(|c| c.merged_into) {
            id = next;
        }
        id
    }

    /// Assigns an embedding. A `reliable` one (long enough) may open a new speaker and moves
    /// its centroid; an unreliable one is only labelled with the nearest speaker (it opens one
    /// only when there is none yet, provisionally). A reliable embedding like no speaker takes
    /// over a provisional one rather than open another.
    pub fn assign(&mut self, embedding: &[f32], evidence: Evidence) -> Assignment {
        let Evidence { weight, reliable, narrowband, span } = evidence;
        let best = self.nearest(embedding);
        let short = self.config.short_slack * ((FULL_SPAN - span) / (FULL_SPAN - SHORT_SPAN)).clamp(0.0, 1.0);
        let needed = match (self.active() < self.config.min_speakers, narrowband) {
            (true, _) => self.config.merge_threshold,
            (false, true) => self.config.narrowband_threshold - short,
            (false, false) => self.config.threshold - short,
        };
        let speaker = match best {
            Some((id, sim)) if sim >= needed || !reliable || self.active() >= self.config.max_speakers => id,
            _ => self.provisional().unwrap_or_else(|| self.open(embedding.len())),
        };
        // Every decision with its evidence: how the live speakers are read when a count is off.
        tracing::debug!(weight, reliable, narrowband, span, nearest = ?best, needed, speaker, "speaker assigned");
        let centroid = &mut self.centroids[speaker];
        if reliable && !centroid.established {
            centroid.sum.iter_mut().for_each(|s| *s = 0.0);
            centroid.established = true;
        }
        if reliable || centroid.sum.iter().all(|&s| s == 0.0) {
            centroid.sum.iter_mut().zip(embedding).for_each(|(s, e)| *s += e * weight.max(0.1));
        }
        Assignment { speaker, merged: self.merge_close() }
    }

    /// A standing speaker opened by short turns only, if any.
    fn provisional(&self) -> Option<usize> {
        self.centroids.iter().position(|c| c.merged_into.is_none() && !c.established)
    }

    fn open(&mut self, dimensions: usize) -> usize {
        self.centroids.push(Centroid { sum: vec![0.0; dimensions], merged_into: None, established: false });
        self.centroids.len() - 1
    }

    /// The standing speaker nearest to `embedding`, without assigning it.
    pub fn nearest_speaker(&self, embedding: &[f32]) -> Option<usize> {
        self.nearest(embedding).map(|(id, _)| id)
    }

    fn nearest(&self, embedding: &[f32]) -> Option<(usize, f32)> {
        let live = self.centroids.iter().enumerate().filter(|(_, c)| c.merged_into.is_none());
        live.map(|(id, c)| (id, cosine(&c.direction(), embedding))).max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn merge_close(&mut self) -> Vec<(usize, usize)> {
        let mut merged = Vec::new();
        loop {
            let live: Vec<usize> =
                (0..self.centroids.len()).filter(|&i| self.centroids[i].merged_into.is_none()).collect();
            let dirs: Vec<Vec<f32>> = live.iter().map(|&i| self.centroids[i].direction()).collect();
            let pair = (0..live.len())
                .flat_map(|a| (a + 1..live.len()).map(move |b| (a, b)))
                .find(|&(a, b)| cosine(&dirs[a], &dirs[b]) >= self.config.merge_threshold);
            let Some((a, b)) = pair else { return merged };
            let (keep, gone) = (live[a], live[b]);
            let sum = std::mem::take(&mut self.centroids[gone].sum);
            self.centroids[keep].sum.iter_mut().zip(&sum).for_each(|(k, g)| *k += g);
            self.centroids[keep].established |= self.centroids[gone].established;
            self.centroids[gone].merged_into = Some(keep);
            merged.push((gone, keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evidence from a full-length (3 s) embedding.
    fn ev(weight: f32, reliable: bool, narrowband: bool) -> Evidence {
        Evidence { weight, reliable, narrowband, span: FULL_SPAN }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn telephone_band_voices_need_more_similarity_to_be_one_speaker() {
        // cos 0.52: one speaker in wide band (0.5), two in the phone band (0.55).
        let (first, second) = (unit(&[1.0, 0.0]), unit(&[0.52, 0.854]));
        for (narrowband, speakers) in [(false, 1), (true, 2)] {
            let mut t = SpeakerTracker::new(ClusterConfig::default());
            t.assign(&first, ev(2.0, true, narrowband));
            t.assign(&second, ev(2.0, true, narrowband));
            assert_eq!(t.active(), speakers, "narrowband {narrowband}");
        }
    }

    #[test]
    fn a_short_embedding_needs_less_similarity_to_join() {
        // cos 0.47: under the 0.5 a 3 s embedding needs, over the 0.45 a 1.5 s one needs.
        let (first, second) = (unit(&[1.0, 0.0]), unit(&[0.47, 0.883]));
        for (span, speakers) in [(FULL_SPAN, 2), (2.25, 2), (SHORT_SPAN, 1), (1.0, 1)] {
            let mut t = SpeakerTracker::new(ClusterConfig::default());
            t.assign(&first, ev(3.0, true, false));
            t.assign(&second, Evidence { span, ..ev(1.5, true, false) });
            assert_eq!(t.active(), speakers, "span {span}");
        }
    }

    #[test]
    fn the_first_reliable_voice_takes_over_a_speaker_opened_by_short_turns() {
        let mut t = SpeakerTracker::new(ClusterConfig::default());
        assert_eq!(t.assign(&unit(&[1.0, 0.0, 0.0]), ev(0.7, false, false)).speaker, 0, "provisional");
        assert_eq!(t.assign(&unit(&[0.0, 1.0, 0.0]), ev(2.0, true, false)).speaker, 0, "taken over");
        // The centroid is now the reliable voice alone: like it joins, the short turn's voice
        // opens a speaker of its own.
        assert_eq!(t.assign(&unit(&[0.1, 1.0, 0.0]), ev(2.0, true, false)).speaker, 0);
        assert_eq!(t.assign(&unit(&[1.0, 0.0, 0.1]), ev(2.0, true, false)).speaker, 1);
        // Established speakers are never taken over.
        assert_eq!(t.assign(&unit(&[0.0, 0.0, 1.0]), ev(2.0, true, false)).speaker, 2);
        assert_eq!(t.active(), 3);
    }

    #[test]
    fn similar_embeddings_share_a_speaker_and_different_ones_do_not() {
        let mut t = SpeakerTracker::new(ClusterConfig::default());
        assert_eq!(t.assign(&unit(&[1.0, 0.1, 0.0]), ev(2.0, true, false)).speaker, 0);
        assert_eq!(t.assign(&unit(&[0.9, 0.2, 0.0]), ev(2.0, true, false)).speaker, 0);
        assert_eq!(t.assign(&unit(&[0.0, 0.1, 1.0]), ev(2.0, true, false)).speaker, 1);
        // Unreliable (short) embeddings never open a speaker: this one is below the threshold
        // for both (0.38 to speaker 1, 0.15 to speaker 0) and joins the nearer.
        assert_eq!(t.assign(&unit(&[0.0, 1.0, 0.3]), ev(0.3, false, false)).speaker, 1);
        assert_eq!(t.active(), 2);
        assert_eq!(label(1), "S2");
    }

    #[test]
    fn max_speakers_caps_new_ids() {
        let config = ClusterConfig { max_speakers: 2, ..Default::default() };
        let mut t = SpeakerTracker::new(config);
        t.assign(&unit(&[1.0, 0.0, 0.0]), ev(1.0, true, false));
        t.assign(&unit(&[0.0, 1.0, 0.0]), ev(1.0, true, false));
        assert!(t.assign(&unit(&[0.0, 0.0, 1.0]), ev(1.0, true, false)).speaker < 2);
        assert_eq!(t.active(), 2);
    }

    #[test]
    fn clusters_that_converge_are_merged_and_reported() {
        let config = ClusterConfig { threshold: 0.9, merge_threshold: 0.8, ..Default::default() };
        let mut t = SpeakerTracker::new(config);
        t.assign(&unit(&[1.0, 0.0]), ev(1.0, true, false));
        // cos 0.64: a new speaker.
        assert_eq!(t.assign(&unit(&[0.5, 0.6]), ev(1.0, true, false)).speaker, 1);
        // Evidence for speaker 1 that lies towards speaker 0 pulls the two together (cos 0.82).
        let a = t.assign(&unit(&[0.85, 0.53]), ev(5.0, true, false));
        assert_eq!(a.speaker, 1);
        let merges: Vec<_> = a.merged.clone();
        assert_eq!(merges, vec![(1, 0)], "{a:?}");
        assert_eq!(t.resolve(1), 0);
        assert_eq!(t.active(), 1);
    }
}

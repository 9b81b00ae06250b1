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
    /// Two centroids this similar are one speaker.
    pub merge_threshold: f32,
    pub max_speakers: usize,
    pub min_speakers: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { threshold: 0.50, narrowband_threshold: 0.55, merge_threshold: 0.70, max_speakers: 8, min_speakers: 1 }
    }
}

/// A speaker label as clients see it: `S1`, `S2`, ...
pub fn label(id: usize) -> String {
    format!("S{}", id + 1)
}

struct Centroid {
    sum: Vec<f32>,
    /// Set once merged into another speaker.
    merged_into: Option<usize>,
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

    /// Assigns an embedding. `weight` is its duration in seconds; a `reliable` embedding (long
    /// enough) may open a new speaker and moves its centroid; an unreliable one is only labelled
    /// with the nearest speaker (it opens one only when there is none yet).
    pub fn assign(&mut self, embedding: &[f32], weight: f32, reliable: bool, narrowband: bool) -> Assignment {
        let best = self.nearest(embedding);
        let needed = match (self.active() < self.config.min_speakers, narrowband) {
            (true, _) => self.config.merge_threshold,
            (false, true) => self.config.narrowband_threshold,
            (false, false) => self.config.threshold,
        };
        let speaker = match best {
            Some((id, sim)) if sim >= needed || !reliable || self.active() >= self.config.max_speakers => id,
            _ => {
                self.centroids.push(Centroid { sum: vec![0.0; embedding.len()], merged_into: None });
                self.centroids.len() - 1
            }
        };
        let centroid = &mut self.centroids[speaker];
        if reliable || centroid.sum.iter().all(|&s| s == 0.0) {
            centroid.sum.iter_mut().zip(embedding).for_each(|(s, e)| *s += e * weight.max(0.1));
        }
        Assignment { speaker, merged: self.merge_close() }
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
            self.centroids[gone].merged_into = Some(keep);
            merged.push((gone, keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            t.assign(&first, 2.0, true, narrowband);
            t.assign(&second, 2.0, true, narrowband);
            assert_eq!(t.active(), speakers, "narrowband {narrowband}");
        }
    }

    #[test]
    fn similar_embeddings_share_a_speaker_and_different_ones_do_not() {
        let mut t = SpeakerTracker::new(ClusterConfig::default());
        assert_eq!(t.assign(&unit(&[1.0, 0.1, 0.0]), 2.0, true, false).speaker, 0);
        assert_eq!(t.assign(&unit(&[0.9, 0.2, 0.0]), 2.0, true, false).speaker, 0);
        assert_eq!(t.assign(&unit(&[0.0, 0.1, 1.0]), 2.0, true, false).speaker, 1);
        // Unreliable (short) embeddings never open a speaker: this one is below the threshold
        // for both (0.38 to speaker 1, 0.15 to speaker 0) and joins the nearer.
        assert_eq!(t.assign(&unit(&[0.0, 1.0, 0.3]), 0.3, false, false).speaker, 1);
        assert_eq!(t.active(), 2);
        assert_eq!(label(1), "S2");
    }

    #[test]
    fn max_speakers_caps_new_ids() {
        let config = ClusterConfig { max_speakers: 2, ..Default::default() };
        let mut t = SpeakerTracker::new(config);
        t.assign(&unit(&[1.0, 0.0, 0.0]), 1.0, true, false);
        t.assign(&unit(&[0.0, 1.0, 0.0]), 1.0, true, false);
        assert!(t.assign(&unit(&[0.0, 0.0, 1.0]), 1.0, true, false).speaker < 2);
        assert_eq!(t.active(), 2);
    }

    #[test]
    fn clusters_that_converge_are_merged_and_reported() {
        let config = ClusterConfig { threshold: 0.9, merge_threshold: 0.8, ..Default::default() };
        let mut t = SpeakerTracker::new(config);
        t.assign(&unit(&[1.0, 0.0]), 1.0, true, false);
        assert_eq!(t.assign(&unit(&[0.5, 0.6]), 1.0, true, false).speaker, 1); // cos 0.64: new
                                                                               // Evidence for speaker 1 that lies towards speaker 0 pulls the two together (cos 0.82).
        let a = t.assign(&unit(&[0.85, 0.53]), 5.0, true, false);
        assert_eq!(a.speaker, 1);
        let merges: Vec<_> = a.merged.clone();
        assert_eq!(merges, vec![(1, 0)], "{a:?}");
        assert_eq!(t.resolve(1), 0);
        assert_eq!(t.active(), 1);
    }
}

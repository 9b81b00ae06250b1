//! Diarization error rate, scored the standard way: time within `collar` seconds of a reference
//! turn boundary is not scored; overlapping speech counts once per speaker; hypothesis speakers
//! are mapped one-to-one onto reference speakers so as to maximise the time they agree.

use std::collections::BTreeMap;

use super::rttm::Turn;

/// Scoring resolution in seconds.
const STEP: f64 = 0.01;

/// The parts of the error, in seconds of reference speaker time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DerReport {
    pub total: f64,
    pub missed: f64,
    pub false_alarm: f64,
    pub confusion: f64,
}

impl DerReport {
    pub fn der(&self) -> f64 {
        if self.total == 0.0 {
            return 0.0;
        }
        (self.missed + self.false_alarm + self.confusion) / self.total
    }
}

fn speaker_ids(turns: &[Turn]) -> BTreeMap<&str, usize> {
    let mut ids = BTreeMap::new();
    for t in turns {
        let next = ids.len();
        ids.entry(t.speaker.as_str()).or_insert(next);
    }
    ids
}

/// Active speaker ids per grid step.
fn grid(turns: &[Turn], ids: &BTreeMap<&str, usize>, n_steps: usize) -> Vec<Vec<usize>> {
    let mut active = vec![Vec::new(); n_steps];
    for t in turns {
        let (a, b) = ((t.start / STEP).round() as usize, ((t.end / STEP).round() as usize).min(n_steps));
        for cell in &mut active[a.min(n_steps)..b] {
            let id = ids[t.speaker.as_str()];
            if !cell.contains(&id) {
                cell.push(id);
            }
        }
    }
    active
}

/// Scores `hypothesis` against `reference`.
pub fn score(reference: &[Turn], hypothesis: &[Turn], collar: f64) -> DerReport {
    let end = reference.iter().chain(hypothesis).map(|t| t.end).fold(0.0, f64::max);
    let n = (end / STEP).ceil() as usize + 1;
    let (ref_ids, hyp_ids) = (speaker_ids(reference), speaker_ids(hypothesis));
    let (r, h) = (grid(reference, &ref_ids, n), grid(hypothesis, &hyp_ids, n));
    let mut scored = vec![true; n];
    for t in reference {
        for edge in [t.start, t.end] {
            let (a, b) =
                (((edge - collar) / STEP).round().max(0.0) as usize, ((edge + collar) / STEP).round() as usize);
            scored[a.min(n)..b.min(n)].iter_mut().for_each(|s| *s = false);
        }
    }
    let mut overlap = vec![vec![0usize; ref_ids.len()]; hyp_ids.len()];
    for i in (0..n).filter(|&i| scored[i]) {
        for &hs in &h[i] {
            for &rs in &r[i] {
                overlap[hs][rs] += 1;
            }
        }
    }
    let mapping = best_mapping(&overlap);
    let mut report = DerReport::default();
    for i in (0..n).filter(|&i| scored[i]) {
        let (nr, nh) = (r[i].len(), h[i].len());
        let correct = h[i].iter().filter(|&&hs| mapping[hs].is_some_and(|rs| r[i].contains(&rs))).count();
        report.total += nr as f64 * STEP;
        report.missed += nr.saturating_sub(nh) as f64 * STEP;
        report.false_alarm += nh.saturating_sub(nr) as f64 * STEP;
        report.confusion += (nr.min(nh) - correct.min(nr.min(nh))) as f64 * STEP;
    }
    report
}

/// The one-to-one map of hypothesis to reference speakers with the most agreement (exhaustive
/// search; speaker counts here are small).
fn best_mapping(overlap: &[Vec<usize>]) -> Vec<Option<usize>> {
    fn search(
        h: usize,
        overlap: &[Vec<usize>],
        used: &mut Vec<bool>,
        current: &mut Vec<Option<usize>>,
        best: &mut (usize, Vec<Option<usize>>),
        score: usize,
    ) {
        if h == overlap.len() {
            if score > best.0 || best.1.is_empty() {
                *best = (score, current.clone());
            }
            return;
        }
        current.push(None);
        search(h + 1, overlap, used, current, best, score);
        current.pop();
        for r in 0..used.len() {
            if !used[r] && overlap[h][r] > 0 {
                used[r] = true;
                current.push(Some(r));
                search(h + 1, overlap, used, current, best, score + overlap[h][r]);
                current.pop();
                used[r] = false;
            }
        }
    }
    let n_ref = overlap.first().map_or(0, Vec::len);
    let mut best = (0, Vec::new());
    search(0, overlap, &mut vec![false; n_ref], &mut Vec::new(), &mut best, 0);
    if best.1.is_empty() {
        best.1 = vec![None; overlap.len()];
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: &str) -> Turn {
        Turn { start, end, speaker: speaker.into() }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.02
    }

    #[test]
    fn perfect_hypothesis_with_other_names_scores_zero() {
        let reference = [t(0.0, 5.0, "A"), t(5.0, 10.0, "B")];
        let hypothesis = [t(0.0, 5.0, "S2"), t(5.0, 10.0, "S1")];
        assert_eq!(score(&reference, &hypothesis, 0.0).der(), 0.0);
    }

    #[test]
    fn missed_false_alarm_and_confusion_are_separate() {
        let reference = [t(0.0, 4.0, "A"), t(4.0, 8.0, "B")];
        // A is found from 1 s, B is labelled A from 6 s, and there is speech at 9-10 s.
        let hypothesis = [t(1.0, 4.0, "x"), t(4.0, 6.0, "y"), t(6.0, 8.0, "x"), t(9.0, 10.0, "y")];
        let r = score(&reference, &hypothesis, 0.0);
        assert!(
            close(r.total, 8.0) && close(r.missed, 1.0) && close(r.false_alarm, 1.0) && close(r.confusion, 2.0),
            "{r:?}"
        );
        assert!(close(r.der(), 0.5));
    }

    #[test]
    fn overlap_counts_per_speaker_and_the_collar_is_not_scored() {
        let reference = [t(0.0, 6.0, "A"), t(4.0, 10.0, "B")];
        let hypothesis = [t(0.0, 10.0, "x")];
        // Without a collar: 12 s of reference speech, B missed in the overlap (2 s), and B's
        // 6 s either confused (4 s outside the overlap) or missed.
        let r = score(&reference, &hypothesis, 0.0);
        assert!(close(r.total, 12.0) && close(r.missed, 2.0) && close(r.confusion, 4.0), "{r:?}");
        // A 0.5 s collar around the boundaries at 0, 4, 6 and 10 s leaves 8 s of reference time:
        // 0.5 + 1.5 + 1.5 + 0.5 s of speaker time are not scored.
        let r = score(&reference, &hypothesis, 0.5);
        assert!(close(r.total, 8.0), "{r:?}");
    }
}

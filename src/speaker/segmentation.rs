//! pyannote segmentation-3.0 (ONNX) through ONNX Runtime: who of up to three local speakers is
//! active in each ~17 ms frame of a 10 s window, then turns within an utterance.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use crate::onnx::{self, OnnxError};

/// The model's window: 10 s at 16 kHz.
pub const WINDOW: usize = 160_000;
/// Output frames per window and their step in samples.
const FRAMES: usize = 589;
pub const FRAME_STEP: usize = 270;
/// Powerset classes: none, s1, s2, s3, s1+s2, s1+s3, s2+s3.
const CLASS_SPEAKERS: [&[usize]; 7] = [&[], &[0], &[1], &[2], &[0, 1], &[0, 2], &[1, 2]];

/// Per-frame probability of each local speaker, and of no speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameActivity {
    pub none: f32,
    pub speakers: [f32; 3],
}

pub struct Segmentation {
    session: Session,
}

impl Segmentation {
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        Self::load_on(path, None)
    }

    /// On CUDA device `gpu` when given (ONNX Runtime's CUDA provider), else the CPU.
    pub fn load_on(path: &Path, gpu: Option<usize>) -> Result<Self, OnnxError> {
        let bytes = onnx::read_model(path)?;
        Ok(Self { session: onnx::session_on(&bytes, 1, gpu)? })
    }

    /// Activity over `samples`, window by window (the last window padded with silence); frames
    /// past the end of the audio are dropped. Local speaker indices are per window.
    pub fn activity(&mut self, samples: &[f32]) -> Result<Vec<Vec<FrameActivity>>, OnnxError> {
        let mut windows = Vec::new();
        for chunk in samples.chunks(WINDOW) {
            let mut input = chunk.to_vec();
            input.resize(WINDOW, 0.0);
            let tensor = Tensor::from_array(([1usize, 1, WINDOW], input))?;
            let outputs = self.session.run(ort::inputs![tensor])?;
            let (_, logp) = outputs[0].try_extract_tensor::<f32>()?;
            let n_frames = (chunk.len().div_ceil(FRAME_STEP)).min(FRAMES);
            windows.push(logp.chunks_exact(7).take(n_frames).map(frame_activity).collect());
        }
        Ok(windows)
    }
}

fn frame_activity(log_probs: &[f32]) -> FrameActivity {
    let mut speakers = [0f32; 3];
    for (class, members) in CLASS_SPEAKERS.iter().enumerate() {
        let p = log_probs[class].exp();
        members.iter().for_each(|&s| speakers[s] += p);
    }
    FrameActivity { none: log_probs[0].exp(), speakers }
}

/// A stretch of one local speaker, in samples relative to the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTurn {
    pub start: usize,
    pub end: usize,
    pub local_speaker: usize,
}

/// Turns of the dominant speaker per frame, covering `[offset, offset + n_frames * step)`.
/// Frames without speech continue the current turn; turns shorter than `min_turn` samples are
/// absorbed by their neighbour (speaker changes that short are more often noise than turns).
pub fn dominant_turns(frames: &[FrameActivity], offset: usize, min_turn: usize) -> Vec<LocalTurn> {
    let mut turns: Vec<LocalTurn> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let start = offset + i * FRAME_STEP;
        let end = start + FRAME_STEP;
        let dominant = (0..3).max_by(|&a, &b| f.speakers[a].total_cmp(&f.speakers[b])).unwrap_or(0);
        match turns.last_mut() {
            Some(last) if f.none >= 0.5 || last.local_speaker == dominant => last.end = end,
            _ => turns.push(LocalTurn { start, end, local_speaker: dominant }),
        }
    }
    absorb_short(turns, min_turn)
}

/// Where local `speaker`, active at sample `at` of the window (`frames` from its start), stops
/// being active (probability under one half), at most `max` samples later: the end of an
/// overlap at a change of speaker.
pub fn overlap_end(frames: &[FrameActivity], at: usize, speaker: usize, max: usize) -> usize {
    let first = at / FRAME_STEP;
    let active = frames.iter().skip(first).take(max / FRAME_STEP).take_while(|f| f.speakers[speaker] >= 0.5).count();
    at + active * FRAME_STEP
}

fn absorb_short(turns: Vec<LocalTurn>, min_turn: usize) -> Vec<LocalTurn> {
    let mut out: Vec<LocalTurn> = Vec::with_capacity(turns.len());
    for turn in turns {
        match out.last_mut() {
            Some(last) if last.local_speaker == turn.local_speaker || turn.end - turn.start < min_turn => {
                last.end = turn.end
            }
            Some(last) if last.end - last.start < min_turn => {
                *last = LocalTurn { start: last.start, ..turn };
            }
            _ => out.push(turn),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(pattern: &[(usize, usize)]) -> Vec<FrameActivity> {
        pattern
            .iter()
            .flat_map(|&(speaker, n)| {
                let mut speakers = [0.0; 3];
                let none = if speaker == 9 { 0.9 } else { 0.05 };
                if speaker < 3 {
                    speakers[speaker] = 0.9;
                }
                std::iter::repeat_n(FrameActivity { none, speakers }, n)
            })
            .collect()
    }

    #[test]
    fn speaker_change_splits_and_blips_are_absorbed() {
        // Speaker 0 for 60 frames, a 3-frame blip of 1, silence, then speaker 1 for 60 frames.
        let f = frames(&[(0, 60), (1, 3), (9, 10), (1, 60)]);
        let turns = dominant_turns(&f, 1000, 30 * FRAME_STEP);
        assert_eq!(turns.len(), 2, "{turns:?}");
        assert_eq!((turns[0].local_speaker, turns[1].local_speaker), (0, 1));
        assert_eq!(turns[0].start, 1000);
        assert_eq!(turns[1].end, 1000 + 133 * FRAME_STEP);
        assert_eq!(turns[0].end, turns[1].start, "turns tile the clip");
    }

    #[test]
    fn a_short_first_turn_takes_the_next_speaker() {
        let turns = dominant_turns(&frames(&[(2, 5), (0, 80)]), 0, 30 * FRAME_STEP);
        assert_eq!(turns, vec![LocalTurn { start: 0, end: 85 * FRAME_STEP, local_speaker: 0 }]);
    }

    #[test]
    fn an_overlap_ends_where_the_first_speaker_stops() {
        // Speaker 0 alone for 20 frames, both for 10, then speaker 1 alone.
        let mut f = frames(&[(0, 30), (1, 30)]);
        f[20..30].iter_mut().for_each(|frame| frame.speakers[1] = 0.9);
        let change = 20 * FRAME_STEP;
        assert_eq!(overlap_end(&f, change, 0, 20 * FRAME_STEP), 30 * FRAME_STEP);
        assert_eq!(overlap_end(&f, change, 0, 4 * FRAME_STEP), 24 * FRAME_STEP, "moved at most `max`");
        assert_eq!(overlap_end(&f, 30 * FRAME_STEP, 0, 20 * FRAME_STEP), 30 * FRAME_STEP, "no overlap");
    }
}

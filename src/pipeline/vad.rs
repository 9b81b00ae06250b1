//! Silero VAD (v6, ONNX) through ONNX Runtime, and a framer that feeds it 32 ms frames.

use std::path::Path;
use std::sync::Arc;

use ort::session::Session;
use ort::value::Tensor;

use super::FRAME_SAMPLES;
use crate::engine::onnx::{self, OnnxError};

/// Samples of the previous frame that Silero v5/v6 expects in front of each new frame.
const CONTEXT_SAMPLES: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// The Silero model bytes, loaded once and shared by every session's VAD.
#[derive(Clone)]
pub struct VadModel {
    bytes: Arc<Vec<u8>>,
}

impl VadModel {
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|e| OnnxError::Load(format!("{}: {e}", path.display())))?;
        Ok(Self { bytes: Arc::new(bytes) })
    }

    /// A fresh detector with its own recurrent state (and its own single-threaded ORT session).
    pub fn detector(&self) -> Result<SileroVad, OnnxError> {
        let session = onnx::session_from_memory(&self.bytes, 1)?;
        Ok(SileroVad { session, state: vec![0.0; STATE_LEN], context: [0.0; CONTEXT_SAMPLES] })
    }
}

/// One stream's Silero VAD: frame in, speech probability out.
pub struct SileroVad {
    session: Session,
    state: Vec<f32>,
    context: [f32; CONTEXT_SAMPLES],
}

impl SileroVad {
    /// The probability that the 32 ms `frame` (512 samples at 16 kHz) holds speech.
    pub fn probability(&mut self, frame: &[f32]) -> Result<f32, OnnxError> {
        debug_assert_eq!(frame.len(), FRAME_SAMPLES);
        let mut input = Vec::with_capacity(CONTEXT_SAMPLES + FRAME_SAMPLES);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(frame);
        self.context.copy_from_slice(&frame[FRAME_SAMPLES - CONTEXT_SAMPLES..]);
        let input = Tensor::from_array(([1usize, CONTEXT_SAMPLES + FRAME_SAMPLES], input)).map_err(OnnxError::run)?;
        let state = Tensor::from_array(([2usize, 1, 128], std::mem::take(&mut self.state))).map_err(OnnxError::run)?;
        let sr = Tensor::from_array(ndarray::arr0(16_000i64)).map_err(OnnxError::run)?;
        let outputs =
            self.session.run(ort::inputs!["input" => input, "state" => state, "sr" => sr]).map_err(OnnxError::run)?;
        let (_, prob) = outputs["output"].try_extract_tensor::<f32>().map_err(OnnxError::run)?;
        let prob = prob[0];
        let (_, new_state) = outputs["stateN"].try_extract_tensor::<f32>().map_err(OnnxError::run)?;
        self.state = new_state.to_vec();
        Ok(prob)
    }
}

/// Cuts a stream of samples into whole frames and scores each.
pub struct VadFramer {
    vad: SileroVad,
    pending: Vec<f32>,
}

/// A scored frame: its samples and its speech probability.
pub struct ScoredFrame {
    pub samples: Vec<f32>,
    pub probability: f32,
}

impl VadFramer {
    pub fn new(vad: SileroVad) -> Self {
        Self { vad, pending: Vec::with_capacity(FRAME_SAMPLES * 2) }
    }

    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<ScoredFrame>, OnnxError> {
        self.pending.extend_from_slice(samples);
        let n_frames = self.pending.len() / FRAME_SAMPLES;
        let mut frames = Vec::with_capacity(n_frames);
        for chunk in self.pending.chunks_exact(FRAME_SAMPLES) {
            let probability = self.vad.probability(chunk)?;
            frames.push(ScoredFrame { samples: chunk.to_vec(), probability });
        }
        self.pending.drain(..n_frames * FRAME_SAMPLES);
        Ok(frames)
    }

    /// Pads the last partial frame with silence so no audio is left unscored.
    pub fn finish(&mut self) -> Result<Vec<ScoredFrame>, OnnxError> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let missing = FRAME_SAMPLES - self.pending.len();
        self.push(&vec![0.0; missing])
    }
}

//! Silero VAD (v6, ONNX) through ONNX Runtime, and a framer that feeds it 32 ms frames.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use super::FRAME_SAMPLES;
use crate::onnx::{self, OnnxError};

/// Samples of the previous frame that Silero v5/v6 expects in front of each new frame.
const CONTEXT_SAMPLES: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// Silero sessions shared by every stream. The model itself is stateless (the recurrent state
/// is an input), so one ONNX Runtime session can score any stream's frame; a small pool lets
/// the runtime's worker threads score frames at once. A session per stream cost about 10 MB.
struct SessionPool {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl SessionPool {
    /// Runs `f` on a free session, or waits for this caller's home session (a frame takes
    /// about 0.1 ms, so the wait is short).
    fn with_session<T>(&self, home: usize, f: impl FnOnce(&mut Session) -> T) -> T {
        let n = self.sessions.len();
        for i in 0..n {
            if let Ok(mut session) = self.sessions[(home + i) % n].try_lock() {
                return f(&mut session);
            }
        }
        let mut session = self.sessions[home % n].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut session)
    }
}

/// The Silero model, loaded once and shared by every session's VAD.
#[derive(Clone)]
pub struct VadModel {
    pool: Arc<SessionPool>,
}

impl VadModel {
    /// Loads `path` into `sessions` ONNX Runtime sessions of one thread each.
    pub fn load(path: &Path, sessions: usize) -> Result<Self, OnnxError> {
        let bytes = onnx::read_model(path)?;
        let sessions = (0..sessions.max(1))
            .map(|_| onnx::session_from_memory(&bytes, 1).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { pool: Arc::new(SessionPool { sessions, next: AtomicUsize::new(0) }) })
    }

    /// A fresh detector with its own recurrent state, scoring on the shared sessions.
    pub fn detector(&self) -> SileroVad {
        let home = self.pool.next.fetch_add(1, Ordering::Relaxed);
        SileroVad { pool: self.pool.clone(), home, state: vec![0.0; STATE_LEN], context: [0.0; CONTEXT_SAMPLES] }
    }
}

/// One stream's Silero VAD: frame in, speech probability out.
pub struct SileroVad {
    pool: Arc<SessionPool>,
    home: usize,
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
        let input = Tensor::from_array(([1usize, CONTEXT_SAMPLES + FRAME_SAMPLES], input))?;
        let state = Tensor::from_array(([2usize, 1, 128], self.state.clone()))?;
        let sr = Tensor::from_array(ndarray::arr0(i64::from(crate::domain::SAMPLE_RATE)))?;
        let (prob, new_state) = self.pool.with_session(self.home, |session| {
            let outputs = session.run(ort::inputs!["input" => input, "state" => state, "sr" => sr])?;
            let (_, prob) = outputs["output"].try_extract_tensor::<f32>()?;
            let (_, new_state) = outputs["stateN"].try_extract_tensor::<f32>()?;
            Ok::<_, OnnxError>((prob[0], new_state.to_vec()))
        })?;
        // The state and context move on only once the frame was scored.
        self.state = new_state;
        self.context.copy_from_slice(&frame[FRAME_SAMPLES - CONTEXT_SAMPLES..]);
        Ok(prob)
    }
}

/// Cuts a stream of samples into whole frames and scores each.
pub struct VadFramer {
    vad: SileroVad,
    pending: Vec<f32>,
}

/// A scored frame: its samples and its speech probability.
#[derive(Debug, Clone, PartialEq)]
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

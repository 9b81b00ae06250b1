//! Engines: threads that own the heavy models. Sessions talk to them through cheap `Clone`
//! handles over bounded queues; the async runtime never runs Whisper.

pub mod asr;
pub mod bias;
pub mod device;
pub mod diarize;
pub mod dtw_guard;
pub mod ggml_threads;
pub mod loops;
pub mod queue;
pub mod stats;
pub mod supervise;
pub mod whisper;

use self::asr::AsrHandle;
use self::device::Placement;
use self::diarize::DiarizeHandle;
use crate::pipeline::vad::VadModel;

/// The loaded models: the ASR engine, the diarization engine (unless disabled) and the VAD
/// model bytes.
#[derive(Clone)]
pub struct Engines {
    pub asr: AsrHandle,
    pub diarize: Option<DiarizeHandle>,
    pub vad: VadModel,
    /// Where Whisper and the speaker models run.
    pub device: Placement,
}

impl Engines {
    /// Stops the engine threads once their queues are empty.
    pub fn close(&self) {
        self.asr.close();
        if let Some(d) = &self.diarize {
            d.close();
        }
    }
}

//! The audio front of a session: bytes in the client's encoding and rate to scored 16 kHz frames.

use crate::audio::pcm::PcmDecoder;
use crate::audio::resample::StreamResampler;
use crate::audio::AudioError;
use crate::onnx::OnnxError;
use crate::pipeline::vad::{ScoredFrame, SileroVad, VadFramer};
use crate::protocol::ListenParams;

pub struct AudioFront {
    decoder: PcmDecoder,
    resampler: StreamResampler,
    framer: VadFramer,
    /// Bytes dropped at the end because they did not make a whole sample.
    pub dropped_bytes: usize,
}

impl AudioFront {
    pub fn new(params: &ListenParams, vad: SileroVad) -> Result<Self, AudioError> {
        Ok(Self {
            decoder: PcmDecoder::new(params.encoding),
            resampler: StreamResampler::new(params.sample_rate)?,
            framer: VadFramer::new(vad),
            dropped_bytes: 0,
        })
    }

    /// Decodes, resamples and scores what `bytes` complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ScoredFrame>, OnnxError> {
        let samples = self.decoder.push(bytes);
        let resampled = self.resampler.push(&samples);
        self.framer.push(&resampled)
    }

    /// Flushes every stage; the last frame is padded with silence.
    pub fn finish(&mut self) -> Result<Vec<ScoredFrame>, OnnxError> {
        self.dropped_bytes = self.decoder.finish();
        let tail = self.resampler.finish();
        let mut frames = self.framer.push(&tail)?;
        frames.extend(self.framer.finish()?);
        Ok(frames)
    }
}

//! The audio front of a session: bytes in the client's encoding and rate to scored 16 kHz frames.

use crate::audio::channels::Deinterleaver;
use crate::audio::pcm::PcmDecoder;
use crate::audio::resample::StreamResampler;
use crate::audio::AudioError;
use crate::onnx::OnnxError;
use crate::pipeline::vad::{ScoredFrame, SileroVad, VadFramer};
use crate::protocol::ListenParams;

pub struct AudioFront {
    decoder: PcmDecoder,
    /// Present for audio of several channels, which are mixed down.
    mixer: Option<Deinterleaver>,
    resampler: StreamResampler,
    framer: VadFramer,
    /// Bytes per sample.
    width: usize,
    /// Bytes dropped at the end because they did not make a whole sample (or frame).
    pub dropped_bytes: usize,
}

impl AudioFront {
    pub fn new(params: &ListenParams, vad: SileroVad) -> Result<Self, AudioError> {
        Ok(Self {
            decoder: PcmDecoder::new(params.encoding),
            width: params.encoding.bytes_per_sample(),
            mixer: (params.channels > 1).then(|| Deinterleaver::new(params.channels as usize)),
            resampler: StreamResampler::new(params.sample_rate)?,
            framer: VadFramer::new(vad),
            dropped_bytes: 0,
        })
    }

    /// Decodes, resamples and scores what `bytes` complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ScoredFrame>, OnnxError> {
        let mut samples = self.decoder.push(bytes);
        if let Some(mixer) = &mut self.mixer {
            samples = mixer.mixed(&samples);
        }
        let resampled = self.resampler.push(&samples);
        self.framer.push(&resampled)
    }

    /// Flushes every stage; the last frame is padded with silence.
    pub fn finish(&mut self) -> Result<Vec<ScoredFrame>, OnnxError> {
        let width = self.width;
        let partial_frame = self.mixer.as_mut().map_or(0, Deinterleaver::finish);
        self.dropped_bytes = self.decoder.finish() + partial_frame * width;
        let tail = self.resampler.finish();
        let mut frames = self.framer.push(&tail)?;
        frames.extend(self.framer.finish()?);
        Ok(frames)
    }
}

//! Streaming resampling to 16 kHz with rubato's FFT resampler.

use rubato::{FftFixedIn, Resampler};

use super::AudioError;
use crate::domain::SAMPLE_RATE;

const CHUNK_IN: usize = 1024;

/// The input rates taken. A file's header can claim any rate, and the FFT resampler's buffers
/// grow with the rate over its common divisor with 16 kHz: a 2.5 KB WAV claiming 2.1 GHz (found
/// by fuzzing) made it allocate gigabytes.
pub const INPUT_RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Converts a stream at any rate to 16 kHz; a pass-through when the rate already matches.
pub struct StreamResampler {
    inner: Option<FftFixedIn<f32>>,
    input_rate: u32,
    pending: Vec<f32>,
    /// Output samples still to discard: the resampler's delay.
    skip: usize,
    n_in: usize,
    n_out: usize,
}

impl StreamResampler {
    pub fn new(input_rate: u32) -> Result<Self, AudioError> {
        if !INPUT_RATES.contains(&input_rate) {
            return Err(AudioError::SampleRate(input_rate));
        }
        let inner = if input_rate == SAMPLE_RATE {
            None
        } else {
            let r = FftFixedIn::new(input_rate as usize, SAMPLE_RATE as usize, CHUNK_IN, 2, 1)
                .map_err(|source| AudioError::Resample { from: input_rate, source })?;
            Some(r)
        };
        let skip = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self { inner, input_rate, pending: Vec::new(), skip, n_in: 0, n_out: 0 })
    }

    /// Resamples what it can of `samples`; the rest waits for the next call or `finish`.
    pub fn push(&mut self, samples: &[f32]) -> Vec<f32> {
        self.n_in += samples.len();
        let Some(r) = self.inner.as_mut() else {
            self.n_out += samples.len();
            return samples.to_vec();
        };
        self.pending.extend_from_slice(samples);
        let mut out = Vec::new();
        while self.pending.len() >= r.input_frames_next() {
            let n = r.input_frames_next();
            let chunk: Vec<f32> = self.pending.drain(..n).collect();
            if let Ok(mut res) = r.process(&[chunk], None) {
                out.append(&mut res[0]);
            }
        }
        self.emit(out)
    }

    /// Flushes the tail, so the output length matches the input duration.
    pub fn finish(&mut self) -> Vec<f32> {
        let expected = (self.n_in as u64 * u64::from(SAMPLE_RATE)).div_ceil(u64::from(self.input_rate)) as usize;
        let Some(r) = self.inner.as_mut() else { return Vec::new() };
        let mut out = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        if let Ok(mut res) = r.process_partial(Some(&[pending]), None) {
            out.append(&mut res[0]);
        }
        while self.n_out + out.len().saturating_sub(self.skip) < expected {
            match r.process_partial::<Vec<f32>>(None, None) {
                Ok(mut res) if !res[0].is_empty() => out.append(&mut res[0]),
                _ => break,
            }
        }
        let mut out = self.emit(out);
        out.truncate(expected.saturating_sub(self.n_out - out.len()));
        out
    }

    fn emit(&mut self, mut out: Vec<f32>) -> Vec<f32> {
        let drop = self.skip.min(out.len());
        out.drain(..drop);
        self.skip -= drop;
        self.n_out += out.len();
        out
    }
}

/// Resamples a whole buffer to 16 kHz.
pub fn to_model_rate(samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = StreamResampler::new(rate)?;
    let mut out = r.push(samples);
    out.extend(r.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a header claiming 2.1 GHz made the resampler allocate gigabytes.
    #[test]
    fn rates_outside_the_range_are_refused_before_any_allocation() {
        assert!(matches!(StreamResampler::new(2_147_491_648), Err(AudioError::SampleRate(2_147_491_648))));
        assert!(matches!(StreamResampler::new(999), Err(AudioError::SampleRate(999))));
        assert!(StreamResampler::new(384_000).is_ok() && StreamResampler::new(8_000).is_ok());
    }

    fn sine(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n).map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5).collect()
    }

    #[test]
    fn resampling_keeps_duration_and_frequency() {
        for rate in [8_000, 44_100, 48_000] {
            let input = sine(rate, 440.0, 1.0);
            let mut r = StreamResampler::new(rate).unwrap();
            let mut out = Vec::new();
            for chunk in input.chunks(333) {
                out.extend(r.push(chunk));
            }
            out.extend(r.finish());
            assert_eq!(out.len(), 16_000, "rate {rate}");
            // Aligned with a 440 Hz reference at 16 kHz (to a small fraction of a sample), away
            // from the edges.
            let reference = sine(SAMPLE_RATE, 440.0, 1.0);
            let err: f32 = (2000..14000).map(|i| (out[i] - reference[i]).abs()).fold(0.0, f32::max);
            assert!(err < 0.05, "rate {rate}: max error {err}");
        }
    }

    #[test]
    fn matching_rate_passes_through() {
        let input = sine(16_000, 300.0, 0.1);
        assert_eq!(to_model_rate(&input, 16_000).unwrap(), input);
    }
}

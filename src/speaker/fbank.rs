//! Kaldi-style log-mel filterbank features, the front end CAM++ was trained on: 25 ms Povey
//! windows every 10 ms, DC removal, pre-emphasis 0.97, 512-point power spectrum, 80 triangular
//! filters on the HTK mel scale from 20 Hz to Nyquist, natural log; then mean normalisation.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

const SAMPLE_RATE: f64 = crate::domain::SAMPLE_RATE as f64;
pub const FRAME_LEN: usize = 400;
pub const FRAME_SHIFT: usize = 160;
const N_FFT: usize = 512;
pub const N_MELS: usize = 80;
const LOW_HZ: f64 = 20.0;
const PREEMPHASIS: f32 = 0.97;

fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Computes fbank features; reusable across calls (the FFT plan and filters are kept).
pub struct Fbank {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// Per mel bin: the first FFT bin it covers and its weights from there.
    filters: Vec<(usize, Vec<f32>)>,
}

impl Default for Fbank {
    fn default() -> Self {
        Self::new()
    }
}

impl Fbank {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let window = (0..FRAME_LEN)
            .map(|i| {
                let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (FRAME_LEN - 1) as f64).cos();
                hann.powf(0.85) as f32
            })
            .collect();
        Self { fft, window, filters: mel_filters() }
    }

    /// Features of `samples` (16 kHz, [-1, 1]) as rows of 80, mean-normalised over time.
    /// Fewer than 400 samples give no frames.
    pub fn compute(&self, samples: &[f32]) -> Vec<[f32; N_MELS]> {
        let mut feats = self.log_mel(samples);
        subtract_mean(&mut feats);
        feats
    }

    /// Log mel energies before normalisation.
    fn log_mel(&self, samples: &[f32]) -> Vec<[f32; N_MELS]> {
        if samples.len() < FRAME_LEN {
            return Vec::new();
        }
        let n_frames = 1 + (samples.len() - FRAME_LEN) / FRAME_SHIFT;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f32; N_FFT / 2];
        let mut feats: Vec<[f32; N_MELS]> = Vec::with_capacity(n_frames);
        for f in 0..n_frames {
            let frame = &samples[f * FRAME_SHIFT..f * FRAME_SHIFT + FRAME_LEN];
            self.prepare(frame, &mut input);
            self.fft.process(&mut input, &mut spectrum).expect("buffers come from the same plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            let mut row = [0f32; N_MELS];
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let energy: f32 = weights.iter().zip(&power[*first..]).map(|(w, p)| w * p).sum();
                row[m] = energy.max(f32::EPSILON).ln();
            }
            feats.push(row);
        }
        feats
    }

    /// DC removal, pre-emphasis and the Povey window, zero-padded to the FFT size.
    fn prepare(&self, frame: &[f32], out: &mut [f32]) {
        let mean = frame.iter().sum::<f32>() / FRAME_LEN as f32;
        for (o, s) in out.iter_mut().zip(frame) {
            *o = s - mean;
        }
        for i in (1..FRAME_LEN).rev() {
            out[i] -= PREEMPHASIS * out[i - 1];
        }
        out[0] -= PREEMPHASIS * out[0];
        for (o, w) in out.iter_mut().zip(&self.window) {
            *o *= w;
        }
        out[FRAME_LEN..].fill(0.0);
    }
}

fn subtract_mean(feats: &mut [[f32; N_MELS]]) {
    let n = feats.len().max(1) as f32;
    let mut mean = [0f32; N_MELS];
    for row in feats.iter() {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n);
    }
    for row in feats.iter_mut() {
        row.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
    }
}

/// Kaldi's triangular filters, equally spaced on the mel scale; the Nyquist bin is not used.
fn mel_filters() -> Vec<(usize, Vec<f32>)> {
    let (low, high) = (mel(LOW_HZ), mel(SAMPLE_RATE / 2.0));
    let delta = (high - low) / (N_MELS + 1) as f64;
    let bin_hz = SAMPLE_RATE / N_FFT as f64;
    (0..N_MELS)
        .map(|m| {
            let (left, centre, right) =
                (low + m as f64 * delta, low + (m + 1) as f64 * delta, low + (m + 2) as f64 * delta);
            let weights: Vec<(usize, f32)> = (0..N_FFT / 2)
                .filter_map(|k| {
                    let x = mel(k as f64 * bin_hz);
                    let w = if x > left && x <= centre {
                        (x - left) / (centre - left)
                    } else if x > centre && x < right {
                        (right - x) / (right - centre)
                    } else {
                        return None;
                    };
                    Some((k, w as f32))
                })
                .collect();
            let first = weights.first().map_or(0, |(k, _)| *k);
            (first, weights.into_iter().map(|(_, w)| w).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_and_normalisation() {
        let fbank = Fbank::new();
        let samples: Vec<f32> = (0..16_000).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect();
        let feats = fbank.compute(&samples);
        assert_eq!(feats.len(), 1 + (16_000 - 400) / 160);
        for m in 0..N_MELS {
            let mean: f32 = feats.iter().map(|r| r[m]).sum::<f32>() / feats.len() as f32;
            assert!(mean.abs() < 1e-3, "bin {m} mean {mean}");
        }
        assert!(fbank.compute(&samples[..399]).is_empty());
    }

    #[test]
    fn a_tone_lights_up_its_mel_bin() {
        // 1 kHz sits in mel bin 22 of Kaldi's 80-bin layout from 20 Hz to 8 kHz.
        let samples: Vec<f32> =
            (0..8_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let fbank = Fbank::new();
        let raw = fbank.filters.iter().map(|(first, w)| {
            let centre = first + w.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            centre as f64 * 31.25
        });
        let nearest = raw.enumerate().min_by(|a, b| (a.1 - 1000.0).abs().total_cmp(&(b.1 - 1000.0).abs())).unwrap().0;
        let feats = fbank.log_mel(&samples);
        let loudest = (0..N_MELS).max_by(|&a, &b| feats[10][a].total_cmp(&feats[10][b])).unwrap();
        assert!(loudest.abs_diff(nearest) <= 1, "loudest {loudest}, expected about {nearest}");
    }
}

//! Whether audio is telephone band (300-3400 Hz, as 8 kHz calls are) or wide band. Voice
//! embeddings of narrow-band audio resemble each other more than wide-band ones do (the band
//! that tells voices apart best is gone), so clustering asks more similarity of them.

use realfft::RealFftPlanner;

/// Frame length of the spectrum (32 ms at 16 kHz).
const FRAME: usize = 512;
/// Speech energy above this is what wide-band audio has and phone audio lacks.
const HIGH_HZ: f32 = 4_000.0;
/// Below this share of its energy above [`HIGH_HZ`], audio is narrow band: -80 dB. Measured on
/// the test recordings in 2 s pieces (docs/BENCHMARKS.md): -29 to -72 dB for the wide-band call,
/// JFK and the test conversation; -90 to -115 dB for the same at 8 kHz in the phone band.
const NARROW_SHARE: f32 = 1e-8;

/// The share of the loud frames' energy above 4 kHz in 16 kHz `samples`; `None` without
/// enough audio to tell.
pub fn high_band_share(samples: &[f32]) -> Option<f32> {
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(FRAME);
    let mut spectrum = fft.make_output_vec();
    let split = (HIGH_HZ / crate::domain::SAMPLE_RATE as f32 * FRAME as f32) as usize;
    let (mut high, mut total) = (0.0f64, 0.0f64);
    // Frames near silence carry noise, whatever the band: only the louder half of frames count.
    let frames: Vec<&[f32]> = samples.chunks_exact(FRAME).collect();
    let mut energies: Vec<f32> = frames.iter().map(|f| f.iter().map(|s| s * s).sum()).collect();
    energies.sort_by(f32::total_cmp);
    let floor = *energies.get(energies.len() / 2)?;
    for frame in frames.iter().filter(|f| f.iter().map(|s| s * s).sum::<f32>() >= floor) {
        // A Hann window: without one, the leakage of strong low tones alone reaches -30 dB.
        let mut input: Vec<f32> = frame.iter().zip(hann()).map(|(s, w)| s * w).collect();
        fft.process(&mut input, &mut spectrum).ok()?;
        for (bin, c) in spectrum.iter().enumerate().skip(1) {
            let power = f64::from(c.norm_sqr());
            total += power;
            if bin >= split {
                high += power;
            }
        }
    }
    (total > 0.0).then(|| (high / total) as f32)
}

fn hann() -> impl Iterator<Item = f32> {
    (0..FRAME).map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / FRAME as f32).cos())
}

/// Whether 16 kHz `samples` are telephone band (false when it cannot tell).
pub fn is_narrowband(samples: &[f32]) -> bool {
    high_band_share(samples).is_some_and(|share| share < NARROW_SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tones(hz: &[f32]) -> Vec<f32> {
        // In f64: f32 phases this large are noisy enough to fill the whole spectrum at -50 dB.
        let at = |i: usize, f: f32| (i as f64 * f64::from(f) * std::f64::consts::TAU / 16_000.0).sin() as f32;
        (0..16_000).map(|i| hz.iter().map(|&f| at(i, f)).sum()).collect()
    }

    #[test]
    fn energy_above_4_khz_makes_audio_wide_band() {
        assert!(is_narrowband(&tones(&[300.0, 1_000.0, 3_000.0])));
        assert!(!is_narrowband(&tones(&[300.0, 1_000.0, 6_000.0])));
        assert!(!is_narrowband(&[0.0; 100]), "too little to tell");
    }
}

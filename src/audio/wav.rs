//! Reads WAV files of any rate and channel count as mono f32.

use std::path::Path;

use super::AudioError;

/// Mono samples in [-1, 1] and their rate.
pub struct WavAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// Reads a WAV file, averaging channels to mono.
pub fn read(path: &Path) -> Result<WavAudio, AudioError> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader.samples::<f32>().collect::<Result<_, _>>()?,
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = (1i64 << (bits - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 / scale)).collect::<Result<_, _>>()?
        }
        (format, bits) => return Err(AudioError::Unsupported(format!("{format:?} with {bits} bits"))),
    };
    let channels = usize::from(spec.channels.max(1));
    let samples = interleaved.chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect();
    Ok(WavAudio { samples, sample_rate: spec.sample_rate })
}

/// Reads a WAV file and resamples it to 16 kHz.
pub fn read_16k(path: &Path) -> Result<Vec<f32>, AudioError> {
    let audio = read(path)?;
    super::resample::to_model_rate(&audio.samples, audio.sample_rate)
}

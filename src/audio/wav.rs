//! Reads WAV files of any rate and channel count as mono f32.

use std::path::Path;

use super::AudioError;

/// Samples in [-1, 1] (interleaved when there are several channels) and their rate.
pub struct WavAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u16,
}

/// Reads a WAV file, averaging channels to mono.
pub fn read(path: &Path) -> Result<WavAudio, AudioError> {
    let audio = read_channels(path)?;
    let samples = super::channels::mix(&audio.samples, usize::from(audio.channels));
    Ok(WavAudio { samples, channels: 1, ..audio })
}

/// Reads a WAV file, keeping its channels interleaved.
pub fn read_channels(path: &Path) -> Result<WavAudio, AudioError> {
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
    Ok(WavAudio { samples: interleaved, sample_rate: spec.sample_rate, channels: spec.channels.max(1) })
}

/// Writes 16 kHz mono samples as a 16-bit WAV file.
pub fn write_16k(path: &Path, samples: &[f32]) -> Result<(), AudioError> {
    write_16k_channels(path, &[samples])
}

/// Writes 16 kHz channels (of equal length) as one interleaved 16-bit WAV file.
pub fn write_16k_channels(path: &Path, channels: &[&[f32]]) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: crate::domain::SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    let frames = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    for i in 0..frames {
        for channel in channels {
            writer.write_sample((channel[i].clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)?;
        }
    }
    writer.finalize()?;
    Ok(())
}

/// Reads a WAV file and resamples it to 16 kHz.
pub fn read_16k(path: &Path) -> Result<Vec<f32>, AudioError> {
    let audio = read(path)?;
    super::resample::to_model_rate(&audio.samples, audio.sample_rate)
}

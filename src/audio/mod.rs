//! Audio in: PCM decoding, resampling to 16 kHz, and WAV files.

pub mod pcm;
pub mod resample;
pub mod wav;

/// The rate every model here runs at.
pub const MODEL_RATE: u32 = 16_000;

/// Errors reading or converting audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read WAV file: {0}")]
    Wav(#[from] hound::Error),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("cannot resample from {from} Hz: {message}")]
    Resample { from: u32, message: String },
}

/// Seconds of 16 kHz audio in `n_samples`.
pub fn seconds(n_samples: usize) -> f64 {
    n_samples as f64 / f64::from(MODEL_RATE)
}

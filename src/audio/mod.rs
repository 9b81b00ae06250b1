//! Audio in: PCM decoding, resampling to 16 kHz, and WAV files.

pub mod pcm;
pub mod resample;
pub mod wav;

/// Errors reading or converting audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read WAV file: {0}")]
    Wav(#[from] hound::Error),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("cannot resample from {from} Hz")]
    Resample {
        from: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
}

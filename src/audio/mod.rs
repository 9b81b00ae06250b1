//! Audio in: interleaved channels (`channels`), audio files of every common format (`decode`), PCM frames of a live stream (`pcm`),
//! resampling to 16 kHz (`resample`), and plain WAV files (`wav`, for the client and benchmarks).

pub mod channels;
pub mod decode;
pub mod g711;
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
    #[error("cannot open {}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an audio file in a format this server reads (WAV, FLAC, MP3, Ogg Vorbis/Opus, M4A/AAC, WebM)")]
    NotAudio,
    #[error("the file holds no audio track")]
    NoAudioTrack,
    #[error("the audio cannot be decoded")]
    Decode(#[source] symphonia::core::errors::Error),
    #[error("a sample rate of {0} Hz is not taken (1000 to 384000 Hz)")]
    SampleRate(u32),
    /// The decoding library panicked on malformed data (a bug of theirs that fuzzing found).
    #[error("the audio is malformed: the decoder gave up on it")]
    Malformed,
    #[error("the audio has {found} channel(s); a channel beyond them was asked for")]
    Channels { found: usize },
    #[error("the Opus decoder cannot start")]
    Opus(#[source] opus::Error),
    #[error("cannot resample from {from} Hz")]
    Resample {
        from: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
}

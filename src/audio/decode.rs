//! Audio files of every common format, decoded in process with symphonia: WAV (PCM 8/16/24/32-bit,
//! float, A-law, mu-law, ADPCM), FLAC, MP3, Ogg Vorbis, M4A/AAC and Matroska/WebM holding those
//! codecs; Opus (in Ogg or WebM, as browsers record it), which symphonia demuxes but does not
//! decode, goes to libopus. Decoding streams: one packet at a time is mixed down to mono (or one
//! channel is kept) and resampled to 16 kHz, so a long file is never held whole in its original
//! rate and channel count.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use super::channels::{crosstalk_window, gate_crosstalk, mix, split};
use super::resample::StreamResampler;
use super::AudioError;

/// A file being decoded to 16 kHz mono, a chunk at a time.
pub struct FileDecoder {
    format: Box<dyn FormatReader>,
    decoder: Codec,
    track_id: u32,
    /// Made at the first decoded packet, whose rate it converts from.
    resampler: Option<StreamResampler>,
    interleaved: Vec<f32>,
    finished: bool,
    /// Seconds of audio the container says it holds, when it says.
    duration: Option<f64>,
    /// Channels the track says it has (1 when it does not say).
    channels: usize,
    /// The one channel to keep (`multichannel`); `None` mixes them all down.
    pick: Option<usize>,
}

/// What turns the track's packets into samples.
enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    /// libopus, always at 48 kHz, with a buffer for its largest frame (120 ms).
    Opus {
        decoder: opus::Decoder,
        channels: usize,
        buffer: Vec<f32>,
    },
}

/// Opus decodes at 48 kHz (the rate every Opus stream can be decoded at).
const OPUS_RATE: u32 = 48_000;

fn opus_codec(params: &AudioCodecParameters) -> Result<Codec, AudioError> {
    let count = params.channels.as_ref().map_or(1, |c| c.count());
    let (layout, channels) = if count >= 2 { (opus::Channels::Stereo, 2) } else { (opus::Channels::Mono, 1) };
    let decoder = opus::Decoder::new(OPUS_RATE, layout).map_err(AudioError::Opus)?;
    Ok(Codec::Opus { decoder, channels, buffer: vec![0.0; 5760 * channels] })
}

fn undecodable(source: SymphoniaError) -> AudioError {
    AudioError::Decode(source)
}

/// Runs a call into the decoding libraries with a guard: on some malformed files they panic
/// (fuzzing found an overflowing shift in symphonia's WAVE channel-mask parsing), and a bad
/// upload must be a 400, not a lost request or a crashed `transcribe`.
fn guarded<T>(call: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or(Err(AudioError::Malformed))
}

impl FileDecoder {
    /// Opens `path`; its extension is a hint, the content decides.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let file = std::fs::File::open(path).map_err(|source| AudioError::Open { path: path.to_owned(), source })?;
        Self::from_source(Box::new(file), path.extension().and_then(|e| e.to_str()))
    }

    /// Decodes an upload held in memory; `extension` (from its file name) is a hint.
    pub fn from_bytes(bytes: Vec<u8>, extension: Option<&str>) -> Result<Self, AudioError> {
        Self::from_source(Box::new(Cursor::new(bytes)), extension)
    }

    fn from_source(source: Box<dyn MediaSource>, extension: Option<&str>) -> Result<Self, AudioError> {
        guarded(|| Self::probe(source, extension))
    }

    fn probe(source: Box<dyn MediaSource>, extension: Option<&str>) -> Result<Self, AudioError> {
        let mut hint = Hint::new();
        if let Some(extension) = extension {
            hint.with_extension(extension);
        }
        let stream = MediaSourceStream::new(source, Default::default());
        let format = symphonia::default::get_probe()
            .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => AudioError::NotAudio,
                e => undecodable(e),
            })?;
        let track = format.default_track(TrackType::Audio).ok_or(AudioError::NoAudioTrack)?;
        let params = track.codec_params.as_ref().and_then(|p| p.audio()).ok_or(AudioError::NoAudioTrack)?;
        let decoder = if params.codec == CODEC_ID_OPUS {
            opus_codec(params)?
        } else {
            let codecs = symphonia::default::get_codecs();
            Codec::Symphonia(codecs.make_audio_decoder(params, &AudioDecoderOptions::default()).map_err(undecodable)?)
        };
        let track_id = track.id;
        let duration = match (track.num_frames, params.sample_rate) {
            (Some(frames), Some(rate)) if rate > 0 => Some(frames as f64 / f64::from(rate)),
            _ => None,
        };
        let channels = params.channels.as_ref().map_or(1, |c| c.count()).max(1);
        Ok(Self {
            format,
            decoder,
            track_id,
            resampler: None,
            interleaved: Vec::new(),
            finished: false,
            duration,
            channels,
            pick: None,
        })
    }

    /// How many channels the file says it has.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Keeps only `channel` (0 = left) instead of mixing the channels down.
    pub fn channel(self, channel: usize) -> Result<Self, AudioError> {
        if channel >= self.channels {
            return Err(AudioError::Channels { found: self.channels });
        }
        Ok(Self { pick: Some(channel), ..self })
    }

    /// How long the file says it is, in seconds (before decoding it; some formats do not say).
    pub fn duration(&self) -> Option<f64> {
        self.duration
    }

    /// The next stretch of 16 kHz mono samples (possibly empty); `None` once the file is done.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        if self.finished {
            return Ok(None);
        }
        let chunk = guarded(|| self.read_chunk());
        // After a panic the decoder's state is unknown: nothing more is read from it.
        if matches!(chunk, Err(AudioError::Malformed)) {
            self.finished = true;
        }
        chunk
    }

    fn read_chunk(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(Some(self.finish())),
                // Where a file is cut short, what came before it is kept.
                Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(Some(self.finish()))
                }
                Err(e) => return Err(undecodable(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let Some((rate, channels)) = self.decode(&packet)? else { continue };
            let mono = match self.pick {
                Some(channel) if channel < channels => {
                    let mut split = split(&self.interleaved, channels);
                    gate_crosstalk(&mut split, crosstalk_window(rate));
                    split.swap_remove(channel)
                }
                Some(_) => return Err(AudioError::Channels { found: channels }),
                None => mix(&self.interleaved, channels),
            };
            let resampler = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(StreamResampler::new(rate)?),
            };
            return Ok(Some(resampler.push(&mono)));
        }
    }

    /// Decodes one packet into `interleaved`; returns its rate and channel count, or `None` for
    /// a damaged packet, which is skipped as players do.
    fn decode(&mut self, packet: &Packet) -> Result<Option<(u32, usize)>, AudioError> {
        match &mut self.decoder {
            Codec::Symphonia(decoder) => match decoder.decode(packet) {
                Ok(buffer) => {
                    let (rate, channels) = (buffer.spec().rate(), buffer.spec().channels().count().max(1));
                    buffer.copy_to_vec_interleaved(&mut self.interleaved);
                    Ok(Some((rate, channels)))
                }
                Err(SymphoniaError::DecodeError(_)) => Ok(None),
                Err(e) => Err(undecodable(e)),
            },
            Codec::Opus { decoder, channels, buffer } => match decoder.decode_float(&packet.data, buffer, false) {
                Ok(frames) => {
                    self.interleaved.clear();
                    self.interleaved.extend_from_slice(&buffer[..frames * *channels]);
                    Ok(Some((OPUS_RATE, *channels)))
                }
                Err(_) => Ok(None),
            },
        }
    }

    fn finish(&mut self) -> Vec<f32> {
        self.finished = true;
        self.resampler.as_mut().map(StreamResampler::finish).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_decoding_library_is_a_malformed_file() {
        let panicking = guarded::<()>(|| panic!("a decoder bug"));
        assert!(matches!(panicking, Err(AudioError::Malformed)));
        assert!(matches!(guarded(|| Ok(7)), Ok(7)));
    }

    /// The WAVE file fuzzing found (a channel mask whose shift overflows in symphonia): an error
    /// or samples, never a panic.
    #[test]
    fn the_fuzzed_wave_channel_mask_is_answered() {
        let bytes = include_bytes!("../../tests/fixtures/fuzz-wave-channel-mask.wav").to_vec();
        if let Ok(mut decoder) = FileDecoder::from_bytes(bytes, Some("wav")) {
            while let Ok(Some(_)) = decoder.next_chunk() {}
        }
    }
}

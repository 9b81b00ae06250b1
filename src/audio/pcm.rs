//! Decodes little-endian PCM bytes that arrive in frames of any length.

use serde::{Deserialize, Serialize};

/// Sample encodings a client may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    PcmS16le,
    PcmF32le,
    /// G.711 mu-law, one byte a sample (telephony in North America and Japan).
    Mulaw,
    /// G.711 A-law, one byte a sample (telephony elsewhere).
    Alaw,
}

impl Encoding {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::PcmS16le => 2,
            Self::PcmF32le => 4,
            Self::Mulaw | Self::Alaw => 1,
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pcm_s16le" => Some(Self::PcmS16le),
            "pcm_f32le" => Some(Self::PcmF32le),
            "mulaw" => Some(Self::Mulaw),
            "alaw" => Some(Self::Alaw),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PcmS16le => "pcm_s16le",
            Self::PcmF32le => "pcm_f32le",
            Self::Mulaw => "mulaw",
            Self::Alaw => "alaw",
        }
    }
}

/// Turns byte frames into samples, carrying a sample split across frames to the next frame.
#[derive(Debug)]
pub struct PcmDecoder {
    encoding: Encoding,
    carry: Vec<u8>,
}

impl PcmDecoder {
    pub fn new(encoding: Encoding) -> Self {
        Self { encoding, carry: Vec::with_capacity(4) }
    }

    /// Decodes as many whole samples as `bytes` (plus any carried bytes) hold.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<f32> {
        let width = self.encoding.bytes_per_sample();
        let mut out = Vec::with_capacity((self.carry.len() + bytes.len()) / width);
        let mut rest = bytes;
        if !self.carry.is_empty() {
            let need = (width - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..need]);
            rest = &rest[need..];
            if self.carry.len() < width {
                return out;
            }
            let carried = std::mem::take(&mut self.carry);
            out.push(self.decode(&carried));
        }
        let whole = rest.len() / width * width;
        out.extend(rest[..whole].chunks_exact(width).map(|s| self.decode(s)));
        self.carry.extend_from_slice(&rest[whole..]);
        out
    }

    /// Bytes left over that do not make a whole sample; they are dropped.
    pub fn finish(&mut self) -> usize {
        std::mem::take(&mut self.carry).len()
    }

    fn decode(&self, s: &[u8]) -> f32 {
        match self.encoding {
            Encoding::PcmS16le => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
            Encoding::Mulaw => f32::from(super::g711::mulaw_to_linear(s[0])) / 32768.0,
            Encoding::Alaw => f32::from(super::g711::alaw_to_linear(s[0])) / 32768.0,
            Encoding::PcmF32le => {
                let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                // Non-finite samples would poison every model downstream.
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_split_across_frames_is_joined() {
        let mut d = PcmDecoder::new(Encoding::PcmS16le);
        let bytes = 16384i16.to_le_bytes();
        assert!(d.push(&[0, 0, bytes[0]]).len() == 1);
        assert_eq!(d.push(&[bytes[1]]), vec![0.5]);
        assert_eq!(d.finish(), 0);
    }

    #[test]
    fn f32_split_three_ways_and_a_trailing_byte() {
        let mut d = PcmDecoder::new(Encoding::PcmF32le);
        let b = (-0.25f32).to_le_bytes();
        assert!(d.push(&b[..1]).is_empty());
        assert!(d.push(&b[1..3]).is_empty());
        assert_eq!(d.push(&[b[3], 7]), vec![-0.25]);
        assert_eq!(d.finish(), 1);
    }

    #[test]
    fn companded_bytes_are_whole_samples_each() {
        let mut d = PcmDecoder::new(Encoding::Mulaw);
        assert_eq!(d.push(&[0x80, 0xff]), vec![32124.0 / 32768.0, 0.0]);
        assert_eq!(d.finish(), 0, "never a byte left over");
        assert_eq!(PcmDecoder::new(Encoding::Alaw).push(&[0xd5]), vec![8.0 / 32768.0]);
    }

    #[test]
    fn non_finite_floats_become_silence() {
        let mut d = PcmDecoder::new(Encoding::PcmF32le);
        let mut bytes = f32::NAN.to_le_bytes().to_vec();
        bytes.extend_from_slice(&4.0f32.to_le_bytes());
        assert_eq!(d.push(&bytes), vec![0.0, 1.0]);
    }
}

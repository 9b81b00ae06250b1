//! G.711 companded samples (mu-law and A-law, one byte each), the encodings of telephone
//! networks, to linear 16-bit values (ITU-T G.711's decoding rule).

/// The bias added before a mu-law sample is compressed.
const MULAW_BIAS: i32 = 0x84;

/// A mu-law byte to its linear value (-32124 to 32124).
pub fn mulaw_to_linear(byte: u8) -> i16 {
    // Bytes travel inverted, so that silence does not come out as a run of zeros on the line.
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
    let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

/// An A-law byte to its linear value (-32256 to 32256).
pub fn alaw_to_linear(byte: u8) -> i16 {
    // Every other bit travels inverted.
    let a = byte ^ 0x55;
    let segment = (a >> 4) & 0x07;
    let mut magnitude = i32::from(a & 0x0f) << 4;
    magnitude += if segment == 0 { 8 } else { 0x108 };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    let value = if a & 0x80 != 0 { magnitude } else { -magnitude };
    value as i16
}

/// A linear value to its mu-law byte (what a telephone line would carry).
pub fn linear_to_mulaw(sample: i16) -> u8 {
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let biased = value.abs().min(CLIP) + MULAW_BIAS;
    // The segment is the position of the highest set bit above the first eight.
    let exponent = (31 - biased.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (biased >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// A linear value to its A-law byte.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign = if value >= 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(32767);
    let segment = (31 - magnitude.max(1).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = if segment == 0 { magnitude >> 4 } else { magnitude >> (segment + 3) } & 0x0f;
    (sign | (segment << 4) as u8 | mantissa as u8) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_known_values() {
        assert_eq!((mulaw_to_linear(0xff), mulaw_to_linear(0x7f)), (0, 0), "both zeros");
        assert_eq!((mulaw_to_linear(0x80), mulaw_to_linear(0x00)), (32124, -32124), "the extremes");
        assert_eq!(mulaw_to_linear(0xfe), 8);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!((alaw_to_linear(0xd5), alaw_to_linear(0x55)), (8, -8), "the smallest steps");
        assert_eq!((alaw_to_linear(0xaa), alaw_to_linear(0x2a)), (32256, -32256), "the extremes");
    }

    #[test]
    fn mulaw_codes_run_in_order_on_each_side_of_zero() {
        let negative: Vec<i16> = (0u8..=0x7f).map(mulaw_to_linear).collect();
        let positive: Vec<i16> = (0x80u8..=0xff).map(mulaw_to_linear).collect();
        assert!(negative.windows(2).all(|w| w[0] < w[1]), "0x00..0x7f rise towards zero");
        assert!(positive.windows(2).all(|w| w[0] > w[1]), "0x80..0xff fall towards zero");
    }

    #[test]
    fn alaw_codes_are_symmetric_about_the_sign_bit() {
        for code in 0u8..0x80 {
            assert_eq!(alaw_to_linear(code), -alaw_to_linear(code | 0x80), "code {code:#04x}");
        }
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for code in 0u8..=0xff {
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A-law {code:#04x}");
            // 0x7f is mu-law's negative zero, which encodes back as the positive one.
            if code != 0x7f {
                assert_eq!(linear_to_mulaw(mulaw_to_linear(code)), code, "mu-law {code:#04x}");
            }
        }
        assert_eq!((linear_to_mulaw(i16::MIN), linear_to_alaw(i16::MIN)), (0x00, 0x2a), "clipped, never wrapped");
    }
}

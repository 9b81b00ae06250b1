//! Rewrites a whisper.cpp ggml file with its f16 matrices quantized to Q8_0, the 8-bit format
//! whisper.cpp reads natively: blocks of 32 weights, each an f16 scale and 32 signed bytes.
//! Convolution weights (3-D) and f32 tensors are copied as they are, as whisper.cpp expects.

use std::io::{self, Read, Write};

use super::error::ModelError;
use super::ggml::GGML_MAGIC;

/// `GGML_FTYPE_MOSTLY_Q8_0`, plus ggml's quantization version (2) times 1000.
const FTYPE_Q8_0: i32 = 7 + 2 * 1000;
const TYPE_F16: i32 = 1;
const TYPE_Q8_0: i32 = 8;
const BLOCK: usize = 32;

fn read_i32(input: &mut impl Read) -> io::Result<i32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn copy(input: &mut impl Read, out: &mut impl Write, n: usize) -> io::Result<()> {
    let copied = io::copy(&mut input.take(n as u64), out)?;
    if copied as usize != n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated ggml file"));
    }
    Ok(())
}

fn format_error(message: &str) -> ModelError {
    ModelError::Format(format!("not a whisper.cpp f16 ggml file: {message}"))
}

/// Reads an f16 ggml model from `input` and writes its Q8_0 form to `out`.
pub fn quantize_q8_0(input: &mut impl Read, out: &mut impl Write) -> Result<(), ModelError> {
    let io_err = |e: io::Error| format_error(&e.to_string());
    if read_i32(input).map_err(io_err)? != GGML_MAGIC {
        return Err(format_error("bad magic"));
    }
    out.write_all(&GGML_MAGIC.to_le_bytes()).map_err(ModelError::Write)?;
    let mut hparams = [0i32; 11];
    for h in &mut hparams {
        *h = read_i32(input).map_err(io_err)?;
    }
    if hparams[10] != 1 {
        return Err(format_error(&format!("ftype {} (want 1, f16)", hparams[10])));
    }
    hparams[10] = FTYPE_Q8_0;
    let n_mels = hparams[9];
    for h in hparams {
        out.write_all(&h.to_le_bytes()).map_err(ModelError::Write)?;
    }
    copy_mel_and_tokens(input, out, n_mels).map_err(io_err)?;
    while let Some(()) = quantize_tensor(input, out)? {}
    Ok(())
}

fn copy_mel_and_tokens(input: &mut impl Read, out: &mut impl Write, n_mels: i32) -> io::Result<()> {
    let (mels, bins) = (read_i32(input)?, read_i32(input)?);
    if mels != n_mels {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "mel filter count differs from n_mels"));
    }
    out.write_all(&mels.to_le_bytes())?;
    out.write_all(&bins.to_le_bytes())?;
    copy(input, out, mels as usize * bins as usize * 4)?;
    let n_tokens = read_i32(input)?;
    out.write_all(&n_tokens.to_le_bytes())?;
    for _ in 0..n_tokens {
        let len = read_i32(input)?;
        out.write_all(&len.to_le_bytes())?;
        copy(input, out, len as usize)?;
    }
    Ok(())
}

/// Copies or quantizes one tensor; `None` at the end of the file.
fn quantize_tensor(input: &mut impl Read, out: &mut impl Write) -> Result<Option<()>, ModelError> {
    let io_err = |e: io::Error| format_error(&e.to_string());
    let n_dims = match read_i32(input) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let (name_len, ttype) = (read_i32(input).map_err(io_err)?, read_i32(input).map_err(io_err)?);
    let dims = (0..n_dims).map(|_| read_i32(input)).collect::<io::Result<Vec<_>>>().map_err(io_err)?;
    let mut name = vec![0u8; name_len as usize];
    input.read_exact(&mut name).map_err(io_err)?;
    let n: usize = dims.iter().map(|&d| d as usize).product();
    let row = dims.first().copied().unwrap_or(0) as usize;
    let quantize = ttype == TYPE_F16 && n_dims == 2 && row.is_multiple_of(BLOCK);
    let out_type = if quantize { TYPE_Q8_0 } else { ttype };
    for v in [n_dims, name_len, out_type].into_iter().chain(dims.iter().copied()) {
        out.write_all(&v.to_le_bytes()).map_err(ModelError::Write)?;
    }
    out.write_all(&name).map_err(ModelError::Write)?;
    let width = if ttype == TYPE_F16 { 2 } else { 4 };
    if !quantize {
        copy(input, out, n * width).map_err(io_err)?;
        return Ok(Some(()));
    }
    let mut raw = vec![0u8; n * 2];
    input.read_exact(&mut raw).map_err(io_err)?;
    let values: Vec<f32> = raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    out.write_all(&q8_0_blocks(&values)).map_err(ModelError::Write)?;
    Ok(Some(()))
}

/// Q8_0 as ggml defines it: per block of 32, `d = max|x| / 127` (stored f16) and `q = round(x / d)`.
pub fn q8_0_blocks(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * (2 + BLOCK));
    for block in values.chunks(BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_round_trips_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        let blocks = q8_0_blocks(&values);
        assert_eq!(blocks.len(), 2 * 34);
        for (b, chunk) in blocks.chunks(34).zip(values.chunks(32)) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            for (q, v) in b[2..].iter().zip(chunk) {
                assert!(((*q as i8) as f32 * d - v).abs() <= d * 0.5 + 1e-3);
            }
        }
    }

    #[test]
    fn an_all_zero_block_has_scale_zero() {
        assert!(q8_0_blocks(&[0.0; 32]).iter().all(|b| *b == 0));
    }
}

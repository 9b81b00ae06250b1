//! Converts a CTranslate2 Whisper model into the ggml file whisper.cpp loads.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::ct2::{Ct2Model, Variable};
use super::error::ModelError;
use super::mel::mel_filters;

pub(super) const GGML_MAGIC: i32 = 0x6767_6d6c;
const HEAD_DIM: usize = 64;

/// Whisper's hyper-parameters, in the order the ggml header stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

/// A tensor ready to write: OpenAI name, PyTorch-order shape, f32 values.
struct Tensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Writes the ggml file for `model` with the token list from CTranslate2's `vocabulary.txt`.
pub fn convert(model: &Ct2Model, vocabulary: &str, out: &mut impl Write) -> Result<HParams, ModelError> {
    let hparams = hparams(model)?;
    let tensors = map_tensors(model)?;
    let tokens = decode_vocabulary(vocabulary)?;
    write_header(out, &hparams, &tokens).map_err(ModelError::Write)?;
    for (name, tensor) in &tensors {
        write_tensor(out, name, tensor).map_err(ModelError::Write)?;
    }
    Ok(hparams)
}

fn var<'a>(model: &'a Ct2Model, name: &str) -> Result<&'a Variable, ModelError> {
    model.variables.get(name).ok_or_else(|| ModelError::Format(format!("model has no variable {name}")))
}

fn count_layers(model: &Ct2Model, side: &str) -> usize {
    let prefix = format!("{side}/layer_");
    let layers = model.variables.keys().filter_map(|name| {
        let rest = name.strip_prefix(&prefix)?;
        rest.split('/').next()?.parse::<usize>().ok()
    });
    layers.max().map_or(0, |max| max + 1)
}

fn hparams(model: &Ct2Model) -> Result<HParams, ModelError> {
    let conv1 = &var(model, "encoder/conv1/weight")?.shape;
    let embeddings = &var(model, "decoder/embeddings/weight")?.shape;
    let n_audio_state = conv1[0];
    let n_text_state = embeddings[1];
    Ok(HParams {
        n_vocab: embeddings[0],
        n_audio_ctx: var(model, "encoder/position_encodings/encodings")?.shape[0],
        n_audio_state,
        n_audio_head: n_audio_state / HEAD_DIM,
        n_audio_layer: count_layers(model, "encoder"),
        n_text_ctx: var(model, "decoder/position_encodings/encodings")?.shape[0],
        n_text_state,
        n_text_head: n_text_state / HEAD_DIM,
        n_text_layer: count_layers(model, "decoder"),
        n_mels: conv1[1],
    })
}

/// The OpenAI module(s) a CTranslate2 module path becomes; fused projections list their parts.
fn target_modules(path: &str) -> Option<Vec<String>> {
    let one = |s: &str| Some(vec![s.to_owned()]);
    match path {
        "encoder/conv1" => return one("encoder.conv1"),
        "encoder/conv2" => return one("encoder.conv2"),
        "encoder/layer_norm" => return one("encoder.ln_post"),
        "decoder/layer_norm" => return one("decoder.ln"),
        _ => {}
    }
    let (side, rest) = path.split_once("/layer_")?;
    let (index, module) = rest.split_once('/')?;
    let block = format!("{side}.blocks.{index}");
    let parts: &[&str] = match module {
        "self_attention/layer_norm" => &["attn_ln"],
        "self_attention/linear_0" => &["attn.query", "attn.key", "attn.value"],
        "self_attention/linear_1" => &["attn.out"],
        "attention/layer_norm" => &["cross_attn_ln"],
        "attention/linear_0" => &["cross_attn.query"],
        "attention/linear_1" => &["cross_attn.key", "cross_attn.value"],
        "attention/linear_2" => &["cross_attn.out"],
        "ffn/layer_norm" => &["mlp_ln"],
        "ffn/linear_0" => &["mlp.0"],
        "ffn/linear_1" => &["mlp.2"],
        _ => return None,
    };
    Some(parts.iter().map(|p| format!("{block}.{p}")).collect())
}

fn map_tensors(model: &Ct2Model) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let mut out = BTreeMap::new();
    for (name, variable) in &model.variables {
        let values = || variable.to_f32();
        match name.as_str() {
            "encoder/position_encodings/encodings" => {
                out.insert(
                    "encoder.positional_embedding".into(),
                    Tensor { shape: variable.shape.clone(), values: values()? },
                );
                continue;
            }
            "decoder/position_encodings/encodings" => {
                out.insert(
                    "decoder.positional_embedding".into(),
                    Tensor { shape: variable.shape.clone(), values: values()? },
                );
                continue;
            }
            "decoder/embeddings/weight" => {
                out.insert(
                    "decoder.token_embedding.weight".into(),
                    Tensor { shape: variable.shape.clone(), values: values()? },
                );
                continue;
            }
            _ => {}
        }
        let Some((path, leaf)) = name.rsplit_once('/') else { continue };
        let param = match leaf {
            "weight" | "gamma" => "weight",
            "bias" | "beta" => "bias",
            _ => continue,
        };
        let Some(modules) = target_modules(path) else { continue };
        split_into(&mut out, &modules, param, variable)?;
    }
    Ok(out)
}

/// Splits a (possibly fused) variable along its first axis into equal parts, one per module.
/// Whisper's key projections have no bias, so a fused bias drops its key part.
fn split_into(
    out: &mut BTreeMap<String, Tensor>,
    modules: &[String],
    param: &str,
    variable: &Variable,
) -> Result<(), ModelError> {
    let values = variable.to_f32()?;
    let rows = variable.shape[0] / modules.len();
    let row_len = variable.n_elements() / variable.shape[0];
    for (i, module) in modules.iter().enumerate() {
        if param == "bias" && module.ends_with(".key") {
            continue;
        }
        let mut shape = variable.shape.clone();
        shape[0] = rows;
        let part = values[i * rows * row_len..(i + 1) * rows * row_len].to_vec();
        // whisper.cpp stores convolution biases as [n, 1].
        if param == "bias" && module.contains(".conv") {
            shape.push(1);
        }
        out.insert(format!("{module}.{param}"), Tensor { shape, values: part });
    }
    Ok(())
}

/// GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest map to U+0100 onwards.
fn byte_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(255 + next).expect("U+0100..U+0143 are valid chars")
        };
        map.insert(c, b);
    }
    map
}

/// Ordinary tokens in id order; whisper.cpp builds the special tokens itself, so the list stops
/// before `<|endoftext|>`.
fn decode_vocabulary(vocabulary: &str) -> Result<Vec<Vec<u8>>, ModelError> {
    let decoder = byte_decoder();
    let mut tokens = Vec::new();
    for line in vocabulary.lines() {
        if line == "<|endoftext|>" {
            return Ok(tokens);
        }
        let bytes = line.chars().map(|c| decoder.get(&c).copied());
        let bytes = bytes.collect::<Option<Vec<u8>>>();
        tokens.push(bytes.ok_or_else(|| ModelError::Format(format!("token {line:?} is not byte-level BPE")))?);
    }
    Err(ModelError::Format("vocabulary has no <|endoftext|> token".into()))
}

fn write_i32(out: &mut impl Write, v: usize) -> io::Result<()> {
    out.write_all(&(v as i32).to_le_bytes())
}

fn write_header(out: &mut impl Write, h: &HParams, tokens: &[Vec<u8>]) -> io::Result<()> {
    out.write_all(&GGML_MAGIC.to_le_bytes())?;
    let fields = [
        h.n_vocab,
        h.n_audio_ctx,
        h.n_audio_state,
        h.n_audio_head,
        h.n_audio_layer,
        h.n_text_ctx,
        h.n_text_state,
        h.n_text_head,
        h.n_text_layer,
        h.n_mels,
        1, // ftype: f16 matrices
    ];
    for v in fields {
        write_i32(out, v)?;
    }
    let filters = mel_filters(crate::domain::SAMPLE_RATE, 400, h.n_mels);
    write_i32(out, h.n_mels)?;
    write_i32(out, 400 / 2 + 1)?;
    for v in filters {
        out.write_all(&v.to_le_bytes())?;
    }
    write_i32(out, tokens.len())?;
    for token in tokens {
        write_i32(out, token.len())?;
        out.write_all(token)?;
    }
    Ok(())
}

/// 1-D tensors, convolution biases and positional embeddings stay f32; other matrices are f16.
fn keeps_f32(name: &str, shape: &[usize]) -> bool {
    shape.len() < 2
        || name.ends_with("conv1.bias")
        || name.ends_with("conv2.bias")
        || name.ends_with("positional_embedding")
}

fn write_tensor(out: &mut impl Write, name: &str, tensor: &Tensor) -> io::Result<()> {
    let f32_data = keeps_f32(name, &tensor.shape);
    write_i32(out, tensor.shape.len())?;
    write_i32(out, name.len())?;
    write_i32(out, usize::from(!f32_data))?;
    for &dim in tensor.shape.iter().rev() {
        write_i32(out, dim)?;
    }
    out.write_all(name.as_bytes())?;
    let mut buf = Vec::with_capacity(tensor.values.len() * 4);
    for &v in &tensor.values {
        if f32_data {
            buf.extend_from_slice(&v.to_le_bytes());
        } else {
            buf.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    out.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokens_decode_to_their_bytes() {
        let tokens = decode_vocabulary("!\nĠthe\nĊ\n<|endoftext|>\n<|startoftranscript|>").unwrap();
        assert_eq!(tokens, vec![b"!".to_vec(), b" the".to_vec(), b"\n".to_vec()]);
    }

    #[test]
    fn fused_attention_splits_into_whisper_modules() {
        assert_eq!(
            target_modules("decoder/layer_3/attention/linear_1").unwrap(),
            vec!["decoder.blocks.3.cross_attn.key", "decoder.blocks.3.cross_attn.value"]
        );
        assert_eq!(target_modules("encoder/layer_0/ffn/linear_1").unwrap(), vec!["encoder.blocks.0.mlp.2"]);
        assert!(target_modules("decoder/projection").is_none());
    }

    #[test]
    fn fused_bias_drops_the_key_part() {
        let values: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let variable = Variable { shape: vec![3], dtype: super::super::ct2::DType::F32, data: values };
        let modules = target_modules("encoder/layer_0/self_attention/linear_0").unwrap();
        let mut out = BTreeMap::new();
        split_into(&mut out, &modules, "bias", &variable).unwrap();
        let names: Vec<_> = out.keys().cloned().collect();
        assert_eq!(names, vec!["encoder.blocks.0.attn.query.bias", "encoder.blocks.0.attn.value.bias"]);
        assert_eq!(out["encoder.blocks.0.attn.value.bias"].values, vec![3.0]);
    }
}

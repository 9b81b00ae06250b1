//! The converter on a small synthetic CTranslate2 model: every whisper.cpp tensor is written
//! once, with the right shape, type and values.

use std::collections::HashMap;

use super::{ct2, ggml};

const D: usize = 64;
const MELS: usize = 4;
const VOCAB: usize = 5;

/// Writes a CTranslate2 v6 `model.bin` with f16 matrices, whose values encode their position.
fn ct2_bytes(vars: &[(String, Vec<usize>)]) -> Vec<u8> {
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    };
    let mut out = 6u32.to_le_bytes().to_vec();
    string(&mut out, "WhisperSpec");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
    for (name, shape) in vars {
        string(&mut out, name);
        out.push(shape.len() as u8);
        shape.iter().for_each(|d| out.extend_from_slice(&(*d as u32).to_le_bytes()));
        out.push(4); // f16
        let n: usize = shape.iter().product();
        out.extend_from_slice(&((n * 2) as u32).to_le_bytes());
        (0..n).for_each(|i| out.extend_from_slice(&half::f16::from_f32(i as f32).to_le_bytes()));
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

fn synthetic_model() -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("encoder/conv1/weight".into(), vec![D, MELS, 3]),
        ("encoder/conv1/bias".into(), vec![D]),
        ("encoder/conv2/weight".into(), vec![D, D, 3]),
        ("encoder/conv2/bias".into(), vec![D]),
        ("encoder/position_encodings/encodings".into(), vec![8, D]),
        ("encoder/layer_norm/gamma".into(), vec![D]),
        ("encoder/layer_norm/beta".into(), vec![D]),
        ("decoder/embeddings/weight".into(), vec![VOCAB, D]),
        ("decoder/position_encodings/encodings".into(), vec![6, D]),
        ("decoder/layer_norm/gamma".into(), vec![D]),
        ("decoder/layer_norm/beta".into(), vec![D]),
    ];
    let linear = |v: &mut Vec<(String, Vec<usize>)>, path: String, rows: usize, cols: usize| {
        v.push((format!("{path}/weight"), vec![rows, cols]));
        v.push((format!("{path}/bias"), vec![rows]));
    };
    let norm = |v: &mut Vec<(String, Vec<usize>)>, path: String| {
        v.push((format!("{path}/gamma"), vec![D]));
        v.push((format!("{path}/beta"), vec![D]));
    };
    for side in ["encoder", "decoder"] {
        let l = format!("{side}/layer_0");
        norm(&mut v, format!("{l}/self_attention/layer_norm"));
        linear(&mut v, format!("{l}/self_attention/linear_0"), 3 * D, D);
        linear(&mut v, format!("{l}/self_attention/linear_1"), D, D);
        norm(&mut v, format!("{l}/ffn/layer_norm"));
        linear(&mut v, format!("{l}/ffn/linear_0"), 4 * D, D);
        linear(&mut v, format!("{l}/ffn/linear_1"), D, 4 * D);
    }
    norm(&mut v, "decoder/layer_0/attention/layer_norm".into());
    linear(&mut v, "decoder/layer_0/attention/linear_0".into(), D, D);
    linear(&mut v, "decoder/layer_0/attention/linear_1".into(), 2 * D, D);
    linear(&mut v, "decoder/layer_0/attention/linear_2".into(), D, D);
    v
}

struct GgmlTensor {
    dims: Vec<usize>,
    ftype: i32,
    first_value: f32,
}

/// Reads back the header and tensors of a ggml file.
fn read_ggml(bytes: &[u8]) -> (Vec<i32>, usize, HashMap<String, GgmlTensor>) {
    let mut pos = 0;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(bytes[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    let header: Vec<i32> = (0..12).map(|_| i32_at(&mut pos)).collect();
    let (n_mel, n_fft) = (i32_at(&mut pos), i32_at(&mut pos));
    pos += (n_mel * n_fft) as usize * 4;
    let n_tokens = i32_at(&mut pos) as usize;
    for _ in 0..n_tokens {
        let len = i32_at(&mut pos) as usize;
        pos += len;
    }
    let mut tensors = HashMap::new();
    while pos < bytes.len() {
        let (n_dims, name_len, ftype) = (i32_at(&mut pos), i32_at(&mut pos) as usize, i32_at(&mut pos));
        let dims: Vec<usize> = (0..n_dims).map(|_| i32_at(&mut pos) as usize).collect();
        let name = String::from_utf8(bytes[pos..pos + name_len].to_vec()).unwrap();
        pos += name_len;
        let n: usize = dims.iter().product();
        let first_value = if ftype == 0 {
            f32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap())
        } else {
            half::f16::from_le_bytes([bytes[pos], bytes[pos + 1]]).to_f32()
        };
        pos += n * if ftype == 0 { 4 } else { 2 };
        tensors.insert(name, GgmlTensor { dims, ftype, first_value });
    }
    (header, n_tokens, tensors)
}

#[test]
fn synthetic_model_converts_to_every_whisper_tensor() {
    let model = ct2::parse(&ct2_bytes(&synthetic_model())).unwrap();
    let vocabulary = "a\nb\nĠc\n<|endoftext|>\n<|startoftranscript|>\n";
    let mut out = Vec::new();
    let h = ggml::convert(&model, vocabulary, &mut out).unwrap();
    assert_eq!(
        (h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head, h.n_text_ctx, h.n_mels),
        (VOCAB, 8, D, 1, 6, MELS)
    );
    assert_eq!((h.n_audio_layer, h.n_text_layer), (1, 1));

    let (header, n_tokens, tensors) = read_ggml(&out);
    assert_eq!(header[0], 0x6767_6d6c);
    assert_eq!(&header[1..12], &[VOCAB as i32, 8, 64, 1, 1, 6, 64, 1, 1, MELS as i32, 1]);
    assert_eq!(n_tokens, 3, "special tokens are whisper.cpp's to add");
    // 7 encoder + 15 per encoder block + 4 decoder + 24 per decoder block.
    assert_eq!(tensors.len(), 50, "{:?}", tensors.keys().collect::<Vec<_>>());
    assert!(!tensors.contains_key("encoder.blocks.0.attn.key.bias"), "Whisper keys have no bias");

    // Dims are written innermost first; the fused QKV splits into three row blocks.
    let key = &tensors["encoder.blocks.0.attn.key.weight"];
    assert_eq!((key.dims.clone(), key.ftype), (vec![D, D], 1));
    assert_eq!(key.first_value, (D * D) as f32, "key rows follow the query rows");
    assert_eq!(tensors["decoder.blocks.0.cross_attn.value.bias"].first_value, D as f32);
    let conv_bias = &tensors["encoder.conv1.bias"];
    assert_eq!((conv_bias.dims.clone(), conv_bias.ftype), (vec![1, D], 0));
    assert_eq!(tensors["encoder.conv1.weight"].dims, vec![3, MELS, D]);
    assert_eq!(tensors["decoder.positional_embedding"].ftype, 0);
    assert_eq!(tensors["decoder.ln.bias"].ftype, 0);
}

#[test]
fn truncated_files_are_format_errors_not_panics() {
    let bytes = ct2_bytes(&synthetic_model());
    for cut in [3, 20, 200, bytes.len() - 10] {
        assert!(matches!(ct2::parse(&bytes[..cut]), Err(super::error::ModelError::Format(_))), "cut at {cut}");
    }
}

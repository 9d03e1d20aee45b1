//! ReLU and leaky ReLU as one fused CPU pass forward and one backward.
//!
//! candle-nn's `leaky_relu` is `max(x, 0) + min(x, 0)·slope`: five full-size tensors forward,
//! and autograd differentiates `maximum` and `minimum` each with two equality masks, two dtype
//! casts, a multiply, two divides and the sums into the gradient (candle-core 0.11.1
//! backprop.rs, `BinaryOp::Minimum | BinaryOp::Maximum`), about thirty passes over the
//! activation per layer, including a gradient for the constant zeros; the masks go through
//! candle's scalar `binary_map`, 5 % of a GAN training step on its own (docs/performance.md,
//! session 16). Candle's `relu` backward is a mask, a cast and a multiply. Here each is one
//! pass forward and one backward on contiguous f32 CPU tensors; other devices and dtypes keep
//! candle's ops. The gradient is `g` where `x > 0` and `slope·g` elsewhere (PyTorch's rule:
//! 0 at `x = 0` for ReLU, where candle passes `g`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::fastconv::{contiguous_f32, cpu_f32};

/// Elements per rayon task: large enough that the fork costs nothing next to the pass.
pub(crate) const CHUNK: usize = 1 << 14;

/// `x` where `x > 0`, `slope·x` elsewhere.
#[derive(Debug, Clone, Copy)]
struct LeakyRelu {
    slope: f32,
}

/// The input gradient of [`LeakyRelu`] from (output gradient, input).
#[derive(Debug, Clone, Copy)]
struct LeakyReluGrad {
    slope: f32,
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "mri-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "leaky relu")?;
        let slope = self.slope;
        // Chunked loops over slices: these vectorise, where a per-element parallel iterator
        // (`par_iter().map().collect_into_vec()`) did not (7 % of a CNN step in a profile).
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
            for (y, &v) in y.iter_mut().zip(x) {
                *y = if v > 0.0 { v } else { slope * v };
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(x, &LeakyReluGrad { slope: self.slope })?))
    }
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "mri-leaky-relu-grad"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, xs: &CpuStorage, xl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(gs, gl, "leaky relu gradient")?;
        let x = contiguous_f32(xs, xl, "leaky relu input")?;
        if g.len() != x.len() {
            candle_core::bail!("leaky relu gradient: {} elements for an input of {}", g.len(), x.len());
        }
        let slope = self.slope;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(x.par_chunks(CHUNK))).for_each(|(d, (g, x))| {
            for ((d, &g), &v) in d.iter_mut().zip(g).zip(x) {
                *d = if v > 0.0 { g } else { slope * g };
            }
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

/// Leaky ReLU with negative slope `slope`: the fused kernel on the CPU for f32,
/// `candle_nn::ops::leaky_relu` otherwise.
pub fn leaky_relu(x: &Tensor, slope: f64) -> candle_core::Result<Tensor> {
    if cpu_f32(x) {
        x.contiguous()?.apply_op1(LeakyRelu { slope: slope as f32 })
    } else {
        candle_nn::ops::leaky_relu(x, slope)
    }
}

/// ReLU: the fused kernel on the CPU for f32 (leaky ReLU of slope 0), candle's `relu`
/// otherwise.
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    if cpu_f32(x) {
        x.contiguous()?.apply_op1(LeakyRelu { slope: 0.0 })
    } else {
        x.relu()
    }
}

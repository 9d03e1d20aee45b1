//! ReLU, leaky ReLU and a residual block's `relu(a + b)` ([`add_relu`]) as one fused CPU pass
//! forward and one backward, into buffers that are not zero-filled first.
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

/// `f` of every value of `x`, in parallel chunks, into a fresh vector that is never
/// zero-filled: every slot is written once, by `f`. `vec![0f32; n]` then a pass is two
/// passes over fresh memory, the first a memset (7 % of the CNN's inference samples before
/// session 32).
pub(crate) fn par_map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let n = x.len();
    let mut y: Vec<f32> = Vec::with_capacity(n);
    y.spare_capacity_mut()[..n].par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (y, &v) in y.iter_mut().zip(x) {
            y.write(f(v));
        }
    });
    // SAFETY: the first n slots were all written above: the two chunkings have the same
    // lengths, chunk for chunk, and every chunk is written to its end.
    unsafe { y.set_len(n) };
    y
}

/// [`par_map`] with a map per chunk: every value `v` of the `k`-th run of `chunk` values
/// becomes `f(k)(v)` (a per-channel affine map over (N, C, H, W) planes: `chunk = H·W`,
/// channel `k % C`). Chunks run in parallel; none is zero-filled first.
pub(crate) fn par_map_chunks<G: Fn(f32) -> f32>(x: &[f32], chunk: usize, f: impl Fn(usize) -> G + Sync) -> Vec<f32> {
    let n = x.len();
    let mut y: Vec<f32> = Vec::with_capacity(n);
    if chunk > 0 {
        y.spare_capacity_mut()[..n].par_chunks_mut(chunk).zip(x.par_chunks(chunk)).enumerate().for_each(|(k, (y, x))| {
            let g = f(k);
            for (y, &v) in y.iter_mut().zip(x) {
                y.write(g(v));
            }
        });
        // SAFETY: as in par_map: equal chunkings, every chunk written to its end.
        unsafe { y.set_len(n) };
    }
    y
}

/// [`par_map`] over the pairs of two slices of one length.
pub(crate) fn par_map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "par_map2: slices of different lengths");
    let n = a.len();
    let mut y: Vec<f32> = Vec::with_capacity(n);
    y.spare_capacity_mut()[..n].par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(y, (a, b))| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            y.write(f(a, b));
        }
    });
    // SAFETY: as in par_map: equal chunkings, every chunk written to its end.
    unsafe { y.set_len(n) };
    y
}

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
        // Chunked loops over slices (`par_map`): these vectorise, where a per-element parallel
        // iterator (`par_iter().map().collect_into_vec()`) did not (7 % of a CNN step in a
        // profile). `move` matters too: a closure that borrowed `slope` had LLVM reload it
        // after every store (it could not rule out that the output aliases it) and keep the
        // branch, so the loop ran scalar and mispredicted on every sign — 5.4 ms for 0.5 M
        // values, 60× candle's ReLU, until session 32 (`cargo bench -p mri-train --bench
        // kernels -- residual-add-relu`).
        let y = par_map(x, move |v| if v > 0.0 { v } else { slope * v });
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
        let dx = par_map2(g, x, move |g, v| if v > 0.0 { g } else { slope * g });
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

/// `max(a + b, 0)`: a residual block's sum and its ReLU in one pass and one buffer.
#[derive(Debug, Clone, Copy)]
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "mri-add-relu"
    }

    fn cpu_fwd(&self, a_s: &CpuStorage, a_l: &Layout, b_s: &CpuStorage, b_l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = contiguous_f32(a_s, a_l, "add + relu, first input")?;
        let b = contiguous_f32(b_s, b_l, "add + relu, second input")?;
        if a_l.shape() != b_l.shape() {
            candle_core::bail!("add + relu: shapes {:?} and {:?} differ", a_l.shape(), b_l.shape());
        }
        // relu's rule, NaN included (`max(0)` would turn NaN into 0).
        let y = par_map2(a, b, |a, b| {
            let v = a + b;
            if v > 0.0 {
                v
            } else {
                0.0 * v
            }
        });
        Ok((CpuStorage::F32(y), a_l.shape().clone()))
    }

    /// Both inputs receive the output gradient where the output is positive (a + b > 0), 0
    /// elsewhere: one mask pass, shared by the two.
    fn bwd(&self, _a: &Tensor, _b: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?.apply_op2_no_bwd(res, &LeakyReluGrad { slope: 0.0 })?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `relu(a + b)` for two tensors of one shape (a residual block's output): one fused pass
/// forward and one backward on contiguous f32 CPU tensors, candle's `add` then [`relu`]
/// otherwise. The gradient follows [`relu`]'s rule (0 where `a + b = 0`).
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if cpu_f32(a) && cpu_f32(b) && a.shape() == b.shape() {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
    } else {
        relu(&(a + b)?)
    }
}

//! Per-image translation of a batch with a fill value: one pass forward and one backward on
//! the CPU.
//!
//! Written with candle's ops, a per-image shift is a pad, one `narrow` window per image and a
//! `cat`; candle's backward of each `narrow` pads that image's gradient back to the size of the
//! whole padded batch (candle-core 0.11.1 backprop.rs, `Op::Narrow`), so the backward pass costs
//! O(N²) in the batch size. DiffAugment's translation (mri-gan) does this on every generator
//! step. Here the shift is one custom op whose backward is the opposite shift.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::fastconv::{contiguous_f32, cpu_f32};

/// `out[n, c, y, x] = x[n, c, y − dy_n, x − dx_n]`, `fill` where that lies outside.
#[derive(Debug, Clone)]
struct Translate {
    offsets: Vec<(isize, isize)>,
    fill: f32,
}

/// The input gradient of [`Translate`]: the output gradient shifted back, 0 where it came
/// from the fill.
#[derive(Debug, Clone)]
struct TranslateGrad {
    offsets: Vec<(isize, isize)>,
}

/// Shifts every plane of image `n` by `offsets[n]` = (dy, dx) into `dst`: `dst[y][x] =
/// src[y − dy][x − dx]`, `fill` outside.
fn shift_planes(src: &[f32], dst: &mut [f32], (n, c, h, w): (usize, usize, usize, usize), offsets: &[(isize, isize)], fill: f32) {
    dst.par_chunks_mut(h * w).enumerate().for_each(|(k, out)| {
        let (dy, dx) = offsets[k / c];
        let plane = &src[k * h * w..(k + 1) * h * w];
        // Output columns lo..hi read input columns lo − dx..hi − dx.
        let lo = dx.clamp(0, w as isize) as usize;
        let hi = (w as isize + dx).clamp(lo as isize, w as isize) as usize;
        for y in 0..h {
            let row = &mut out[y * w..(y + 1) * w];
            let sy = y as isize - dy;
            if sy < 0 || sy >= h as isize || hi == lo {
                row.fill(fill);
                continue;
            }
            let srow = &plane[sy as usize * w..(sy as usize + 1) * w];
            row[..lo].fill(fill);
            row[hi..].fill(fill);
            row[lo..hi].copy_from_slice(&srow[(lo as isize - dx) as usize..(hi as isize - dx) as usize]);
        }
    });
    debug_assert_eq!(dst.len(), n * c * h * w);
}

impl CustomOp1 for Translate {
    fn name(&self) -> &'static str {
        "mri-translate"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "translate")?;
        let dims = l.shape().dims4()?;
        let mut y = vec![0f32; x.len()];
        shift_planes(x, &mut y, dims, &self.offsets, self.fill);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(x, &TranslateGrad { offsets: self.offsets.clone() })?))
    }
}

impl CustomOp2 for TranslateGrad {
    fn name(&self) -> &'static str {
        "mri-translate-grad"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, _xs: &CpuStorage, xl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(gs, gl, "translate gradient")?;
        let dims = gl.shape().dims4()?;
        let back: Vec<(isize, isize)> = self.offsets.iter().map(|&(dy, dx)| (-dy, -dx)).collect();
        let mut dx = vec![0f32; g.len()];
        shift_planes(g, &mut dx, dims, &back, 0.0);
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

/// Shifts image `n` of the batch `x` (N, C, H, W) by `offsets[n]` = (dy, dx) pixels (down and
/// right for positive values), filling what comes in with `fill`; differentiable in `x`. The
/// fused kernel on the CPU for f32; pad, `narrow` and `cat` otherwise.
pub fn translate(x: &Tensor, offsets: &[(isize, isize)], fill: f64) -> candle_core::Result<Tensor> {
    let (n, _, h, w) = x.dims4()?;
    if offsets.len() != n {
        candle_core::bail!("translate: {} offsets for a batch of {n}", offsets.len());
    }
    if cpu_f32(x) {
        return x.contiguous()?.apply_op1(Translate { offsets: offsets.to_vec(), fill: fill as f32 });
    }
    // Pad by the largest shift, then cut each image's window.
    let m = offsets.iter().map(|&(dy, dx)| dy.unsigned_abs().max(dx.unsigned_abs())).max().unwrap_or(0);
    let padded = (x - fill)?.pad_with_zeros(2, m, m)?.pad_with_zeros(3, m, m)?;
    let parts = offsets
        .iter()
        .enumerate()
        .map(|(i, &(dy, dx))| padded.narrow(0, i, 1)?.narrow(2, (m as isize - dy) as usize, h)?.narrow(3, (m as isize - dx) as usize, w))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)? + fill
}

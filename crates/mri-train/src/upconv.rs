//! Nearest-neighbour ×2 upsampling followed by a 3×3 conv (stride 1, padding 1) as four 2×2
//! convs on the low-resolution input (sub-pixel convolution; Shi et al., "Real-time single
//! image and video super-resolution using an efficient sub-pixel convolutional neural
//! network", 2016; Odena et al., "Deconvolution and checkerboard artifacts", 2016, show the
//! equivalence of resize-convolution and a phase-wise conv).
//!
//! Why: the GAN's generator, the generative VAE's decoder and the DAE's up path all upsample
//! and then convolve. After a nearest upsample, the three kernel rows of a 3×3 window read only
//! two distinct input rows (rows 2i − 1, 2i, 2i + 1 of the upsampled map are input rows i − 1,
//! i, i), and likewise for columns. So output pixel (2i + a, 2j + b) is a 2×2 conv of the input
//! around (i, j) with a kernel made by summing the 3×3 kernel's taps that read the same input
//! pixel. Per low-resolution pixel that is 4 phases × 4 taps = 16 multiply-adds a channel pair
//! against 4 × 9 = 36, the column matrix of im2col is built from a map a quarter the size, and
//! the upsampled map is never written. The result is the same function (sums in another order:
//! equal to rounding), with the same weights, checkpoints and gradients.
//!
//! How: the four phase kernels are stacked as one (4·O, C, 2, 2) kernel, computed from the 3×3
//! kernel by two small matrix products (so the kernel's gradient comes from candle's autograd);
//! one 2×2 conv with padding 1 gives (N, 4·O, H + 1, W + 1), phase (a, b) reading its H × W
//! window at offset (a, b); [`upsample2_conv3x3`] interleaves the windows into (N, O, 2H, 2W).
//! On the CPU for f32 the interleave is one fused op (its backward the inverse scatter); on
//! other devices it is candle's narrow / stack, so no path is CPU-only.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::fastconv::{add_channel_bias, contiguous_f32, conv2d, cpu_f32, cpu_slice};

/// For phase `a` of an output row (2i + a), which of the 3×3 kernel's rows read input row
/// i − 1 + a (first phase-kernel row, p = 0) and i + a (second, p = 1): row 2a + p of this 4 × 3
/// matrix M.
/// Phase 0: input rows i − 1 (kernel row 0) and i (rows 1 and 2); phase 1: input rows i (rows 0
/// and 1) and i + 1 (row 2). The same matrix serves columns.
const TAP_SUMS: [f32; 12] = [1., 0., 0., 0., 1., 1., 1., 1., 0., 0., 0., 1.];

/// The four 2×2 phase kernels of a 3×3 kernel `w` (O, C, 3, 3), stacked as (4·O, C, 2, 2) with
/// output channel (2a + b)·O + o for phase (a, b); differentiable in `w`.
pub fn phase_kernels(w: &Tensor) -> candle_core::Result<Tensor> {
    let (o, c, k, k2) = w.dims4()?;
    if (k, k2) != (3, 3) {
        candle_core::bail!("phase_kernels: a 3×3 kernel is needed, got {:?}", w.dims());
    }
    let mt = Tensor::from_slice(&TAP_SUMS, (4, 3), w.device())?.to_dtype(w.dtype())?.t()?;
    // Two plain matrix products (one GEMM each; a batched product of O·C tiny matrices costs
    // milliseconds in call overhead): columns, (O·C·3 kernel rows, 3) · Mᵀ → [o, c, row, 2b + q];
    // then rows, (O·C·4, 3) · Mᵀ → [o, c, 2b + q, 2a + p].
    let cols = w.reshape((o * c * 3, 3))?.matmul(&mt)?;
    let rows_last = cols.reshape((o * c, 3, 4))?.transpose(1, 2)?.contiguous()?.reshape((o * c * 4, 3))?;
    let both = rows_last.matmul(&mt)?;
    // [o, c, b, q, a, p] → [a, b, o, c, p, q].
    both.reshape((o, c, 2, 2, 2, 2))?.permute([4, 2, 0, 1, 5, 3])?.contiguous()?.reshape((4 * o, c, 2, 2))
}

/// `conv2d(upsample2(x), w, bias, stride 1, padding 1)` for a 3×3 kernel `w` (O, C, 3, 3) and
/// `x` (N, C, H, W), without the upsampled map: four 2×2 phase convs on `x` (module docs).
pub fn upsample2_conv3x3(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    let (o, c2, _, _) = w.dims4()?;
    if c != c2 {
        candle_core::bail!("upsample2_conv3x3: input has {c} channels, kernel {:?}", w.dims());
    }
    let phases = conv2d(x, &phase_kernels(w)?, None, 1, 1)?;
    let y = interleave_phases(&phases, o)?;
    match bias {
        Some(b) => add_channel_bias(&y, b),
        None => Ok(y),
    }
}

/// (N, 4·O, H + 1, W + 1) phase outputs → (N, O, 2H, 2W): output (2i + a, 2j + b) of channel o
/// is entry (i + a, j + b) of channel (2a + b)·O + o.
fn interleave_phases(phases: &Tensor, o: usize) -> candle_core::Result<Tensor> {
    let (n, c4, h1, w1) = phases.dims4()?;
    if c4 != 4 * o || h1 < 2 || w1 < 2 {
        candle_core::bail!("interleave_phases: {:?} is not (N, 4·{o}, H + 1, W + 1)", phases.dims());
    }
    if cpu_f32(phases) {
        return phases.contiguous()?.apply_op1(Interleave { o });
    }
    let (h, w) = (h1 - 1, w1 - 1);
    let p = phases.reshape((n, 2, 2, o, h1, w1))?;
    let window =
        |a: usize, b: usize| -> candle_core::Result<Tensor> { p.narrow(1, a, 1)?.narrow(2, b, 1)?.reshape((n, o, h1, w1))?.narrow(2, a, h)?.narrow(3, b, w) };
    // Per row phase a: (N, O, H, W, 2) with the column phase last; then (N, O, H, 2, W, 2).
    let row = |a: usize| -> candle_core::Result<Tensor> { Tensor::stack(&[window(a, 0)?, window(a, 1)?], 4) };
    Tensor::stack(&[row(0)?, row(1)?], 3)?.reshape((n, o, 2 * h, 2 * w))
}

/// The CPU interleave ([`interleave_phases`]); its backward scatters the gradient back into the
/// phase windows (the unread border of each phase plane gets zero).
#[derive(Debug, Clone, Copy)]
struct Interleave {
    o: usize,
}

impl CustomOp1 for Interleave {
    fn name(&self) -> &'static str {
        "mri-interleave-phases"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "interleave_phases")?;
        let (n, _, h1, w1) = l.shape().dims4()?;
        let (o, h, w) = (self.o, h1 - 1, w1 - 1);
        let plane = h1 * w1;
        let mut y = vec![0f32; n * o * 4 * h * w];
        y.par_chunks_mut(4 * h * w).enumerate().for_each(|(k, dst)| {
            let (img, ch) = (k / o, k % o);
            let phase = |a: usize, b: usize| {
                let start = (img * 4 * o + (2 * a + b) * o + ch) * plane;
                &src[start..start + plane]
            };
            for (r, drow) in dst.chunks_exact_mut(2 * w).enumerate() {
                let (i, a) = (r / 2, r % 2);
                let s0 = &phase(a, 0)[(i + a) * w1..(i + a) * w1 + w];
                let s1 = &phase(a, 1)[(i + a) * w1 + 1..(i + a) * w1 + 1 + w];
                for ((d, &v0), &v1) in drow.chunks_exact_mut(2).zip(s0).zip(s1) {
                    d[0] = v0;
                    d[1] = v1;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, o, 2 * h, 2 * w))))
    }

    fn bwd(&self, phases: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, c4, h1, w1) = phases.dims4()?;
        let (o, h, w) = (self.o, h1 - 1, w1 - 1);
        let gc = grad.contiguous()?;
        let guard = gc.storage_and_layout();
        let g = cpu_slice(&guard)?;
        let plane = h1 * w1;
        let mut dp = vec![0f32; n * c4 * plane];
        dp.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
            let (img, ph, ch) = (k / (4 * o), (k / o) % 4, k % o);
            let (a, b) = (ph / 2, ph % 2);
            let gplane = &g[(img * o + ch) * 4 * h * w..(img * o + ch + 1) * 4 * h * w];
            for i in 0..h {
                let grow = &gplane[(2 * i + a) * 2 * w..(2 * i + a + 1) * 2 * w];
                let drow = &mut dst[(i + a) * w1 + b..(i + a) * w1 + b + w];
                for (d, pair) in drow.iter_mut().zip(grow.chunks_exact(2)) {
                    *d = pair[b];
                }
            }
        });
        Ok(Some(Tensor::from_vec(dp, (n, c4, h1, w1), phases.device())?))
    }
}

/// Whether a conv after a ×2 upsample can run as phase convs: a 3×3 kernel, stride 1,
/// padding 1, f32 or another float type candle's matmul takes.
pub fn applies(k: usize, stride: usize, pad: usize, dtype: DType) -> bool {
    k == 3 && stride == 1 && pad == 1 && dtype.is_float()
}

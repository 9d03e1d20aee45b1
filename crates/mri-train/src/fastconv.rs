//! Convolutions as im2col / col2im + one GEMM, with GEMM backward passes, for the CPU.
//!
//! Candle's CPU conv2d forward is already im2col + GEMM, but its backward pass is not: the
//! input gradient goes through `conv_transpose2d`, a direct loop, and the weight gradient
//! through a conv2d whose "kernel" is the whole output map (candle issue 2144; docs/design.md
//! pitfall). Training convs was ~10× slower than inference here.
//!
//! This module expresses a convolution as `W (O × C·k·k) @ im2col(x) (C·k·k × N·Ho·Wo)`, where
//! [`Im2Col`] and [`Col2Im`] are candle custom ops that are each other's backward pass. Candle's
//! own autograd then differentiates the matmul, so both gradients are single GEMMs plus one
//! col2im — the same algorithm PyTorch uses on the CPU. A transposed convolution is the
//! mirror image: `col2im(Wᵀ @ x)`.
//!
//! [`conv2d`] and [`conv_transpose2d`] pick this path for contiguous f32 tensors on the CPU and
//! fall back to candle's ops otherwise (CUDA, Metal, other dtypes), so the GPU features are
//! unaffected. [`Conv2d`] and [`ConvTranspose2d`] are drop-in layers with candle-nn's weight
//! names (`weight`, `bias`), so checkpoints do not change. Every kernel is tested against
//! candle's reference ops (tests/fastconv.rs).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Module, Shape, Storage, StorageRef, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Geometry of one convolution: input plane H×W, kernel k×k, stride, padding, output Ho×Wo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub n: usize,
    /// Input channels (of the im2col'd image).
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
}

impl ConvGeometry {
    /// Output height of the convolution.
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Output width.
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn cols(&self) -> usize {
        self.n * self.ho() * self.wo()
    }
}

/// The algorithm of the CPU's f32 convolutions (not transposed ones), for the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ConvAlgorithm {
    /// Stride-1 convs with a 3×3 or larger kernel and more than one input and output channel
    /// as GEMMs on shifted views of the padded image (the crate's `shiftconv` module), the
    /// direct kernel for one output channel, im2col + GEMM otherwise.
    #[default]
    Auto,
    /// im2col + GEMM for every conv with more than one output channel (the yardstick of
    /// benches and `throughput --conv im2col`).
    Im2col,
}

static CONV_ALGORITHM: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the algorithm every later CPU conv uses. Both give the same function up to rounding
/// (tests/fastconv.rs checks each against candle), so it is a speed switch, not a model
/// change; a trained model's numbers move by rounding only.
pub fn set_conv_algorithm(a: ConvAlgorithm) {
    CONV_ALGORITHM.store(a as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The algorithm set by [`set_conv_algorithm`] ([`ConvAlgorithm::Auto`] unless set).
pub fn conv_algorithm() -> ConvAlgorithm {
    match CONV_ALGORITHM.load(std::sync::atomic::Ordering::Relaxed) {
        0 => ConvAlgorithm::Auto,
        _ => ConvAlgorithm::Im2col,
    }
}

/// Whether `t` is an f32 tensor on the CPU: the tensors this crate's fused kernels take (other
/// devices and dtypes fall back to candle's ops).
pub(crate) fn cpu_f32(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// The f32 values of a contiguous CPU storage; an error naming `what` otherwise.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// [`contiguous_f32`], writable (in-place ops).
pub(crate) fn contiguous_f32_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a mut [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// im2col: (N, C, H, W) → (C·k·k, N·Ho·Wo); row `(c·k + i)·k + j`, column `n·Ho·Wo + oy·Wo + ox`
/// holds x[n, c, oy·s − p + i, ox·s − p + j] (0 outside). Its backward pass is [`Col2Im`].
#[derive(Debug, Clone, Copy)]
pub struct Im2Col(pub ConvGeometry);

/// col2im: (C·k·k, N·Ho·Wo) → (N, C, H, W), summing every column entry into the pixel it came
/// from; the adjoint of [`Im2Col`], and its backward pass.
#[derive(Debug, Clone, Copy)]
pub struct Col2Im(pub ConvGeometry);

/// The im2col of `x` (N·C·H·W values, row-major) as a (C·k·k) × (N·Ho·Wo) row-major matrix;
/// its rows spread over rayon's pool when `parallel`, else on the calling thread (inside a task
/// that already has an image to itself).
fn im2col(x: &[f32], g: ConvGeometry, parallel: bool) -> Vec<f32> {
    let mut out = Vec::new();
    im2col_into(x, g, parallel, &mut out);
    out
}

/// [`im2col`] into `out`, reused when it already has the right length: every element is
/// written, so a buffer kept across the images of a batch needs no zero-fill (which, with a
/// fresh allocation per image, was 4 % of a DAE training step: memset, page faults).
fn im2col_into(x: &[f32], g: ConvGeometry, parallel: bool, out: &mut Vec<f32>) {
    let ncols = g.cols();
    out.resize(g.rows() * ncols, 0.0);
    if g.stride == 2 && g.k >= 2 {
        // The k rows of one (channel, kernel row) from one pass per input row (`im2col_s2`).
        let group = g.k * ncols;
        if parallel {
            out.par_chunks_mut(group).enumerate().for_each_init(Vec::new, |phases, (ci, dst)| im2col_s2(x, g, ci, dst, phases));
        } else {
            let mut phases = Vec::new();
            out.chunks_mut(group).enumerate().for_each(|(ci, dst)| im2col_s2(x, g, ci, dst, &mut phases));
        }
    } else if parallel {
        out.par_chunks_mut(ncols).enumerate().for_each(|(row, dst)| im2col_row(x, g, row, dst));
    } else {
        out.chunks_mut(ncols).enumerate().for_each(|(row, dst)| im2col_row(x, g, row, dst));
    }
}

/// The outputs `ox` in `lo..hi` whose input column `ox·s − p + j` lies in `[0, w)`, for a
/// row of `wo` outputs with stride `s`, padding `p` and kernel column `j` (empty: `lo == hi`).
pub(crate) fn strided_range(w: usize, wo: usize, s: usize, p: isize, j: usize) -> (usize, usize) {
    let first = p - j as isize; // ox·s ≥ p − j
    let lo = if first <= 0 { 0 } else { (first as usize).div_ceil(s) }.min(wo);
    let end = w as isize + p - j as isize; // ox·s < w + p − j
    let hi = if end <= 0 { 0 } else { (end as usize).div_ceil(s) }.min(wo).max(lo);
    (lo, hi)
}

/// `dst[t] = src[t · s]` for every t. Stride 2 (every strided conv here) as pairs, which the
/// compiler turns into shuffles; `step_by` stays a scalar loop.
#[inline]
fn copy_strided(src: &[f32], s: usize, dst: &mut [f32]) {
    let n = dst.len();
    if s == 2 && src.len() >= 2 * n {
        for (d, pair) in dst.iter_mut().zip(src[..2 * n].chunks_exact(2)) {
            *d = pair[0];
        }
    } else {
        for (d, v) in dst.iter_mut().zip(src.iter().step_by(s)) {
            *d = *v;
        }
    }
}

/// `dst[t · s] += src[t]` for every t: [`copy_strided`]'s mirror (col2im).
#[inline]
fn add_strided(src: &[f32], s: usize, dst: &mut [f32]) {
    let n = src.len();
    if s == 2 && dst.len() >= 2 * n {
        for (pair, v) in dst[..2 * n].chunks_exact_mut(2).zip(src) {
            pair[0] += v;
        }
    } else {
        for (d, v) in dst.iter_mut().step_by(s).zip(src) {
            *d += v;
        }
    }
}

/// Row `row` of the im2col matrix into `dst` (N·Ho·Wo long; every element written, the
/// padding as 0).
fn im2col_row(x: &[f32], g: ConvGeometry, row: usize, dst: &mut [f32]) {
    let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad as isize);
    let (plane, l) = (g.h * g.w, ho * wo);
    let (c, i, j) = (row / (k * k), (row / k) % k, row % k);
    for n in 0..g.n {
        let src = &x[(n * g.c + c) * plane..(n * g.c + c + 1) * plane];
        let dst = &mut dst[n * l..(n + 1) * l];
        for oy in 0..ho {
            let y = (oy * s) as isize - p + i as isize;
            let drow = &mut dst[oy * wo..(oy + 1) * wo];
            if y < 0 || y >= g.h as isize {
                drow.fill(0.0);
                continue;
            }
            let srow = &src[y as usize * g.w..(y as usize + 1) * g.w];
            if s == 1 {
                // Contiguous run: ox + j − p in [0, W).
                let lo = ((p - j as isize).max(0) as usize).min(wo);
                let hi = ((g.w as isize + p - j as isize).min(wo as isize)).max(lo as isize) as usize;
                drow[..lo].fill(0.0);
                drow[hi..].fill(0.0);
                if hi > lo {
                    let x0 = (lo as isize + j as isize - p) as usize;
                    drow[lo..hi].copy_from_slice(&srow[x0..x0 + hi - lo]);
                }
            } else {
                // Strided: the valid outputs are one range, read every s-th input.
                let (lo, hi) = strided_range(g.w, wo, s, p, j);
                drow[..lo].fill(0.0);
                drow[hi..].fill(0.0);
                if hi > lo {
                    let x0 = ((lo * s) as isize - p + j as isize) as usize;
                    copy_strided(&srow[x0..], s, &mut drow[lo..hi]);
                }
            }
        }
    }
}

/// Stride 2: the k im2col rows of channel `c` and kernel row `i` (`ci = c·k + i`) into `dst`
/// (k·N·Ho·Wo long, every element written).
///
/// Why a kernel of its own: row by row ([`im2col_row`]), a stride-2 conv at the default preset
/// (16–32 outputs a row) spent its time on per-row bounds arithmetic (an integer division per
/// output row and tap) and scalar strided loads: 13 % of the anomaly VAE's training profile
/// (docs/performance.md, session 34). Here each input row is split once into its two phases,
/// even and odd columns of the zero-padded row (`phases`, reused), and tap j of the output row
/// is then the contiguous run `phase[j mod 2][j / 2 ..][..Wo]`: one copy per tap, no division.
/// The values are the same as [`im2col_row`]'s.
fn im2col_s2(x: &[f32], g: ConvGeometry, ci: usize, dst: &mut [f32], phases: &mut Vec<f32>) {
    let (ho, wo, k, p) = (g.ho(), g.wo(), g.k, g.pad);
    let (plane, l, ncols) = (g.h * g.w, ho * wo, g.cols());
    let (c, i) = (ci / k, ci % k);
    // Padded row r[t] = x[t − p] (0 outside), t < W + 2p; phase φ holds r[2m + φ], m < half.
    // Tap j reads r[2·ox + j] = phase[j % 2][ox + j / 2], so half = Wo + (k − 1) / 2 covers it.
    let half = wo + (k - 1) / 2;
    phases.resize(2 * half, 0.0);
    for n in 0..g.n {
        let src = &x[(n * g.c + c) * plane..(n * g.c + c + 1) * plane];
        for oy in 0..ho {
            let at = n * l + oy * wo;
            let y = (2 * oy + i) as isize - p as isize;
            if y < 0 || y >= g.h as isize {
                for j in 0..k {
                    dst[j * ncols + at..j * ncols + at + wo].fill(0.0);
                }
                continue;
            }
            let srow = &src[y as usize * g.w..(y as usize + 1) * g.w];
            let (even, odd) = phases.split_at_mut(half);
            split_phases(srow, p, even, odd);
            for j in 0..k {
                let phase = if j % 2 == 0 { &even[..] } else { &odd[..] };
                dst[j * ncols + at..j * ncols + at + wo].copy_from_slice(&phase[j / 2..j / 2 + wo]);
            }
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "mri-im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = contiguous_f32(storage, layout, "im2col")?;
        if layout.shape().dims() != [g.n, g.c, g.h, g.w] {
            candle_core::bail!("im2col: shape {:?} does not match {g:?}", layout.shape());
        }
        let out = im2col(x, g, true);
        Ok((CpuStorage::F32(out), Shape::from((g.rows(), g.cols()))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

/// The col2im of a (C·k·k) × (N·Ho·Wo) row-major matrix: N·C·H·W values, row-major, its
/// planes spread over rayon's pool.
fn col2im(cols: &[f32], g: ConvGeometry) -> Vec<f32> {
    let mut out = vec![0f32; g.n * g.c * g.h * g.w];
    col2im_into(cols, g, &mut out, true);
    out
}

/// [`col2im`] into `out` (N·C·H·W, zero-filled); on the calling thread only unless `parallel`.
fn col2im_into(cols: &[f32], g: ConvGeometry, out: &mut [f32], parallel: bool) {
    if g.stride == 2 && g.k >= 2 {
        if parallel {
            out.par_chunks_mut(g.h * g.w).enumerate().for_each_init(Vec::new, |acc, (nc, dst)| col2im_s2(cols, g, nc, dst, acc));
        } else {
            let mut acc = Vec::new();
            out.chunks_mut(g.h * g.w).enumerate().for_each(|(nc, dst)| col2im_s2(cols, g, nc, dst, &mut acc));
        }
    } else if parallel {
        out.par_chunks_mut(g.h * g.w).enumerate().for_each(|(nc, dst)| col2im_plane(cols, g, nc, dst));
    } else {
        out.chunks_mut(g.h * g.w).enumerate().for_each(|(nc, dst)| col2im_plane(cols, g, nc, dst));
    }
}

/// Plane `nc` (image n, channel c) of the col2im into `dst` (zero-filled, H·W long).
fn col2im_plane(cols: &[f32], g: ConvGeometry, nc: usize, dst: &mut [f32]) {
    let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad as isize);
    let (l, ncols) = (ho * wo, g.cols());
    let (n, c) = (nc / g.c, nc % g.c);
    for i in 0..k {
        for j in 0..k {
            let row = (c * k + i) * k + j;
            let src = &cols[row * ncols + n * l..row * ncols + (n + 1) * l];
            for oy in 0..ho {
                let y = (oy * s) as isize - p + i as isize;
                if y < 0 || y >= g.h as isize {
                    continue;
                }
                let drow = &mut dst[y as usize * g.w..(y as usize + 1) * g.w];
                let srow = &src[oy * wo..(oy + 1) * wo];
                if s == 1 {
                    let lo = (p - j as isize).max(0) as usize;
                    let hi = ((g.w as isize + p - j as isize).min(wo as isize)).max(lo as isize) as usize;
                    if hi > lo {
                        let x0 = (lo as isize + j as isize - p) as usize;
                        for (d, v) in drow[x0..x0 + hi - lo].iter_mut().zip(&srow[lo..hi]) {
                            *d += v;
                        }
                    }
                } else {
                    let (lo, hi) = strided_range(g.w, wo, s, p, j);
                    if hi > lo {
                        let x0 = ((lo * s) as isize - p + j as isize) as usize;
                        add_strided(&srow[lo..hi], s, &mut drow[x0..]);
                    }
                }
            }
        }
    }
}

/// The two phases of a row zero-padded by `p` on the left: `even[m] = r[2m]`, `odd[m] =
/// r[2m + 1]` with `r[t] = row[t − p]` (0 outside the row), `m < even.len() = odd.len()`.
/// Branch-free pairs in the middle: input pairs (2q, 2q + 1) land in one slot of each phase.
#[inline]
fn split_phases(row: &[f32], p: usize, even: &mut [f32], odd: &mut [f32]) {
    let half = even.len();
    even.fill(0.0);
    odd.fill(0.0);
    // Input column x sits at t = x + p: phase (x + p) % 2, slot (x + p) / 2.
    let (a, pairs) = (p / 2, row.len() / 2);
    if p % 2 == 0 {
        // x = 2q → even[q + a], x = 2q + 1 → odd[q + a].
        let n = pairs.min(half.saturating_sub(a));
        for ((e, o), pair) in even[a..a + n].iter_mut().zip(&mut odd[a..a + n]).zip(row.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
    } else {
        // x = 2q → odd[q + a], x = 2q + 1 → even[q + a + 1].
        let n = pairs.min(half.saturating_sub(a + 1));
        for ((o, e), pair) in odd[a..a + n].iter_mut().zip(&mut even[a + 1..a + 1 + n]).zip(row.chunks_exact(2)) {
            *o = pair[0];
            *e = pair[1];
        }
        // The last pair's odd-phase value when the even one fell past the end.
        if n < pairs && a + n < half {
            odd[a + n] = row[2 * n];
        }
    }
    // An odd-length row's last column.
    if row.len() % 2 == 1 {
        let t = row.len() - 1 + p;
        if t / 2 < half {
            if t % 2 == 0 {
                even[t / 2] = row[row.len() - 1];
            } else {
                odd[t / 2] = row[row.len() - 1];
            }
        }
    }
}

/// Stride 2: plane `nc` of the col2im into `dst` (H·W, added to), [`im2col_s2`]'s adjoint.
///
/// Every column row is added as a contiguous run into the even / odd phase of the padded
/// output row it belongs to (`acc`, H rows of two phases, reused), and the phases are added
/// into `dst` once at the end. A pixel receives its terms in the same order as in
/// [`col2im_plane`] (kernel row, then column), so the sums are the same bits.
fn col2im_s2(cols: &[f32], g: ConvGeometry, nc: usize, dst: &mut [f32], acc: &mut Vec<f32>) {
    let (ho, wo, k, p) = (g.ho(), g.wo(), g.k, g.pad);
    let (l, ncols) = (ho * wo, g.cols());
    let (n, c) = (nc / g.c, nc % g.c);
    let half = wo + (k - 1) / 2;
    acc.clear();
    acc.resize(g.h * 2 * half, 0.0);
    for i in 0..k {
        for oy in 0..ho {
            let y = (2 * oy + i) as isize - p as isize;
            if y < 0 || y >= g.h as isize {
                continue;
            }
            let row = &mut acc[y as usize * 2 * half..(y as usize + 1) * 2 * half];
            for j in 0..k {
                let r = (c * k + i) * k + j;
                let src = &cols[r * ncols + n * l + oy * wo..][..wo];
                let start = (j % 2) * half + j / 2;
                row[start..start + wo].iter_mut().zip(src).for_each(|(a, v)| *a += v);
            }
        }
    }
    for (y, drow) in dst.chunks_exact_mut(g.w).enumerate() {
        let (even, odd) = acc[y * 2 * half..(y + 1) * 2 * half].split_at(half);
        add_phases(even, odd, p, drow);
    }
}

/// `row[x] += r[x + p]` for the padded row `r` whose two phases are `even[m] = r[2m]` and
/// `odd[m] = r[2m + 1]` (0 past their end): [`split_phases`]'s adjoint, pairs in the middle.
#[inline]
fn add_phases(even: &[f32], odd: &[f32], p: usize, row: &mut [f32]) {
    let (half, a, pairs, len) = (even.len(), p / 2, row.len() / 2, row.len());
    if p % 2 == 0 {
        // x = 2q ← even[q + a], x = 2q + 1 ← odd[q + a].
        let n = pairs.min(half.saturating_sub(a));
        for ((pair, e), o) in row.chunks_exact_mut(2).zip(&even[a..a + n]).zip(&odd[a..a + n]) {
            pair[0] += e;
            pair[1] += o;
        }
    } else {
        // x = 2q ← odd[q + a], x = 2q + 1 ← even[q + a + 1].
        let n = pairs.min(half.saturating_sub(a + 1));
        for ((pair, o), e) in row.chunks_exact_mut(2).zip(&odd[a..a + n]).zip(&even[a + 1..a + 1 + n]) {
            pair[0] += o;
            pair[1] += e;
        }
        if n < pairs && a + n < half {
            row[2 * n] += odd[a + n];
        }
    }
    if len % 2 == 1 {
        let t = len - 1 + p;
        if t / 2 < half {
            row[len - 1] += if t % 2 == 0 { even[t / 2] } else { odd[t / 2] };
        }
    }
}

/// `dst (m × n) = lhs (m × k) @ rhs (k × n)`, or `dst += …` when `accumulate`, on at most
/// `threads` threads (1: the calling thread only); every matrix given as (slice, row stride,
/// column stride), `dst` row-major and dense. The `gemm` crate candle's CPU matmul uses, called
/// directly so the product lands in its final place without a copy.
#[allow(clippy::too_many_arguments)]
fn sgemm_with(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: (&[f32], usize, usize), rhs: (&[f32], usize, usize), accumulate: bool, threads: usize) {
    sgemm_strided(m, n, k, (dst, n, 1), lhs, rhs, accumulate, threads);
}

/// [`sgemm_with`] with `dst` given as (slice, row stride, column stride) too: a product written
/// into a strided view (one kernel tap of an (O, C, k, k) weight gradient, a shifted view of a
/// padded image).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: (&mut [f32], usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(
        dst.0.len() >= extent(m, n, dst.1, dst.2) && lhs.0.len() >= extent(m, k, lhs.1, lhs.2) && rhs.0.len() >= extent(k, n, rhs.1, rhs.2),
        "sgemm: operand too short"
    );
    // SAFETY: the extents above keep every access inside the slices; dst does not alias the inputs
    // (a &mut borrow). Callers pass strides under which distinct (row, column) pairs of dst are
    // distinct elements.
    unsafe { gemm_unchecked(m, n, k, (dst.0.as_mut_ptr(), dst.1, dst.2), lhs, rhs, accumulate, threads) }
}

/// Elements spanned by a rows × cols matrix with row stride `rs` and column stride `cs`.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// The gemm crate's `dst (+)= lhs @ rhs`, `dst` as (pointer, row stride, column stride); with
/// `accumulate` false the destination is only written (the crate sets α = 0 and never reads it).
///
/// # Safety
/// `dst` must be valid for writes (and, when accumulating, reads) of every element its strides
/// reach for m × n, the inputs for reads of theirs, and `dst` must not alias them.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_unchecked(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut f32, usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    accumulate: bool,
    threads: usize,
) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2 as isize,
        dst.1 as isize,
        accumulate,
        lhs.0.as_ptr(),
        lhs.2 as isize,
        lhs.1 as isize,
        rhs.0.as_ptr(),
        rhs.2 as isize,
        rhs.1 as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// The f32 data of a CPU tensor (copied only when it is not contiguous).
fn cpu_data(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1()
}

/// The f32 values behind a contiguous CPU tensor's storage guard, borrowed: a backward pass
/// reads its saved input and its output gradient in place instead of copying both into fresh
/// vectors (`to_vec1`), which was a full pass over every activation per layer.
///
/// ```ignore
/// let xc = x.contiguous()?; // no copy when already contiguous
/// let xg = xc.storage_and_layout();
/// let xv: &[f32] = cpu_slice(&xg)?;
/// ```
pub(crate) fn cpu_slice<'a>(guard: &'a (StorageRef<'_>, &Layout)) -> candle_core::Result<&'a [f32]> {
    match &*guard.0 {
        Storage::Cpu(s) => contiguous_f32(s, guard.1, "tensor"),
        _ => candle_core::bail!("expected a CPU tensor"),
    }
}

/// Image groups whose weight gradients are summed separately in a parallel backward pass (a
/// constant, not the thread count, so that the summation order is the same on every machine).
const DW_GROUPS: usize = 8;

/// Images per weight-gradient group for a batch of `n` (at most [`DW_GROUPS`] contiguous
/// groups, the last one possibly shorter): the GEMM path's and the direct kernel's.
pub(crate) fn dw_group_size(n: usize) -> usize {
    n.div_ceil(DW_GROUPS.min(n).max(1)).max(1)
}

/// The forward pass of a per-image path: `image(scratch, i, y_i, threads)` writes image `i`'s
/// output into `y_i` (`per_out` values, zero-filled) using `threads` threads. From two images
/// on, one image per task, each on one thread: on small layers (few channels, 64 px) a
/// fork-join inside every im2col and GEMM cost more than the work, and images are independent,
/// so the result does not depend on the split. One image runs on every thread.
fn per_image_forward<S: Default + Send>(n: usize, per_out: usize, image: impl Fn(&mut S, usize, &mut [f32], usize) + Sync) -> Vec<f32> {
    let mut y = vec![0f32; n * per_out];
    for_each_image(&mut y, n, per_out, image);
    y
}

/// Runs `image(scratch, i, slot_i, threads)` on the `per_out`-long slots of `slots`, one image
/// per task and thread from two images on, else one image on every thread.
fn for_each_image<T: Send, S: Default + Send>(slots: &mut [T], n: usize, per_out: usize, image: impl Fn(&mut S, usize, &mut [T], usize) + Sync) {
    if n >= 2 {
        slots.par_chunks_mut(per_out).enumerate().for_each_init(S::default, |scratch, (i, dst)| image(scratch, i, dst, 1));
    } else {
        let mut scratch = S::default();
        for (i, dst) in slots.chunks_mut(per_out.max(1)).enumerate().take(n) {
            image(&mut scratch, i, dst, rayon::current_num_threads());
        }
    }
}

/// [`per_image_forward`] for kernels that write every value of their output slot:
/// `image(scratch, i, y_i, threads)` gets image `i`'s slot uninitialised, with no zero-fill
/// first (which was 7 % of the residual CNN's inference at the default preset: a memset and
/// the page faults of a fresh output, docs/performance.md, session 34). Same split over images
/// and threads as [`per_image_forward`].
fn per_image_forward_overwrite<S: Default + Send>(n: usize, per_out: usize, image: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>], usize) + Sync) -> Vec<f32> {
    let mut y: Vec<f32> = Vec::with_capacity(n * per_out);
    for_each_image(&mut y.spare_capacity_mut()[..n * per_out], n, per_out, image);
    // SAFETY: every caller's `image` writes all `per_out` values of its slot (a GEMM that does
    // not read its destination, or a full copy), and the slots tile the first n·per_out values.
    unsafe { y.set_len(n * per_out) };
    y
}

/// [`sgemm_with`] into an uninitialised, dense row-major `dst` (m × n), which the product
/// overwrites (the gemm crate does not read its destination when told not to accumulate).
#[allow(clippy::too_many_arguments)]
fn sgemm_overwrite(m: usize, n: usize, k: usize, dst: &mut [MaybeUninit<f32>], lhs: (&[f32], usize, usize), rhs: (&[f32], usize, usize), threads: usize) {
    assert!(dst.len() >= m * n && lhs.0.len() >= extent(m, k, lhs.1, lhs.2) && rhs.0.len() >= extent(k, n, rhs.1, rhs.2), "sgemm: operand too short");
    // SAFETY: the extents above keep every access inside the slices; without `accumulate` the
    // gemm crate only writes dst (MaybeUninit<f32> has f32's layout, and k = 0 writes zeros);
    // dst does not alias the inputs (a &mut borrow).
    unsafe { gemm_unchecked(m, n, k, (dst.as_mut_ptr().cast::<f32>(), n, 1), lhs, rhs, false, threads) }
}

/// Runs a slice kernel's backward pass `f(x, w, dy)` → (dx, dW) on the borrowed f32 values of
/// the three CPU tensors (made contiguous; no copy when they are) and wraps its results as
/// tensors of `x`'s and `w`'s shapes; dx only when `need_dx` (a kernel that skipped it may
/// still hand back its zero-filled buffer, which is dropped).
fn backward_on_slices<D: Into<Option<Vec<f32>>>>(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    need_dx: bool,
    f: impl FnOnce(&[f32], &[f32], &[f32]) -> (D, Vec<f32>),
) -> candle_core::Result<(Option<Tensor>, Tensor)> {
    let (xc, wc, dyc) = (x.contiguous()?, w.contiguous()?, dy.contiguous()?);
    let (xg, wg, dyg) = (xc.storage_and_layout(), wc.storage_and_layout(), dyc.storage_and_layout());
    let (dxv, dwv) = f(cpu_slice(&xg)?, cpu_slice(&wg)?, cpu_slice(&dyg)?);
    let dev = Device::Cpu;
    let dx = match dxv.into() {
        Some(d) if need_dx => Some(Tensor::from_vec(d, x.shape(), &dev)?),
        _ => None,
    };
    Ok((dx, Tensor::from_vec(dwv, w.shape(), &dev)?))
}

/// The backward pass of a per-image path: `image(scratch, i, dw, dx_i, threads)` adds image
/// `i`'s weight gradient into `dw` (`dw_len` values) and writes its input gradient into `dx_i`
/// (`per_in` values, zero-filled), using `threads` threads. From two images on they run in
/// parallel, one thread each, over a fixed number of contiguous image groups
/// ([`dw_group_size`]): each group sums its own weight gradient and the groups' sums are
/// added in group order, so the result is the same whatever the thread count or scheduling
/// (the determinism tests compare bits). One image runs on every thread. Returns (dx, dW).
fn per_image_backward<S: Default>(
    n: usize,
    per_in: usize,
    dw_len: usize,
    image: impl Fn(&mut S, usize, &mut [f32], &mut [f32], usize) + Sync,
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; n * per_in];
    let mut dw = vec![0f32; dw_len];
    if n >= 2 {
        let group = dw_group_size(n);
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(group * per_in)
            .enumerate()
            .map(|(gi, dx_group)| {
                let (mut dw, mut scratch) = (vec![0f32; dw_len], S::default());
                for (j, dxi) in dx_group.chunks_mut(per_in).enumerate() {
                    image(&mut scratch, gi * group + j, &mut dw, dxi, 1);
                }
                dw
            })
            .collect();
        for p in &partials {
            dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
    } else {
        let mut scratch = S::default();
        for (i, dxi) in dx.chunks_mut(per_in.max(1)).enumerate().take(n) {
            image(&mut scratch, i, &mut dw, dxi, rayon::current_num_threads());
        }
    }
    (dx, dw)
}

/// Output planes at least this large get one GEMM per image written straight into the output
/// (no transposing copy); smaller ones are batched into one GEMM per chunk.
const PER_IMAGE_MIN_PLANE: usize = 256;

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "mri-col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let cols = contiguous_f32(storage, layout, "col2im")?;
        if layout.shape().dims() != [g.rows(), g.cols()] {
            candle_core::bail!("col2im: shape {:?} does not match {g:?}", layout.shape());
        }
        let out = col2im(cols, g);
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.c, g.h, g.w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Im2Col(self.0))?))
    }
}

/// The largest im2col matrix built at once (elements, 16 MB); bigger batches are processed in
/// chunks of whole images. Small enough that a chunk's columns are still in cache when the
/// GEMM reads them: at 64 M elements the paper-preset decoder conv 128→64 @ 64 px took 509 ms
/// forward (batch 16), at 4 M 135 ms (`cargo bench -p mri-train --bench kernels`, one sitting).
const MAX_COLS_ELEMENTS: usize = 1 << 22;

fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    cpu_f32(x) && w.dtype() == DType::F32
}

fn batch_chunks(n: usize, per_image: usize) -> Vec<(usize, usize)> {
    let step = (MAX_COLS_ELEMENTS / per_image.max(1)).clamp(1, n.max(1));
    (0..n).step_by(step).map(|s| (s, step.min(n - s))).collect()
}

/// A whole convolution (or transposed convolution) of `x` (N, C, H, W) by `w` as one candle op
/// with its own backward pass, computed in batch chunks of at most [`MAX_COLS_ELEMENTS`]
/// im2col entries.
///
/// Why one op rather than autograd over `narrow` + [`Im2Col`] + matmul per chunk: candle's
/// backward of `narrow` pads each chunk's gradient back to the full input size (it allocates and
/// adds a whole (N, C, H, W) tensor per chunk), which made small chunks cost O(N²) in training.
/// Here the backward pass recomputes each chunk's columns, forms `dW` by accumulating one GEMM
/// per chunk and `dx` by col2im per chunk, and concatenates once. For output planes of at least
/// [`PER_IMAGE_MIN_PLANE`] pixels the chunk is one image and the GEMMs call the `gemm` crate
/// directly ([`sgemm_with`]) so results land in place (transposed convs too, since session 18,
/// when one image's columns fit [`MAX_COLS_ELEMENTS`]); otherwise they are candle's `matmul`
/// on untracked tensors.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    stride: usize,
    pad: usize,
    /// Transposed convs only: extra output rows/columns (< stride), which kernel taps can reach
    /// when `pad > 0`, so they are part of the col2im geometry, not zeros added afterwards.
    output_padding: usize,
    transposed: bool,
}

impl ConvOp {
    /// Geometry of one image's im2col (for a transposed conv: of its output) and output dims.
    fn geometry(&self, x: &[usize], w: &[usize]) -> candle_core::Result<(ConvGeometry, [usize; 4])> {
        let (&[n, c, h, wd], &[w0, w1, k, _]) = (x, w) else { candle_core::bail!("conv: expected 4-D tensors, got {x:?} and {w:?}") };
        if self.transposed {
            // w is (Cin, Cout, k, k); the conv from the output back onto the input has this geometry.
            let (oh, ow) = ((h - 1) * self.stride + k + self.output_padding - 2 * self.pad, (wd - 1) * self.stride + k + self.output_padding - 2 * self.pad);
            Ok((ConvGeometry { n: 1, c: w1, h: oh, w: ow, k, stride: self.stride, pad: self.pad }, [n, w1, oh, ow]))
        } else {
            let one = ConvGeometry { n: 1, c, h, w: wd, k, stride: self.stride, pad: self.pad };
            Ok((one, [n, w0, one.ho(), one.wo()]))
        }
    }

    /// Whether a transposed conv runs image by image with the gemm crate: output planes of at
    /// least [`PER_IMAGE_MIN_PLANE`] pixels (as for convs) and one image's columns within
    /// [`MAX_COLS_ELEMENTS`] (the study decoder's 33×33 and 65×65 kernels stay on the chunked
    /// path).
    fn per_image_transposed(&self, one: &ConvGeometry, out: [usize; 4], xdims: &[usize]) -> bool {
        let hw = xdims[2] * xdims[3];
        out[2] * out[3] >= PER_IMAGE_MIN_PLANE && one.rows() * hw <= MAX_COLS_ELEMENTS
    }

    /// Forward straight from the input slice into the output vector: im2col (or the
    /// transposed conv's channel-major gather) per chunk, candle's GEMM, then one copy into
    /// NCHW order.
    fn forward(&self, x: &[f32], xdims: &[usize], w: &Tensor) -> candle_core::Result<(Vec<f32>, [usize; 4])> {
        let (one, out) = self.geometry(xdims, w.dims())?;
        let n = out[0];
        let per_in = x.len() / n.max(1);
        let mut y = Vec::with_capacity(out.iter().product());
        if self.transposed && self.per_image_transposed(&one, out, xdims) {
            // One image per task: its columns Wᵀ·x_i (x_i is already the (Cin, H·W) matrix of
            // NCHW) by the gemm crate into a reused buffer, then col2im straight into its slot
            // of the output; no whole-chunk column tensor, no copy out of candle.
            let (cin, hw, rows) = (xdims[1], xdims[2] * xdims[3], one.rows());
            let per_out = out[1] * out[2] * out[3];
            let wv = cpu_data(w)?;
            y = per_image_forward(n, per_out, |cols: &mut Vec<f32>, i, dst, threads| {
                cols.resize(rows * hw, 0.0);
                sgemm_with(rows, hw, cin, cols, (&wv, 1, rows), (&x[i * per_in..(i + 1) * per_in], hw, 1), false, threads);
                col2im_into(cols, one, dst, threads > 1);
            });
        } else if self.transposed {
            let (cin, cout, k) = (w.dim(0)?, w.dim(1)?, w.dim(2)?);
            let hw = xdims[2] * xdims[3];
            let wt = w.reshape((cin, cout * k * k))?.t()?;
            for (start, len) in batch_chunks(n, one.rows() * hw) {
                // (Cin, len·H·W) so that one GEMM covers the chunk.
                let mut xs = Vec::with_capacity(cin * len * hw);
                for c in 0..cin {
                    for i in start..start + len {
                        xs.extend_from_slice(&x[(i * cin + c) * hw..(i * cin + c + 1) * hw]);
                    }
                }
                let cols: Vec<f32> = wt.matmul(&Tensor::from_vec(xs, (cin, len * hw), &Device::Cpu)?)?.flatten_all()?.to_vec1()?;
                y.extend(col2im(&cols, ConvGeometry { n: len, ..one }));
            }
        } else if crate::directconv::applies(out[1], one.k) {
            y = crate::directconv::forward(x, &cpu_data(w)?, ConvGeometry { n, ..one }, out[1]);
        } else if crate::shiftconv::applies(&one, out[1]) {
            let (o, per_out) = (out[1], out[1] * out[2] * out[3]);
            let wv = cpu_data(w)?;
            y = per_image_forward_overwrite(n, per_out, |scratch, i, dst, threads| {
                crate::shiftconv::forward_image(&x[i * per_in..(i + 1) * per_in], &wv, &one, o, dst, scratch, threads);
            });
        } else if out[2] * out[3] >= PER_IMAGE_MIN_PLANE {
            let (o, l, kk) = (out[1], out[2] * out[3], one.rows());
            let wv = cpu_data(w)?;
            y = per_image_forward_overwrite(n, o * l, |cols: &mut Vec<f32>, i, dst, threads| {
                im2col_into(&x[i * per_in..(i + 1) * per_in], one, threads > 1, cols);
                sgemm_overwrite(o, l, kk, dst, (&wv, kk, 1), (cols.as_slice(), l, 1), threads);
            });
        } else {
            let (o, l) = (out[1], out[2] * out[3]);
            let wmat = w.reshape((o, one.rows()))?;
            for (start, len) in batch_chunks(n, one.rows() * l) {
                let g = ConvGeometry { n: len, ..one };
                let cols = Tensor::from_vec(im2col(&x[start * per_in..(start + len) * per_in], g, true), (g.rows(), g.cols()), &Device::Cpu)?;
                let r: Vec<f32> = wmat.matmul(&cols)?.flatten_all()?.to_vec1()?;
                // (O, len, Ho·Wo) → (len, O, Ho·Wo)
                for i in 0..len {
                    for oc in 0..o {
                        y.extend_from_slice(&r[(oc * len + i) * l..(oc * len + i + 1) * l]);
                    }
                }
            }
        }
        Ok((y, out))
    }

    /// (dx, dw) for output gradient `dy`, on untracked tensors. Without `need_dx` (the input is
    /// an image, not a layer's output) no input gradient is computed, on every path: its GEMM
    /// and col2im are a third of the first layer's backward work.
    fn backward(&self, x: &Tensor, w: &Tensor, dy: &Tensor, need_dx: bool) -> candle_core::Result<(Option<Tensor>, Tensor)> {
        let (one, out) = self.geometry(x.dims(), w.dims())?;
        let n = out[0];
        let mut dxs = Vec::new();
        let mut dw: Option<Tensor> = None;
        let mut add = |g: Tensor| -> candle_core::Result<()> {
            dw = Some(match dw.take() {
                Some(acc) => (acc + g)?,
                None => g,
            });
            Ok(())
        };
        if self.transposed && self.per_image_transposed(&one, out, x.dims()) {
            // Per image, the adjoint of the forward: dcols = im2col(dy_i), dW += x_i·dcolsᵀ,
            // dx_i = W·dcols, each GEMM on slices in place; weight gradients summed per fixed
            // image group, as in the conv's per-image path (same bits for any thread count).
            let (cin, hw, rows) = (x.dim(1)?, x.dim(2)? * x.dim(3)?, one.rows());
            let (per_in, per_out) = (cin * hw, out[1] * out[2] * out[3]);
            return backward_on_slices(x, w, dy, need_dx, |xv, wv, dyv| {
                per_image_backward(n, per_in, cin * rows, |dcols: &mut Vec<f32>, i, dw, dxi, threads| {
                    im2col_into(&dyv[i * per_out..(i + 1) * per_out], one, threads > 1, dcols);
                    let xi = &xv[i * per_in..(i + 1) * per_in];
                    sgemm_with(cin, rows, hw, dw, (xi, hw, 1), (dcols.as_slice(), 1, hw), true, threads);
                    if need_dx {
                        sgemm_with(cin, hw, rows, dxi, (wv, rows, 1), (dcols.as_slice(), hw, 1), false, threads);
                    }
                })
            });
        } else if self.transposed {
            let (cin, cout, k) = (w.dim(0)?, w.dim(1)?, w.dim(2)?);
            let (h, wd) = (x.dim(2)?, x.dim(3)?);
            let wmat = w.reshape((cin, cout * k * k))?;
            for (start, len) in batch_chunks(n, one.rows() * h * wd) {
                let xs = x.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?.reshape((cin, len * h * wd))?;
                let dcols = dy.narrow(0, start, len)?.contiguous()?.apply_op1_no_bwd(&Im2Col(ConvGeometry { n: len, ..one }))?;
                // y = col2im(Wᵀ xs): dxs = W dcols, dW = xs dcolsᵀ.
                if need_dx {
                    dxs.push(wmat.matmul(&dcols)?.reshape((cin, len, h, wd))?.transpose(0, 1)?);
                }
                add(xs.matmul(&dcols.t()?)?)?;
            }
        } else if crate::directconv::applies(out[1], one.k) {
            return backward_on_slices(x, w, dy, need_dx, |xv, wv, dyv| crate::directconv::backward(xv, wv, dyv, ConvGeometry { n, ..one }, out[1], need_dx));
        } else if crate::shiftconv::applies(&one, out[1]) {
            let o = out[1];
            return backward_on_slices(x, w, dy, need_dx, |xv, wv, dyv| {
                let (per_in, per_out) = (xv.len() / n.max(1), out[1] * out[2] * out[3]);
                per_image_backward(n, per_in, wv.len(), |scratch: &mut crate::shiftconv::BackwardScratch, i, dw, dxi, threads| {
                    let dx = if need_dx { Some(dxi) } else { None };
                    let (xi, dyi) = (&xv[i * per_in..(i + 1) * per_in], &dyv[i * per_out..(i + 1) * per_out]);
                    crate::shiftconv::backward_image(xi, wv, dyi, &one, o, dw, dx, scratch, threads);
                })
            });
        } else if out[2] * out[3] >= PER_IMAGE_MIN_PLANE {
            // Per image: recompute the columns, dW += dy·colsᵀ, dcols = Wᵀ·dy, col2im into dx.
            let (o, l, kk) = (out[1], out[2] * out[3], one.rows());
            return backward_on_slices(x, w, dy, need_dx, |xv, wv, dyv| {
                let per_in = xv.len() / n.max(1);
                per_image_backward(n, per_in, o * kk, |(cols, dcols): &mut (Vec<f32>, Vec<f32>), i, dw, dxi, threads| {
                    im2col_into(&xv[i * per_in..(i + 1) * per_in], one, threads > 1, cols);
                    let dyi = &dyv[i * o * l..(i + 1) * o * l];
                    sgemm_with(o, kk, l, dw, (dyi, l, 1), (cols.as_slice(), 1, l), true, threads);
                    if need_dx {
                        dcols.resize(kk * l, 0.0);
                        sgemm_with(kk, l, o, dcols, (wv, 1, kk), (dyi, l, 1), false, threads);
                        col2im_into(dcols, one, dxi, threads > 1);
                    }
                })
            });
        } else {
            let (o, l) = (out[1], out[2] * out[3]);
            let wmat = w.reshape((o, one.rows()))?;
            for (start, len) in batch_chunks(n, one.rows() * l) {
                let g = ConvGeometry { n: len, ..one };
                let cols = x.narrow(0, start, len)?.apply_op1_no_bwd(&Im2Col(g))?;
                let dyc = dy.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?.reshape((o, len * l))?;
                // y = W cols: dW = dy colsᵀ, dcols = Wᵀ dy → col2im.
                add(dyc.matmul(&cols.t()?)?)?;
                if need_dx {
                    dxs.push(wmat.t()?.matmul(&dyc)?.apply_op1_no_bwd(&Col2Im(g))?);
                }
            }
        }
        let dx = match dxs.len() {
            0 => None,
            1 => Some(dxs.pop().expect("one part").contiguous()?),
            _ => Some(Tensor::cat(&dxs, 0)?.contiguous()?),
        };
        Ok((dx, dw.expect("at least one chunk").reshape(w.shape())?))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        if self.transposed {
            "mri-conv-transpose2d"
        } else {
            "mri-conv2d"
        }
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        // The kernel is small: a copy as an untracked tensor lets the GEMM be candle's matmul.
        let w = Tensor::from_slice(contiguous_f32(ws, wl, "conv")?, wl.shape(), &Device::Cpu)?;
        let (y, out) = self.forward(contiguous_f32(xs, xl, "conv")?, xl.shape().dims(), &w)?;
        Ok((CpuStorage::F32(y), Shape::from(out.to_vec())))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // An untracked input (the images) gets no gradient: candle would only add it to a
        // zero tensor nobody reads.
        let need_dx = x.track_op();
        let (dx, dw) = self.backward(&x.detach(), &w.detach(), &dy.detach(), need_dx)?;
        Ok((dx, Some(dw)))
    }
}

/// 2-D convolution of `x` (N, C, H, W) with `w` (O, C, k, k), square kernel, plus optional
/// `bias` (O): im2col + GEMM on the CPU for f32, candle's `conv2d` otherwise.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, pad: usize) -> candle_core::Result<Tensor> {
    if let (Ok((n, c, h, wd)), Ok((o, _, k, _))) = (x.dims4(), w.dims4()) {
        if h + 2 * pad >= k && wd + 2 * pad >= k {
            let g = ConvGeometry { n, c, h, w: wd, k, stride, pad };
            crate::flops::add(2 * (o * g.cols() * g.rows()) as u64);
        }
    }
    let y = if fast_path(x, w) {
        let (_, c, _, _) = x.dims4()?;
        let (_, c2, k, k2) = w.dims4()?;
        if c != c2 || k != k2 {
            candle_core::bail!("conv2d: input has {c} channels, kernel {:?}", w.dims());
        }
        x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { stride, pad, output_padding: 0, transposed: false })?
    } else {
        x.conv2d(w, pad, stride, 1, 1)?
    };
    match bias {
        Some(b) => add_channel_bias(&y, b),
        None => Ok(y),
    }
}

/// Transposed 2-D convolution of `x` (N, Cin, H, W) with `w` (Cin, Cout, k, k) (candle's and
/// PyTorch's layout), plus optional `bias` (Cout): GEMM + col2im on the CPU for f32 (FFT
/// products for stride-1 kernels of [`FFT_MIN_KERNEL`](crate::fftconv::FFT_MIN_KERNEL) taps and
/// more), candle's `conv_transpose2d` otherwise. Output side (H − 1)·stride − 2·pad + k + output_padding.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, pad: usize, output_padding: usize) -> candle_core::Result<Tensor> {
    if let (Ok((n, cin, h, wd)), Ok((_, cout, k, _))) = (x.dims4(), w.dims4()) {
        // Every input pixel scatters Cout·k² multiply-adds.
        crate::flops::add(2 * (n * cin * h * wd * cout * k * k) as u64);
    }
    let large_stride1 = stride == 1 && output_padding == 0 && w.dims4().is_ok_and(|(_, _, k, k2)| k == k2 && k >= crate::fftconv::FFT_MIN_KERNEL);
    let y = if fast_path(x, w) && large_stride1 {
        // The study decoder's 17–65-tap kernels: FFT products (issue 16, lever 2).
        crate::fftconv::conv_transpose2d(x, w, pad)?
    } else {
        conv_transpose2d_gemm(x, w, stride, pad, output_padding)?
    };
    match bias {
        Some(b) => add_channel_bias(&y, b),
        None => Ok(y),
    }
}

/// [`conv_transpose2d`] without bias as GEMM + col2im for any kernel (the FFT path's
/// yardstick in benches/kernels.rs); candle's op off the CPU, for other dtypes and for
/// `output_padding ≥ stride`.
pub fn conv_transpose2d_gemm(x: &Tensor, w: &Tensor, stride: usize, pad: usize, output_padding: usize) -> candle_core::Result<Tensor> {
    if fast_path(x, w) && output_padding < stride {
        let (_, cin, _, _) = x.dims4()?;
        let (cin2, _, k, k2) = w.dims4()?;
        if cin != cin2 || k != k2 {
            candle_core::bail!("conv_transpose2d: input has {cin} channels, kernel {:?}", w.dims());
        }
        x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { stride, pad, output_padding, transposed: true })
    } else {
        x.conv_transpose2d(w, pad, output_padding, stride, 1)
    }
}

/// `y + b` with `b` (C) broadcast over the channels of `y` (N, C, H, W): every conv's bias.
///
/// Why an op of its own: candle's `broadcast_add` is fine forward, but its backward reduces the
/// gradient with `sum_keepdim((0, 2, 3))`, a strided single-threaded fold that took 10 % of a
/// residual-CNN training step (perf, docs/performance.md, session 11). Here the bias gradient
/// is one pass of contiguous per-plane sums, and the gradient of `y` is passed on as is. Other
/// devices and dtypes use `broadcast_add`.
pub fn add_channel_bias(y: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let c = b.dim(0)?;
    if fast_path(y, b) && y.rank() == 4 && y.dim(1)? == c && b.rank() == 1 {
        y.contiguous()?.apply_op2(&b.contiguous()?, ChannelBias)
    } else {
        y.broadcast_add(&b.reshape((1, c, 1, 1))?)
    }
}

/// The per-channel sums of `dy` (N, C, H, W) → (C), summed plane by plane in a fixed order
/// (the same bits for any thread count).
pub fn channel_sums(dy: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(dy, dy) && dy.rank() == 4 {
        dy.contiguous()?.apply_op1_no_bwd(&ChannelSum)
    } else {
        dy.sum((0, 2, 3))
    }
}

#[derive(Debug, Clone, Copy)]
struct ChannelBias;

impl CustomOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "mri-channel-bias"
    }

    fn cpu_fwd(&self, ys: &CpuStorage, yl: &Layout, bs: &CpuStorage, bl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(ys, yl, "channel bias")?;
        let b = contiguous_f32(bs, bl, "channel bias: bias")?;
        let (_, c, h, w) = yl.shape().dims4()?;
        let plane = (h * w).max(1);
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(plane).zip(y.par_chunks(plane)).enumerate().for_each(|(k, (dst, src))| {
            let bias = b[k % c];
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v + bias);
        });
        Ok((CpuStorage::F32(out), yl.shape().clone()))
    }

    fn bwd(&self, _y: &Tensor, _b: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(dy.clone()), Some(channel_sums(dy)?)))
    }
}

#[derive(Debug, Clone, Copy)]
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "mri-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = contiguous_f32(s, l, "channel sum")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let plane = (h * w).max(1);
        // f64 per plane, then planes in order: the sum does not depend on the split.
        let planes: Vec<f64> = dy.par_chunks(plane).map(|p| p.iter().map(|&v| v as f64).sum()).collect();
        let sums = (0..c).map(|ch| (0..n).map(|i| planes[i * c + ch]).sum::<f64>() as f32).collect();
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }
}

/// A conv layer with candle-nn's weight names (`weight` (O, C, k, k), `bias` (O)) and
/// initialisation, computed by [`conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    pad: usize,
}

impl Conv2d {
    /// `c_in → c_out`, kernel `k`, with this stride and padding; weights from `vb`.
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg = candle_nn::Conv2dConfig { padding: pad, stride, ..Default::default() };
        let c = candle_nn::conv2d(c_in, c_out, k, cfg, vb)?;
        Ok(Conv2d { weight: c.weight().clone(), bias: c.bias().expect("conv2d has a bias").clone(), stride, pad })
    }
    /// The same layer with the kernel drawn from `init` instead of candle-nn's default
    /// (e.g. DCGAN's N(0, 0.02)); the bias starts at 0.
    pub fn with_init(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, init: candle_nn::Init, vb: VarBuilder) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints((c_out, c_in, k, k), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Conv2d { weight, bias, stride, pad })
    }

    /// The kernel.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// This layer applied to `upsample2(x)` (nearest ×2): a 3×3 kernel at stride 1, padding 1
    /// runs as four 2×2 phase convs on `x` itself ([`crate::upconv`]: 16 multiply-adds a
    /// low-resolution pixel and channel pair where upsample + conv does 36); any other layer
    /// upsamples, then convolves.
    pub fn forward_upsampled(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.upsampled(x, Some(&self.bias))
    }

    fn upsampled(&self, x: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (_, _, k, _) = self.weight.dims4()?;
        if crate::upconv::applies(k, self.stride, self.pad, self.weight.dtype()) {
            crate::upconv::upsample2_conv3x3(x, &self.weight, bias)
        } else {
            conv2d(&crate::fastnorm::upsample2(x)?, &self.weight, bias, self.stride, self.pad)
        }
    }

    /// `bn(self.forward(x))`, then ReLU when `relu`: in training mode exactly that; in eval
    /// mode the conv's bias is folded into the batch norm's shift
    /// ([`crate::BatchNorm2d::forward_after_bias_t`]), which saves a pass over the output and its
    /// buffer (equal up to rounding).
    pub fn forward_bn_t(&self, x: &Tensor, bn: &crate::BatchNorm2d, relu: bool, train: bool) -> candle_core::Result<Tensor> {
        bn.forward_after_bias_t(&conv2d(x, &self.weight, None, self.stride, self.pad)?, &self.bias, relu, train)
    }

    /// [`Conv2d::forward_bn_t`] of [`Conv2d::forward_upsampled`].
    pub fn forward_upsampled_bn_t(&self, x: &Tensor, bn: &crate::BatchNorm2d, relu: bool, train: bool) -> candle_core::Result<Tensor> {
        bn.forward_after_bias_t(&self.upsampled(x, None)?, &self.bias, relu, train)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv2d(x, &self.weight, Some(&self.bias), self.stride, self.pad)
    }
}

/// A transposed conv layer with candle-nn's weight names (`weight` (Cin, Cout, k, k), `bias`),
/// computed by [`conv_transpose2d`].
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    pad: usize,
}

impl ConvTranspose2d {
    /// `c_in → c_out`, kernel `k`, with this stride and padding; weights from `vb`.
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg = candle_nn::ConvTranspose2dConfig { padding: pad, stride, ..Default::default() };
        let c = candle_nn::conv_transpose2d(c_in, c_out, k, cfg, vb)?;
        Ok(ConvTranspose2d { weight: c.weight().clone(), bias: c.bias().expect("has a bias").clone(), stride, pad })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv_transpose2d(x, &self.weight, Some(&self.bias), self.stride, self.pad, 0)
    }
}

//! Direct convolution for the layers with one output channel: the last conv of a decoder or
//! generator, back to an image (issue 16, lever 3).
//!
//! As im2col + GEMM such a layer is a matrix-vector product (M = 1), which the `gemm` crate
//! runs far below the machine's peak, after writing and reading a column matrix k² times the
//! size of the input (288 × 4096 values an image for a 32 → 1 conv at 64 px). Here every
//! output row is built in place as a sum of shifted input rows scaled by one weight each
//! (`axpy`), and the weight gradient as row-by-row products accumulated in rows of partial
//! sums: every loop is an element-wise loop over a row of 32–128 values that the compiler
//! vectorises, and each input row is read from the L1 cache k times at most.
//!
//! The order of every sum is fixed (one image after the other inside the GEMM path's fixed
//! number of image groups, [`crate::fastconv::dw_group_size`], groups added in order), so the
//! result is the same whatever the thread count; it differs from the GEMM path's by rounding
//! only (tested against candle's `conv2d`).
//!
//! The inner loops are compiled twice, for the baseline x86-64 target and with AVX2 enabled
//! (picked at run time; plain multiplies and adds either way, so both give the same bits).

use rayon::prelude::*;

use crate::fastconv::ConvGeometry;

/// Whether a conv to `c_out` channels with a `k`×`k` kernel goes the direct way: one output
/// channel. A conv from one input channel stays with im2col + GEMM: its columns are only k²
/// times one plane, and the direct loops (over 32-pixel strided rows at stride 2) measured
/// 2–6× slower than the GEMM path at the default preset's first layers (docs/performance.md).
pub(crate) fn applies(c_out: usize, k: usize) -> bool {
    c_out == 1 && k <= 5
}

/// The outputs `ox` in `0..wo` whose input column `ox·s − p + j` lies in `[0, w)`
/// ([`crate::fastconv::strided_range`]), and the first one's input column; `None` when empty.
#[inline(always)]
fn valid(w: usize, wo: usize, s: usize, p: usize, j: usize) -> Option<(usize, usize, usize)> {
    let (lo, hi) = crate::fastconv::strided_range(w, wo, s, p as isize, j);
    (hi > lo).then(|| (lo, hi, lo * s + j - p))
}

/// `dst[ox] += a · src[ox·s + x0 − lo·s]` for ox in lo..hi.
#[inline(always)]
fn axpy(dst: &mut [f32], a: f32, src: &[f32], s: usize, (lo, hi, x0): (usize, usize, usize)) {
    let dst = &mut dst[lo..hi];
    if s == 1 {
        for (d, v) in dst.iter_mut().zip(&src[x0..x0 + hi - lo]) {
            *d += a * v;
        }
    } else {
        for (d, v) in dst.iter_mut().zip(src[x0..].iter().step_by(s)) {
            *d += a * v;
        }
    }
}

/// `src[ox·s + x0 − lo·s] += a · dy[ox]` for ox in lo..hi (the transpose of [`axpy`]).
#[inline(always)]
fn scatter(dst: &mut [f32], a: f32, dy: &[f32], s: usize, (lo, hi, x0): (usize, usize, usize)) {
    let dy = &dy[lo..hi];
    if s == 1 {
        for (d, v) in dst[x0..x0 + dy.len()].iter_mut().zip(dy) {
            *d += a * v;
        }
    } else {
        for (d, v) in dst[x0..].iter_mut().step_by(s).zip(dy) {
            *d += a * v;
        }
    }
}

/// `acc[ox] += dy[ox] · src[ox·s + x0 − lo·s]` for ox in lo..hi.
#[inline(always)]
fn mul_acc(acc: &mut [f32], dy: &[f32], src: &[f32], s: usize, (lo, hi, x0): (usize, usize, usize)) {
    let (acc, dy) = (&mut acc[lo..hi], &dy[lo..hi]);
    if s == 1 {
        for ((a, d), v) in acc.iter_mut().zip(dy).zip(&src[x0..x0 + dy.len()]) {
            *a += d * v;
        }
    } else {
        for ((a, d), v) in acc.iter_mut().zip(dy).zip(src[x0..].iter().step_by(s)) {
            *a += d * v;
        }
    }
}

/// Calls `$body` through a copy compiled with AVX2 when the CPU has it (`$body` is
/// `#[inline(always)]`, so the copy's loops are vectorised 8 wide), else as compiled for the
/// baseline target.
macro_rules! dispatch {
    ($body:ident($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}

/// One image's output (C_out planes, zero on entry) from its input `x` (C_in planes).
fn forward_image(x: &[f32], w: &[f32], g: ConvGeometry, c_out: usize, y: &mut [f32]) {
    dispatch!(forward_image_body(x: &[f32], w: &[f32], g: ConvGeometry, c_out: usize, y: &mut [f32]))
}

#[inline(always)]
fn forward_image_body(x: &[f32], w: &[f32], g: ConvGeometry, c_out: usize, y: &mut [f32]) {
    let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad);
    let ranges: Vec<Option<(usize, usize, usize)>> = (0..k).map(|j| valid(g.w, wo, s, p, j)).collect();
    // Input plane by input plane into the whole output plane (both in the L1 cache at 64 px).
    for (o, plane) in y.chunks_mut(ho * wo).enumerate().take(c_out) {
        for c in 0..g.c {
            for (oy, drow) in plane.chunks_mut(wo).enumerate() {
                for i in 0..k {
                    let Some(r) = (oy * s + i).checked_sub(p).filter(|&r| r < g.h) else { continue };
                    let srow = &x[(c * g.h + r) * g.w..(c * g.h + r + 1) * g.w];
                    let wrow = &w[((o * g.c + c) * k + i) * k..][..k];
                    for (j, range) in ranges.iter().enumerate() {
                        if let Some(range) = *range {
                            axpy(drow, wrow[j], srow, s, range);
                        }
                    }
                }
            }
        }
    }
}

/// One image's weight gradient, accumulated into `acc` (C_out·C_in·k² rows of Wo partial sums),
/// and, with `dx`, its input gradient (zero on entry).
#[allow(clippy::too_many_arguments)]
fn backward_image(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeometry, c_out: usize, acc: &mut [f32], dx: Option<&mut [f32]>) {
    dispatch!(backward_image_body(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeometry, c_out: usize, acc: &mut [f32], dx: Option<&mut [f32]>))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_image_body(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeometry, c_out: usize, acc: &mut [f32], mut dx: Option<&mut [f32]>) {
    let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad);
    let ranges: Vec<Option<(usize, usize, usize)>> = (0..k).map(|j| valid(g.w, wo, s, p, j)).collect();
    // Channel pair by channel pair, so that one input plane, one output-gradient plane and the
    // pair's k² rows of partial sums stay in the L1 cache.
    for o in 0..c_out {
        for c in 0..g.c {
            for oy in 0..ho {
                let dyrow = &dy[(o * ho + oy) * wo..][..wo];
                for i in 0..k {
                    let Some(r) = (oy * s + i).checked_sub(p).filter(|&r| r < g.h) else { continue };
                    let at = (c * g.h + r) * g.w;
                    let tap = ((o * g.c + c) * k + i) * k;
                    for (j, range) in ranges.iter().enumerate() {
                        if let Some(range) = *range {
                            mul_acc(&mut acc[(tap + j) * wo..][..wo], dyrow, &x[at..at + g.w], s, range);
                            if let Some(dx) = dx.as_deref_mut() {
                                scatter(&mut dx[at..at + g.w], w[tap + j], dyrow, s, range);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forward pass of a conv of `x` (N images of `g.c` planes) by `w` (C_out, C_in, k, k):
/// N·C_out·Ho·Wo values, images in parallel.
pub(crate) fn forward(x: &[f32], w: &[f32], g: ConvGeometry, c_out: usize) -> Vec<f32> {
    let (per_in, per_out) = (g.c * g.h * g.w, c_out * g.ho() * g.wo());
    let mut y = vec![0f32; g.n * per_out];
    y.par_chunks_mut(per_out.max(1)).enumerate().for_each(|(i, yi)| forward_image(&x[i * per_in..(i + 1) * per_in], w, g, c_out, yi));
    y
}

/// (dx when `need_dx`, dw) of [`forward`] for the output gradient `dy`.
pub(crate) fn backward(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeometry, c_out: usize, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let (per_in, per_out, wo) = (g.c * g.h * g.w, c_out * g.ho() * g.wo(), g.wo());
    let taps = w.len();
    let mut dx = vec![0f32; if need_dx { x.len() } else { 0 }];
    let group = crate::fastconv::dw_group_size(g.n);
    let images = |gi: usize| gi * group..((gi + 1) * group).min(g.n);
    let run = |gi: usize, mut dx_group: Option<&mut [f32]>| -> Vec<f32> {
        let mut acc = vec![0f32; taps * wo];
        for (j, i) in images(gi).enumerate() {
            let dxi = dx_group.as_deref_mut().map(|d| &mut d[j * per_in..(j + 1) * per_in]);
            backward_image(&x[i * per_in..(i + 1) * per_in], w, &dy[i * per_out..(i + 1) * per_out], g, c_out, &mut acc, dxi);
        }
        // Each tap's partial sums, added in column order.
        acc.chunks(wo).map(|row| row.iter().sum::<f32>()).collect()
    };
    let partials: Vec<Vec<f32>> = if need_dx {
        dx.par_chunks_mut(group * per_in).enumerate().map(|(gi, d)| run(gi, Some(d))).collect()
    } else {
        (0..g.n.div_ceil(group)).into_par_iter().map(|gi| run(gi, None)).collect()
    };
    let mut dw = vec![0f32; taps];
    for part in &partials {
        dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    (need_dx.then_some(dx), dw)
}

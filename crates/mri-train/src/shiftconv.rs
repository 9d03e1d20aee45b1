//! Stride-1 convolutions as k² GEMMs on shifted views of a padded image, with no im2col
//! (issue 16, lever 6: an implicit GEMM of our own).
//!
//! Pad each input plane to (H + 2p) × P, P = W + 2p, and compute the output on the same row
//! pitch P: output pixel q = oy·P + ox then reads padded input pixel q + i·P + j for kernel
//! tap (i, j), so tap (i, j)'s input matrix (C × Ho·P) is the padded image itself, shifted by
//! i·P + j, and `y = Σ_taps W_tap (O × C) @ X_shift`. The k − 1 columns past Wo of each
//! output row are junk, dropped when the output is compacted (and zero in the output
//! gradient, so they add nothing going back). The gemm crate reads a tap's weights with
//! strides straight from the (O, C, k, k) kernel and writes its products in place, so the
//! only copies are the padding (one per input plane) and the compaction (one per output
//! plane), against im2col's k² copies of every input plane and col2im's k² adds.
//!
//! Backward, per tap: `dW_tap += dY_wide @ X_shiftᵀ` (written with strides into the
//! (O, C, k, k) gradient) and `dX_pad[shift] += W_tapᵀ @ dY_wide`; dX is the padded
//! gradient's interior.
//!
//! The trade: each tap's GEMM has K = C rather than k²·C, and the output is read and written
//! k² times. Measured against im2col + GEMM at the stride-1 3 × 3 shapes of the default preset
//! (docs/performance.md, session 30), this path is 1.1–1.7× faster forward and backward; at
//! the generators' 2 × 2 phase convs it is slower, so those stay with im2col ([`applies`]). The
//! same layout extends to stride s (s² phase planes of the padded image, one shifted view per
//! tap); it was built, tested against candle and measured, and lost at half of the stride-2
//! shapes (0.54–0.97×, up to 1.24× at the others): a stride-2 conv's columns are only k²/4
//! times its input, so avoiding them gains less than k² small GEMMs cost. Stride 2 stays
//! with im2col.
//!
//! Every sum is in a fixed order (taps in order, images inside the fixed weight-gradient
//! groups of `fastconv`), so results are the same for any thread count.

use crate::fastconv::{sgemm_strided, ConvGeometry};

/// Whether a conv of geometry `g` to `o` output channels takes this path: stride 1, a kernel
/// of 3 × 3 or more, more than one input and output channel (one output channel goes to the
/// direct kernel; one input channel makes K = 1 GEMMs), and
/// [`ConvAlgorithm::Auto`](crate::fastconv::ConvAlgorithm). The 2 × 2 phase convs of
/// [`crate::upconv`] stay with im2col: with four taps, its columns cost less than four GEMMs
/// (0.76–0.94× here at the generators' shapes).
pub(crate) fn applies(g: &ConvGeometry, o: usize) -> bool {
    crate::fastconv::conv_algorithm() == crate::fastconv::ConvAlgorithm::Auto && g.stride == 1 && g.k >= 3 && o > 1 && g.c > 1
}

/// The padded layout of one image: row pitch P, plane length (with the k − 1 values of slack
/// that the last tap's view reads past the last row, for junk columns only), and the wide
/// output's length Ho·P.
#[derive(Debug, Clone, Copy)]
struct Padded {
    pitch: usize,
    plane: usize,
    wide: usize,
}

impl Padded {
    fn new(g: &ConvGeometry) -> Self {
        debug_assert_eq!(g.stride, 1, "shiftconv is stride 1 only");
        let pitch = g.w + 2 * g.pad;
        Padded { pitch, plane: (g.h + 2 * g.pad) * pitch + g.k - 1, wide: g.ho() * pitch }
    }

    /// The shift of tap `t` (row-major over the k × k kernel).
    fn shift(&self, g: &ConvGeometry, t: usize) -> usize {
        (t / g.k) * self.pitch + t % g.k
    }
}

/// Copies the C planes of one image (C × H × W) into `xp` (C × plane), zero borders.
fn pad_into(x: &[f32], g: &ConvGeometry, pd: &Padded, xp: &mut Vec<f32>) {
    xp.clear();
    xp.resize(g.c * pd.plane, 0.0);
    for (src, dst) in x.chunks_exact(g.h * g.w).zip(xp.chunks_exact_mut(pd.plane)) {
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            let d0 = (y + g.pad) * pd.pitch + g.pad;
            dst[d0..d0 + g.w].copy_from_slice(row);
        }
    }
}

/// One image's forward pass: `y` (O × Ho × Wo) from `x` (C × H × W) and `w` (O, C, k, k),
/// with `scratch` = (padded input, wide output) reused across images; GEMMs on at most
/// `threads` threads. `y` may be uninitialised: every value is written.
pub(crate) fn forward_image(
    x: &[f32],
    w: &[f32],
    g: &ConvGeometry,
    o: usize,
    y: &mut [std::mem::MaybeUninit<f32>],
    scratch: &mut (Vec<f32>, Vec<f32>),
    threads: usize,
) {
    let pd = Padded::new(g);
    let (xp, yw) = scratch;
    pad_into(x, g, &pd, xp);
    // Every element is written by the first tap's GEMM (no accumulate): no zero-fill needed.
    yw.resize(o * pd.wide, 0.0);
    let (c, kk) = (g.c, g.k * g.k);
    for t in 0..kk {
        // y_wide (O × wide) (+)= W_t (O × C: rows C·k² apart, columns k²) @ shifted view (C × wide).
        let view = &xp[pd.shift(g, t)..];
        sgemm_strided(o, pd.wide, c, (yw.as_mut_slice(), pd.wide, 1), (&w[t..], c * kk, kk), (view, pd.plane, 1), t > 0, threads);
    }
    let wo = g.wo();
    // Every value of `y` (O·Ho rows of Wo) is written here: it comes uninitialised.
    for (dst, src) in y.chunks_exact_mut(wo).zip(yw.chunks_exact(pd.pitch)) {
        // (`write_copy_of_slice` needs Rust 1.93; the workspace's MSRV is 1.85.)
        for (d, &v) in dst.iter_mut().zip(&src[..wo]) {
            d.write(v);
        }
    }
}

/// Scratch of one image's backward pass: padded input, wide output gradient, padded input
/// gradient.
pub(crate) type BackwardScratch = (Vec<f32>, Vec<f32>, Vec<f32>);

/// One image's backward pass: adds its weight gradient into `dw` (O, C, k, k) and, when `dx`
/// is given, writes its input gradient there (C × H × W).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_image(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &ConvGeometry,
    o: usize,
    dw: &mut [f32],
    dx: Option<&mut [f32]>,
    scratch: &mut BackwardScratch,
    threads: usize,
) {
    let pd = Padded::new(g);
    let (xp, dyw, dxp) = scratch;
    pad_into(x, g, &pd, xp);
    let wo = g.wo();
    // The junk columns must be 0: they multiply real pixels in both GEMMs below.
    dyw.clear();
    dyw.resize(o * pd.wide, 0.0);
    for (dst, src) in dyw.chunks_exact_mut(pd.pitch).zip(dy.chunks_exact(wo)) {
        dst[..wo].copy_from_slice(src);
    }
    let (c, kk) = (g.c, g.k * g.k);
    for t in 0..kk {
        // dW_t (O × C, strided into dw) += dy_wide (O × wide) @ shifted viewᵀ (wide × C).
        let view = &xp[pd.shift(g, t)..];
        sgemm_strided(o, c, pd.wide, (&mut dw[t..], c * kk, kk), (dyw.as_slice(), pd.wide, 1), (view, 1, pd.plane), true, threads);
    }
    if let Some(dx) = dx {
        dxp.clear();
        dxp.resize(c * pd.plane, 0.0);
        for t in 0..kk {
            // Shifted view of dx_pad (C × wide) += W_tᵀ (C × O) @ dy_wide (O × wide).
            let off = pd.shift(g, t);
            sgemm_strided(c, pd.wide, o, (&mut dxp[off..], pd.plane, 1), (&w[t..], kk, c * kk), (dyw.as_slice(), pd.wide, 1), true, threads);
        }
        for (dst, src) in dx.chunks_exact_mut(g.h * g.w).zip(dxp.chunks_exact(pd.plane)) {
            for (y, row) in dst.chunks_exact_mut(g.w).enumerate() {
                let s0 = (y + g.pad) * pd.pitch + g.pad;
                row.copy_from_slice(&src[s0..s0 + g.w]);
            }
        }
    }
}

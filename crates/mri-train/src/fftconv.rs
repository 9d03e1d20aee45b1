//! Stride-1 transposed convolutions with large kernels as FFT products (CPU, f32).
//!
//! The study's anomaly-VAE decoder (`AnomalyDecoder::Study`) doubles the side with stride-1
//! transposed convs whose kernel is the input side + 1: 33×33 and 65×65 taps at 128 px, 5.8
//! GFLOP an image, which im2col + GEMM computes tap by tap (issue 16, lever 2). A stride-1
//! transposed conv with padding `p` is the full linear convolution of each input plane with
//! its kernel, cropped by `p` on every side; on a periodic grid of side L ≥ H + k − 1 the
//! circular convolution equals the linear one, so in the frequency domain every pass is one
//! small complex matrix product per frequency bin:
//!
//! - forward: Y[n, o] = Σ_c X[n, c] · W[c, o]
//! - input gradient: dX[n, c] = Σ_o dY[n, o] · conj(W[c, o]) (a correlation)
//! - weight gradient: dW[c, o] = Σ_n conj(X[n, c]) · dY[n, o]
//!
//! The same L serves all three: the correlations' negative lags wrap to indices ≥ L − H + 1
//! (resp. L − k + 1), past the kernel's (resp. the image's) support. At the study's shapes
//! this is ~100× fewer operations than the direct form: O(planes · L² log L) for the
//! transforms plus N · Cin · Cout · L²/2 complex multiply-adds.
//!
//! Layout: a plane's spectrum is the real FFT along each row (L/2 + 1 bins) followed by a
//! complex FFT along each column, stored column-major (`[kx][ky]`). The products run
//! frequency-major (every bin's matrices contiguous, so a bin's small GEMM stays in cache),
//! with real and imaginary parts in separate arrays so that the inner loop vectorises.
//! Each output element is summed in a fixed order, so results are the same bits for any thread
//! count. Transforms: `realfft` / `rustfft` (pure Rust, SIMD picked at run time), whose FFT
//! convention is unnormalised (the inverse is scaled by 1 / L² here).
//!
//! [`conv_transpose2d`] takes this path on the CPU for f32 and falls back to candle's
//! `conv_transpose2d` on other devices and dtypes; `fastconv::conv_transpose2d` routes stride-1
//! kernels of at least [`FFT_MIN_KERNEL`] taps here. Tested against candle's op (outputs and
//! both gradients) in tests/fastconv.rs.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::fastconv::{contiguous_f32, cpu_f32};

/// Stride-1 transposed-conv kernels with at least this many taps a side take the FFT path
/// (measured in benches/kernels.rs: at 9 taps and 16×16 planes the FFT is already ahead).
pub const FFT_MIN_KERNEL: usize = 9;

/// Frequency bins (or planes) per task when spectra are regrouped plane-major ↔
/// frequency-major: 16 consecutive values are one or two cache lines.
const BLOCK: usize = 16;

/// The smallest n ≥ m with no prime factor above 5 (FFT lengths rustfft handles fastest).
fn smooth_len(m: usize) -> usize {
    (m.max(1)..)
        .find(|&n| {
            let mut r = n;
            for p in [2, 3, 5] {
                while r % p == 0 {
                    r /= p;
                }
            }
            r == 1
        })
        .expect("a 5-smooth number exists above any m")
}

/// One 2-D transform size (`lh` × `lw`) and its planned 1-D FFTs.
struct Plan2d {
    lh: usize,
    lw: usize,
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
}

impl Plan2d {
    fn new(lh: usize, lw: usize) -> Self {
        let mut real = RealFftPlanner::<f32>::new();
        let mut complex = FftPlanner::<f32>::new();
        Plan2d {
            lh,
            lw,
            r2c: real.plan_fft_forward(lw),
            c2r: real.plan_fft_inverse(lw),
            col_fwd: complex.plan_fft_forward(lh),
            col_inv: complex.plan_fft_inverse(lh),
        }
    }

    /// Row bins of the real transform.
    fn kx(&self) -> usize {
        self.lw / 2 + 1
    }

    /// Complex values in one plane's spectrum.
    fn bins(&self) -> usize {
        self.kx() * self.lh
    }

    /// Spectrum (`[kx][ky]`) of the `h`×`w` plane `src` placed with its top-left corner at
    /// (`oy`, `ox`) on the zero grid.
    fn forward(&self, src: &[f32], (h, w): (usize, usize), (oy, ox): (usize, usize), out: &mut [Complex<f32>]) -> candle_core::Result<()> {
        let (kx, lh) = (self.kx(), self.lh);
        out.fill(Complex::new(0.0, 0.0));
        let mut row = vec![0f32; self.lw];
        let mut spec = vec![Complex::new(0f32, 0f32); kx];
        let mut scratch = vec![Complex::new(0f32, 0f32); self.r2c.get_scratch_len().max(self.col_fwd.get_inplace_scratch_len())];
        for r in 0..h {
            row.fill(0.0);
            row[ox..ox + w].copy_from_slice(&src[r * w..(r + 1) * w]);
            self.r2c.process_with_scratch(&mut row, &mut spec, &mut scratch).map_err(|e| candle_core::Error::Msg(format!("fft conv: {e}")))?;
            for (f, z) in spec.iter().enumerate() {
                out[f * lh + oy + r] = *z;
            }
        }
        self.col_fwd.process_with_scratch(out, &mut scratch);
        Ok(())
    }

    /// Inverse of `spec` (overwritten): the `h`×`w` window at (`oy`, `ox`) of the periodic
    /// result, scaled by 1 / (lh · lw), into `dst`.
    fn inverse(&self, spec: &mut [Complex<f32>], (h, w): (usize, usize), (oy, ox): (usize, usize), dst: &mut [f32]) -> candle_core::Result<()> {
        let (kx, lh) = (self.kx(), self.lh);
        let mut scratch = vec![Complex::new(0f32, 0f32); self.c2r.get_scratch_len().max(self.col_inv.get_inplace_scratch_len())];
        self.col_inv.process_with_scratch(spec, &mut scratch);
        let mut row_spec = vec![Complex::new(0f32, 0f32); kx];
        let mut row = vec![0f32; self.lw];
        let scale = 1.0 / (self.lh * self.lw) as f32;
        for r in 0..h {
            for (f, z) in row_spec.iter_mut().enumerate() {
                *z = spec[f * lh + oy + r];
            }
            // A real signal's DC bin (and Nyquist bin, for even lengths) is real; rounding
            // leaves a tiny imaginary part there, which the real inverse refuses.
            row_spec[0].im = 0.0;
            if self.lw % 2 == 0 {
                row_spec[kx - 1].im = 0.0;
            }
            self.c2r.process_with_scratch(&mut row_spec, &mut row, &mut scratch).map_err(|e| candle_core::Error::Msg(format!("fft conv: {e}")))?;
            for (d, &v) in dst[r * w..(r + 1) * w].iter_mut().zip(&row[ox..ox + w]) {
                *d = v * scale;
            }
        }
        Ok(())
    }

    /// Spectra of `count` consecutive `h`×`w` planes of `src`, each placed at `at`, returned
    /// frequency-major: bin f of plane p at `f · count + slot(p)` (real and imaginary parts
    /// apart; the imaginary part negated when `conj`).
    fn spectra(
        &self,
        src: &[f32],
        count: usize,
        hw: (usize, usize),
        at: (usize, usize),
        slot: impl Fn(usize) -> usize + Sync,
        conj: bool,
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let (bins, plane) = (self.bins(), hw.0 * hw.1);
        let mut planes = vec![Complex::new(0f32, 0f32); count * bins];
        planes.par_chunks_mut(bins).enumerate().try_for_each(|(p, out)| self.forward(&src[p * plane..(p + 1) * plane], hw, at, out))?;
        let (mut re, mut im) = (vec![0f32; bins * count], vec![0f32; bins * count]);
        let sign = if conj { -1.0 } else { 1.0 };
        re.par_chunks_mut(count * BLOCK).zip(im.par_chunks_mut(count * BLOCK)).enumerate().for_each(|(b, (rb, ib))| {
            let (f0, nf) = (b * BLOCK, rb.len() / count);
            for p in 0..count {
                scatter_bins(&planes[p * bins + f0..p * bins + f0 + nf], count, slot(p), sign, (rb, ib));
            }
        });
        Ok((re, im))
    }

    /// The `count` planes whose frequency-major spectra are `(re, im)` (bin f of plane q at
    /// `f · count + q`), each cropped to the `h`×`w` window at `at`.
    fn planes(&self, (re, im): (&[f32], &[f32]), count: usize, hw: (usize, usize), at: (usize, usize)) -> candle_core::Result<Vec<f32>> {
        let (bins, plane) = (self.bins(), hw.0 * hw.1);
        let mut out = vec![0f32; count * plane];
        out.par_chunks_mut(plane * BLOCK).enumerate().try_for_each(|(b, dst)| {
            let (q0, nq) = (b * BLOCK, dst.len() / plane);
            let mut specs = vec![Complex::new(0f32, 0f32); nq * bins];
            for f in 0..bins {
                let (r, i) = (&re[f * count + q0..f * count + q0 + nq], &im[f * count + q0..f * count + q0 + nq]);
                for q in 0..nq {
                    specs[q * bins + f] = Complex::new(r[q], i[q]);
                }
            }
            for (spec, d) in specs.chunks_mut(bins).zip(dst.chunks_mut(plane)) {
                self.inverse(spec, hw, at, d)?;
            }
            Ok::<(), candle_core::Error>(())
        })?;
        Ok(out)
    }
}

/// For every frequency bin, C[m][p] = Σ_k a(m, k) · B[k][p], where a(m, k) is the complex
/// value at `a_index(m, k)` of A's bin (conjugated when `conj_a`) and B is `[k][p]`. Inputs
/// and output are frequency-major with real and imaginary parts apart; the inner loop runs
/// along p (an axpy over contiguous values, vectorised by the compiler).
fn bin_products(
    bins: usize,
    (m, k, p): (usize, usize, usize),
    a: (&[f32], &[f32]),
    a_index: impl Fn(usize, usize) -> usize + Sync,
    conj_a: bool,
    b: (&[f32], &[f32]),
) -> (Vec<f32>, Vec<f32>) {
    let (na, nb, nc) = (a.0.len() / bins, k * p, m * p);
    let (mut cr, mut ci) = (vec![0f32; bins * nc], vec![0f32; bins * nc]);
    let sign = if conj_a { -1.0 } else { 1.0 };
    cr.par_chunks_mut(nc).zip(ci.par_chunks_mut(nc)).enumerate().with_min_len(8).for_each(|(f, (yr_bin, yi_bin))| {
        let (ar, ai) = (&a.0[f * na..(f + 1) * na], &a.1[f * na..(f + 1) * na]);
        let (br, bi) = (&b.0[f * nb..(f + 1) * nb], &b.1[f * nb..(f + 1) * nb]);
        for mi in 0..m {
            let (yr, yi) = (&mut yr_bin[mi * p..(mi + 1) * p], &mut yi_bin[mi * p..(mi + 1) * p]);
            for ki in 0..k {
                let idx = a_index(mi, ki);
                complex_axpy((ar[idx], sign * ai[idx]), (&br[ki * p..(ki + 1) * p], &bi[ki * p..(ki + 1) * p]), (yr, yi));
            }
        }
    });
    (cr, ci)
}

/// Bins `src` of one plane into column `s` of a frequency-major block (`count` values a bin).
#[inline(never)]
fn scatter_bins(src: &[Complex<f32>], count: usize, s: usize, sign: f32, (rb, ib): (&mut [f32], &mut [f32])) {
    for (j, z) in src.iter().enumerate() {
        rb[j * count + s] = z.re;
        ib[j * count + s] = sign * z.im;
    }
}

/// y += x · w for a complex scalar x and complex vectors w, y (parts apart).
#[inline(never)]
fn complex_axpy((xr, xi): (f32, f32), (wr, wi): (&[f32], &[f32]), (yr, yi): (&mut [f32], &mut [f32])) {
    for (((yr, yi), &wr), &wi) in yr.iter_mut().zip(yi.iter_mut()).zip(wr).zip(wi) {
        *yr += xr * wr - xi * wi;
        *yi += xr * wi + xi * wr;
    }
}

/// Shapes of one stride-1 transposed conv: x (n, cin, h, w), kernel (cin, cout, k, k), crop `pad`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    pad: usize,
}

impl Geometry {
    /// Output side before the crop: the full linear convolution.
    fn full(&self) -> (usize, usize) {
        (self.h + self.k - 1, self.w + self.k - 1)
    }
    fn out(&self) -> (usize, usize) {
        let (fh, fw) = self.full();
        (fh - 2 * self.pad, fw - 2 * self.pad)
    }
    fn plan(&self) -> Plan2d {
        let (fh, fw) = self.full();
        Plan2d::new(smooth_len(fh), smooth_len(fw))
    }

    /// y (n, cout, ho, wo) from x and the kernel.
    fn forward(&self, x: &[f32], w: &[f32]) -> candle_core::Result<Vec<f32>> {
        let (g, plan) = (self, self.plan());
        let xf = plan.spectra(x, g.n * g.cin, (g.h, g.w), (0, 0), |p| p, false)?;
        let wf = plan.spectra(w, g.cin * g.cout, (g.k, g.k), (0, 0), |p| p, false)?;
        let cin = g.cin;
        let yf = bin_products(plan.bins(), (g.n, g.cin, g.cout), (&xf.0, &xf.1), |n, c| n * cin + c, false, (&wf.0, &wf.1));
        plan.planes((&yf.0, &yf.1), g.n * g.cout, self.out(), (g.pad, g.pad))
    }

    /// The input gradient (when `need_dx`) and the kernel gradient from dy (n, cout, ho, wo).
    fn backward(&self, x: &[f32], w: &[f32], dy: &[f32], need_dx: bool) -> candle_core::Result<(Option<Vec<f32>>, Vec<f32>)> {
        let (g, plan) = (self, self.plan());
        let (cin, cout) = (g.cin, g.cout);
        let dyf = plan.spectra(dy, g.n * g.cout, self.out(), (g.pad, g.pad), |p| p, false)?;
        let dx = if need_dx {
            // conj(W) laid out [o][c], so that the bin product runs along c.
            let wt = plan.spectra(w, g.cin * g.cout, (g.k, g.k), (0, 0), |p| (p % cout) * cin + p / cout, true)?;
            let dxf = bin_products(plan.bins(), (g.n, g.cout, g.cin), (&dyf.0, &dyf.1), |n, o| n * cout + o, false, (&wt.0, &wt.1));
            Some(plan.planes((&dxf.0, &dxf.1), g.n * g.cin, (g.h, g.w), (0, 0))?)
        } else {
            None
        };
        let xf = plan.spectra(x, g.n * g.cin, (g.h, g.w), (0, 0), |p| p, false)?;
        let dwf = bin_products(plan.bins(), (g.cin, g.n, g.cout), (&xf.0, &xf.1), |c, n| n * cin + c, true, (&dyf.0, &dyf.1));
        let dw = plan.planes((&dwf.0, &dwf.1), g.cin * g.cout, (g.k, g.k), (0, 0))?;
        Ok((dx, dw))
    }
}

/// The stride-1 transposed conv as one candle op with its own backward pass.
#[derive(Debug, Clone, Copy)]
struct FftConvTranspose {
    pad: usize,
}

impl FftConvTranspose {
    fn geometry(&self, x: &[usize], w: &[usize]) -> candle_core::Result<Geometry> {
        let (&[n, cin, h, wd], &[cin2, cout, k, k2]) = (x, w) else {
            candle_core::bail!("fft conv_transpose2d: rank-4 input and kernel expected, got {x:?} and {w:?}")
        };
        if cin != cin2 || k != k2 {
            candle_core::bail!("fft conv_transpose2d: input has {cin} channels, kernel {w:?} (square kernels only)");
        }
        if h + k - 1 <= 2 * self.pad || wd + k - 1 <= 2 * self.pad {
            candle_core::bail!("fft conv_transpose2d: padding {} leaves no output of a {h}×{wd} input and kernel {k}", self.pad);
        }
        Ok(Geometry { n, cin, cout, h, w: wd, k, pad: self.pad })
    }
}

impl CustomOp2 for FftConvTranspose {
    fn name(&self) -> &'static str {
        "mri-fft-conv-transpose2d"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry(xl.shape().dims(), wl.shape().dims())?;
        let y = g.forward(contiguous_f32(xs, xl, "fft conv")?, contiguous_f32(ws, wl, "fft conv: kernel")?)?;
        let (ho, wo) = g.out();
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry(x.dims(), w.dims())?;
        // An untracked input (no parameter upstream) needs no gradient.
        let need_dx = x.track_op();
        let flat = |t: &Tensor| t.detach().flatten_all()?.to_vec1::<f32>();
        let (dx, dw) = g.backward(&flat(x)?, &flat(w)?, &flat(dy)?, need_dx)?;
        let dx = dx.map(|v| Tensor::from_vec(v, x.shape(), &Device::Cpu)).transpose()?;
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), &Device::Cpu)?)))
    }
}

/// Stride-1 transposed 2-D convolution of `x` (N, Cin, H, W) with `w` (Cin, Cout, k, k),
/// cropped by `pad` on every side (output side H + k − 1 − 2·pad), no bias: FFT products on
/// the CPU for f32, candle's `conv_transpose2d` otherwise.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if cpu_f32(x) && cpu_f32(w) {
        x.contiguous()?.apply_op2(&w.contiguous()?, FftConvTranspose { pad })
    } else {
        x.conv_transpose2d(w, pad, 0, 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::smooth_len;

    #[test]
    fn fft_lengths_are_5_smooth_and_not_shorter() {
        assert_eq!(smooth_len(64), 64);
        assert_eq!(smooth_len(97), 100);
        assert_eq!(smooth_len(7), 8);
        assert_eq!(smooth_len(1), 1);
        assert_eq!(smooth_len(121), 125);
    }
}

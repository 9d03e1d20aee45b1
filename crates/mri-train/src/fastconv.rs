//! Convolutions as im2col / col2im + one GEMM, with GEMM backward passes, for the CPU.
//!
//! Candle's CPU conv2d forward is already im2col + GEMM, but its backward pass is not: the
//! input gradient goes through `conv_transpose2d`, a direct loop, and the weight gradient
//! through a conv2d whose "kernel" is the whole output map (candle issue 2144; DESIGN.md
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

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

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

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
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
        let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad as isize);
        let (plane, l) = (g.h * g.w, ho * wo);
        let ncols = g.cols();
        let mut out = vec![0f32; g.rows() * ncols];
        out.par_chunks_mut(ncols).enumerate().for_each(|(row, dst)| {
            let (c, i, j) = (row / (k * k), (row / k) % k, row % k);
            for n in 0..g.n {
                let src = &x[(n * g.c + c) * plane..(n * g.c + c + 1) * plane];
                let dst = &mut dst[n * l..(n + 1) * l];
                for oy in 0..ho {
                    let y = (oy * s) as isize - p + i as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let srow = &src[y as usize * g.w..(y as usize + 1) * g.w];
                    let drow = &mut dst[oy * wo..(oy + 1) * wo];
                    if s == 1 {
                        // Contiguous run: ox + j − p in [0, W).
                        let lo = (p - j as isize).max(0) as usize;
                        let hi = ((g.w as isize + p - j as isize).min(wo as isize)).max(lo as isize) as usize;
                        if hi > lo {
                            let x0 = (lo as isize + j as isize - p) as usize;
                            drow[lo..hi].copy_from_slice(&srow[x0..x0 + hi - lo]);
                        }
                    } else {
                        for (ox, d) in drow.iter_mut().enumerate() {
                            let xx = (ox * s) as isize - p + j as isize;
                            if xx >= 0 && xx < g.w as isize {
                                *d = srow[xx as usize];
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((g.rows(), ncols))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

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
        let (ho, wo, k, s, p) = (g.ho(), g.wo(), g.k, g.stride, g.pad as isize);
        let (plane, l, ncols) = (g.h * g.w, ho * wo, g.cols());
        let mut out = vec![0f32; g.n * g.c * plane];
        out.par_chunks_mut(plane).enumerate().for_each(|(nc, dst)| {
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
                            for (ox, v) in srow.iter().enumerate() {
                                let xx = (ox * s) as isize - p + j as isize;
                                if xx >= 0 && xx < g.w as isize {
                                    drow[xx as usize] += v;
                                }
                            }
                        }
                    }
                }
            }
        });
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
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

fn batch_chunks(n: usize, per_image: usize) -> Vec<(usize, usize)> {
    let step = (MAX_COLS_ELEMENTS / per_image.max(1)).clamp(1, n.max(1));
    (0..n).step_by(step).map(|s| (s, step.min(n - s))).collect()
}

/// 2-D convolution of `x` (N, C, H, W) with `w` (O, C, k, k), square kernel, plus optional
/// `bias` (O): im2col + GEMM on the CPU for f32, candle's `conv2d` otherwise.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, pad: usize) -> candle_core::Result<Tensor> {
    if let (Ok((n, c, h, wd)), Ok((o, _, k, _))) = (x.dims4(), w.dims4()) {
        if h + 2 * pad >= k && wd + 2 * pad >= k {
            let (ho, wo) = ((h + 2 * pad - k) / stride + 1, (wd + 2 * pad - k) / stride + 1);
            crate::flops::add(2 * (n * o * ho * wo * c * k * k) as u64);
        }
    }
    let y = if fast_path(x, w) {
        let (n, c, h, wd) = x.dims4()?;
        let (o, c2, k, k2) = w.dims4()?;
        if c != c2 || k != k2 {
            candle_core::bail!("conv2d: input has {c} channels, kernel {:?}", w.dims());
        }
        let x = x.contiguous()?;
        let wmat = w.reshape((o, c * k * k))?;
        let one = ConvGeometry { n: 1, c, h, w: wd, k, stride, pad };
        let (ho, wo) = (one.ho(), one.wo());
        let mut parts = Vec::new();
        for (start, len) in batch_chunks(n, one.rows() * ho * wo) {
            let g = ConvGeometry { n: len, ..one };
            let cols = x.narrow(0, start, len)?.apply_op1(Im2Col(g))?;
            // (O, len·Ho·Wo) → (len, O, Ho, Wo)
            parts.push(wmat.matmul(&cols)?.reshape((o, len, ho, wo))?.transpose(0, 1)?);
        }
        let y = if parts.len() == 1 { parts.pop().unwrap() } else { Tensor::cat(&parts, 0)? };
        y.contiguous()?
    } else {
        x.conv2d(w, pad, stride, 1, 1)?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// Transposed 2-D convolution of `x` (N, Cin, H, W) with `w` (Cin, Cout, k, k) (candle's and
/// PyTorch's layout), plus optional `bias` (Cout): GEMM + col2im on the CPU for f32, candle's
/// `conv_transpose2d` otherwise. Output side (H − 1)·stride − 2·pad + k + output_padding.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
    output_padding: usize,
) -> candle_core::Result<Tensor> {
    if let (Ok((n, cin, h, wd)), Ok((_, cout, k, _))) = (x.dims4(), w.dims4()) {
        // Every input pixel scatters Cout·k² multiply-adds.
        crate::flops::add(2 * (n * cin * h * wd * cout * k * k) as u64);
    }
    let y = if fast_path(x, w) && output_padding < stride {
        let (n, cin, h, wd) = x.dims4()?;
        let (cin2, cout, k, k2) = w.dims4()?;
        if cin != cin2 || k != k2 {
            candle_core::bail!("conv_transpose2d: input has {cin} channels, kernel {:?}", w.dims());
        }
        let (oh, ow) = ((h - 1) * stride + k + output_padding - 2 * pad, (wd - 1) * stride + k + output_padding - 2 * pad);
        // The conv from (oh, ow) with this kernel maps back onto (h, wd).
        let one = ConvGeometry { n: 1, c: cout, h: oh, w: ow, k, stride, pad };
        debug_assert_eq!((one.ho(), one.wo()), (h, wd));
        let wt = w.reshape((cin, cout * k * k))?.t()?;
        let mut parts = Vec::new();
        for (start, len) in batch_chunks(n, one.rows() * h * wd) {
            let g = ConvGeometry { n: len, ..one };
            // (Cin, len·H·W) so that one GEMM covers the chunk.
            let xs = x.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?.reshape((cin, len * h * wd))?;
            parts.push(wt.matmul(&xs)?.contiguous()?.apply_op1(Col2Im(g))?);
        }
        if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Tensor::cat(&parts, 0)?
        }
    } else {
        x.conv_transpose2d(w, pad, output_padding, stride, 1)?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
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
    /// The kernel.
    pub fn weight(&self) -> &Tensor {
        &self.weight
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

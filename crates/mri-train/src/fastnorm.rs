//! Batch normalisation and 2×2 max-pooling as fused CPU kernels with their own backward passes.
//!
//! Candle-nn's `BatchNorm` builds training-mode normalisation out of about ten broadcast ops,
//! and autograd then differentiates each one; `max_pool2d`'s backward is an upsample, an
//! equality mask and a multiply. On the 2-core CPU those made up most of a CNN training step
//! (profile in docs/performance.md). Here each is one pass over the data forward and one
//! backward, using the textbook gradients. [`BatchNorm2d`] keeps candle-nn's variable names
//! (`weight`, `bias`, `running_mean`, `running_var`), initialisation and running-statistics
//! rule (momentum, unbiased variance), so checkpoints are unchanged; on other devices or dtypes
//! both fall back to candle's ops.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, ModuleT, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use crate::activation::par_map_chunks;

use crate::fastconv::{contiguous_f32, cpu_f32, cpu_slice};

/// Per-channel batch statistics of the last forward pass: mean and 1/√(var + ε).
#[derive(Debug, Default)]
struct Stats {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    var: Vec<f32>,
}

/// Training-mode batch norm of (N, C, H, W) with affine `weight`, `bias` (C), optionally
/// followed by ReLU in the same pass (its backward masks the gradient where the output is 0,
/// PyTorch's `threshold_backward` convention).
#[derive(Debug, Clone)]
struct BnTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Stats>>,
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "mri-batch-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "batch norm")?;
        let w = contiguous_f32(s2, l2, "batch norm weight")?;
        let b = contiguous_f32(s3, l3, "batch norm bias")?;
        let (n, c, h, wd) = l1.shape().dims4()?;
        let plane = h * wd;
        let m = (n * plane) as f64;
        let stats: Vec<(f32, f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut s, mut ss) = (0f64, 0f64);
                for i in 0..n {
                    let p = &x[(i * c + ch) * plane..(i * c + ch + 1) * plane];
                    let (a, q) = p.iter().fold((0f64, 0f64), |(a, q), &v| (a + v as f64, q + (v as f64) * (v as f64)));
                    s += a;
                    ss += q;
                }
                let mean = s / m;
                let var = (ss / m - mean * mean).max(0.0);
                (mean as f32, (1.0 / (var + self.eps).sqrt()) as f32, var as f32)
            })
            .collect();
        let affine = |k: usize| {
            let ch = k % c;
            let (mean, invstd, _) = stats[ch];
            (invstd * w[ch], b[ch] - mean * invstd * w[ch])
        };
        let y = if self.relu {
            par_map_chunks(x, plane, |k| {
                let (scale, shift) = affine(k);
                move |v: f32| (v * scale + shift).max(0.0)
            })
        } else {
            par_map_chunks(x, plane, |k| {
                let (scale, shift) = affine(k);
                move |v: f32| v * scale + shift
            })
        };
        let mut st = self.stats.lock().unwrap();
        st.mean = stats.iter().map(|s| s.0).collect();
        st.invstd = stats.iter().map(|s| s.1).collect();
        st.var = stats.iter().map(|s| s.2).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, wd) = x.dims4()?;
        let plane = h * wd;
        let (xc, gc, rc) = (x.contiguous()?, grad.contiguous()?, res.contiguous()?);
        let (xg, gg, rg) = (xc.storage_and_layout(), gc.storage_and_layout(), rc.storage_and_layout());
        let (xv, gv, rv) = (cpu_slice(&xg)?, cpu_slice(&gg)?, cpu_slice(&rg)?);
        // Through the ReLU first: no gradient where it output 0.
        let gv = relu_masked(gv, rv, self.relu);
        let wv: Vec<f32> = w.to_vec1()?;
        let (mean, invstd) = {
            let st = self.stats.lock().unwrap();
            (st.mean.clone(), st.invstd.clone())
        };
        // dβ = Σ dy, dγ = Σ dy·x̂ per channel.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut db, mut dg) = (0f64, 0f64);
                for i in 0..n {
                    let r = (i * c + ch) * plane..(i * c + ch + 1) * plane;
                    for (&g, &v) in gv[r.clone()].iter().zip(&xv[r]) {
                        db += g as f64;
                        dg += g as f64 * ((v - mean[ch]) * invstd[ch]) as f64;
                    }
                }
                (db, dg)
            })
            .collect();
        let m = (n * plane) as f32;
        // dx = γ·invstd/M · (M·dy − dβ − x̂·dγ)
        let mut dx = vec![0f32; xv.len()];
        dx.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
            let ch = k % c;
            let (db, dg) = (sums[ch].0 as f32, sums[ch].1 as f32);
            let a = wv[ch] * invstd[ch] / m;
            for ((d, &g), &v) in dst.iter_mut().zip(&gv[k * plane..(k + 1) * plane]).zip(&xv[k * plane..(k + 1) * plane]) {
                *d = a * (m * g - db - (v - mean[ch]) * invstd[ch] * dg);
            }
        });
        let dev = x.device();
        let dx = Tensor::from_vec(dx, (n, c, h, wd), dev)?;
        let dw = Tensor::from_vec(sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>(), c, dev)?;
        let db = Tensor::from_vec(sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>(), c, dev)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The output gradient `g` through a ReLU whose output was `out`: zero where it output 0; `g`
/// itself, borrowed, without one.
fn relu_masked<'a>(g: &'a [f32], out: &[f32], relu: bool) -> std::borrow::Cow<'a, [f32]> {
    if !relu {
        return std::borrow::Cow::Borrowed(g);
    }
    let m = crate::activation::par_map2(g, out, |g, o| if o <= 0.0 { 0.0 } else { g });
    std::borrow::Cow::Owned(m)
}

/// 2-D batch normalisation over (N, C, H, W), with candle-nn's names, initialisation and
/// running-statistics update; training mode runs one fused kernel on the CPU.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// `channels` features, ε 1e-5, momentum 0.1 (PyTorch's and candle-nn's defaults).
    pub fn new(channels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let running_mean = Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.))?)?;
        let running_var = Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.))?)?;
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.))?;
        Ok(BatchNorm2d { weight, bias, running_mean, running_var, eps: 1e-5, momentum: 0.1 })
    }

    /// Running mean (C).
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// Running variance (C).
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Eval mode: `x·scale + shift` per channel with the running statistics (then ReLU when
    /// `relu`), one fused pass on the CPU. Candle's broadcast multiply and add, then its ReLU,
    /// were three passes with per-element index arithmetic: they made a CNN's eval forward
    /// slower per FLOP than its training step (docs/performance.md, session 18).
    fn forward_eval(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        self.forward_eval_biased(x, None, relu)
    }

    /// Eval mode of `x + bias` (per channel) as `x·scale + (shift + bias·scale)`: the bias
    /// folded into the shift, so that it costs no pass of its own.
    fn forward_eval_biased(&self, x: &Tensor, bias: Option<&Tensor>, relu: bool) -> candle_core::Result<Tensor> {
        let c = self.weight.dim(0)?;
        let scale = (self.weight.clone() / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
        let mut shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
        if let Some(b) = bias {
            shift = (shift + (b * &scale)?)?;
        }
        if cpu_f32(x) {
            return x.contiguous()?.apply_op3(&scale, &shift, ChannelAffine { relu });
        }
        let shape = (1, c, 1, 1);
        let y = x.broadcast_mul(&scale.reshape(shape)?)?.broadcast_add(&shift.reshape(shape)?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// `y = x·scale[c] + shift[c]` over (N, C, H, W), optionally followed by ReLU in the same pass:
/// eval-mode batch norm. Its backward gives all three gradients (a model evaluated in eval mode
/// can still be differentiated, e.g. a frozen network inside a loss).
#[derive(Debug, Clone, Copy)]
struct ChannelAffine {
    relu: bool,
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "mri-channel-affine"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "channel affine")?;
        let scale = contiguous_f32(s2, l2, "channel affine: scale")?;
        let shift = contiguous_f32(s3, l3, "channel affine: shift")?;
        let (_, c, h, w) = l1.shape().dims4()?;
        if scale.len() != c || shift.len() != c {
            candle_core::bail!("channel affine: {c} channels but {} scales and {} shifts", scale.len(), shift.len());
        }
        let plane = h * w;
        // Written once, never zero-filled first (a memset was 4 % of the CNN's inference).
        let y = if self.relu {
            par_map_chunks(x, plane, |k| {
                let (a, b) = (scale[k % c], shift[k % c]);
                move |v: f32| (v * a + b).max(0.0)
            })
        } else {
            par_map_chunks(x, plane, |k| {
                let (a, b) = (scale[k % c], shift[k % c]);
                move |v: f32| v * a + b
            })
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let plane = h * w;
        let (xc, gc, rc) = (x.contiguous()?, grad.contiguous()?, res.contiguous()?);
        let (xg, gg, rg) = (xc.storage_and_layout(), gc.storage_and_layout(), rc.storage_and_layout());
        let (xv, gv, rv) = (cpu_slice(&xg)?, cpu_slice(&gg)?, cpu_slice(&rg)?);
        let gv = relu_masked(gv, rv, self.relu);
        let sv: Vec<f32> = scale.to_vec1()?;
        // d shift = Σ dy, d scale = Σ dy·x per channel (f64 sums in a fixed order).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut ds, mut da) = (0f64, 0f64);
                for i in 0..n {
                    let r = (i * c + ch) * plane..(i * c + ch + 1) * plane;
                    for (&g, &v) in gv[r.clone()].iter().zip(&xv[r]) {
                        ds += g as f64;
                        da += g as f64 * v as f64;
                    }
                }
                (ds, da)
            })
            .collect();
        let mut dx = vec![0f32; xv.len()];
        if plane > 0 {
            dx.par_chunks_mut(plane).zip(gv.par_chunks(plane)).enumerate().for_each(|(k, (dst, g))| {
                let a = sv[k % c];
                dst.iter_mut().zip(g).for_each(|(d, &g)| *d = g * a);
            });
        }
        let dev = x.device();
        let dx = Tensor::from_vec(dx, (n, c, h, w), dev)?;
        let dscale = Tensor::from_vec(sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>(), c, dev)?;
        let dshift = Tensor::from_vec(sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>(), c, dev)?;
        Ok((Some(dx), Some(dscale), Some(dshift)))
    }
}

impl BatchNorm2d {
    /// `relu(self.forward_t(x, train))`, with the ReLU fused into the training kernel on the CPU
    /// (one pass less forward, and no separate mask, multiply and add backward).
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if train {
            self.forward_train(x, true)
        } else {
            self.forward_eval(x, true)
        }
    }

    fn forward_train(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let m = (n * h * w) as f64;
        let (y, mean, var) = if cpu_f32(x) {
            let op = BnTrain { eps: self.eps, relu, stats: Arc::default() };
            let stats = op.stats.clone();
            let y = x.contiguous()?.apply_op3(&self.weight, &self.bias, op)?;
            let st = stats.lock().unwrap();
            let c = st.mean.len();
            (y, Tensor::from_vec(st.mean.clone(), c, x.device())?, Tensor::from_vec(st.var.clone(), c, x.device())?)
        } else {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
            let y = x.broadcast_sub(&mean)?.broadcast_div(&(&var + self.eps)?.sqrt()?)?;
            let c = self.weight.dim(0)?;
            let y = y.broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?;
            let y = if relu { y.relu()? } else { y };
            (y, mean.flatten_all()?.detach(), var.flatten_all()?.detach())
        };
        let k = self.momentum;
        self.running_mean.set(&((self.running_mean.as_tensor() * (1.0 - k))? + (mean * k)?)?)?;
        self.running_var.set(&((self.running_var.as_tensor() * (1.0 - k))? + (var * (k * m / (m - 1.0).max(1.0)))?)?)?;
        Ok(y)
    }
}

impl BatchNorm2d {
    /// This batch norm applied to `x + bias` (`bias` (C) per channel: the bias of the conv
    /// that made `x`), then ReLU when `relu`. Training mode adds the bias first, exactly as
    /// [`crate::Conv2d`]'s forward does (the same bits as `forward_t(conv(x) + b)`); eval mode
    /// folds the bias into the normalisation's shift, so the conv's output takes one pass and
    /// one buffer where it took two (issue 16, lever 4).
    pub fn forward_after_bias_t(&self, x: &Tensor, bias: &Tensor, relu: bool, train: bool) -> candle_core::Result<Tensor> {
        if train {
            self.forward_train(&crate::fastconv::add_channel_bias(x, bias)?, relu)
        } else {
            self.forward_eval_biased(x, Some(bias), relu)
        }
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if train {
            self.forward_train(x, false)
        } else {
            self.forward_eval(x, false)
        }
    }
}

/// 2×2 max-pooling with stride 2 of (N, C, H, W), H and W even; ties go to the first element.
#[derive(Debug, Clone, Copy)]
struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "mri-max-pool-2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "max pool")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(k, dst)| {
            let src = &x[k * h * w..(k + 1) * h * w];
            for oy in 0..ho {
                let (r0, r1) = (&src[2 * oy * w..(2 * oy + 1) * w], &src[(2 * oy + 1) * w..(2 * oy + 2) * w]);
                for ox in 0..wo {
                    dst[oy * wo + ox] = r0[2 * ox].max(r0[2 * ox + 1]).max(r1[2 * ox]).max(r1[2 * ox + 1]);
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let (xc, gc) = (x.contiguous()?, grad.contiguous()?);
        let (xg, gg) = (xc.storage_and_layout(), gc.storage_and_layout());
        let (xv, gv) = (cpu_slice(&xg)?, cpu_slice(&gg)?);
        let mut dx = vec![0f32; xv.len()];
        dx.par_chunks_mut(h * w).enumerate().for_each(|(k, dst)| {
            let src = &xv[k * h * w..(k + 1) * h * w];
            let g = &gv[k * ho * wo..(k + 1) * ho * wo];
            for oy in 0..ho {
                for ox in 0..wo {
                    let idx = [2 * oy * w + 2 * ox, 2 * oy * w + 2 * ox + 1, (2 * oy + 1) * w + 2 * ox, (2 * oy + 1) * w + 2 * ox + 1];
                    let best = idx.iter().copied().fold(idx[0], |b, i| if src[i] > src[b] { i } else { b });
                    dst[best] += g[oy * wo + ox];
                }
            }
        });
        Ok(Some(Tensor::from_vec(dx, (n, c, h, w), x.device())?))
    }
}

/// 2×2 max-pooling, stride 2: a fused kernel on the CPU for f32 with even sides, candle's
/// `max_pool2d` otherwise. The gradient of each output goes wholly to its window's maximum
/// (the first of equal maxima, PyTorch's rule). Note: candle 0.11.1's own `max_pool2d`
/// backward (backprop.rs, `Op::MaxPool2D`) multiplies it by the fraction of the window that
/// is maximal, i.e. returns a quarter of the true gradient for a unique maximum; tested in
/// tests/fastconv.rs. The fallback path (GPUs) still has that behaviour.
pub fn max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if cpu_f32(x) && h % 2 == 0 && w % 2 == 0 {
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}

/// Nearest-neighbour ×2 upsampling of (N, C, H, W).
#[derive(Debug, Clone, Copy)]
struct Upsample2;

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "mri-upsample-2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "upsample")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let mut y = vec![0f32; n * c * 4 * h * w];
        y.par_chunks_mut(4 * h * w).enumerate().for_each(|(k, dst)| {
            let src = &x[k * h * w..(k + 1) * h * w];
            for yy in 0..2 * h {
                let srow = &src[(yy / 2) * w..(yy / 2 + 1) * w];
                for (xx, d) in dst[yy * 2 * w..(yy + 1) * 2 * w].iter_mut().enumerate() {
                    *d = srow[xx / 2];
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, 2 * h, 2 * w))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let gc = grad.contiguous()?;
        let gg = gc.storage_and_layout();
        let gv = cpu_slice(&gg)?;
        let mut dx = vec![0f32; n * c * h * w];
        dx.par_chunks_mut(h * w).enumerate().for_each(|(k, dst)| {
            let g = &gv[k * 4 * h * w..(k + 1) * 4 * h * w];
            for yy in 0..2 * h {
                for xx in 0..2 * w {
                    dst[(yy / 2) * w + xx / 2] += g[yy * 2 * w + xx];
                }
            }
        });
        Ok(Some(Tensor::from_vec(dx, (n, c, h, w), x.device())?))
    }
}

/// Nearest-neighbour ×2 upsampling: a fused kernel (each input pixel's gradient is the sum of
/// its four copies') on the CPU for f32, candle's `upsample_nearest2d` otherwise (whose
/// backward is a grouped convolution, one small conv per channel on the CPU).
pub fn upsample2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if cpu_f32(x) {
        x.contiguous()?.apply_op1(Upsample2)
    } else {
        x.upsample_nearest2d(2 * h, 2 * w)
    }
}

//! A fully connected layer whose weight gradient lands in the weight's own layout.
//!
//! candle-nn's `Linear` computes `x @ wᵀ` through a transposed view of the (out, in) weight.
//! Its backward pass therefore hands the weight a *transposed* gradient: the matmul's rule gives
//! `(xᵀ @ dy)`, (in, out), and the transpose's rule turns it back into a strided (out, in)
//! view, which candle's gradient store then makes contiguous with its generic strided copy, one
//! element at a time. For the anomaly VAE's 16384 → 64 layers (`mu`, `logvar`) and its 64 →
//! 16384 `dec_in` that copy was 3 M elements a step, single-threaded: 6.6 % of a default-preset
//! training profile, more than its convs' im2col (docs/performance.md, session 34). The bias
//! went through `broadcast_add`, whose backward is a strided `sum_keepdim`.
//!
//! [`Linear`] computes the same forward pass as one op with its own backward: `dW = dyᵀ @ x`
//! straight into an (out, in) buffer, `dx = dy @ W` (skipped when `x` is not tracked), `db` as
//! one pass of column sums. Its forward is candle's `matmul` followed by the bias, with the same
//! `gemm` call, so its outputs are the same bits as candle-nn's. CUDA and Metal tensors, other
//! dtypes and inputs of rank other than 2 take candle-nn's path. Weight names are candle-nn's
//! (`weight` (out, in), `bias` (out)), so checkpoints do not change.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Module, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::fastconv::{contiguous_f32, cpu_f32, sgemm_strided};

/// A fully connected layer `y = x Wᵀ + b` with candle-nn's weight names and initialisation.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// The layer with weight (out, in) and optional bias (out).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    /// The weight, (out, in).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, (out).
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

/// `d_in → d_out` with a bias, initialised as candle-nn's `linear` (its own code draws the
/// values, so a seeded var builder gives the same weights as before).
pub fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let l = candle_nn::linear(d_in, d_out, vb)?;
    Ok(Linear::new(l.weight().clone(), l.bias().cloned()))
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.bias {
            Some(b) if cpu_f32(x) && cpu_f32(&self.weight) && cpu_f32(b) && x.rank() == 2 => {
                let (_, d_in) = x.dims2()?;
                let (d_out, w_in) = self.weight.dims2()?;
                if d_in != w_in || b.dims1()? != d_out {
                    candle_core::bail!("linear: input {:?}, weight {:?}, bias {:?}", x.dims(), self.weight.dims(), b.dims());
                }
                x.contiguous()?.apply_op3(&self.weight.contiguous()?, &b.contiguous()?, LinearOp)
            }
            _ => candle_nn::Linear::new(self.weight.clone(), self.bias.clone()).forward(x),
        }
    }
}

/// `x (N, in) @ w (out, in)ᵀ + b (out)` on the CPU, with its backward pass.
#[derive(Debug, Clone, Copy)]
struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "mri-linear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout, bs: &CpuStorage, bl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (contiguous_f32(xs, xl, "linear")?, contiguous_f32(ws, wl, "linear")?, contiguous_f32(bs, bl, "linear")?);
        let (n, d_in) = xl.shape().dims2()?;
        let d_out = wl.shape().dims2()?.0;
        // The gemm call candle's matmul makes for `x.matmul(&w.t())` (rhs column stride d_in),
        // then the bias as broadcast_add would add it: the same bits as candle-nn's layer.
        let mut y = vec![0f32; n * d_out];
        sgemm_strided(n, d_out, d_in, (&mut y, d_out, 1), (x, d_in, 1), (w, 1, d_in), false, rayon::current_num_threads());
        for row in y.chunks_exact_mut(d_out.max(1)) {
            row.iter_mut().zip(b).for_each(|(v, bi)| *v += bi);
        }
        Ok((CpuStorage::F32(y), Shape::from((n, d_out))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, d_in) = x.dims2()?;
        let d_out = w.dim(0)?;
        let (xc, wc, dyc) = (x.detach().contiguous()?, w.detach().contiguous()?, dy.detach().contiguous()?);
        let (xg, wg, dyg) = (xc.storage_and_layout(), wc.storage_and_layout(), dyc.storage_and_layout());
        let (xv, wv, dyv) = (crate::fastconv::cpu_slice(&xg)?, crate::fastconv::cpu_slice(&wg)?, crate::fastconv::cpu_slice(&dyg)?);
        let threads = rayon::current_num_threads();
        // dW (out, in) = dyᵀ (out, N) @ x (N, in): written in the weight's own layout.
        let mut dw = vec![0f32; d_out * d_in];
        sgemm_strided(d_out, d_in, n, (&mut dw, d_in, 1), (dyv, 1, d_out), (xv, d_in, 1), false, threads);
        // db = Σ over the rows of dy, in row order.
        let mut db = vec![0f32; d_out];
        for row in dyv.chunks_exact(d_out.max(1)) {
            db.iter_mut().zip(row).for_each(|(a, g)| *a += g);
        }
        // dx (N, in) = dy (N, out) @ W (out, in); an untracked input (codes fed from outside)
        // needs none.
        let dx = if x.track_op() {
            let mut dx = vec![0f32; n * d_in];
            sgemm_strided(n, d_in, d_out, (&mut dx, d_in, 1), (dyv, d_out, 1), (wv, d_in, 1), false, threads);
            Some(Tensor::from_vec(dx, (n, d_in), &Device::Cpu)?)
        } else {
            None
        };
        Ok((dx, Some(Tensor::from_vec(dw, (d_out, d_in), &Device::Cpu)?), Some(Tensor::from_vec(db, d_out, &Device::Cpu)?)))
    }
}

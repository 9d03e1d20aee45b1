//! Spectral normalisation of a weight (Miyato et al., "Spectral Normalization for Generative
//! Adversarial Networks", ICLR 2018): the weight is divided by an estimate of its largest
//! singular value, kept current by one power iteration per training step on a persistent
//! vector `u`, as in PyTorch's `torch.nn.utils.spectral_norm`. `u` lives in the model's
//! `VarMap` (name `…sn_u`, so it is saved and restored with the checkpoint and a resumed run
//! continues bit for bit) but is never trained: optimisers skip names ending in `sn_u`.

use candle_core::{Tensor, Var};
use candle_nn::{Init, VarBuilder};

/// The variable-name suffix of the power-iteration vectors (optimisers skip them).
pub const SN_U: &str = "sn_u";

/// A weight of any shape (O, …) that may be spectrally normalised as an (O, K) matrix.
#[derive(Debug, Clone)]
pub struct SnWeight {
    weight: Tensor,
    u: Option<Var>,
}

fn normalize(v: &Tensor) -> candle_core::Result<Tensor> {
    let norm = (v.sqr()?.sum_all()? + 1e-12)?.sqrt()?;
    v.broadcast_div(&norm)
}

impl SnWeight {
    /// Wraps `weight` (a variable from `vb`'s map); with `enabled`, creates `vb`'s `sn_u` (O).
    pub fn new(weight: Tensor, enabled: bool, vb: &VarBuilder) -> candle_core::Result<Self> {
        let u = if enabled {
            let t = vb.get_with_hints(weight.dim(0)?, SN_U, Init::Randn { mean: 0.0, stdev: 1.0 })?;
            Some(Var::from_tensor(&t)?)
        } else {
            None
        };
        Ok(SnWeight { weight, u })
    }

    /// The raw weight.
    pub fn raw(&self) -> &Tensor {
        &self.weight
    }

    /// The weight to compute with: W / σ̂(W) when normalised, W otherwise. With `update`, one
    /// power iteration first refreshes `u` (do this once per training step). Gradients flow
    /// through W in both the numerator and σ̂ (u and v are constants), as in the paper.
    pub fn weight(&self, update: bool) -> candle_core::Result<Tensor> {
        let Some(u_var) = &self.u else { return Ok(self.weight.clone()) };
        let o = self.weight.dim(0)?;
        let w_mat = self.weight.reshape((o, ()))?;
        let w_det = w_mat.detach();
        let mut u = u_var.as_tensor().detach().reshape((o, 1))?;
        // v = Wᵀu / ‖Wᵀu‖ (K, 1); u = Wv / ‖Wv‖.
        let v = normalize(&w_det.t()?.matmul(&u)?)?;
        if update {
            u = normalize(&w_det.matmul(&v)?)?;
            u_var.set(&u.reshape(o)?)?;
        }
        // σ̂ = uᵀWv, shape (1, 1): broadcasts over any weight shape.
        let sigma = u.t()?.matmul(&w_mat.matmul(&v)?)?;
        self.weight.broadcast_div(&sigma)
    }
}

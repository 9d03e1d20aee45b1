//! The second stage of a two-stage VAE (Dai & Wipf, "Diagnosing and Enhancing VAE Models",
//! ICLR 2019, <https://github.com/daib13/TwoStageVAE>): a small fully connected VAE fitted to
//! the first VAE's training codes μ, so that samples come from where the codes really lie
//! rather than from a Gaussian around them ([`crate::LatentGaussian`], its linear special
//! case). As in the reference, the second stage's likelihood is Gaussian with a learned
//! variance γ (one scalar): as γ falls the decoder fits the codes closely, and the encoder's
//! posterior variances then mark which of its dimensions the codes use.
//!
//! It is small (two hidden layers of `hidden` units, `latent` dimensions) and trained full-batch
//! on the standardised codes, so it costs seconds even for 512-value codes of a thousand
//! slices, and its decoder is stored in the VAE's `.latent.json` beside the checkpoint.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use mri_train::{linear, seeded_normal, seeded_var_builder, Adam, AdamConfig, Linear};
use serde::{Deserialize, Serialize};

use crate::latent::code_count_and_mean;
use crate::{Result, VaeError};

/// How the second stage is built and trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecondStageConfig {
    /// Units of each of the two hidden layers of its encoder and decoder.
    pub hidden: usize,
    /// Its latent dimension.
    pub latent: usize,
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
}

impl Default for SecondStageConfig {
    /// 256 hidden units, 32 latent dimensions, 3000 steps at lr 1e-3 (the reference trains its
    /// second stage longer than its first, with 1024 units, on 10⁴–10⁵ codes; a few hundred
    /// codes need less).
    fn default() -> Self {
        SecondStageConfig { hidden: 256, latent: 32, steps: 3000, lr: 1e-3 }
    }
}

impl SecondStageConfig {
    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        if self.hidden == 0 || self.latent == 0 || self.steps == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(VaeError::Config(format!("second_stage: hidden, latent, steps and lr must be positive, got {self:?}")));
        }
        Ok(())
    }
}

/// One dense layer's weights, row-major (out × in) and bias (out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseWeights {
    /// Output units.
    pub out: usize,
    /// Input units.
    pub inp: usize,
    /// Weight, out × inp, row-major.
    pub weight: Vec<f32>,
    /// Bias, out.
    pub bias: Vec<f32>,
}

impl DenseWeights {
    fn layer(&self, device: &Device) -> Result<Linear> {
        let w = Tensor::from_slice(&self.weight, (self.out, self.inp), device)?;
        let b = Tensor::from_slice(&self.bias, self.out, device)?;
        Ok(Linear::new(w, Some(b)))
    }
}

/// A fitted second stage: its decoder, and how codes were standardised for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondStage {
    /// Dimension of the first VAE's codes.
    pub code_dim: usize,
    /// How it was built and trained.
    pub config: SecondStageConfig,
    /// Per-dimension mean of the training codes.
    pub code_mean: Vec<f32>,
    /// One scale for every dimension: the codes' root mean square deviation.
    pub code_scale: f32,
    /// Decoder layers: latent → hidden → hidden → code (ReLU between).
    pub decoder: Vec<DenseWeights>,
    /// The learned likelihood variance γ at the end of training.
    pub gamma: f64,
    /// Mean loss per code of the last step (negative log-likelihood up to a constant, + KL).
    pub final_loss: f64,
}

struct Net {
    enc: [Linear; 2],
    mu: Linear,
    logvar: Linear,
    dec: [Linear; 3],
}

impl Net {
    fn new(d: usize, c: &SecondStageConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = c.hidden;
        Ok(Net {
            enc: [linear(d, h, vb.pp("enc0"))?, linear(h, h, vb.pp("enc1"))?],
            mu: linear(h, c.latent, vb.pp("mu"))?,
            logvar: linear(h, c.latent, vb.pp("logvar"))?,
            dec: [linear(c.latent, h, vb.pp("dec0"))?, linear(h, h, vb.pp("dec1"))?, linear(h, d, vb.pp("dec2"))?],
        })
    }
}

fn decode(layers: &[Linear], z: &Tensor) -> candle_core::Result<Tensor> {
    let mut x = z.clone();
    for (i, l) in layers.iter().enumerate() {
        x = l.forward(&x)?;
        if i + 1 < layers.len() {
            x = x.relu()?;
        }
    }
    Ok(x)
}

impl SecondStage {
    /// Fits the second stage to `codes` (n × `dim`, row-major), seeded.
    ///
    /// # Errors
    /// Fewer than two codes, a bad config, candle errors.
    pub fn fit(codes: &[f64], dim: usize, config: SecondStageConfig, seed: u64, device: &Device) -> Result<Self> {
        config.check()?;
        let (n, mean) = code_count_and_mean(codes, dim)?;
        let var: f64 = codes.chunks(dim).flat_map(|c| c.iter().zip(&mean).map(|(v, m)| (v - m).powi(2))).sum::<f64>() / (n * dim) as f64;
        let scale = var.sqrt().max(1e-8);
        let x: Vec<f32> = codes.chunks(dim).flat_map(|c| c.iter().zip(&mean).map(move |(v, m)| ((v - m) / scale) as f32)).collect();
        let x = Tensor::from_vec(x, (n, dim), device)?;

        let vm = VarMap::new();
        let net = Net::new(dim, &config, seeded_var_builder(&vm, seed, DType::F32, device))?;
        // log γ, learned (Dai & Wipf): starts at 0 (γ = 1, the standardised codes' variance).
        let log_gamma = vm.get(1, "log_gamma", candle_nn::Init::Const(0.0), DType::F32, device)?;
        let adam = AdamConfig { lr: config.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = Adam::from_varmap(&vm, adam, |_| true)?;
        let half_d = 0.5 * dim as f64;
        let mut final_loss = f64::NAN;
        for step in 0..config.steps {
            let mut h = x.clone();
            for l in &net.enc {
                h = l.forward(&h)?.relu()?;
            }
            let (mu, logvar) = (net.mu.forward(&h)?, net.logvar.forward(&h)?);
            let eps = seeded_normal(seed.wrapping_add(step as u64), "second-stage-eps", (n, config.latent), device)?;
            let z = (&mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
            let recon = decode(&net.dec, &z)?;
            // Per code: Σ (x − x̂)² / (2γ) + (d/2) ln γ + KL(q ‖ N(0, I)).
            let se = (recon - &x)?.sqr()?.sum(D::Minus1)?;
            let gamma = log_gamma.exp()?;
            let nll = (se.broadcast_div(&gamma.affine(2.0, 0.0)?)?.broadcast_add(&log_gamma.affine(half_d, 0.0)?))?;
            let kl = ((mu.sqr()? + logvar.exp()? - &logvar)?.affine(1.0, -1.0)?.sum(D::Minus1)? * 0.5)?;
            let loss = (nll + kl)?.mean_all()?;
            opt.backward_step(&loss)?;
            if step + 1 == config.steps {
                final_loss = f64::from(loss.to_scalar::<f32>()?);
            }
        }
        if !final_loss.is_finite() {
            return Err(VaeError::Data(format!("the second stage diverged (loss {final_loss})")));
        }
        let data = vm.data().lock().expect("varmap lock").clone();
        let dense = |name: &str| -> Result<DenseWeights> {
            let w = data[&format!("{name}.weight")].as_tensor();
            let (out, inp) = w.dims2()?;
            Ok(DenseWeights { out, inp, weight: w.flatten_all()?.to_vec1()?, bias: data[&format!("{name}.bias")].as_tensor().to_vec1()? })
        };
        let gamma = f64::from(data["log_gamma"].as_tensor().to_vec1::<f32>()?[0]).exp();
        Ok(SecondStage {
            code_dim: dim,
            config,
            code_mean: mean.iter().map(|&m| m as f32).collect(),
            code_scale: scale as f32,
            decoder: vec![dense("dec0")?, dense("dec1")?, dense("dec2")?],
            gamma,
            final_loss,
        })
    }

    /// `n` codes: z ~ N(0, I) from the seeded stream `samples`, decoded, un-standardised: (n, code_dim).
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let layers = self.decoder.iter().map(|l| l.layer(device)).collect::<Result<Vec<_>>>()?;
        let z = seeded_normal(seed, "samples", (n, self.config.latent), device)?;
        let mean = Tensor::from_slice(&self.code_mean, (1, self.code_dim), device)?;
        Ok(decode(&layers, &z)?.affine(f64::from(self.code_scale), 0.0)?.broadcast_add(&mean)?)
    }
}

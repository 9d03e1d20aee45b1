//! Seeded, resumable VAE training with validation model selection; sampling and reconstruction.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mri_train::{
    run_epochs, save_recon_grid, seeded_normal, seeded_var_builder, Adam, AdamConfig, Checkpoint, EpochProgress, EpochTask, ImageSet, ModelKind, RunOptions,
    TrainError,
};
use serde::{Deserialize, Serialize};

use crate::config::{AnomalyVaeConfig, VaeConfig, VaeLoss};
use crate::latent::{CodeSampler, LatentGaussian, LatentSampler};
use crate::model::{AnomalyVae, GenerativeVae, VaeModel};
use crate::{Result, VaeError};

/// A VAE config that can build its model: lets one trainer serve both VAEs.
pub trait VaeSpec: Serialize + serde::de::DeserializeOwned + Sync {
    /// The network it builds.
    type Model: VaeModel + Send;
    /// Model kind written to checkpoints.
    const KIND: ModelKind;
    /// Builds the network.
    fn build(&self, vb: VarBuilder) -> Result<Self::Model>;
    /// Checks the config.
    fn validate(&self) -> Result<()>;
    /// Image side.
    fn image_size(&self) -> usize;
    /// Epochs.
    fn epochs(&self) -> usize;
    /// Batch size.
    fn batch_size(&self) -> usize;
    /// Optimiser.
    fn adam(&self) -> AdamConfig;
    /// Loss.
    fn loss(&self) -> VaeLoss;
    /// Minimum optimiser steps.
    fn min_steps(&self) -> usize;
    /// Steps of the KL warm-up.
    fn kl_warmup_steps(&self) -> usize;
    /// Where samples draw their codes (the prior for the anomaly VAE, which is not sampled).
    fn sampler(&self) -> LatentSampler;
    /// Shrinkage of the fitted code Gaussian's covariance (`None`: automatic).
    fn latent_shrinkage(&self) -> Option<f64>;
}

macro_rules! spec {
    ($cfg:ty, $model:ty, $kind:expr, $sampler:expr, $shrinkage:expr) => {
        impl VaeSpec for $cfg {
            type Model = $model;
            const KIND: ModelKind = $kind;
            fn build(&self, vb: VarBuilder) -> Result<$model> {
                <$model>::new(self, vb)
            }
            fn validate(&self) -> Result<()> {
                self.check()
            }
            fn image_size(&self) -> usize {
                self.image_size
            }
            fn epochs(&self) -> usize {
                self.epochs
            }
            fn batch_size(&self) -> usize {
                self.batch_size
            }
            fn adam(&self) -> AdamConfig {
                self.adam
            }
            fn loss(&self) -> VaeLoss {
                self.loss
            }
            fn min_steps(&self) -> usize {
                self.min_steps
            }
            fn kl_warmup_steps(&self) -> usize {
                self.kl_warmup_steps
            }
            fn sampler(&self) -> LatentSampler {
                #[allow(clippy::redundant_closure_call)]
                ($sampler)(self)
            }
            fn latent_shrinkage(&self) -> Option<f64> {
                #[allow(clippy::redundant_closure_call)]
                ($shrinkage)(self)
            }
        }
    };
}
spec!(VaeConfig, GenerativeVae, ModelKind::GenerativeVae, |c: &VaeConfig| c.sampler, |c: &VaeConfig| c.latent_shrinkage);
spec!(AnomalyVaeConfig, AnomalyVae, ModelKind::AnomalyVae, |_: &AnomalyVaeConfig| LatentSampler::Prior, |_: &AnomalyVaeConfig| None);

/// The loss of one batch, split into its parts (per image, averaged over the batch).
pub struct LossParts {
    /// Reconstruction + KL term (what is minimised), scalar tensor.
    pub total: Tensor,
    /// Reconstruction term.
    pub recon: f64,
    /// KL term (unweighted).
    pub kl: f64,
}

/// The VAE loss for decoder `logits` of targets `x` with posterior (`mu`, `logvar`).
pub fn vae_loss(loss: VaeLoss, logits: &Tensor, x: &Tensor, mu: &Tensor, logvar: &Tensor) -> candle_core::Result<LossParts> {
    vae_loss_weighted(loss, logits, x, mu, logvar, 1.0)
}

/// [`vae_loss`] with the KL term's weight scaled by `kl_scale` (the KL warm-up's ramp).
pub fn vae_loss_weighted(loss: VaeLoss, logits: &Tensor, x: &Tensor, mu: &Tensor, logvar: &Tensor, kl_scale: f64) -> candle_core::Result<LossParts> {
    let n = x.dim(0)? as f64;
    let recon = match loss {
        // Stable BCE on logits, summed: max(l, 0) − l·y + log(1 + e^−|l|) (candle issue 2561).
        VaeLoss::BceKl => {
            let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
            ((logits.relu()? - (logits * x)?)? + softplus)?.sum_all()?
        }
        VaeLoss::MseKl { .. } => (candle_nn::ops::sigmoid(logits)? - x)?.sqr()?.sum_all()?,
    };
    // KL(q(z|x) || N(0, I)) = −½ Σ (1 + log σ² − μ² − σ²).
    let kl = ((logvar.exp()? + mu.sqr()?)? - logvar)?.affine(1.0, -1.0)?.sum_all()?.affine(0.5, 0.0)?;
    let beta = match loss {
        VaeLoss::BceKl => 1.0,
        VaeLoss::MseKl { beta } => beta,
    };
    let total = ((&recon + (&kl * (beta * kl_scale))?)? / n)?;
    Ok(LossParts { recon: recon.to_scalar::<f32>()? as f64 / n, kl: kl.to_scalar::<f32>()? as f64 / n, total })
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeEpoch {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Mean training loss per image.
    pub train_loss: f64,
    /// Its reconstruction part.
    pub train_recon: f64,
    /// Its KL part.
    pub train_kl: f64,
    /// Validation loss per image (decoding μ, eval mode).
    pub val_loss: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained VAE.
pub struct VaeTrainOutput<M> {
    /// The model with the weights of the best validation epoch.
    pub model: M,
    /// Its variables.
    pub varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<VaeEpoch>,
    /// The epoch whose weights were kept, counting from 1.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// True when `stop_after` ended the run early.
    pub stopped_early: bool,
}

/// Mean loss per image on a set, eval mode, decoding μ.
pub fn evaluate_vae_loss<M: VaeModel>(model: &M, loss: VaeLoss, set: &ImageSet, batch_size: usize, device: &Device) -> Result<f64> {
    if set.is_empty() {
        return Err(VaeError::Data("cannot evaluate on an empty set".into()));
    }
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut sum = 0f64;
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = set.batch(chunk, None, device)?;
        let (mu, logvar) = model.encode_labelled(&x, &y, false)?;
        let parts = vae_loss(loss, &model.decode_logits_labelled(&mu, &y, false)?, &x, &mu, &logvar)?;
        sum += parts.total.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(sum / set.len() as f64)
}

fn check_set(what: &str, set: &ImageSet, side: usize) -> Result<()> {
    if set.is_empty() {
        return Err(VaeError::Data(format!("the {what} set is empty")));
    }
    if set.side != side {
        return Err(VaeError::Data(format!("{what} images are {0}×{0}, the config expects {side}", set.side)));
    }
    Ok(())
}

/// A VAE as a task of the shared epoch loop.
struct VaeTask<'a, S: VaeSpec> {
    cfg: &'a S,
    model: S::Model,
    vm: VarMap,
    adam: Adam,
    train: &'a ImageSet,
    val: &'a ImageSet,
    fixed_noise: Tensor,
    seed: u64,
    device: &'a Device,
}

impl<S: VaeSpec> EpochTask for VaeTask<'_, S> {
    type Record = VaeEpoch;
    type State = ();
    type Error = VaeError;

    fn kind(&self) -> ModelKind {
        S::KIND
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).expect("config serialises")
    }
    fn read_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        mri_train::reread_config::<S>(stored)
    }
    fn epochs(&self) -> usize {
        mri_train::epochs_for(self.cfg.epochs(), self.cfg.min_steps(), self.cfg.batch_size(), self.train.len())
    }
    fn batches(&self, _epoch: usize) -> usize {
        self.train.len().div_ceil(self.cfg.batch_size())
    }
    fn varmaps(&self) -> Vec<&VarMap> {
        vec![&self.vm]
    }
    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        vec![("", &self.adam)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("", &mut self.adam)]
    }
    fn state(&self) {}
    fn set_state(&mut self, _state: ()) {}
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<VaeEpoch> {
        let t0 = Instant::now();
        let (mut sum, mut sum_recon, mut sum_kl) = (0f64, 0f64, 0f64);
        for idx in &self.train.epoch_batches(self.seed, epoch as u64, self.cfg.batch_size()) {
            // Labels reach the model only when it is class-conditional.
            let (x, y) = self.train.batch(idx, None, self.device)?;
            let (mu, logvar) = self.model.encode_labelled(&x, &y, true)?;
            let eps = seeded_normal(self.seed, &format!("reparam/{}", self.adam.steps()), mu.shape(), self.device)?;
            let z = (&mu + (eps * (&logvar * 0.5)?.exp()?)?)?;
            let warm = self.cfg.kl_warmup_steps();
            let kl_scale = if warm == 0 { 1.0 } else { ((self.adam.steps() + 1) as f64 / warm as f64).min(1.0) };
            let parts = vae_loss_weighted(self.cfg.loss(), &self.model.decode_logits_labelled(&z, &y, true)?, &x, &mu, &logvar, kl_scale)?;
            self.adam.backward_step(&parts.total)?;
            let l = parts.total.to_scalar::<f32>()? as f64;
            let k = idx.len() as f64;
            sum += l * k;
            sum_recon += parts.recon * k;
            sum_kl += parts.kl * k;
            bar.batch(l);
        }
        let val_loss = evaluate_vae_loss(&self.model, self.cfg.loss(), self.val, self.cfg.batch_size(), self.device)?;
        let n = self.train.len() as f64;
        Ok(VaeEpoch { epoch: epoch + 1, train_loss: sum / n, train_recon: sum_recon / n, train_kl: sum_kl / n, val_loss, seconds: t0.elapsed().as_secs_f64() })
    }
    fn selection_loss(&self, r: &VaeEpoch) -> Option<f64> {
        Some(r.val_loss)
    }
    fn summary(&self, r: &VaeEpoch) -> String {
        format!("loss {:.2} (recon {:.2} kl {:.2}) val {:.2}", r.train_loss, r.train_recon, r.train_kl, r.val_loss)
    }
    fn write_figures(&self, dir: &std::path::Path, name: &str, epoch: usize) -> Result<()> {
        let show: Vec<usize> = (0..self.val.len().min(8)).collect();
        let (x, y) = self.val.batch(&show, None, self.device)?;
        save_recon_grid(&dir.join(format!("{name}-recon-epoch{:03}.png", epoch + 1)), &x, Some(&self.model.reconstruct_labelled(&x, &y)?))?;
        if S::KIND == ModelKind::GenerativeVae {
            // Samples as the finished model will draw them: from the fitted code Gaussian when
            // the config says so (refitted to the current weights), else from fixed prior noise.
            // A two-stage sampler's progress grids use the fitted Gaussian too: refitting its
            // second stage at every figure would cost seconds each. A class-conditional model
            // shows the tumour class (label 1), from the tumour slices' codes.
            let conditional = self.model.classes() > 0;
            let fit_on = if conditional { self.train.of_class(1) } else { self.train.clone() };
            let z = if self.cfg.sampler() != LatentSampler::Prior && fit_on.len() >= 2 {
                LatentGaussian::fit(&self.model, &fit_on, self.cfg.batch_size(), self.cfg.latent_shrinkage(), self.device)?.sample(
                    16,
                    self.seed,
                    self.device,
                )?
            } else {
                self.fixed_noise.clone()
            };
            let labels = Tensor::from_vec(vec![u32::from(conditional); 16], 16, self.device)?;
            save_recon_grid(&dir.join(format!("{name}-samples-epoch{:03}.png", epoch + 1)), &self.model.decode_labelled(&z, &labels, false)?, None)?;
        }
        Ok(())
    }
}

/// Trains a VAE on every image of `train` (filter first: [`ImageSet::of_class`]), keeping the
/// epoch with the lowest loss on `val`, through the shared epoch loop ([`mri_train::run_epochs`]).
///
/// Deterministic for a seed on the CPU: initialisation, shuffling and the reparameterisation
/// noise (stream `reparam/<step>`) all come from our seeded streams. With a checkpoint folder,
/// each epoch ends by saving `NAME-last` (weights, Adam moments, history) and, when validation
/// improves, `NAME`; a second call resumes and equals an uninterrupted run. With a figures
/// folder, a reconstruction grid of the first validation images (and, for generative use,
/// samples from fixed noise) is written every `figure_every` epochs.
pub fn train_vae<S: VaeSpec>(cfg: &S, train: &ImageSet, val: &ImageSet, device: &Device, opts: &RunOptions) -> Result<VaeTrainOutput<S::Model>> {
    cfg.validate()?;
    check_set("training", train, cfg.image_size())?;
    check_set("validation", val, cfg.image_size())?;
    let vm = VarMap::new();
    let model = cfg.build(seeded_var_builder(&vm, opts.seed, DType::F32, device))?;
    let adam = Adam::from_varmap(&vm, cfg.adam(), |n| !n.contains("running_"))?;
    let fixed_noise = seeded_normal(opts.seed, "fixed-noise", (16, model.latent()), device)?;
    let mut task = VaeTask { cfg, model, vm, adam, train, val, fixed_noise, seed: opts.seed, device };
    let out = run_epochs(&mut task, opts)?;
    Ok(VaeTrainOutput {
        model: task.model,
        varmap: task.vm,
        history: out.history,
        best_epoch: out.best_epoch.unwrap_or(0),
        best_val_loss: out.best_loss.unwrap_or(f64::INFINITY),
        stopped_early: out.stopped_early,
    })
}

/// Loads a VAE from a checkpoint written by [`train_vae`] (its config is read from the sidecar).
///
/// # Errors
/// [`TrainError::CheckpointMismatch`] when the checkpoint holds another model kind; corrupt files.
pub fn load_vae<S: VaeSpec + serde::de::DeserializeOwned>(ckpt: &Checkpoint, device: &Device) -> Result<(S, S::Model, VarMap)> {
    let side = ckpt.read_sidecar()?;
    if side.model != S::KIND {
        return Err(TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {}, not a {}", side.model, S::KIND) }.into());
    }
    let cfg: S = serde_json::from_value(side.config.clone())
        .map_err(|e| VaeError::from(TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: e.to_string() }))?;
    let vm = VarMap::new();
    let model = cfg.build(seeded_var_builder(&vm, side.seed, DType::F32, device))?;
    ckpt.load_weights_with(&side, &vm)?;
    Ok((cfg, model, vm))
}

/// `n` images decoded from seeded standard-normal latents (stream `samples`), (n, 1, S, S) in [0, 1].
pub fn sample<M: VaeModel>(model: &M, n: usize, seed: u64, batch_size: usize, device: &Device) -> Result<Tensor> {
    sample_from(model, None, n, seed, batch_size, device)
}

/// `n` images decoded from latents drawn from `codes` (a sampler fitted to the training codes)
/// or, with `None`, from the prior N(0, I); seeded (stream `samples`), (n, 1, S, S) in [0, 1].
pub fn sample_from<M: VaeModel>(model: &M, codes: Option<&CodeSampler>, n: usize, seed: u64, batch_size: usize, device: &Device) -> Result<Tensor> {
    let z = match codes {
        Some(g) if g.dim() != model.latent() => {
            return Err(VaeError::Data(format!("the code sampler has dimension {}, the model {}", g.dim(), model.latent())));
        }
        Some(g) => g.sample(n, seed, device)?,
        None => seeded_normal(seed, "samples", (n, model.latent()), device)?,
    };
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let len = batch_size.max(1).min(n - start);
        // Detached: a decoded batch would otherwise hold its whole autograd graph (the
        // decoder's weights are variables) until the end, gigabytes for tens of thousands of draws.
        parts.push(model.decode(&z.narrow(0, start, len)?, false)?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Deterministic reconstructions (decode μ) of every image of a set, as a set with the same labels.
pub fn reconstruct_set<M: VaeModel>(model: &M, set: &ImageSet, batch_size: usize, device: &Device) -> Result<ImageSet> {
    let mut out = ImageSet::new(set.side);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = set.batch(chunk, None, device)?;
        let r: Vec<f32> = model.reconstruct_labelled(&x, &y)?.flatten_all()?.to_vec1()?;
        out.pixels.extend(r);
        out.labels.extend(chunk.iter().map(|&i| set.labels[i]));
    }
    Ok(out)
}

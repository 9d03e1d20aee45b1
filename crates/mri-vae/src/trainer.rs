//! Seeded, resumable VAE training with validation model selection; sampling and reconstruction.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mri_train::{
    restore, save_recon_grid, seeded_normal, seeded_var_builder, snapshot, Adam, AdamConfig, Checkpoint, EpochProgress, ImageSet, RunOptions, TrainError,
};
use serde::{Deserialize, Serialize};

use crate::config::{AnomalyVaeConfig, VaeConfig, VaeLoss};
use crate::model::{AnomalyVae, GenerativeVae, VaeModel};
use crate::{Result, VaeError};

/// A VAE config that can build its model: lets one trainer serve both VAEs.
pub trait VaeSpec: Serialize {
    /// The network it builds.
    type Model: VaeModel;
    /// Model kind written to checkpoints (`generative-vae`, `anomaly-vae`).
    const KIND: &'static str;
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
}

macro_rules! spec {
    ($cfg:ty, $model:ty, $kind:literal) => {
        impl VaeSpec for $cfg {
            type Model = $model;
            const KIND: &'static str = $kind;
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
        }
    };
}
spec!(VaeConfig, GenerativeVae, "generative-vae");
spec!(AnomalyVaeConfig, AnomalyVae, "anomaly-vae");

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
    let total = ((&recon + (&kl * beta)?)? / n)?;
    Ok(LossParts { recon: recon.to_scalar::<f32>()? as f64 / n, kl: kl.to_scalar::<f32>()? as f64 / n, total })
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeEpoch {
    /// Epoch index (0-based).
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    best_val_loss: f64,
    best_epoch: usize,
}

/// A trained VAE.
pub struct VaeTrainOutput<M> {
    /// The model with the weights of the best validation epoch.
    pub model: M,
    /// Its variables.
    pub varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<VaeEpoch>,
    /// The epoch whose weights were kept.
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
        let (x, _) = set.batch(chunk, None, device)?;
        let (mu, logvar) = model.encode(&x, false)?;
        let parts = vae_loss(loss, &model.decode_logits(&mu, false)?, &x, &mu, &logvar)?;
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

fn corrupt(path: &std::path::Path, e: impl std::fmt::Display) -> VaeError {
    TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: e.to_string() }.into()
}

/// Trains a VAE on every image of `train` (filter first: [`ImageSet::of_class`]), keeping the
/// epoch with the lowest loss on `val`.
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
    let mut adam = Adam::from_varmap(&vm, cfg.adam(), |n| !n.contains("running_"))?;
    let config_json = serde_json::to_value(cfg).expect("config serialises");
    let ckpt_last = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &format!("{}-last", opts.name)));
    let ckpt_best = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &opts.name));
    let mut state = ResumeState { best_val_loss: f64::INFINITY, best_epoch: 0 };
    let mut history: Vec<VaeEpoch> = Vec::new();
    let mut best = None;
    let mut start_epoch = 0;
    if let Some(last) = &ckpt_last {
        if let Some(r) = mri_train::resume::<VaeEpoch, ResumeState>(last, ckpt_best.as_ref(), S::KIND, &config_json, &vm, &mut adam)? {
            (history, state, start_epoch, best) = (r.history, r.state, r.epoch, r.best);
            if !opts.quiet {
                eprintln!("resuming {} from epoch {start_epoch} ({})", opts.name, last.sidecar.display());
            }
        }
    }
    let epochs = cfg.epochs();
    let n_show = val.len().min(8);
    let show: Vec<usize> = (0..n_show).collect();
    let fixed_noise = seeded_normal(opts.seed, "fixed-noise", (16, model.latent()), device)?;
    let mut stopped_early = false;
    for epoch in start_epoch..epochs {
        if opts.stop_after.is_some_and(|n| epoch - start_epoch >= n) {
            stopped_early = true;
            break;
        }
        let t0 = Instant::now();
        let batches = train.epoch_batches(opts.seed, epoch as u64, cfg.batch_size());
        let bar = EpochProgress::new(&opts.name, epoch, epochs, batches.len(), opts.quiet);
        let (mut sum, mut sum_recon, mut sum_kl) = (0f64, 0f64, 0f64);
        for idx in &batches {
            let (x, _) = train.batch(idx, None, device)?;
            let (mu, logvar) = model.encode(&x, true)?;
            let eps = seeded_normal(opts.seed, &format!("reparam/{}", adam.steps()), mu.shape(), device)?;
            let z = (&mu + (eps * (&logvar * 0.5)?.exp()?)?)?;
            let parts = vae_loss(cfg.loss(), &model.decode_logits(&z, true)?, &x, &mu, &logvar)?;
            adam.backward_step(&parts.total)?;
            let l = parts.total.to_scalar::<f32>()? as f64;
            let k = idx.len() as f64;
            sum += l * k;
            sum_recon += parts.recon * k;
            sum_kl += parts.kl * k;
            bar.batch(l);
        }
        let val_loss = evaluate_vae_loss(&model, cfg.loss(), val, cfg.batch_size(), device)?;
        let n = train.len() as f64;
        let rec = VaeEpoch { epoch, train_loss: sum / n, train_recon: sum_recon / n, train_kl: sum_kl / n, val_loss, seconds: t0.elapsed().as_secs_f64() };
        bar.finish(&format!("loss {:.2} (recon {:.2} kl {:.2}) val {:.2}", rec.train_loss, rec.train_recon, rec.train_kl, val_loss));
        history.push(rec);
        if val_loss < state.best_val_loss {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            best = Some(snapshot(&vm)?);
        }
        if opts.figure_due(epoch, epochs) {
            let dir = opts.figures_dir.as_ref().expect("figure_due checks it");
            let (x, _) = val.batch(&show, None, device)?;
            save_recon_grid(&dir.join(format!("{}-recon-epoch{:03}.png", opts.name, epoch + 1)), &x, Some(&model.reconstruct(&x)?))?;
            if S::KIND == "generative-vae" {
                save_recon_grid(&dir.join(format!("{}-samples-epoch{:03}.png", opts.name, epoch + 1)), &model.decode(&fixed_noise, false)?, None)?;
            }
        }
        if let (Some(last), Some(best_ck)) = (&ckpt_last, &ckpt_best) {
            let side = mri_train::epoch_sidecar(S::KIND, opts, &config_json, epoch + 1, &adam, &history, &state);
            if state.best_epoch == epoch {
                best_ck.save(&vm, None, &side)?;
            }
            last.save(&vm, Some(&adam), &side)?;
        }
    }
    if let Some(b) = &best {
        restore(&vm, b)?;
    }
    Ok(VaeTrainOutput { model, varmap: vm, history, best_epoch: state.best_epoch, best_val_loss: state.best_val_loss, stopped_early })
}

/// Loads a VAE from a checkpoint written by [`train_vae`] (its config is read from the sidecar).
///
/// # Errors
/// [`TrainError::CheckpointMismatch`] when the checkpoint holds another model kind; corrupt files.
pub fn load_vae<S: VaeSpec + serde::de::DeserializeOwned>(ckpt: &Checkpoint, device: &Device) -> Result<(S, S::Model, VarMap)> {
    let side = ckpt.read_sidecar()?;
    if side.model != S::KIND {
        return Err(TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {:?}, not a {:?}", side.model, S::KIND) }.into());
    }
    let cfg: S = serde_json::from_value(side.config.clone()).map_err(|e| corrupt(&ckpt.sidecar, e))?;
    let vm = VarMap::new();
    let model = cfg.build(seeded_var_builder(&vm, side.seed, DType::F32, device))?;
    ckpt.load_weights(&vm)?;
    Ok((cfg, model, vm))
}

/// `n` images decoded from seeded standard-normal latents (stream `samples`), (n, 1, S, S) in [0, 1].
pub fn sample<M: VaeModel>(model: &M, n: usize, seed: u64, batch_size: usize, device: &Device) -> Result<Tensor> {
    let z = seeded_normal(seed, "samples", (n, model.latent()), device)?;
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let len = batch_size.max(1).min(n - start);
        parts.push(model.decode(&z.narrow(0, start, len)?, false)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Deterministic reconstructions (decode μ) of every image of a set, as a set with the same labels.
pub fn reconstruct_set<M: VaeModel>(model: &M, set: &ImageSet, batch_size: usize, device: &Device) -> Result<ImageSet> {
    let mut out = ImageSet::new(set.side);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = set.batch(chunk, None, device)?;
        let r: Vec<f32> = model.reconstruct(&x)?.flatten_all()?.to_vec1()?;
        out.pixels.extend(r);
        out.labels.extend(chunk.iter().map(|&i| set.labels[i]));
    }
    Ok(out)
}

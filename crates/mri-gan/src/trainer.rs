//! Seeded, resumable GAN training with separate variables and optimisers for G and D; sampling.

use std::time::Instant;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::VarMap;
use mri_train::{
    bce_with_logits, run_epochs, save_recon_grid, seeded_normal, seeded_var_builder, Adam, Checkpoint, EpochProgress, EpochTask, ImageSet, ModelKind,
    RunOptions, TrainError,
};
use serde::{Deserialize, Serialize};

use crate::model::{Discriminator, GanConfig, Generator};
use crate::{GanError, Result};

/// What one epoch did (means over its batches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanEpoch {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Discriminator loss: BCE(D(x), 1) + BCE(D(G(z)), 0).
    pub d_loss: f64,
    /// Generator loss: BCE(D(G(z)), 1) (the non-saturating form).
    pub g_loss: f64,
    /// Mean D(x) (probability that a real image is real).
    pub d_real: f64,
    /// Mean D(G(z)) on the discriminator's step (probability that a fake is real).
    pub d_fake: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained GAN.
pub struct GanTrainOutput {
    /// The generator (final epoch: a GAN has no validation loss to select on).
    pub generator: Generator,
    /// The discriminator.
    pub discriminator: Discriminator,
    /// Generator variables (keys `generator.*`).
    pub g_varmap: VarMap,
    /// Discriminator variables (keys `discriminator.*`).
    pub d_varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<GanEpoch>,
    /// True when `stop_after` ended the run early.
    pub stopped_early: bool,
}

/// The GAN's two networks on fresh (seeded) or loaded variables.
pub fn build_gan(cfg: &GanConfig, seed: u64, device: &Device) -> Result<(Generator, VarMap, Discriminator, VarMap)> {
    let (g_vm, d_vm) = (VarMap::new(), VarMap::new());
    let g = Generator::new(cfg, seeded_var_builder(&g_vm, seed, DType::F32, device).pp("generator"))?;
    let d = Discriminator::new(cfg, seeded_var_builder(&d_vm, seed, DType::F32, device).pp("discriminator"))?;
    Ok((g, g_vm, d, d_vm))
}

fn corrupt(path: &std::path::Path, e: impl std::fmt::Display) -> GanError {
    TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: e.to_string() }.into()
}

/// The GAN as a task of the shared epoch loop: two networks, two optimisers (labels `g`, `d`),
/// no validation criterion (the last epoch is kept).
struct GanTask<'a> {
    cfg: &'a GanConfig,
    g: Generator,
    d: Discriminator,
    g_vm: VarMap,
    d_vm: VarMap,
    adam_g: Adam,
    adam_d: Adam,
    train: &'a ImageSet,
    fixed_noise: Tensor,
    seed: u64,
    device: &'a Device,
}

impl EpochTask for GanTask<'_> {
    type Record = GanEpoch;
    type State = ();
    type Error = GanError;

    fn kind(&self) -> ModelKind {
        ModelKind::Gan
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).expect("config serialises")
    }
    fn epochs(&self) -> usize {
        self.cfg.epochs
    }
    fn batches(&self, _epoch: usize) -> usize {
        self.train.len().div_ceil(self.cfg.batch_size)
    }
    fn varmaps(&self) -> Vec<&VarMap> {
        vec![&self.g_vm, &self.d_vm]
    }
    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        vec![("g", &self.adam_g), ("d", &self.adam_d)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("g", &mut self.adam_g), ("d", &mut self.adam_d)]
    }
    fn state(&self) {}
    fn set_state(&mut self, _state: ()) {}
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<GanEpoch> {
        let t0 = Instant::now();
        let batches = self.train.epoch_batches(self.seed, epoch as u64, self.cfg.batch_size);
        let mut sums = [0f64; 4];
        for idx in &batches {
            let (x, _) = self.train.batch(idx, None, self.device)?;
            let r = gan_step(&self.g, &self.d, &mut self.adam_g, &mut self.adam_d, &x, self.cfg.latent, self.seed)?;
            for (s, v) in sums.iter_mut().zip(r) {
                *s += v;
            }
            bar.batch(r[0]);
        }
        let k = batches.len() as f64;
        Ok(GanEpoch {
            epoch: epoch + 1,
            d_loss: sums[0] / k,
            g_loss: sums[1] / k,
            d_real: sums[2] / k,
            d_fake: sums[3] / k,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
    fn selection_loss(&self, _r: &GanEpoch) -> Option<f64> {
        None
    }
    fn summary(&self, r: &GanEpoch) -> String {
        format!("D {:.3} G {:.3} D(x) {:.2} D(G(z)) {:.2}", r.d_loss, r.g_loss, r.d_real, r.d_fake)
    }
    fn write_figures(&self, dir: &std::path::Path, name: &str, epoch: usize) -> Result<()> {
        let img = ((self.g.forward_t(&self.fixed_noise, false)? + 1.0)? * 0.5)?;
        save_recon_grid(&dir.join(format!("{name}-samples-epoch{:03}.png", epoch + 1)), &img, None)?;
        Ok(())
    }
}

/// One GAN step on real images `real` in [0, 1]: a discriminator step on real and detached fake
/// images, then a generator step. Noise comes from streams `gan/d/<step>` and `gan/g/<step>`.
/// Returns (d_loss, g_loss, D(x), D(G(z))).
pub fn gan_step(g: &Generator, d: &Discriminator, adam_g: &mut Adam, adam_d: &mut Adam, real: &Tensor, latent: usize, seed: u64) -> Result<[f64; 4]> {
    let n = real.dim(0)?;
    let dev = real.device();
    let step = adam_d.steps();
    let real = real.affine(2.0, -1.0)?;
    let ones = Tensor::ones((n, 1), DType::F32, dev)?;
    let zeros = Tensor::zeros((n, 1), DType::F32, dev)?;
    let z_d = seeded_normal(seed, &format!("gan/d/{step}"), (n, latent), dev)?;
    let fake = g.forward_t(&z_d, true)?.detach();
    let logit_real = d.forward(&real)?;
    let logit_fake = d.forward(&fake)?;
    let d_loss = (bce_with_logits(&logit_real, &ones)? + bce_with_logits(&logit_fake, &zeros)?)?;
    adam_d.backward_step(&d_loss)?;
    let z_g = seeded_normal(seed, &format!("gan/g/{step}"), (n, latent), dev)?;
    let g_loss = bce_with_logits(&d.forward(&g.forward_t(&z_g, true)?)?, &ones)?;
    adam_g.backward_step(&g_loss)?;
    let mean_p = |l: &Tensor| -> candle_core::Result<f64> { Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()? as f64) };
    Ok([d_loss.to_scalar::<f32>()? as f64, g_loss.to_scalar::<f32>()? as f64, mean_p(&logit_real)?, mean_p(&logit_fake)?])
}

/// Trains a GAN on every image of `train` (one class: filter with [`ImageSet::of_class`]).
///
/// G and D have their own `VarMap`s and Adam optimisers. Deterministic for a seed on the CPU.
/// With a checkpoint folder, each epoch saves `NAME` (both networks' weights, keys
/// `generator.*` / `discriminator.*`) and `NAME-last` (plus both optimisers' moments, keys
/// `g.m.*`, `d.v.*`, …); a second call resumes and equals an uninterrupted run. With a figures
/// folder, a grid of 16 samples from fixed noise is written every `figure_every` epochs.
pub fn train_gan(cfg: &GanConfig, train: &ImageSet, device: &Device, opts: &RunOptions) -> Result<GanTrainOutput> {
    cfg.check()?;
    if train.is_empty() {
        return Err(GanError::Data("the training set is empty".into()));
    }
    if train.side != cfg.image_size {
        return Err(GanError::Data(format!("training images are {0}×{0}, the config expects {1}", train.side, cfg.image_size)));
    }
    let (g, g_vm, d, d_vm) = build_gan(cfg, opts.seed, device)?;
    let adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_"))?;
    let adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |_| true)?;
    let fixed_noise = seeded_normal(opts.seed, "fixed-noise", (16, cfg.latent), device)?;
    let mut task = GanTask { cfg, g, d, g_vm, d_vm, adam_g, adam_d, train, fixed_noise, seed: opts.seed, device };
    let out = run_epochs(&mut task, opts)?;
    Ok(GanTrainOutput {
        generator: task.g,
        discriminator: task.d,
        g_varmap: task.g_vm,
        d_varmap: task.d_vm,
        history: out.history,
        stopped_early: out.stopped_early,
    })
}

/// Loads a GAN from a checkpoint written by [`train_gan`] (config read from the sidecar).
pub fn load_gan(ckpt: &Checkpoint, device: &Device) -> Result<(GanConfig, Generator, Discriminator)> {
    let side = ckpt.read_sidecar()?;
    if side.model != ModelKind::Gan {
        return Err(TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {}, not a GAN", side.model) }.into());
    }
    let cfg: GanConfig = serde_json::from_value(side.config.clone()).map_err(|e| corrupt(&ckpt.sidecar, e))?;
    let (g, g_vm, d, d_vm) = build_gan(&cfg, side.seed, device)?;
    ckpt.load_weights_with(&side, &g_vm)?;
    ckpt.load_weights_with(&side, &d_vm)?;
    Ok((cfg, g, d))
}

/// `n` generated images from seeded noise (stream `samples`), eval mode, mapped to [0, 1]:
/// (n, 1, S, S).
pub fn sample(g: &Generator, n: usize, seed: u64, batch_size: usize, device: &Device) -> Result<Tensor> {
    let z = seeded_normal(seed, "samples", (n, g.latent()), device)?;
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let len = batch_size.max(1).min(n - start);
        parts.push(((g.forward_t(&z.narrow(0, start, len)?, false)? + 1.0)? * 0.5)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

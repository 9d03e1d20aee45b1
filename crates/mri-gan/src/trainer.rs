//! Seeded, resumable GAN training with separate variables and optimisers for G and D; sampling.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mri_train::{
    bce_with_logits, run_epochs, save_recon_grid, seeded_normal, seeded_var_builder, stream_seed, Adam, Checkpoint, EpochProgress, EpochTask, ImageSet,
    ModelKind, RunOptions, TrainError,
};
use serde::{Deserialize, Serialize};

use crate::model::{Discriminator, GanConfig, GanLoss, Generator};
use crate::spectral::SN_U;
use crate::texture::TextureTarget;
use crate::{GanError, Result};

/// What one epoch did (means over its batches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanEpoch {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Discriminator loss: BCE(D(x), 1) + BCE(D(G(z)), 0), or the hinge loss (plus the
    /// auxiliary classifier's λ·CE on real slices when the config has one).
    pub d_loss: f64,
    /// Generator loss: BCE(D(G(z)), 1) (the non-saturating form), or −mean D(G(z)) (hinge)
    /// (plus the mode-seeking term and the auxiliary classifier's λ·CE on fakes when set).
    pub g_loss: f64,
    /// Mean D(x) (probability that a real image is real).
    pub d_real: f64,
    /// Mean D(G(z)) on the discriminator's step (probability that a fake is real).
    pub d_fake: f64,
    /// Spread of the sampling generator after the epoch: the per-pixel standard deviation
    /// across the 16 fixed-noise images (in [0, 1], within each class for a conditional GAN),
    /// averaged over pixels — see [`pixel_spread`]. A generator that ignores its noise (mode
    /// collapse) falls towards 0 while its losses look healthy; the real phantom slices of a
    /// class spread 0.13. Missing in histories written before it existed: 0.
    #[serde(default)]
    pub spread: f64,
    /// The generator's texture-matching gap before its weight λ ([`TextureTarget::loss`]), when
    /// the config has `texture_match` > 0; else (and in older histories) 0.
    #[serde(default)]
    pub texture_gap: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained GAN.
pub struct GanTrainOutput {
    /// The generator that samples (final epoch: a GAN has no validation loss to select on):
    /// the moving average of the trained weights when `ema_decay` > 0, else the trained one.
    pub generator: Generator,
    /// The discriminator.
    pub discriminator: Discriminator,
    /// Generator variables (keys `generator.*`).
    pub g_varmap: VarMap,
    /// The moving average of the generator's variables (keys `generator_ema.*`) when
    /// `ema_decay` > 0.
    pub g_ema_varmap: Option<VarMap>,
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

/// The moving-average generator (keys `generator_ema.*`), a copy of `g_vm`'s current values.
fn build_ema(cfg: &GanConfig, g_vm: &VarMap, device: &Device) -> Result<(Generator, VarMap)> {
    let vm = VarMap::new();
    let g = Generator::new(cfg, seeded_var_builder(&vm, 0, DType::F32, device).pp("generator_ema"))?;
    let src = g_vm.data().lock().expect("varmap lock");
    for (name, var) in vm.data().lock().expect("varmap lock").iter() {
        let key = name.replacen("generator_ema.", "generator.", 1);
        var.set(src.get(&key).ok_or_else(|| GanError::Config(format!("no generator variable {key}")))?.as_tensor())?;
    }
    Ok((g, vm))
}

/// ema ← d·ema + (1 − d)·g for every variable (running BatchNorm statistics included), with
/// d = min(decay, (1 + t) / (10 + t)) at step `t`.
fn update_ema(ema_vm: &VarMap, g_vm: &VarMap, decay: f64, t: u64) -> Result<()> {
    let d = decay.min((1.0 + t as f64) / (10.0 + t as f64));
    let src = g_vm.data().lock().expect("varmap lock");
    for (name, var) in ema_vm.data().lock().expect("varmap lock").iter() {
        let key = name.replacen("generator_ema.", "generator.", 1);
        let g = src.get(&key).ok_or_else(|| GanError::Config(format!("no generator variable {key}")))?;
        var.set(&((var.as_tensor() * d)? + (g.as_tensor() * (1.0 - d))?)?)?;
    }
    Ok(())
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
    ema: Option<(Generator, VarMap)>,
    train: &'a ImageSet,
    fixed_noise: Tensor,
    /// Class labels of the fixed noise (first half class 0, …) for a conditional GAN.
    fixed_labels: Option<Tensor>,
    /// The real slices' texture statistics, when `texture_match` > 0.
    texture: Option<TextureTarget>,
    /// The LeCam regulariser's anchors (resume state).
    lecam: LeCamAnchors,
    seed: u64,
    device: &'a Device,
}

impl GanTask<'_> {
    /// The sampling generator's images (in [0, 1], eval mode) of the fixed noise.
    fn fixed_noise_images(&self) -> Result<Tensor> {
        let g = self.ema.as_ref().map(|(g, _)| g).unwrap_or(&self.g);
        Ok(((g.forward_class(&self.fixed_noise, self.fixed_labels.as_ref(), false)? + 1.0)? * 0.5)?)
    }

    /// [`pixel_spread`] of the fixed-noise images, the mean over classes of each class's for a
    /// conditional GAN.
    fn fixed_noise_spread(&self) -> Result<f64> {
        let images = self.fixed_noise_images()?;
        let Some(labels) = &self.fixed_labels else { return pixel_spread(&images) };
        let labels = labels.to_vec1::<u32>()?;
        let mut total = 0.0;
        for c in 0..self.cfg.classes as u32 {
            let of_class: Vec<u32> = (0..labels.len() as u32).filter(|&i| labels[i as usize] == c).collect();
            total += pixel_spread(&images.index_select(&Tensor::new(of_class, images.device())?, 0)?)?;
        }
        Ok(total / self.cfg.classes as f64)
    }

    /// The batches epoch `epoch` trains on. A batch in which no pack fills gives a packing
    /// discriminator nothing to judge (an epoch's last batch can hold a single image; in a
    /// conditional GAN, packs hold one class each, see [`pack_order`]): it is skipped.
    fn epoch_batches(&self, epoch: usize) -> Vec<Vec<usize>> {
        let mut batches = self.train.epoch_batches(self.seed, epoch as u64, self.cfg.batch_size);
        let pack = self.cfg.pack();
        if self.cfg.classes > 0 {
            batches.retain(|b| !pack_order(&b.iter().map(|&i| self.train.labels[i]).collect::<Vec<_>>(), pack).is_empty());
        } else {
            batches.retain(|b| b.len() >= pack);
        }
        batches
    }
}

/// The per-pixel standard deviation across images `xs` (N, C, H, W), averaged over pixels: how
/// much a set of images varies (0 for fewer than two images).
pub fn pixel_spread(xs: &Tensor) -> Result<f64> {
    let n = xs.dim(0)?;
    if n < 2 {
        return Ok(0.0);
    }
    let x = xs.to_dtype(DType::F32)?;
    let var = x.broadcast_sub(&x.mean_keepdim(0)?)?.sqr()?.sum_keepdim(0)?.affine(1.0 / (n - 1) as f64, 0.0)?;
    Ok(var.sqrt()?.mean_all()?.to_scalar::<f32>()? as f64)
}

/// The order in which a class-conditional GAN's batch with labels `labels` enters a
/// discriminator that packs `pack` images: the positions of class 0's images, then class 1's,
/// …, each class cut to a multiple of `pack`, so that every pack holds images of one class
/// (the projection term reads one label a pack). With `pack` ≤ 1, every position in order.
pub fn pack_order(labels: &[u32], pack: usize) -> Vec<usize> {
    if pack <= 1 {
        return (0..labels.len()).collect();
    }
    let mut classes: Vec<u32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut order = Vec::with_capacity(labels.len());
    for c in classes {
        let of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        order.extend_from_slice(&of_class[..of_class.len() / pack * pack]);
    }
    order
}

impl EpochTask for GanTask<'_> {
    type Record = GanEpoch;
    /// The LeCam anchors; `None` in checkpoints written before they existed (fresh anchors).
    type State = Option<LeCamAnchors>;
    type Error = GanError;

    fn kind(&self) -> ModelKind {
        ModelKind::Gan
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).expect("config serialises")
    }
    fn read_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        mri_train::reread_config::<GanConfig>(stored)
    }
    fn epochs(&self) -> usize {
        self.cfg.epochs_for(self.train.len())
    }
    fn batches(&self, epoch: usize) -> usize {
        self.epoch_batches(epoch).len()
    }
    fn varmaps(&self) -> Vec<&VarMap> {
        let mut v = vec![&self.g_vm, &self.d_vm];
        if let Some((_, vm)) = &self.ema {
            v.push(vm);
        }
        v
    }
    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        vec![("g", &self.adam_g), ("d", &self.adam_d)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("g", &mut self.adam_g), ("d", &mut self.adam_d)]
    }
    fn state(&self) -> Option<LeCamAnchors> {
        Some(self.lecam)
    }
    fn set_state(&mut self, state: Option<LeCamAnchors>) {
        self.lecam = state.unwrap_or_default();
    }
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<GanEpoch> {
        let t0 = Instant::now();
        let batches = self.epoch_batches(epoch);
        let mut sums = [0f64; 5];
        for idx in &batches {
            let (x, labels) = self.train.batch(idx, None, self.device)?;
            let labels = (self.cfg.classes > 0).then_some(&labels);
            let r = gan_step(&self.g, &self.d, &mut self.adam_g, &mut self.adam_d, &x, labels, self.cfg, self.seed, self.texture.as_ref(), &mut self.lecam)?;
            if let Some((_, vm)) = &self.ema {
                update_ema(vm, &self.g_vm, self.cfg.ema_decay, self.adam_g.steps())?;
            }
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
            spread: self.fixed_noise_spread()?,
            texture_gap: sums[4] / k,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
    fn selection_loss(&self, _r: &GanEpoch) -> Option<f64> {
        None
    }
    fn summary(&self, r: &GanEpoch) -> String {
        let texture = if self.texture.is_some() { format!(" texture {:.2}", r.texture_gap) } else { String::new() };
        format!("D {:.3} G {:.3} D(x) {:.2} D(G(z)) {:.2} spread {:.3}{texture}", r.d_loss, r.g_loss, r.d_real, r.d_fake, r.spread)
    }
    fn write_figures(&self, dir: &std::path::Path, name: &str, epoch: usize) -> Result<()> {
        let img = self.fixed_noise_images()?;
        save_recon_grid(&dir.join(format!("{name}-samples-epoch{:03}.png", epoch + 1)), &img, None)?;
        Ok(())
    }
}

/// Decay of the LeCam anchors' moving averages (google/lecam-gan's `ema_losses`: 0.99).
pub const LECAM_DECAY: f64 = 0.99;

/// The anchors of the LeCam regulariser ([`GanConfig::lecam`]): moving averages of the
/// discriminator's mean logit on real (`real`) and on fake (`fake`) images over the D steps
/// so far (`steps`; the first step sets them, later ones decay by [`LECAM_DECAY`]). Part of a
/// GAN run's resume state, so a resumed run equals an uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LeCamAnchors {
    /// Moving average of mean D(x).
    pub real: f64,
    /// Moving average of mean D(G(z)).
    pub fake: f64,
    /// D steps averaged so far.
    pub steps: u64,
}

impl LeCamAnchors {
    /// Takes one D step's mean logits into the averages.
    pub fn update(&mut self, mean_real: f64, mean_fake: f64) {
        let d = if self.steps == 0 { 0.0 } else { LECAM_DECAY };
        self.real = d * self.real + (1.0 - d) * mean_real;
        self.fake = d * self.fake + (1.0 - d) * mean_fake;
        self.steps += 1;
    }

    /// The LeCam penalty on one D step's logits: mean relu(D(x) − α_fake)² + mean
    /// relu(α_real − D(G(z)))² (Tseng et al. 2021, eq. 3, as google/lecam-gan computes it:
    /// each logit pulled towards the other side's anchor, only where it lies beyond it).
    pub fn penalty(&self, logit_real: &Tensor, logit_fake: &Tensor) -> candle_core::Result<Tensor> {
        let real = (logit_real - self.fake)?.relu()?.sqr()?.mean_all()?;
        let fake = (logit_fake.affine(-1.0, self.real))?.relu()?.sqr()?.mean_all()?;
        real + fake
    }
}

/// One GAN step on real images `real` in [0, 1]: a discriminator step on real and detached fake
/// images, then a generator step, with `cfg`'s loss, DiffAugment (streams `gan/aug/…/<step>`)
/// and spectral normalisation (one power iteration, in the D step's first forward). Noise
/// comes from streams `gan/d/<step>` and `gan/g/<step>`. A class-conditional GAN takes the
/// real images' labels (u32) and draws its fakes of the same classes, so both steps see the
/// data's class mix; with packing, the batch is first regrouped by [`pack_order`] so that each
/// pack holds one class, and its fakes take the same labels. With `reuse_fake` the generator
/// step scores the discriminator step's fakes (no `gan/g/<step>` noise). Returns (d_loss, g_loss, D(x), D(G(z))) with D(·) the mean sigmoid of the
/// logits.
#[allow(clippy::too_many_arguments)]
pub fn gan_step(
    g: &Generator,
    d: &Discriminator,
    adam_g: &mut Adam,
    adam_d: &mut Adam,
    real: &Tensor,
    labels: Option<&Tensor>,
    cfg: &GanConfig,
    seed: u64,
    texture: Option<&TextureTarget>,
    lecam: &mut LeCamAnchors,
) -> Result<[f64; 5]> {
    let dev = real.device();
    let texture = match texture {
        Some(t) if cfg.texture_match > 0.0 => Some(t),
        None if cfg.texture_match > 0.0 => return Err(GanError::Config("texture_match > 0 needs the real slices' texture target".into())),
        _ => None,
    };
    // A conditional, packing GAN regroups its batch so that each pack holds one class.
    let grouped = match labels {
        Some(y) if cfg.pack() > 1 => {
            let order = pack_order(&y.to_vec1::<u32>()?, cfg.pack());
            if order.is_empty() {
                return Err(GanError::Data(format!("no class of this batch fills a discriminator pack of {}", cfg.pack())));
            }
            let order = Tensor::from_vec(order.iter().map(|&i| i as u32).collect::<Vec<_>>(), order.len(), dev)?;
            Some((real.index_select(&order, 0)?, y.index_select(&order, 0)?))
        }
        _ => None,
    };
    let (real, labels) = match &grouped {
        Some((x, y)) => (x, Some(y)),
        None => (real, labels),
    };
    let n = real.dim(0)?;
    let step = adam_d.steps();
    // A packing discriminator sees its packs augmented alike (`apply_grouped`).
    let aug = |x: &Tensor, which: &str| cfg.diff_augment.apply_grouped(x, stream_seed(seed, &format!("gan/aug/{which}/{step}")), cfg.pack());
    let real = aug(&real.affine(2.0, -1.0)?, "real")?;
    let z_d = seeded_normal(seed, &format!("gan/d/{step}"), (n, cfg.latent), dev)?;
    let fake_d = g.forward_class(&z_d, labels, true)?;
    let fake = aug(&fake_d.detach(), "fake-d")?;
    let (logit_real, classes_real) = d.forward_with_classes(&real, labels, cfg.spectral_norm)?;
    let logit_fake = d.forward_class(&fake, labels, false)?;
    let mut d_loss = match cfg.loss {
        GanLoss::Bce => {
            let ones = Tensor::ones(logit_real.shape(), DType::F32, dev)?;
            let zeros = Tensor::zeros(logit_fake.shape(), DType::F32, dev)?;
            (bce_with_logits(&logit_real, &ones)? + bce_with_logits(&logit_fake, &zeros)?)?
        }
        GanLoss::Hinge => ((1.0 - &logit_real)?.relu()?.mean_all()? + (&logit_fake + 1.0)?.relu()?.mean_all()?)?,
    };
    // AC-GAN's auxiliary classifier learns the classes from the real slices only.
    let aux_loss = |class_logits: Option<Tensor>, y: Option<&Tensor>| -> Result<Option<Tensor>> {
        match (class_logits, y) {
            (Some(c), Some(y)) if cfg.aux_classifier > 0.0 => {
                let y = d.pack_labels(y, c.dim(0)?)?;
                Ok(Some((candle_nn::loss::cross_entropy(&c, &y)? * cfg.aux_classifier)?))
            }
            _ => Ok(None),
        }
    };
    if let Some(aux) = aux_loss(classes_real, labels)? {
        d_loss = (d_loss + aux)?;
    }
    // The anchors include this step's means (the reference updates them before the penalty).
    let mean_logit = |l: &Tensor| -> candle_core::Result<f64> { Ok(l.mean_all()?.to_scalar::<f32>()? as f64) };
    lecam.update(mean_logit(&logit_real)?, mean_logit(&logit_fake)?);
    if cfg.lecam > 0.0 {
        d_loss = (d_loss + (lecam.penalty(&logit_real, &logit_fake)? * cfg.lecam)?)?;
    }
    adam_d.backward_step(&d_loss)?;
    let half = n / 2;
    let seeking = cfg.mode_seeking > 0.0 && half > 0;
    // Mode seeking pairs image i with image i + n/2: in a conditional GAN the second half
    // repeats the first half's classes, so that a pair differs by its noise only.
    let labels_g = match labels {
        Some(y) if seeking => Some(Tensor::cat(&[y.narrow(0, 0, half)?, y.narrow(0, 0, half)?, y.narrow(0, 2 * half, n - 2 * half)?], 0)?),
        other => other.cloned(),
    };
    // `reuse_fake`: the D step's fakes, scored by the updated D (one G forward saved).
    let (z_g, fake_g) = if cfg.reuse_fake {
        (z_d, fake_d)
    } else {
        let z_g = seeded_normal(seed, &format!("gan/g/{step}"), (n, cfg.latent), dev)?;
        let fake_g = g.forward_class(&z_g, labels_g.as_ref(), true)?;
        (z_g, fake_g)
    };
    let (logit_g, classes_g) = d.forward_with_classes(&aug(&fake_g, "fake-g")?, labels_g.as_ref(), false)?;
    let mut g_loss = match cfg.loss {
        GanLoss::Bce => bce_with_logits(&logit_g, &Tensor::ones(logit_g.shape(), DType::F32, dev)?)?,
        GanLoss::Hinge => logit_g.mean_all()?.neg()?,
    };
    if let Some(aux) = aux_loss(classes_g, labels_g.as_ref())? {
        g_loss = (g_loss + aux)?;
    }
    if seeking {
        // MSGAN (Mao et al., "Mode seeking GANs for diverse image synthesis", CVPR 2019;
        // HelenMao/MSGAN): λ / (mean|G(z1) − G(z2)| / mean|z1 − z2| + 1e-5) — a generator
        // that maps different noise to the same image pays for it.
        let pair_gap = |x: &Tensor| -> candle_core::Result<Tensor> { (x.narrow(0, 0, half)? - x.narrow(0, half, half)?)?.abs()?.mean_all() };
        let ratio = (pair_gap(&fake_g)? / pair_gap(&z_g)?.to_scalar::<f32>()? as f64)?;
        g_loss = (g_loss + ((ratio + 1e-5)?.recip()? * cfg.mode_seeking)?)?;
    }
    let mut texture_gap = 0.0;
    if let Some(target) = texture {
        // On the fakes as the generator draws them (in [0, 1]), not as DiffAugment shows them.
        let gap = target.loss(&((&fake_g + 1.0)? * 0.5)?, labels_g.as_ref())?;
        texture_gap = gap.to_scalar::<f32>()? as f64;
        g_loss = (g_loss + (gap * cfg.texture_match)?)?;
    }
    adam_g.backward_step(&g_loss)?;
    let mean_p = |l: &Tensor| -> candle_core::Result<f64> { Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()? as f64) };
    Ok([d_loss.to_scalar::<f32>()? as f64, g_loss.to_scalar::<f32>()? as f64, mean_p(&logit_real)?, mean_p(&logit_fake)?, texture_gap])
}

/// Trains a GAN on every image of `train` (one class: filter with [`ImageSet::of_class`]; a
/// class-conditional config, `classes` > 0, trains on every class at once, labels as they are
/// in `train`).
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
    if train.len() < cfg.pack() {
        return Err(GanError::Data(format!("{} training image(s), fewer than one discriminator pack of {}", train.len(), cfg.pack())));
    }
    if cfg.classes > 0 && pack_order(&train.labels, cfg.pack()).is_empty() {
        return Err(GanError::Data(format!("no class has a discriminator pack of {} training images", cfg.pack())));
    }
    if train.side != cfg.image_size {
        return Err(GanError::Data(format!("training images are {0}×{0}, the config expects {1}", train.side, cfg.image_size)));
    }
    if cfg.classes > 0 {
        if let Some(&bad) = train.labels.iter().find(|&&l| l as usize >= cfg.classes) {
            return Err(GanError::Data(format!("label {bad} in the training set, but the GAN is conditional on {} classes", cfg.classes)));
        }
    }
    let (g, g_vm, d, d_vm) = build_gan(cfg, opts.seed, device)?;
    let adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_"))?;
    let adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |n| !n.ends_with(SN_U))?;
    let ema = if cfg.ema_decay > 0.0 { Some(build_ema(cfg, &g_vm, device)?) } else { None };
    let fixed_noise = seeded_normal(opts.seed, "fixed-noise", (16, cfg.latent), device)?;
    let fixed_labels =
        if cfg.classes > 0 { Some(Tensor::from_vec((0..16).map(|i| (i * cfg.classes / 16) as u32).collect::<Vec<_>>(), 16, device)?) } else { None };
    let texture = if cfg.texture_match > 0.0 { Some(TextureTarget::from_images(train, cfg.classes, device)?) } else { None };
    let mut task = GanTask {
        cfg,
        g,
        d,
        g_vm,
        d_vm,
        adam_g,
        adam_d,
        ema,
        train,
        fixed_noise,
        fixed_labels,
        texture,
        lecam: LeCamAnchors::default(),
        seed: opts.seed,
        device,
    };
    let out = run_epochs(&mut task, opts)?;
    let (generator, g_ema_varmap) = match task.ema {
        Some((g, vm)) => (g, Some(vm)),
        None => (task.g, None),
    };
    Ok(GanTrainOutput {
        generator,
        discriminator: task.d,
        g_varmap: task.g_vm,
        g_ema_varmap,
        d_varmap: task.d_vm,
        history: out.history,
        stopped_early: out.stopped_early,
    })
}

/// Loads a GAN from a checkpoint written by [`train_gan`] (config read from the sidecar). The
/// generator returned is the one that samples: the moving average when the config has one.
pub fn load_gan(ckpt: &Checkpoint, device: &Device) -> Result<(GanConfig, Generator, Discriminator)> {
    let side = ckpt.read_sidecar()?;
    if side.model != ModelKind::Gan {
        return Err(TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {}, not a GAN", side.model) }.into());
    }
    let cfg: GanConfig = serde_json::from_value(side.config.clone()).map_err(|e| corrupt(&ckpt.sidecar, e))?;
    let (g, g_vm, d, d_vm) = build_gan(&cfg, side.seed, device)?;
    ckpt.load_weights_with(&side, &g_vm)?;
    ckpt.load_weights_with(&side, &d_vm)?;
    if cfg.ema_decay > 0.0 {
        let (g_ema, ema_vm) = build_ema(&cfg, &g_vm, device)?;
        ckpt.load_weights_with(&side, &ema_vm)?;
        return Ok((cfg, g_ema, d));
    }
    Ok((cfg, g, d))
}

/// `n` generated images from seeded noise (stream `samples`), eval mode, mapped to [0, 1]:
/// (n, 1, S, S); of class `class` for a class-conditional generator (`None` for an
/// unconditional one).
///
/// # Errors
/// A class missing for a conditional generator, given to an unconditional one, or out of range.
pub fn sample(g: &Generator, class: Option<u32>, n: usize, seed: u64, batch_size: usize, device: &Device) -> Result<Tensor> {
    if let Some(c) = class {
        if c as usize >= g.classes() {
            return Err(GanError::Config(format!("class {c} asked of a generator conditional on {} classes", g.classes())));
        }
    }
    let z = seeded_normal(seed, "samples", (n, g.latent()), device)?;
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let len = batch_size.max(1).min(n - start);
        let labels = class.map(|c| Tensor::from_vec(vec![c; len], len, device)).transpose()?;
        // Detached: a batch would otherwise hold the generator's autograd graph until the end
        // (24 GB and an out-of-memory kill for 20 000 draws of the default generator).
        parts.push(((g.forward_class(&z.narrow(0, start, len)?, labels.as_ref(), false)? + 1.0)? * 0.5)?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

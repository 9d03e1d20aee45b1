//! Per-class generators (generative VAE or GAN): train or resume, then sample synthetic
//! slices to `DIR/<class>/`. Shared by the `train_vae`, `train_gan` and `generate` examples
//! and by the experiment protocol.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use mri_gan::{DiscriminatorBlur, GanConfig};
use mri_train::{apply_overrides, save_recon_grid, write_class_pngs, Checkpoint, ConfigOverride, Fingerprint, ImageSet, ModelKind, Preset, RunOptions};
use mri_vae::{ClassModels, CodeSampler, GenerativeVae, VaeConfig, VaeModel};
use serde::{Deserialize, Serialize};

use crate::SynthError;

/// The two classes as (label index, folder name), tumour first.
pub const CLASSES: [(u32, &str); 2] = [(1, "yes"), (0, "no")];

/// Which generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// The generative VAE.
    Vae,
    /// The GAN.
    Gan,
}

from_str_by_name!(GeneratorKind, "generator", { Vae => "vae", Gan => "gan" });

impl std::fmt::Display for GeneratorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl GeneratorKind {
    /// `vae` or `gan`.
    pub fn name(self) -> &'static str {
        match self {
            GeneratorKind::Vae => "vae",
            GeneratorKind::Gan => "gan",
        }
    }
}

/// The seed of class `label`'s synthetic samples in a run with `seed`: one scheme for the
/// experiment and the `generate` example, so that both write the same synthetic set.
pub fn synthetic_seed(seed: u64, label: u32) -> u64 {
    seed ^ (0x5EED + u64::from(label))
}

/// How to train the per-class generators.
#[derive(Debug, Clone)]
pub struct GeneratorSpec {
    /// Which generator.
    pub kind: GeneratorKind,
    /// Preset.
    pub preset: Preset,
    /// Image side.
    pub image_size: usize,
    /// Epochs (overrides the preset's, and its minimum number of steps).
    pub epochs: Option<usize>,
    /// Optimiser steps per class (overrides the preset's minimum; with `epochs` unset, the
    /// training is exactly as many epochs as these steps need).
    pub steps: Option<usize>,
    /// GAN only: changes to the preset's discriminator.
    pub gan_d: GanDLayout,
    /// Changes to the generator's config, `path=value` ([`mri_train::ConfigOverride`]),
    /// applied last (after the length and `gan_d`): how an ablation turns an ingredient off.
    pub overrides: Vec<ConfigOverride>,
    /// Seed.
    pub seed: u64,
    /// Checkpoints go to `checkpoints/{kind}-{class}` under this folder, grids to `figures/`.
    pub out: PathBuf,
    /// Progress-grid interval in epochs (0 = none); a long training spaces its grids further
    /// apart, to at most [`MAX_PROGRESS_GRIDS`] a model.
    pub figure_every: usize,
    /// No progress bars.
    pub quiet: bool,
    /// What the run is computed from (checked against the checkpoints on resume).
    pub fingerprint: Option<Fingerprint>,
}

/// One trained class generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassGeneratorReport {
    /// Class folder name.
    pub class: String,
    /// Training images of that class.
    pub train_images: usize,
    /// Parameters.
    pub params: usize,
    /// Per-epoch history (model-specific records).
    pub history: serde_json::Value,
    /// Seconds spent in this call (0 when everything was already trained).
    pub seconds: f64,
}

/// A trained generator of one class, ready to sample.
pub enum ClassGenerator {
    /// A generative VAE, with the sampler fitted to its training codes when its config
    /// samples from one ([`mri_vae::LatentSampler::FittedGaussian`], `TwoStage`).
    Vae(mri_vae::GenerativeVae, Option<CodeSampler>),
    /// A GAN's generator, with the class it draws when it is class-conditional
    /// ([`GanConfig::classes`]; `None` for a per-class GAN).
    Gan(mri_gan::Generator, Option<u32>),
}

impl ClassGenerator {
    /// `n` images (n, 1, S, S) in [0, 1] from seeded noise.
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor, SynthError> {
        Ok(match self {
            ClassGenerator::Vae(m, codes) => mri_vae::sample_from(m, codes.as_ref(), n, seed, 64, device)?,
            ClassGenerator::Gan(g, class) => {
                if g.classes() > 0 && class.is_none() {
                    return Err(SynthError::Invalid("a class-conditional GAN draws one class at a time: choose it with ClassGenerator::of_class".into()));
                }
                mri_gan::sample(g, *class, n, seed, 64, device)?
            }
        })
    }

    /// The same generator drawing class `label` when it is a class-conditional GAN (one model
    /// for every class); any other generator is returned as it is (it draws its own class).
    pub fn of_class(self, label: u32) -> Self {
        match self {
            ClassGenerator::Gan(g, _) if g.classes() > 0 => ClassGenerator::Gan(g, Some(label)),
            other => other,
        }
    }

    /// Latent dimension.
    pub fn latent(&self) -> usize {
        match self {
            ClassGenerator::Vae(m, _) => m.latent(),
            ClassGenerator::Gan(g, _) => g.latent(),
        }
    }
}

/// Checkpoint name of a class generator: `vae-yes`, `gan-no`, …
pub fn checkpoint_name(kind: GeneratorKind, class: &str) -> String {
    format!("{}-{class}", kind.name())
}

/// Checkpoint name of a class-conditional GAN (one model for both classes): `gan-conditional`.
pub const CONDITIONAL_GAN_NAME: &str = "gan-conditional";

/// The most progress grids one generator writes ([`GeneratorSpec::figure_every`]).
pub const MAX_PROGRESS_GRIDS: usize = 25;

/// The grid interval of a model trained for `epochs` epochs: every `figure_every` epochs, or
/// further apart so that it writes at most [`MAX_PROGRESS_GRIDS`] (0 stays 0: no grids).
pub fn progress_interval(figure_every: usize, epochs: usize) -> usize {
    if figure_every == 0 {
        0
    } else {
        figure_every.max(epochs.div_ceil(MAX_PROGRESS_GRIDS))
    }
}

/// Checkpoint name of a VAE shared by both classes ([`ClassModels::Shared`]): `vae-shared`;
/// its classes' code samplers are `vae-shared-<class>.latent.json` beside it.
pub const SHARED_VAE_NAME: &str = "vae-shared";

/// Checkpoint name of a class-conditional VAE ([`ClassModels::Conditional`]):
/// `vae-conditional`, its classes' code samplers `vae-conditional-<class>.latent.json`.
pub const CONDITIONAL_VAE_NAME: &str = "vae-conditional";

/// The checkpoint name of a VAE that is one model for every class.
fn one_vae_name(models: ClassModels) -> &'static str {
    match models {
        ClassModels::Conditional => CONDITIONAL_VAE_NAME,
        ClassModels::Shared | ClassModels::PerClass => SHARED_VAE_NAME,
    }
}

/// Changes to a preset's GAN discriminator, from the command line: one place that knows them
/// (the examples and the experiment only carry this struct).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GanDLayout {
    /// Downsample by conv stride 1 + 2×2 average pooling ([`GanConfig::d_avg_pool`]).
    pub avg_pool: bool,
    /// Blur conv inputs before their stride ([`GanConfig::d_blur`]; `None` = the preset's).
    pub blur: Option<DiscriminatorBlur>,
    /// The discriminator's widths ([`GanConfig::d_channels`]; `None` = the preset's).
    pub channels: Option<Vec<usize>>,
}

impl GanDLayout {
    /// `cfg` with these changes (a flag left off keeps the preset's choice).
    pub fn apply(&self, cfg: &mut GanConfig) {
        cfg.d_avg_pool |= self.avg_pool;
        if let Some(b) = self.blur {
            cfg.d_blur = b;
        }
        if let Some(d) = &self.channels {
            cfg.d_channels = d.clone();
        }
    }
}

/// Trains (or resumes, or just loads when complete) one generator per class on the classes'
/// images of `train` (`val` is used for the VAE's model selection). Returns the generators
/// and what each training did. A class-conditional GAN (`classes` set in its config) is one
/// model trained once on every class ([`CONDITIONAL_GAN_NAME`]; its steps are the model's,
/// covering both classes); each class gets it with [`ClassGenerator::of_class`], and its
/// training's seconds are shared out between the classes' reports. A VAE shared by the classes
/// or class-conditional ([`ClassModels`]) is likewise one model ([`SHARED_VAE_NAME`],
/// [`CONDITIONAL_VAE_NAME`]), each class with the code sampler of its own slices.
pub fn train_generators(
    spec: &GeneratorSpec,
    train: &ImageSet,
    val: &ImageSet,
    device: &Device,
) -> Result<Vec<(String, ClassGenerator, ClassGeneratorReport)>, SynthError> {
    let ckpt_dir = spec.out.join("checkpoints");
    for (label, class) in CLASSES {
        if train.of_class(label).is_empty() {
            return Err(SynthError::Invalid(format!("no training images of class {class}")));
        }
    }
    // A model trained for `epochs` epochs writes its grids every `figure_every` epochs, or
    // further apart so that it writes at most MAX_PROGRESS_GRIDS (a phantom GAN trains 600
    // epochs a class: 120 grids at every 5th).
    let opts_for = |name: String, epochs: usize| RunOptions {
        seed: spec.seed,
        quiet: spec.quiet,
        checkpoint_dir: Some(ckpt_dir.clone()),
        name,
        preset: Some(spec.preset),
        fingerprint: spec.fingerprint.clone(),
        stop_after: None,
        figures_dir: Some(spec.out.join("figures")),
        figure_every: progress_interval(spec.figure_every, epochs),
    };
    // A GAN's config, built once for both classes.
    let gan_cfg = match spec.kind {
        GeneratorKind::Gan => {
            let mut cfg = GanConfig::preset(spec.preset, Some(spec.image_size));
            (cfg.epochs, cfg.min_steps) = training_length(spec, cfg.epochs, cfg.min_steps);
            spec.gan_d.apply(&mut cfg);
            Some(apply_overrides(&cfg, &spec.overrides)?)
        }
        GeneratorKind::Vae => None,
    };
    if let Some(cfg) = gan_cfg.as_ref().filter(|c| c.classes > 0) {
        // One class-conditional GAN on the whole training set, handed to each class; its
        // time is reported split over the classes.
        let t0 = Instant::now();
        let r = mri_gan::train_gan(cfg, train, device, &opts_for(CONDITIONAL_GAN_NAME.into(), cfg.epochs_for(train.len())))?;
        let history = serde_json::to_value(&r.history).expect("serialises");
        let seconds = t0.elapsed().as_secs_f64() / CLASSES.len() as f64;
        let (g, d) = cfg.param_counts();
        return Ok(CLASSES
            .iter()
            .map(|&(label, class)| {
                let report =
                    ClassGeneratorReport { class: class.into(), train_images: train.of_class(label).len(), params: g + d, history: history.clone(), seconds };
                (class.to_string(), ClassGenerator::Gan(r.generator.clone(), Some(label)), report)
            })
            .collect());
    }
    // A VAE's config, built once for both classes.
    let vae_cfg = match spec.kind {
        GeneratorKind::Vae => {
            let mut cfg = VaeConfig::preset(spec.preset, Some(spec.image_size));
            (cfg.epochs, cfg.min_steps) = training_length(spec, cfg.epochs, cfg.min_steps);
            Some(apply_overrides(&cfg, &spec.overrides)?)
        }
        GeneratorKind::Gan => None,
    };
    if let Some(cfg) = vae_cfg.as_ref().filter(|c| c.class_models.one_model()) {
        // One VAE on the whole training set (told each slice's class when conditional); each
        // class samples from the codes of its own slices. Its time is reported split over the
        // classes, as for the conditional GAN.
        let t0 = Instant::now();
        let name = one_vae_name(cfg.class_models);
        let va = if val.is_empty() { train.clone() } else { val.clone() };
        let r = mri_vae::train_vae(cfg, train, &va, device, &opts_for(name.into(), cfg.epochs_for(train.len())))?;
        let history = serde_json::to_value(&r.history).expect("serialises");
        let mut out = Vec::new();
        for (label, class) in CLASSES {
            let tr = train.of_class(label);
            let model = r.model.of_class(label);
            let codes = fit_code_sampler(&model, &tr, cfg, spec.seed, &latent_file(&ckpt_dir, &format!("{name}-{class}")), device)?;
            let report =
                ClassGeneratorReport { class: class.into(), train_images: tr.len(), params: cfg.param_count(), history: history.clone(), seconds: 0.0 };
            out.push((class.to_string(), ClassGenerator::Vae(model, codes), report));
        }
        let seconds = t0.elapsed().as_secs_f64() / CLASSES.len() as f64;
        out.iter_mut().for_each(|(_, _, report)| report.seconds = seconds);
        return Ok(out);
    }
    // One model per class, the classes side by side (mri_train::concurrently: each on one
    // core of two gets through more steps than both cores on one model after the other).
    let train_class = |label: u32, class: &'static str| -> Result<(String, ClassGenerator, ClassGeneratorReport), SynthError> {
        let (tr, va) = (train.of_class(label), val.of_class(label));
        let epochs = match spec.kind {
            GeneratorKind::Vae => vae_cfg.as_ref().expect("built above for a VAE").epochs_for(tr.len()),
            GeneratorKind::Gan => gan_cfg.as_ref().expect("built above for a GAN").epochs_for(tr.len()),
        };
        let opts = opts_for(checkpoint_name(spec.kind, class), epochs);
        let t0 = Instant::now();
        let (gen, params, history) = match spec.kind {
            GeneratorKind::Vae => {
                let cfg = vae_cfg.as_ref().expect("built above for a VAE");
                // The VAE selects on validation loss; fall back to train when a class has no val images.
                let va = if va.is_empty() { tr.clone() } else { va };
                let r = mri_vae::train_vae(cfg, &tr, &va, device, &opts)?;
                let codes = fit_code_sampler(&r.model, &tr, cfg, spec.seed, &latent_file(&ckpt_dir, &opts.name), device)?;
                (ClassGenerator::Vae(r.model, codes), cfg.param_count(), serde_json::to_value(&r.history).expect("serialises"))
            }
            GeneratorKind::Gan => {
                let cfg = gan_cfg.as_ref().expect("built above for a GAN");
                let (g, d) = cfg.param_counts();
                let r = mri_gan::train_gan(cfg, &tr, device, &opts)?;
                (ClassGenerator::Gan(r.generator, None), g + d, serde_json::to_value(&r.history).expect("serialises"))
            }
        };
        let report = ClassGeneratorReport { class: class.into(), train_images: tr.len(), params, history, seconds: t0.elapsed().as_secs_f64() };
        Ok((class.to_string(), gen, report))
    };
    let train_class = &train_class;
    let jobs: Vec<mri_train::Job<'_, _>> =
        CLASSES.iter().map(|&(label, class)| -> mri_train::Job<'_, _> { Box::new(move || train_class(label, class)) }).collect();
    mri_train::concurrently(jobs).into_iter().collect()
}

/// Fits the code sampler `cfg` asks for to the codes of `images` and saves it as `path` (for
/// [`load_generator`]); removes a stale file when the VAE samples from the prior. Deterministic
/// from the kept weights, the images and the seed: refitted on every call.
fn fit_code_sampler(
    model: &GenerativeVae,
    images: &ImageSet,
    cfg: &VaeConfig,
    seed: u64,
    path: &Path,
    device: &Device,
) -> Result<Option<CodeSampler>, SynthError> {
    let codes = CodeSampler::fit(model, images, cfg, seed, device)?;
    match &codes {
        Some(c) => mri_preprocess::fsutil::write_atomic(path, serde_json::to_string(c).expect("serialises").as_bytes())?,
        None if path.exists() => std::fs::remove_file(path).map_err(|e| SynthError::Io { path: path.to_path_buf(), source: e })?,
        None => {}
    }
    Ok(codes)
}

/// (epochs, min_steps) of a generator whose preset says (`epochs`, `min_steps`), after the
/// spec's overrides: `--epochs` alone means exactly that many epochs; `--steps` alone means
/// exactly as many epochs as those steps need; both: the epochs, or more to reach the steps.
fn training_length(spec: &GeneratorSpec, epochs: usize, min_steps: usize) -> (usize, usize) {
    match (spec.epochs, spec.steps) {
        (None, None) => (epochs, min_steps),
        (Some(e), None) => (e, 0),
        (None, Some(s)) => (1, s),
        (Some(e), Some(s)) => (e, s),
    }
}

/// The file beside checkpoint `name` that holds a VAE's fitted latent Gaussian.
pub fn latent_file(ckpt_dir: &Path, name: &str) -> PathBuf {
    ckpt_dir.join(format!("{name}.latent.json"))
}

/// Loads a class generator from its checkpoint (any `X.safetensors` / `X.json` written by
/// [`train_generators`]), whichever kind it is. A class-conditional GAN comes without a class:
/// choose one with [`ClassGenerator::of_class`]. A VAE that is one model for both classes needs
/// the class to find its code sampler: load it with [`load_class_generator`].
pub fn load_generator(path: &Path, device: &Device) -> Result<ClassGenerator, SynthError> {
    load(path, None, device)
}

/// [`load_generator`] for the generator of `class` (`yes` or `no`): a class-conditional GAN or
/// VAE comes set to draw that class; a VAE that is one model for both classes
/// ([`SHARED_VAE_NAME`], [`CONDITIONAL_VAE_NAME`]) comes with that class's code sampler. A
/// per-class generator is loaded as it is.
pub fn load_class_generator(path: &Path, class: &str, device: &Device) -> Result<ClassGenerator, SynthError> {
    let label = CLASSES.iter().find(|(_, c)| *c == class).map(|(l, _)| *l).ok_or_else(|| SynthError::Invalid(format!("unknown class {class:?}: yes or no")))?;
    Ok(load(path, Some((label, class)), device)?.of_class(label))
}

fn load(path: &Path, class: Option<(u32, &str)>, device: &Device) -> Result<ClassGenerator, SynthError> {
    let ck = Checkpoint::from_file(path);
    match ck.model_kind()? {
        ModelKind::GenerativeVae => {
            let (cfg, mut model, _) = mri_vae::load_vae::<VaeConfig>(&ck, device)?;
            // The sampler file, not the checkpoint's config, says how the VAE samples: the
            // sampler is a sampling-only setting, so a finished VAE re-sampled with another one
            // keeps its checkpoint and gets a new file (`train_generators` removes the file of
            // a VAE that samples from the prior).
            let mut name = ck.sidecar.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if cfg.class_models.one_model() {
                match class {
                    Some((label, c)) => {
                        name = format!("{name}-{c}");
                        model = model.of_class(label);
                    }
                    None => {
                        return Err(SynthError::Invalid(format!(
                            "{}: a VAE that is one model for both classes samples each class from its own codes: load it with load_class_generator",
                            ck.sidecar.display()
                        )))
                    }
                }
            }
            let path = latent_file(ck.sidecar.parent().unwrap_or(Path::new(".")), &name);
            let codes = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    Some(serde_json::from_str::<CodeSampler>(&text).map_err(|e| SynthError::Invalid(format!("{}: not a code sampler: {e}", path.display())))?)
                }
                Err(_) if cfg.sampler == mri_vae::LatentSampler::Prior => None,
                Err(e) => {
                    return Err(SynthError::Invalid(format!(
                        "{}: cannot read the code sampler this VAE samples from ({e}); train_generators writes it",
                        path.display()
                    )))
                }
            };
            Ok(ClassGenerator::Vae(model, codes))
        }
        ModelKind::Gan => Ok(ClassGenerator::Gan(mri_gan::load_gan(&ck, device)?.1, None)),
        other => Err(SynthError::Invalid(format!("{}: holds a {other} model, not a generator", ck.sidecar.display()))),
    }
}

/// Writes `n` samples of a class generator as `dir/<class>/<class>-NNNNN.png` plus a grid of
/// the first 32 as `dir/<class>-grid.png`; returns them as an image set labelled `label`.
/// Pass [`synthetic_seed`] as `seed` to reproduce the experiment's set.
///
/// # Errors
/// `n == 0`; candle and I/O errors.
pub fn write_synthetic(gen: &ClassGenerator, class: &str, label: u32, n: usize, seed: u64, dir: &Path, device: &Device) -> Result<ImageSet, SynthError> {
    let set = draw_synthetic(gen, class, label, n, seed, device)?;
    write_class_set(&set, class, dir, device)?;
    Ok(set)
}

/// [`write_synthetic`] without the files: the same `n` draws, for a caller that transforms the
/// set before it writes it once ([`write_class_set`]).
///
/// # Errors
/// `n == 0`; candle errors.
pub fn draw_synthetic(gen: &ClassGenerator, class: &str, label: u32, n: usize, seed: u64, device: &Device) -> Result<ImageSet, SynthError> {
    // Every draw accepted: one round, the draws in order.
    let all = |b: &ImageSet| -> Result<Vec<bool>, SynthError> { Ok(vec![true; b.len()]) };
    Ok(draw_synthetic_filtered(gen, class, label, n, seed, device, &all)?.0)
}

/// Radius in cycles per image side from which [`exchange_texture`] exchanges Fourier
/// amplitudes. Below it lie the head's outline and the slice's brightness (at 64 px, structures
/// of 16 px and more); above it, texture, edges' sharpness and noise. On Br35H the GAN's two
/// classes differ most in the bands from 4 to 16 cycles (docs/models.md, session 28).
pub const TEXTURE_EXCHANGE_CUTOFF: f32 = 4.0;

/// Pixels at or under this value in a draw are background and stay as drawn in
/// [`exchange_texture`] (the preprocessing's background is 0), so that the exchanged
/// high frequencies do not ring into the empty field around the head.
pub const TEXTURE_EXCHANGE_BACKGROUND: f32 = 0.02;

/// Every image of `set` with `what` of its Fourier spectrum above [`TEXTURE_EXCHANGE_CUTOFF`]
/// (each ring's energy, or the whole amplitude spectrum) from a partner drawn uniformly
/// (seeded by `seed`) from the whole set, whatever its class: each draw keeps its phase — its
/// anatomy and lesion — while its texture energy becomes independent of its label ([`mri_train::spectral`] says why). Background pixels
/// ([`TEXTURE_EXCHANGE_BACKGROUND`]) stay as drawn; the rest is clamped to [0, 1]. Labels and
/// order are kept. No real slice is used.
///
/// # Errors
/// An empty set.
pub fn exchange_texture(set: &ImageSet, what: mri_train::spectral::SpectralExchange, seed: u64) -> Result<ImageSet, SynthError> {
    Ok(mri_train::spectral::exchange_across_set(set, what, TEXTURE_EXCHANGE_CUTOFF, TEXTURE_EXCHANGE_BACKGROUND, seed)?)
}

/// An (n, 1, S, S) tensor as an image set labelled `label`.
fn images_to_set(images: &Tensor, label: u32) -> Result<ImageSet, SynthError> {
    let (_, _, s, _) = images.dims4()?;
    let v: Vec<f32> = images.flatten_all()?.to_vec1()?;
    let mut set = ImageSet::new(s);
    for img in v.chunks(s * s) {
        set.push(img, label)?;
    }
    Ok(set)
}

/// Rounds of `n` draws [`write_synthetic_filtered`] makes at most before it gives up.
pub const MAX_FILTER_ROUNDS: usize = 20;

/// [`write_synthetic`] keeping only the draws that `keep` accepts (one flag per image of the
/// batch it is given), in draw order, until `n` are kept. The first round draws exactly what
/// [`write_synthetic`] would with the same seed; each further round draws `n` more from a
/// seed derived from it. Returns the kept set and the number of draws made.
///
/// # Errors
/// `n == 0`; fewer than `n` accepted in [`MAX_FILTER_ROUNDS`] rounds (the message gives the
/// acceptance); `keep` returning the wrong number of flags; its own, candle and I/O errors.
#[allow(clippy::too_many_arguments)]
pub fn write_synthetic_filtered(
    gen: &ClassGenerator,
    class: &str,
    label: u32,
    n: usize,
    seed: u64,
    dir: &Path,
    device: &Device,
    keep: &dyn Fn(&ImageSet) -> Result<Vec<bool>, SynthError>,
) -> Result<(ImageSet, usize), SynthError> {
    let (set, drawn) = draw_synthetic_filtered(gen, class, label, n, seed, device, keep)?;
    write_class_set(&set, class, dir, device)?;
    Ok((set, drawn))
}

/// [`write_synthetic_filtered`] without the files: the same draws and the same set, for a
/// caller that transforms the set before it writes it once ([`write_class_set`]).
///
/// # Errors
/// As [`write_synthetic_filtered`], but for I/O.
pub fn draw_synthetic_filtered(
    gen: &ClassGenerator,
    class: &str,
    label: u32,
    n: usize,
    seed: u64,
    device: &Device,
    keep: &dyn Fn(&ImageSet) -> Result<Vec<bool>, SynthError>,
) -> Result<(ImageSet, usize), SynthError> {
    if n == 0 {
        return Err(SynthError::Invalid("the number of synthetic images per class must be at least 1".into()));
    }
    let mut kept: Option<ImageSet> = None;
    let mut drawn = 0;
    for round in 0..MAX_FILTER_ROUNDS as u64 {
        // Round 0 is the unfiltered set's seed; later rounds step by an odd constant (golden ratio).
        let batch = images_to_set(&gen.sample(n, seed.wrapping_add(round.wrapping_mul(0x9E37_79B9_7F4A_7C15)), device)?, label)?;
        drawn += n;
        let flags = keep(&batch)?;
        if flags.len() != batch.len() {
            return Err(SynthError::Invalid(format!("the synthetic filter gave {} flags for {} images", flags.len(), batch.len())));
        }
        let set = kept.get_or_insert_with(|| ImageSet::new(batch.side));
        for (i, _) in flags.iter().enumerate().filter(|(_, &ok)| ok) {
            if set.len() < n {
                set.push(batch.image(i), label)?;
            }
        }
        if set.len() == n {
            break;
        }
    }
    let set = kept.expect("at least one round");
    if set.len() < n {
        return Err(SynthError::Invalid(format!(
            "the synthetic filter kept {} of {drawn} draws of class {class} ({MAX_FILTER_ROUNDS} rounds); {n} were needed",
            set.len()
        )));
    }
    Ok((set, drawn))
}

/// Writes a class's synthetic set as `dir/<class>/<class>-NNNNN.png` plus a grid of the first
/// 32 as `dir/<class>-grid.png` (what [`write_synthetic`] writes; also used to rewrite a set
/// after its texture was exchanged).
pub fn write_class_set(set: &ImageSet, class: &str, dir: &Path, device: &Device) -> Result<(), SynthError> {
    let images = set.images_tensor(device)?;
    write_class_pngs(dir, class, &images, 0)?;
    save_recon_grid(&dir.join(format!("{class}-grid.png")), &images.narrow(0, 0, set.len().min(32))?, None)?;
    Ok(())
}

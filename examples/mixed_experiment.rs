//! The project's main job: the real / synthetic / mixed study, tested on real data.
//!
//! ```text
//! cargo run --release --example mixed_experiment                                  # phantoms
//! cargo run --release --example mixed_experiment -- --data ../shared/data/br35h   # Br35H, 64 px
//! ```
//! Writes `split.json`, `report.json`, `report.md`, `figures/`, `checkpoints/`, `detectors/`
//! and `synthetic/<generator>/<class>/` into `--out`. Re-running with the same `--out` skips
//! complete stages and resumes interrupted trainings; other data, split, seed, preset or size
//! there is refused with the difference named (`--fresh` starts over). `--folds K` runs the
//! study once per fold of a grouped K-fold cross-validation and writes `folds.md` (mean ± sd). `--epochs` overrides
//! every model's epochs (exactly that many: the presets' step minimums for small sets no
//! longer apply).

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::crossval::run_cross_validation;
use mri_synth::experiment::{run_experiment, AnomalySets, CnnBudget, ExperimentSpec, SyntheticFilter, SyntheticTexture};
use mri_synth::gan::DiscriminatorBlur;
use mri_synth::generators::{GanDLayout, GeneratorKind};
use mri_synth::report::classification_table;
use mri_synth::train::ConfigOverride;

#[derive(Parser, Debug)]
#[command(about = "Train on real, synthetic and mixed data; test on real data; write report.json / report.md")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Output folder (it holds one run: other inputs there are refused unless --fresh).
    #[arg(long, default_value = "runs/mixed_experiment")]
    out: PathBuf,
    /// Generators to compare, comma-separated.
    #[arg(long, default_value = "vae,gan", value_delimiter = ',')]
    generators: Vec<GeneratorKind>,
    /// Synthetic images per class (default: as many as real training images of the class).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    synthetic_per_class: Option<u64>,
    /// Draws per class for the CNN trained on synthetic slices alone, when more than
    /// --synthetic-per-class: the first --synthetic-per-class draws of each (the very draws a
    /// run without it makes) still make the set of every other stage (docs/models.md, session 28).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    synthetic_only_per_class: Option<u64>,
    /// Synthetic slices per class in the mixed CNN's set: the first draws of each class of the
    /// shared set (the mixed anomaly VAEs and the generation metrics keep the whole set;
    /// docs/models.md, session 29).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    mixed_synthetic_per_class: Option<u64>,
    /// Phantom slices per class when --data is not given.
    #[arg(long, default_value_t = 200)]
    phantoms_per_class: usize,
    /// Anomaly VAEs: `all` (one on the real healthy slices and one per generator on its
    /// synthetic and on the mixed healthy slices, the study's), `real` or `off` (a generator
    /// study's runs skip minutes of anomaly training).
    #[arg(long, default_value = "all")]
    anomaly_vae: AnomalySets,
    /// Denoising autoencoders beside the anomaly VAEs (the best anomaly detector on Br35H):
    /// `real` (one, on the real healthy slices), `all` (also one per generator on its
    /// synthetic and on the mixed healthy slices: about 3 minutes each on Br35H) or `off`.
    #[arg(long, default_value = "real")]
    dae: AnomalySets,
    /// How long the CNNs on synthetic and mixed sets train: `same-images` (as many images shown
    /// as the real-data CNN: a mixed set, twice as large, trains half the epochs) or
    /// `same-epochs` (the study's: a mixed CNN takes twice the time).
    #[arg(long, default_value = "same-images")]
    cnn_budget: CnnBudget,
    /// Optimiser steps of each class's generator (overrides the preset's minimum).
    #[arg(long)]
    generator_steps: Option<usize>,
    /// The GAN's discriminator downsamples with conv stride 1 + 2×2 average pooling instead of
    /// strided convs (their period-2 input gradient draws stripes; docs/models.md).
    #[arg(long)]
    gan_d_avg_pool: bool,
    /// Blur (binomial 3×3) GAN discriminator conv inputs before their stride: anti-aliased
    /// downsampling at a fraction of --gan-d-avg-pool's cost (default: the preset's; docs/models.md).
    #[arg(long)]
    gan_d_blur: Option<DiscriminatorBlur>,
    /// The GAN discriminator's widths, comma-separated (default: the preset's, 16,32,64,128).
    #[arg(long, value_delimiter = ',')]
    gan_d_channels: Option<Vec<usize>>,
    /// Change a field of every CNN's config, `path=value` (repeatable; e.g.
    /// `--cnn-set label_smoothing=0`, `--cnn-set augment=null`): ablations without new flags.
    #[arg(long = "cnn-set", value_name = "PATH=VALUE")]
    cnn_set: Vec<ConfigOverride>,
    /// Change a field of the generative VAE's config (repeatable; e.g. `--vae-set loss.beta=0.001`,
    /// `--vae-set sampler=prior`).
    #[arg(long = "vae-set", value_name = "PATH=VALUE")]
    vae_set: Vec<ConfigOverride>,
    /// Change a field of the GAN's config (repeatable; e.g. `--gan-set spectral_norm=false`,
    /// `--gan-set ema_decay=0`).
    #[arg(long = "gan-set", value_name = "PATH=VALUE")]
    gan_set: Vec<ConfigOverride>,
    /// Change a field of the CNNs trained on a synthetic set alone, after --cnn-set (repeatable;
    /// e.g. `--synthetic-cnn-set augment.blur_prob=1`); the real and mixed CNNs are untouched.
    #[arg(long = "synthetic-cnn-set", value_name = "PATH=VALUE")]
    synthetic_cnn_set: Vec<ConfigOverride>,
    /// Which draws make a synthetic set: `off` (every draw) or `real-cnn` (only the draws the
    /// real-data CNN puts in their class; docs/models.md, session 25).
    #[arg(long, default_value = "off")]
    synthetic_filter: SyntheticFilter,
    /// What is done to a synthetic set's texture: `off`; `rings` (every draw takes the energy
    /// of each high-frequency ring of its spectrum from a draw of either class, so that texture
    /// stops telling the classes apart); `amplitudes` (the partner's whole high-frequency
    /// amplitude spectrum). docs/models.md, session 28.
    #[arg(long, default_value = "off")]
    synthetic_texture: SyntheticTexture,
    /// Grouped K-fold cross-validation: the whole study K times (`--out/fold{i}`, each testing
    /// one K-th of the near-duplicate groups, every group once), then every row's mean ± sd
    /// over folds (`folds.md`, `folds.json`). K times the main job's time.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    folds: Option<u64>,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.run.device()?;
    let spec = ExperimentSpec {
        data: a.run.data.clone(),
        out: a.out,
        preset: a.run.preset,
        image_size: a.run.image_size,
        epochs: a.run.epochs,
        generator_steps: a.generator_steps,
        seed: a.run.seed,
        split: a.run.split,
        fold: None,
        generators: a.generators,
        synthetic_per_class: a.synthetic_per_class.map(|n| n as usize),
        synthetic_only_per_class: a.synthetic_only_per_class.map(|n| n as usize),
        mixed_synthetic_per_class: a.mixed_synthetic_per_class.map(|n| n as usize),
        skip_invalid: a.run.skip_invalid,
        phantoms_per_class: a.phantoms_per_class,
        fresh: a.run.fresh,
        quiet: a.run.quiet,
        anomaly_vae: a.anomaly_vae,
        dae: a.dae,
        cnn_budget: a.cnn_budget,
        gan_d: GanDLayout { avg_pool: a.gan_d_avg_pool, blur: a.gan_d_blur, channels: a.gan_d_channels },
        cnn_overrides: a.cnn_set,
        vae_overrides: a.vae_set,
        gan_overrides: a.gan_set,
        synthetic_cnn_overrides: a.synthetic_cnn_set,
        synthetic_filter: a.synthetic_filter,
        synthetic_texture: a.synthetic_texture,
    };
    if let Some(k) = a.folds {
        let cv = run_cross_validation(&spec, k as usize, &device)?;
        println!("\n{}", cv.markdown());
        println!("wrote {}", spec.out.join("folds.md").display());
        return Ok(());
    }
    let report = run_experiment(&spec, &device)?;
    println!("\n{}", classification_table(&report));
    println!("wrote {} ({:.1} s)", spec.out.join("report.md").display(), report.timings_s["total"]);
    Ok(())
}

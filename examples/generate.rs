//! Make synthetic slices: train (or resume, or reuse) one generator per class on the real
//! train split, then write N images per class as PNG into `--out/synthetic/<generator>/<class>/`.
//!
//! ```text
//! cargo run --release --example generate -- --generator vae --n-per-class 100
//! cargo run --release --example generate -- --generator gan --data ../shared/data/br35h --out runs/gen
//! ```
//! With `--out` pointing at a folder where `train_vae` / `train_gan` already ran (same preset,
//! size and seed), their checkpoints are reused and nothing is retrained.

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::gan::GanConfig;
use mri_synth::generators::{synthetic_seed, train_generators, write_synthetic, GeneratorKind, GeneratorSpec, CLASSES};
use mri_synth::preprocess::SplitPart;
use mri_synth::vae::VaeConfig;

#[derive(Parser, Debug)]
#[command(about = "Train or reuse per-class generators and write synthetic slices as PNG")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    #[command(flatten)]
    budget: common::StepsArg,
    /// vae or gan.
    #[arg(long, default_value = "vae")]
    generator: GeneratorKind,
    /// Images to write per class (at least 1).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    n_per_class: u64,
    /// Output folder (checkpoints, figures, synthetic/).
    #[arg(long, default_value = "runs/generate")]
    out: PathBuf,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.run.device()?;
    let kind = a.generator;
    let n = a.n_per_class as usize;
    let image_size = match kind {
        GeneratorKind::Vae => VaeConfig::preset(a.run.preset, a.run.image_size).image_size,
        GeneratorKind::Gan => GanConfig::preset(a.run.preset, a.run.image_size).image_size,
    };
    let (prepared, fingerprint) = a.run.prepare(image_size, &a.out)?;
    let spec = GeneratorSpec {
        kind,
        preset: a.run.preset,
        image_size,
        epochs: a.run.epochs,
        steps: a.budget.steps,
        gan_d: Default::default(),
        overrides: Vec::new(),
        seed: a.run.seed,
        out: a.out.clone(),
        figure_every: 0,
        quiet: a.run.quiet,
        fingerprint: Some(fingerprint),
    };
    let trained = train_generators(&spec, &prepared.image_set(SplitPart::Train), &prepared.image_set(SplitPart::Val), &device)?;
    let dir = a.out.join("synthetic").join(kind.name());
    for ((class, gen, _), (label, _)) in trained.iter().zip(CLASSES) {
        // The experiment's sampling seeds: the same preset, size and seed give its synthetic set.
        write_synthetic(gen, class, label, n, synthetic_seed(a.run.seed, label), &dir, &device)?;
        println!("{class}: {n} images in {}", dir.join(class).display());
    }
    Ok(())
}

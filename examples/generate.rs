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
use mri_synth::generators::{train_generators, write_synthetic, GeneratorKind, GeneratorSpec, CLASSES};
use mri_synth::preprocess::SplitPart;
use mri_synth::vae::VaeConfig;

#[derive(Parser, Debug)]
#[command(about = "Train or reuse per-class generators and write synthetic slices as PNG")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// vae or gan.
    #[arg(long, default_value = "vae", value_parser = ["vae", "gan"])]
    generator: String,
    /// Images to write per class.
    #[arg(long, default_value_t = 64)]
    n_per_class: usize,
    /// Output folder (checkpoints, figures, synthetic/).
    #[arg(long, default_value = "runs/generate")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let device = a.run.device()?;
    let kind: GeneratorKind = a.generator.parse()?;
    let image_size = match kind {
        GeneratorKind::Vae => VaeConfig::preset(&a.run.preset, a.run.image_size)?.image_size,
        GeneratorKind::Gan => GanConfig::preset(&a.run.preset, a.run.image_size)?.image_size,
    };
    let prepared = a.run.prepare(image_size, &a.out)?;
    let spec = GeneratorSpec {
        kind,
        preset: a.run.preset.clone(),
        image_size,
        epochs: a.run.epochs,
        seed: a.run.seed,
        out: a.out.clone(),
        figure_every: 0,
        quiet: a.run.quiet,
    };
    let trained = train_generators(&spec, &prepared.image_set(SplitPart::Train), &prepared.image_set(SplitPart::Val), &device)?;
    let dir = a.out.join("synthetic").join(kind.name());
    for ((class, gen, _), (label, _)) in trained.iter().zip(CLASSES) {
        write_synthetic(gen, class, label, a.n_per_class, a.run.seed ^ u64::from(label), &dir, &device)?;
        println!("{}: {} images in {}", class, a.n_per_class, dir.join(class).display());
    }
    Ok(())
}

//! Make synthetic slices: train (or resume, or reuse) one generator per class on the real
//! train split, then write N images per class as PNG into `--out/synthetic/<generator>/<class>/`.
//!
//! ```text
//! cargo run --release --example generate -- --generator vae --n-per-class 100
//! cargo run --release --example generate -- --generator gan --data ../shared/data/br35h --out runs/gen
//! ```
//! With `--out` pointing at a folder where `train_vae` / `train_gan` already ran (same preset,
//! size and seed), their checkpoints are reused and nothing is retrained.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::gan::GanConfig;
use mri_synth::generators::{train_generators, write_synthetic, GeneratorKind, GeneratorSpec, CLASSES};
use mri_synth::preprocess::SplitPart;
use mri_synth::train::DeviceChoice;
use mri_synth::vae::VaeConfig;

#[derive(Parser, Debug)]
#[command(about = "Train or reuse per-class generators and write synthetic slices as PNG")]
struct Args {
    /// vae or gan.
    #[arg(long, default_value = "vae", value_parser = ["vae", "gan"])]
    generator: String,
    /// Images to write per class.
    #[arg(long, default_value_t = 64)]
    n_per_class: usize,
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (checkpoints, figures, synthetic/).
    #[arg(long, default_value = "runs/generate")]
    out: PathBuf,
    /// Model preset: quick, default (2-core CPU, 64 px) or paper (the study's layout, 128 px).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    preset: String,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Training epochs (overrides the preset's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of the split, training and sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let device = a.device.parse::<DeviceChoice>()?.device()?;
    let kind: GeneratorKind = a.generator.parse()?;
    let image_size = match kind {
        GeneratorKind::Vae => VaeConfig::preset(&a.preset, a.image_size)?.image_size,
        GeneratorKind::Gan => GanConfig::preset(&a.preset, a.image_size)?.image_size,
    };
    let prepared = PreparedData::load(&DataSpec {
        data: a.data.clone(),
        image_size: image_size as u32,
        seed: a.seed,
        skip_invalid: a.skip_invalid,
        phantoms_per_class: 200,
        verbose: true,
    })?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let spec = GeneratorSpec { kind, preset: a.preset.clone(), image_size, epochs: a.epochs, seed: a.seed, out: a.out.clone(), figure_every: 0, quiet: a.quiet };
    let trained = train_generators(&spec, &prepared.image_set(SplitPart::Train), &prepared.image_set(SplitPart::Val), &device)?;
    let dir = a.out.join("synthetic").join(kind.name());
    for ((class, gen, _), (label, _)) in trained.iter().zip(CLASSES) {
        write_synthetic(gen, class, label, a.n_per_class, a.seed ^ u64::from(label), &dir, &device)?;
        println!("{}: {} images in {}", class, a.n_per_class, dir.join(class).display());
    }
    Ok(())
}

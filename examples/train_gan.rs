//! Train the GAN, one per class, on the real train split, with sample grids every few epochs.
//!
//! ```text
//! cargo run --release --example train_gan                                       # phantoms
//! cargo run --release --example train_gan -- --data ../shared/data/br35h --image-size 64
//! ```
//! Writes `checkpoints/gan-{yes,no}.*` (both networks; `-last` adds both optimisers),
//! `figures/gan-*-samples-epochNNN.png`, `split.json` and `history.json` (D and G losses,
//! D(x), D(G(z)) per epoch) into `--out`. Re-running with the same `--out` resumes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::gan::GanConfig;
use mri_synth::generators::{train_generators, GeneratorKind, GeneratorSpec};
use mri_synth::preprocess::SplitPart;
use mri_synth::train::DeviceChoice;

#[derive(Parser, Debug)]
#[command(about = "Train one GAN per class on real training data")]
struct Args {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (checkpoints, figures, split, history).
    #[arg(long, default_value = "runs/train_gan")]
    out: PathBuf,
    /// Model preset: quick (tests), default (2-core CPU, 64 px) or paper (the study's layout, 128 px).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    preset: String,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Training epochs (overrides the preset's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Write sample grids (fixed noise) every this many epochs (0 = never).
    #[arg(long, default_value_t = 5)]
    figure_every: usize,
    /// Seed of the split, initialisation, noise and shuffling.
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
    let image_size = GanConfig::preset(&a.preset, a.image_size)?.image_size;
    let t0 = std::time::Instant::now();
    let prepared = PreparedData::load(&DataSpec {
        data: a.data.clone(),
        image_size: image_size as u32,
        seed: a.seed,
        skip_invalid: a.skip_invalid,
        phantoms_per_class: 200,
        verbose: true,
    })?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    prepared.split.write(&a.out.join("split.json"))?;
    let spec = GeneratorSpec {
        kind: GeneratorKind::Gan,
        preset: a.preset.clone(),
        image_size,
        epochs: a.epochs,
        seed: a.seed,
        out: a.out.clone(),
        figure_every: a.figure_every,
        quiet: a.quiet,
    };
    let trained = train_generators(&spec, &prepared.image_set(SplitPart::Train), &prepared.image_set(SplitPart::Val), &device)?;
    for (class, _, r) in &trained {
        println!("gan-{class}: {} training images, {} parameters (G + D), {:.1} s", r.train_images, r.params, r.seconds);
    }
    let reports: Vec<_> = trained.iter().map(|t| &t.2).collect();
    std::fs::write(a.out.join("history.json"), serde_json::to_string_pretty(&reports)?)?;
    println!("wrote {} in {:.1} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

//! Train the generative VAE (one per class) or the anomaly VAE (healthy slices only) on the
//! real train split, with reconstruction / sample grids every few epochs.
//!
//! ```text
//! cargo run --release --example train_vae                                     # phantoms, generative
//! cargo run --release --example train_vae -- --data ../shared/data/br35h --image-size 64
//! cargo run --release --example train_vae -- --kind anomaly --data ../shared/data/br35h
//! ```
//! Writes `checkpoints/vae-{yes,no}.*` (or `anomaly-vae-real.*`), `figures/*.png`, `split.json`
//! and `history.json` into `--out`. Re-running with the same `--out` resumes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::generators::{train_generators, GeneratorKind, GeneratorSpec};
use mri_synth::preprocess::SplitPart;
use mri_synth::train::{DeviceChoice, RunOptions};
use mri_synth::vae::{train_vae, AnomalyVaeConfig, VaeConfig};

#[derive(Parser, Debug)]
#[command(about = "Train the generative VAE per class, or the anomaly VAE on healthy slices")]
struct Args {
    /// generative (one VAE per class, for synthetic data) or anomaly (healthy slices only).
    #[arg(long, default_value = "generative", value_parser = ["generative", "anomaly"])]
    kind: String,
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (checkpoints, figures, split, history).
    #[arg(long, default_value = "runs/train_vae")]
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
    /// Write reconstruction / sample grids every this many epochs (0 = never).
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
    let image_size = match a.kind.as_str() {
        "generative" => VaeConfig::preset(&a.preset, a.image_size)?.image_size,
        _ => AnomalyVaeConfig::preset(&a.preset, a.image_size)?.image_size,
    };
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
    let (tr, va) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val));
    let history = if a.kind == "generative" {
        let spec = GeneratorSpec {
            kind: GeneratorKind::Vae,
            preset: a.preset.clone(),
            image_size,
            epochs: a.epochs,
            seed: a.seed,
            out: a.out.clone(),
            figure_every: a.figure_every,
            quiet: a.quiet,
        };
        let trained = train_generators(&spec, &tr, &va, &device)?;
        for (class, _, r) in &trained {
            println!("vae-{class}: {} training images, {} parameters, {:.1} s", r.train_images, r.params, r.seconds);
        }
        serde_json::to_value(trained.iter().map(|t| &t.2).collect::<Vec<_>>())?
    } else {
        let mut cfg = AnomalyVaeConfig::preset(&a.preset, a.image_size)?;
        if let Some(e) = a.epochs {
            cfg.epochs = e;
        }
        let opts = RunOptions {
            seed: a.seed,
            quiet: a.quiet,
            checkpoint_dir: Some(a.out.join("checkpoints")),
            name: "anomaly-vae-real".into(),
            preset: a.preset.clone(),
            stop_after: None,
            figures_dir: Some(a.out.join("figures")),
            figure_every: a.figure_every,
        };
        let (htr, hva) = (tr.of_class(0), va.of_class(0));
        println!("anomaly VAE ({} parameters) on {} healthy training slices", cfg.param_count(), htr.len());
        let r = train_vae(&cfg, &htr, &hva, &device, &opts)?;
        println!("best epoch {} (val loss {:.2})", r.best_epoch + 1, r.best_val_loss);
        serde_json::to_value(&r.history)?
    };
    std::fs::write(a.out.join("history.json"), serde_json::to_string_pretty(&history)?)?;
    println!("wrote {} in {:.1} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

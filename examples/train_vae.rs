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

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::generators::{train_generators, GeneratorKind, GeneratorSpec};
use mri_synth::preprocess::SplitPart;
use mri_synth::train::{apply_overrides, ConfigOverride};
use mri_synth::vae::{train_vae, AnomalyVaeConfig, VaeConfig};

/// Which VAE to train.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VaeKind {
    /// One VAE per class, for synthetic data.
    Generative,
    /// One VAE on healthy slices only, for anomaly detection.
    Anomaly,
}

#[derive(Parser, Debug)]
#[command(about = "Train the generative VAE per class, or the anomaly VAE on healthy slices")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    #[command(flatten)]
    budget: common::StepsArg,
    /// Which VAE.
    #[arg(long, value_enum, default_value_t = VaeKind::Generative)]
    kind: VaeKind,
    /// Change a field of the VAE's config, `path=value` (repeatable; e.g.
    /// `--set loss.beta=0.001`, `--set sampler=prior`, `--set latent=256`).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<ConfigOverride>,
    /// Output folder (checkpoints, figures, split, history).
    #[arg(long, default_value = "runs/train_vae")]
    out: PathBuf,
    /// Write reconstruction / sample grids every this many epochs (0 = never).
    #[arg(long, default_value_t = 5)]
    figure_every: usize,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.run.device()?;
    let image_size = match a.kind {
        VaeKind::Generative => VaeConfig::preset(a.run.preset, a.run.image_size).image_size,
        VaeKind::Anomaly => AnomalyVaeConfig::preset(a.run.preset, a.run.image_size).image_size,
    };
    let t0 = std::time::Instant::now();
    let (prepared, fingerprint) = a.run.prepare(image_size, &a.out)?;
    let (tr, va) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val));
    let history = if a.kind == VaeKind::Generative {
        let spec = GeneratorSpec {
            kind: GeneratorKind::Vae,
            preset: a.run.preset,
            image_size,
            epochs: a.run.epochs,
            steps: a.budget.steps,
            gan_d: Default::default(),
            overrides: a.set.clone(),
            seed: a.run.seed,
            out: a.out.clone(),
            figure_every: a.figure_every,
            quiet: a.run.quiet,
            fingerprint: Some(fingerprint),
        };
        let trained = train_generators(&spec, &tr, &va, &device)?;
        for (class, _, r) in &trained {
            println!("vae-{class}: {} training images, {} parameters, {:.1} s", r.train_images, r.params, r.seconds);
        }
        serde_json::to_value(trained.iter().map(|t| &t.2).collect::<Vec<_>>())?
    } else {
        let mut cfg = AnomalyVaeConfig::preset(a.run.preset, a.run.image_size);
        if let Some(e) = a.run.epochs {
            (cfg.epochs, cfg.min_steps) = (e, 0);
        }
        let cfg = apply_overrides(&cfg, &a.set)?;
        let opts = a.run.run_options("anomaly-vae-real", &a.out, &fingerprint, a.figure_every);
        let (htr, hva) = (tr.of_class(0), va.of_class(0));
        println!("anomaly VAE ({} parameters) on {} healthy training slices", cfg.param_count(), htr.len());
        let r = train_vae(&cfg, &htr, &hva, &device, &opts)?;
        println!("best epoch {} (val loss {:.2})", r.best_epoch, r.best_val_loss);
        serde_json::to_value(&r.history)?
    };
    std::fs::write(a.out.join("history.json"), serde_json::to_string_pretty(&history)?)?;
    println!("wrote {} in {:.1} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

//! Train the GAN, one per class, on the real train split, with sample grids every few epochs.
//!
//! ```text
//! cargo run --release --example train_gan                                       # phantoms
//! cargo run --release --example train_gan -- --data ../shared/data/br35h --image-size 64
//! ```
//! Writes `checkpoints/gan-{yes,no}.*` (both networks; `-last` adds both optimisers),
//! `figures/gan-*-samples-epochNNN.png`, `split.json` and `history.json` (D and G losses,
//! D(x), D(G(z)) per epoch) into `--out`. Re-running with the same `--out` resumes.
//! `--set classes=2` trains one class-conditional GAN for both classes instead
//! (`checkpoints/gan-conditional.*`; its grids: healthy slices, label 0, in the first half);
//! `--set d_minibatch_std=4` adds the minibatch-deviation channel to the discriminator.

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::gan::{DiscriminatorBlur, GanConfig};
use mri_synth::generators::{train_generators, GanDLayout, GeneratorKind, GeneratorSpec};
use mri_synth::preprocess::SplitPart;
use mri_synth::train::ConfigOverride;

#[derive(Parser, Debug)]
#[command(about = "Train one GAN per class on real training data")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    #[command(flatten)]
    budget: common::StepsArg,
    /// Downsample in the discriminator by conv 3×3 + 2×2 average pool instead of strided
    /// convs (smooth gradients for the generator; ~2.3× the discriminator's cost).
    #[arg(long)]
    d_avg_pool: bool,
    /// Blur (binomial 3×3) discriminator conv inputs before their stride (anti-aliased
    /// downsampling, a fraction of --d-avg-pool's cost; default: the preset's).
    #[arg(long)]
    d_blur: Option<DiscriminatorBlur>,
    /// The discriminator's widths, comma-separated (default: the preset's; the default
    /// preset's are 16,32,64,128).
    #[arg(long, value_delimiter = ',')]
    d_channels: Option<Vec<usize>>,
    /// Change a field of the GAN's config, `path=value` (repeatable; e.g.
    /// `--set spectral_norm=false`, `--set loss=bce`, `--set ema_decay=0`).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<ConfigOverride>,
    /// Output folder (checkpoints, figures, split, history).
    #[arg(long, default_value = "runs/train_gan")]
    out: PathBuf,
    /// Write sample grids (fixed noise) every this many epochs (0 = never).
    #[arg(long, default_value_t = 5)]
    figure_every: usize,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.run.device()?;
    let image_size = GanConfig::preset(a.run.preset, a.run.image_size).image_size;
    let t0 = std::time::Instant::now();
    let (prepared, fingerprint) = a.run.prepare(image_size, &a.out)?;
    let spec = GeneratorSpec {
        kind: GeneratorKind::Gan,
        preset: a.run.preset,
        image_size,
        epochs: a.run.epochs,
        steps: a.budget.steps,
        gan_d: GanDLayout { avg_pool: a.d_avg_pool, blur: a.d_blur, channels: a.d_channels },
        overrides: a.set.clone(),
        seed: a.run.seed,
        out: a.out.clone(),
        figure_every: a.figure_every,
        quiet: a.run.quiet,
        fingerprint: Some(fingerprint),
    };
    let trained = train_generators(&spec, &prepared.image_set(SplitPart::Train), &prepared.image_set(SplitPart::Val), &device)?;
    for (class, _, r) in &trained {
        println!("gan-{class}: {} training images, {} parameters (G + D), {:.1} s", r.train_images, r.params, r.seconds);
        // A class-conditional GAN is one model: its seconds are shared out between the classes.
    }
    let reports: Vec<_> = trained.iter().map(|t| &t.2).collect();
    std::fs::write(a.out.join("history.json"), serde_json::to_string_pretty(&reports)?)?;
    println!("wrote {} in {:.1} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

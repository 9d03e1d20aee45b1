//! Apply a trained model to new labelled data: a CNN checkpoint, or an anomaly-VAE or
//! denoising-autoencoder checkpoint with a fitted technique (`--detector`, the JSON
//! `vae_anomaly` / `mixed_experiment` write).
//!
//! ```text
//! cargo run --release --example evaluate -- --checkpoint runs/mixed_experiment/checkpoints/cnn-real.json --data ../shared/data/br35h
//! cargo run --release --example evaluate -- --checkpoint runs/vae_anomaly/checkpoints/anomaly-vae-real.json \
//!     --detector runs/vae_anomaly/detectors/vae-giaem.json --data ../shared/data/br35h --json giaem.json
//! cargo run --release --example evaluate -- --checkpoint runs/dae/checkpoints/anomaly-dae-real.json \
//!     --detector runs/dae/detectors/dae-percentile.json --data ../shared/data/br35h
//! ```
//! Every labelled image in `--data` is scored (the whole folder, no split), preprocessed as in
//! training (the image size is read from the checkpoint's sidecar); the `test` metrics object
//! is printed and, with `--json`, written together with the list of skipped files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::eval::evaluate_folder;
use mri_synth::train::DeviceChoice;

#[derive(Parser, Debug)]
#[command(about = "Score every labelled image of a folder with a saved CNN, or an anomaly VAE or denoising autoencoder + technique")]
struct Args {
    /// A checkpoint file (its manifest `X.json`, or a `X.<hash>.safetensors` it names) of a CNN, an anomaly VAE or a denoising autoencoder.
    #[arg(long)]
    checkpoint: PathBuf,
    /// With an anomaly VAE or a denoising autoencoder: the fitted technique (detector JSON).
    #[arg(long)]
    detector: Option<PathBuf>,
    /// Folder with yes/ and no/.
    #[arg(long)]
    data: PathBuf,
    /// Also write the metrics here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// cpu, cuda, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.device.parse::<DeviceChoice>()?.device()?;
    let r = evaluate_folder(&a.checkpoint, a.detector.as_deref(), &a.data, a.skip_invalid, &device)?;
    for s in &r.skipped {
        eprintln!("skipped {}: {}", s.rel_path, s.reason);
    }
    if !r.skipped.is_empty() {
        eprintln!("{} file(s) skipped (--skip-invalid); {} scored", r.skipped.len(), r.scored);
    }
    println!("{} labelled slices in {}: {}", r.scored, a.data.display(), r.test);
    let json = serde_json::to_string_pretty(&r)?;
    println!("{json}");
    if let Some(p) = &a.json {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

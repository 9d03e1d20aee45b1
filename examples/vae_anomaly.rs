//! Anomaly detection: train the anomaly VAE on healthy training slices, fit GIAEM, DBSCAN,
//! per-image KMeans and global KMeans on the validation split, and score the test split.
//!
//! ```text
//! cargo run --release --example vae_anomaly                                   # phantoms
//! cargo run --release --example vae_anomaly -- --data ../shared/data/br35h --image-size 64
//! ```
//! Prints a table (technique × accuracy, precision, recall, F1, AUROC on test) and writes
//! `anomaly_results.json`, the fitted detectors (`detectors/<technique>.json`), figures
//! (`figures/anomaly-<technique>.png`: original | reconstruction | error map | decision) and
//! the checkpoint `checkpoints/anomaly-vae-real.*` into `--out`. Re-running resumes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::anomaly::{evaluate_techniques, save_anomaly_figure};
use mri_synth::cluster::ErrorMapOptions;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::metrics::ThresholdCriterion;
use mri_synth::preprocess::SplitPart;
use mri_synth::train::{DeviceChoice, RunOptions};
use mri_synth::vae::{train_vae, AnomalyVaeConfig};

#[derive(Parser, Debug)]
#[command(about = "Anomaly VAE on healthy slices + four reconstruction-error techniques, fitted on val, scored on test")]
struct Args {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "runs/vae_anomaly")]
    out: PathBuf,
    /// Model preset: quick, default (2-core CPU, 64 px, mirrored decoder) or paper (the study's decoder, 128 px).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    preset: String,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Training epochs (overrides the preset's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Criterion of every technique's operating point: f1, balanced_accuracy, youden, accuracy.
    #[arg(long, default_value = "f1")]
    criterion: String,
    /// Count background pixels too (the study did); by default only the head is scored.
    #[arg(long)]
    whole_image: bool,
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
    let criterion: ThresholdCriterion = a.criterion.parse()?;
    let mut cfg = AnomalyVaeConfig::preset(&a.preset, a.image_size)?;
    if let Some(e) = a.epochs {
        cfg.epochs = e;
    }
    let t0 = std::time::Instant::now();
    let prepared = PreparedData::load(&DataSpec {
        data: a.data.clone(),
        image_size: cfg.image_size as u32,
        seed: a.seed,
        skip_invalid: a.skip_invalid,
        phantoms_per_class: 200,
        verbose: true,
    })?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    prepared.split.write(&a.out.join("split.json"))?;
    let (tr, va, te) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    let opts = RunOptions {
        seed: a.seed,
        quiet: a.quiet,
        checkpoint_dir: Some(a.out.join("checkpoints")),
        name: "anomaly-vae-real".into(),
        preset: a.preset.clone(),
        stop_after: None,
        figures_dir: Some(a.out.join("figures")),
        figure_every: 5,
    };
    println!("anomaly VAE ({} parameters, {:?} decoder) on {} healthy training slices", cfg.param_count(), cfg.decoder, tr.of_class(0).len());
    let trained = train_vae(&cfg, &tr.of_class(0), &va.of_class(0), &device, &opts)?;
    let t_train = t0.elapsed().as_secs_f64();
    let map_opts = ErrorMapOptions { brain_only: !a.whole_image, ..Default::default() };
    let (results, recon, maps) = evaluate_techniques(&trained.model, &va, &te, &map_opts, criterion, &device)?;
    println!("\n{} test slices ({}), operating points chosen on {} validation slices by {criterion:?}:", te.len(), prepared.dataset.source.describe(), va.len());
    println!("| Technique | Accuracy | Precision | Recall | F1 | AUROC |\n|---|---|---|---|---|---|");
    for r in &results {
        let m = &r.test;
        println!("| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |", r.model, m.accuracy, m.precision, m.recall, m.f1, m.auroc);
        std::fs::create_dir_all(a.out.join("detectors"))?;
        std::fs::write(a.out.join("detectors").join(format!("{}.json", r.model)), r.detector.to_json())?;
        save_anomaly_figure(&a.out.join("figures").join(format!("anomaly-{}.png", r.model)), &te, &recon, &maps, &r.detector, 4)?;
    }
    std::fs::write(a.out.join("anomaly_results.json"), serde_json::to_string_pretty(&results)?)?;
    println!("\ntraining {t_train:.1} s, total {:.1} s; wrote {}", t0.elapsed().as_secs_f64(), a.out.display());
    Ok(())
}

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

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::anomaly::{evaluate_techniques, save_anomaly_figure};
use mri_synth::cluster::{DetectorFile, ErrorMapOptions};
use mri_synth::metrics::ThresholdCriterion;
use mri_synth::preprocess::SplitPart;
use mri_synth::vae::{train_vae, AnomalyVaeConfig};

#[derive(Parser, Debug)]
#[command(about = "Anomaly VAE on healthy slices + four reconstruction-error techniques, fitted on val, scored on test")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Output folder.
    #[arg(long, default_value = "runs/vae_anomaly")]
    out: PathBuf,
    /// Criterion of every technique's operating point: f1, balanced_accuracy, youden, accuracy.
    #[arg(long, default_value = "f1")]
    criterion: String,
    /// Count background pixels too (the study did); by default only the head is scored.
    #[arg(long)]
    whole_image: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let device = a.run.device()?;
    let criterion: ThresholdCriterion = a.criterion.parse()?;
    let mut cfg = AnomalyVaeConfig::preset(a.run.preset, a.run.image_size);
    if let Some(e) = a.run.epochs {
        cfg.epochs = e;
    }
    let t0 = std::time::Instant::now();
    let (prepared, fingerprint) = a.run.prepare(cfg.image_size, &a.out)?;
    let (tr, va, te) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    let opts = a.run.run_options("anomaly-vae-real", &a.out, &fingerprint, 5);
    println!("anomaly VAE ({} parameters, {:?} decoder) on {} healthy training slices", cfg.param_count(), cfg.decoder, tr.of_class(0).len());
    let trained = train_vae(&cfg, &tr.of_class(0), &va.of_class(0), &device, &opts)?;
    let t_train = t0.elapsed().as_secs_f64();
    let map_opts = ErrorMapOptions { brain_only: !a.whole_image, ..Default::default() };
    let (results, recon, maps) = evaluate_techniques(&trained.model, &va, &te, &map_opts, criterion, &device)?;
    println!(
        "\n{} test slices ({}), operating points chosen on {} validation slices by {criterion:?}:",
        te.len(),
        prepared.dataset.source.describe(),
        va.len()
    );
    println!("| Technique | Accuracy | Precision | Recall | F1 | AUROC |\n|---|---|---|---|---|---|");
    for r in &results {
        let m = &r.test;
        println!("| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |", r.model, m.accuracy, m.precision, m.recall, m.f1, m.auroc_text(4));
        // The detector file records the error-map options, so `evaluate` makes its maps the same way.
        DetectorFile { error_maps: map_opts, detector: r.detector.clone() }.write(&a.out.join("detectors").join(format!("{}.json", r.model)))?;
        save_anomaly_figure(&a.out.join("figures").join(format!("anomaly-{}.png", r.model)), &te, &recon, &maps, &r.detector, 4)?;
    }
    std::fs::write(a.out.join("anomaly_results.json"), serde_json::to_string_pretty(&results)?)?;
    println!("\ntraining {t_train:.1} s, total {:.1} s; wrote {}", t0.elapsed().as_secs_f64(), a.out.display());
    Ok(())
}

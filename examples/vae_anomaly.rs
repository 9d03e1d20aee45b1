//! Anomaly detection: train an anomaly model on healthy training slices — the study's anomaly
//! VAE (`--model vae`) or a denoising autoencoder (`--model dae`, Kascenas et al. 2022) — fit
//! GIAEM, DBSCAN, per-image KMeans, global KMeans and the plain percentile score on the
//! validation split, and score the test split, beside the intensity baseline (no model).
//!
//! ```text
//! cargo run --release --example vae_anomaly                                   # phantoms, VAE
//! cargo run --release --example vae_anomaly -- --model dae                    # phantoms, DAE
//! cargo run --release --example vae_anomaly -- --data ../shared/data/br35h --model dae
//! ```
//! Prints a table (technique × accuracy, precision, recall, F1, AUROC on test) and writes
//! `anomaly_results.json`, the fitted detectors (`detectors/<row>.json`), figures
//! (`figures/anomaly-<row>.png`: original | reconstruction | error map | decision) and the
//! checkpoint `checkpoints/anomaly-<model>-real.*` into `--out`. Re-running resumes.

mod common;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use mri_synth::anomaly::{evaluate_dae, evaluate_techniques, intensity_baseline, save_anomaly_figure, DAE_MAPS, INTENSITY_MAPS};
use mri_synth::cluster::{DetectorFile, ErrorMapOptions};
use mri_synth::dae::{train_dae, DaeConfig, NoiseUpsampling};
use mri_synth::data::PreparedData;
use mri_synth::metrics::ThresholdCriterion;
use mri_synth::preprocess::SplitPart;
use mri_synth::quality::{intensity_baseline as quality_baseline, localization_row, localization_row_dae, LocalizationRow, MaskedSet};
use mri_synth::report::TrainData;
use mri_synth::train::ImageSet;
use mri_synth::vae::{train_vae, AnomalyVaeConfig};
use mri_synth::SynthError;

/// Which anomaly model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AnomalyModel {
    /// The study's anomaly VAE.
    Vae,
    /// A denoising UNet trained to remove coarse noise.
    Dae,
}

#[derive(Parser, Debug)]
#[command(about = "Anomaly model on healthy slices + reconstruction-error techniques, fitted on val, scored on test, beside the intensity baseline")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Output folder.
    #[arg(long, default_value = "runs/vae_anomaly")]
    out: PathBuf,
    /// The anomaly model.
    #[arg(long, value_enum, default_value_t = AnomalyModel::Vae)]
    model: AnomalyModel,
    /// Criterion of every technique's operating point: balanced_accuracy, f1 (the study's; it
    /// pushes weak detectors to "everything is tumour"), youden, accuracy.
    #[arg(long, default_value = "balanced_accuracy")]
    criterion: String,
    /// Count background pixels too (the study did); by default only the head is scored.
    #[arg(long)]
    whole_image: bool,
    /// DAE: channels per UNet level, finest first (default: the preset's).
    #[arg(long, value_delimiter = ',')]
    dae_channels: Option<Vec<usize>>,
    /// DAE: noise standard deviation (default: the preset's).
    #[arg(long)]
    dae_noise_std: Option<f32>,
    /// DAE: side of the noise grid (default: the preset's).
    #[arg(long)]
    dae_noise_res: Option<usize>,
    /// DAE: bright noise blobs only (the noise's magnitude).
    #[arg(long)]
    dae_bright_noise: bool,
    /// DAE: how the noise grid is upsampled: bilinear (smooth blobs), nearest (sharp-edged
    /// square patches) or mixed (each image draws one); default: the preset's.
    #[arg(long, value_enum)]
    dae_noise_upsampling: Option<NoiseUpsampling>,
}

/// Localisation against the folder's tumour outlines (or the phantoms' lesion masks), for the
/// model (`row`) and for the intensity baseline; `None` when val or test has no annotated slice.
fn localize(
    prepared: &PreparedData,
    va: &ImageSet,
    te: &ImageSet,
    out: &std::path::Path,
    row: impl Fn(&MaskedSet, &MaskedSet, &std::path::Path) -> Result<LocalizationRow, SynthError>,
) -> Result<Option<(LocalizationRow, LocalizationRow)>> {
    let Some(masks) = prepared.tumour_masks(None)? else { return Ok(None) };
    let (mv, mt) = (MaskedSet::select(va, &prepared.part_of(&masks, SplitPart::Val)), MaskedSet::select(te, &prepared.part_of(&masks, SplitPart::Test)));
    if mv.images.is_empty() || mt.images.is_empty() {
        println!("no annotated tumour slices in both val and test: localisation is skipped");
        return Ok(None);
    }
    let fig = out.join("figures");
    Ok(Some((row(&mv, &mt, &fig.join("localization-model.png"))?, quality_baseline(&mv, &mt, &fig.join("localization-intensity-baseline.png"))?)))
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let device = a.run.device()?;
    let criterion: ThresholdCriterion = a.criterion.parse()?;
    let t0 = std::time::Instant::now();
    // Both configs take their side from the same resolution (`Presets::preset`).
    let side = a.run.image_size.unwrap_or(a.run.preset.image_size());
    let (prepared, fingerprint) = a.run.prepare(side, &a.out)?;
    let (tr, va, te) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    let (ev, map_opts, t_train, localization) = match a.model {
        AnomalyModel::Vae => {
            let mut cfg = AnomalyVaeConfig::preset(a.run.preset, Some(side));
            if let Some(e) = a.run.epochs {
                (cfg.epochs, cfg.min_steps) = (e, 0);
            }
            let opts = a.run.run_options("anomaly-vae-real", &a.out, &fingerprint, 5);
            println!("anomaly VAE ({} parameters, {:?} decoder) on {} healthy training slices", cfg.param_count(), cfg.decoder, tr.of_class(0).len());
            let trained = train_vae(&cfg, &tr.of_class(0), &va.of_class(0), &device, &opts)?;
            let t_train = t0.elapsed().as_secs_f64();
            let map_opts = ErrorMapOptions { brain_only: !a.whole_image, ..Default::default() };
            let ev = evaluate_techniques(&trained.model, &va, &te, &map_opts, criterion, &device)?;
            let loc = localize(&prepared, &va, &te, &a.out, |mv, mt, fig| localization_row(&trained.model, TrainData::Real, None, mv, mt, fig, &device))?;
            (ev, map_opts, t_train, loc)
        }
        AnomalyModel::Dae => {
            let mut cfg = DaeConfig::preset(a.run.preset, Some(side));
            if let Some(e) = a.run.epochs {
                (cfg.epochs, cfg.min_steps) = (e, 0);
            }
            cfg.channels = a.dae_channels.clone().unwrap_or(cfg.channels);
            cfg.noise_std = a.dae_noise_std.unwrap_or(cfg.noise_std);
            cfg.noise_res = a.dae_noise_res.unwrap_or(cfg.noise_res);
            cfg.bright_noise_only |= a.dae_bright_noise;
            cfg.noise_upsampling = a.dae_noise_upsampling.unwrap_or(cfg.noise_upsampling);
            let opts = a.run.run_options("anomaly-dae-real", &a.out, &fingerprint, 5);
            println!(
                "denoising autoencoder (channels {:?}, noise {}² × σ {}, {:?} upsampling) on {} healthy training slices",
                cfg.channels,
                cfg.noise_res,
                cfg.noise_std,
                cfg.noise_upsampling,
                tr.of_class(0).len()
            );
            let trained = train_dae(&cfg, &tr.of_class(0), &va.of_class(0), &device, &opts)?;
            let t_train = t0.elapsed().as_secs_f64();
            let map_opts = ErrorMapOptions { brain_only: !a.whole_image, ..DAE_MAPS };
            let ev = evaluate_dae(&trained.model, &va, &te, &map_opts, criterion, &device)?;
            let loc = localize(&prepared, &va, &te, &a.out, |mv, mt, fig| localization_row_dae(&trained.model, TrainData::Real, None, mv, mt, fig, &device))?;
            (ev, map_opts, t_train, loc)
        }
    };
    // The row every learned detector is read against: no model, the slice's own brightness.
    let (baseline, _) = intensity_baseline(&va, &te, criterion)?;
    DetectorFile { error_maps: INTENSITY_MAPS, detector: baseline.detector.clone() }.write(&a.out.join("detectors").join("intensity-baseline.json"))?;
    println!(
        "\n{} test slices ({}), operating points chosen on {} validation slices by {criterion:?}:",
        te.len(),
        prepared.dataset.source.describe(),
        va.len()
    );
    // The criterion's value on validation is what a user may compare settings by (never test).
    println!("| Technique | Val {criterion:?} | Accuracy | Precision | Recall | F1 | AUROC |\n|---|---|---|---|---|---|---|");
    let val_value = |d: &mri_synth::cluster::Detector| d.operating_point().map_or("—".to_string(), |op| format!("{:.4}", op.value));
    let m = &baseline.test;
    println!(
        "| {} (no model) | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
        baseline.model,
        val_value(&baseline.detector),
        m.accuracy,
        m.precision,
        m.recall,
        m.f1,
        m.auroc_text(4)
    );
    let (results, recon, maps) = (&ev.results, &ev.test_recon, &ev.test_maps);
    for r in results {
        let m = &r.test;
        println!("| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |", r.model, val_value(&r.detector), m.accuracy, m.precision, m.recall, m.f1, m.auroc_text(4));
        // The detector file records the error-map options, so `evaluate` makes its maps the same way.
        DetectorFile { error_maps: map_opts, detector: r.detector.clone() }.write(&a.out.join("detectors").join(format!("{}.json", r.model)))?;
        save_anomaly_figure(&a.out.join("figures").join(format!("anomaly-{}.png", r.model)), &te, recon, maps, &r.detector, 4)?;
    }
    if let Some(p) = ev.val_healthy_psnr_db {
        println!("\nReconstructions of the healthy validation slices: mean PSNR {p:.2} dB");
    }
    if let Some((model_row, baseline_row)) = &localization {
        println!("\nLocalisation on {} annotated test tumour slices (pixels inside the head):", model_row.n_images);
        println!("| Maps | Pixel AUROC | Dice at the val threshold | Best Dice (upper bound) |\n|---|---|---|---|");
        for (name, r) in [("intensity (no model)", baseline_row), ("residual", model_row)] {
            println!("| {name} | {:.3} | {:.3} | {:.3} |", r.pixel_auroc, r.dice_val_threshold, r.dice);
        }
        std::fs::write(
            a.out.join("localization.json"),
            serde_json::to_string_pretty(&serde_json::json!({"model": model_row, "intensity_baseline": baseline_row}))?,
        )?;
    }
    let all: Vec<_> = std::iter::once(&baseline).chain(results).collect();
    std::fs::write(a.out.join("anomaly_results.json"), serde_json::to_string_pretty(&all)?)?;
    println!("\ntraining {t_train:.1} s, total {:.1} s; wrote {}", t0.elapsed().as_secs_f64(), a.out.display());
    Ok(())
}

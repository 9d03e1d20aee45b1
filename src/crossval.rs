//! Grouped K-fold cross-validation of the main job: the whole study ([`run_experiment`]) once
//! per fold, each in `out/fold{i}` with fold `i`'s groups as the test split
//! ([`mri_preprocess::Fold`]: every near-duplicate group is tested exactly once), then every
//! classification row's test metrics as mean ± sd over folds ([`CrossValidation`],
//! `folds.json`, `folds.md`).
//!
//! The per-run intervals of `report.md` resample test groups for fixed weights; the spread over
//! folds also holds what changes with the training data (the generators and every model are
//! retrained on each fold's training part), so it is the yardstick for "mixed vs real".

use std::fmt::Write as _;
use std::path::Path;

use candle_core::Device;
use mri_preprocess::Fold;
use serde::{Deserialize, Serialize};

use crate::eval::{mean_sd, FoldSummary};
use crate::experiment::{run_experiment, Classifier, ExperimentSpec, Report, TrainData};
use crate::generators::GeneratorKind;
use crate::SynthError;

/// One classifier × training data × generator over the folds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldRow {
    /// The classifier.
    pub model: Classifier,
    /// What it was trained on.
    pub train_data: TrainData,
    /// The generator of its synthetic slices; `None` for real rows.
    pub generator: Option<GeneratorKind>,
    /// Test metrics, mean ± sd over folds, and each fold's.
    pub test: FoldSummary,
    /// For synthetic and mixed rows: the paired accuracy difference to the same model trained
    /// on real data (each fold's on its own test slices), mean and sd over folds.
    pub vs_real_accuracy: Option<(f64, f64)>,
}

/// What [`run_cross_validation`] found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Folds run.
    pub folds: usize,
    /// Every row present in all folds, in the first fold's report order.
    pub rows: Vec<FoldRow>,
    /// Wall time of each fold's study, seconds.
    pub fold_seconds: Vec<f64>,
}

impl CrossValidation {
    /// Rows of `reports` (one per fold, at least two) as mean ± sd over folds.
    ///
    /// # Errors
    /// [`SynthError::Invalid`] for fewer than two reports.
    pub fn of(reports: &[Report]) -> Result<Self, SynthError> {
        if reports.len() < 2 {
            return Err(SynthError::Invalid(format!("cross-validation needs at least 2 folds, got {}", reports.len())));
        }
        let mut rows = Vec::new();
        for first in &reports[0].classification {
            let key = (first.model, first.train_data, first.generator);
            let per_fold: Vec<_> =
                reports.iter().filter_map(|r| r.classification.iter().find(|row| (row.model, row.train_data, row.generator) == key)).collect();
            if per_fold.len() != reports.len() {
                continue;
            }
            let test = FoldSummary::of(&per_fold.iter().map(|r| r.test).collect::<Vec<_>>())?;
            let deltas: Vec<f64> = per_fold.iter().filter_map(|r| r.vs_real.map(|d| d.accuracy)).collect();
            let vs_real_accuracy = (deltas.len() == reports.len()).then(|| mean_sd(&deltas));
            rows.push(FoldRow { model: first.model, train_data: first.train_data, generator: first.generator, test, vs_real_accuracy });
        }
        Ok(CrossValidation {
            folds: reports.len(),
            rows,
            fold_seconds: reports.iter().map(|r| r.timings_s.get("total").copied().unwrap_or(f64::NAN)).collect(),
        })
    }

    /// The Markdown table of `folds.md`.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# {}-fold grouped cross-validation\n\nEach fold's study is in `fold{{i}}/` (its own `report.md`); every near-duplicate group is tested in exactly one fold. Mean ± sd over folds; Δ vs real: each fold's paired difference to the same model trained on real data.\n\n",
            self.folds
        );
        md.push_str("| Model | Train data | Generator | Accuracy | AUROC | Δ accuracy vs real | Per fold (accuracy) |\n|---|---|---|---|---|---|---|\n");
        let pct = |m: f64, s: f64| format!("{:.1} ± {:.1} %", 100.0 * m, 100.0 * s);
        for r in &self.rows {
            let t = &r.test;
            let auroc = match (t.auroc_mean, t.auroc_sd) {
                (Some(m), Some(s)) => format!("{m:.3} ± {s:.3}"),
                _ => "—".into(),
            };
            let vs = r.vs_real_accuracy.map(|(m, s)| format!("{:+.1} ± {:.1}", 100.0 * m, 100.0 * s)).unwrap_or_else(|| "—".into());
            let folds = t.per_fold.iter().map(|m| format!("{:.1}", 100.0 * m.accuracy)).collect::<Vec<_>>().join(" / ");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {auroc} | {vs} | {folds} |",
                r.model,
                r.train_data,
                r.generator.map(|g| g.name()).unwrap_or("—"),
                pct(t.accuracy_mean, t.accuracy_sd)
            );
        }
        let _ = writeln!(md, "\nWall time per fold: {} s.", self.fold_seconds.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(" / "));
        md
    }

    /// Writes `folds.json` and `folds.md` into `out`.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write(&self, out: &Path) -> Result<(), SynthError> {
        let json = serde_json::to_string_pretty(self).expect("serialises");
        for (name, text) in [("folds.json", json), ("folds.md", self.markdown())] {
            mri_preprocess::fsutil::write_atomic(&out.join(name), text.as_bytes())?;
        }
        Ok(())
    }
}

/// Runs the study once per fold of a `k`-fold grouped cross-validation (fold `i` in
/// `spec.out/fold{i}`, resumable like a single run), then writes `folds.json` and `folds.md`
/// into `spec.out`.
///
/// # Errors
/// `k < 2`, a spec that already names a fold, and whatever a fold's study returns.
pub fn run_cross_validation(spec: &ExperimentSpec, k: usize, device: &Device) -> Result<CrossValidation, SynthError> {
    if k < 2 {
        return Err(SynthError::Invalid(format!("--folds must be at least 2, got {k}")));
    }
    if spec.fold.is_some() {
        return Err(SynthError::Invalid("the spec already names a fold: cross-validation sets each fold itself".into()));
    }
    let mut reports = Vec::with_capacity(k);
    for index in 0..k {
        println!("\n===== fold {} of {k} =====", index + 1);
        let fold_spec = ExperimentSpec { out: spec.out.join(format!("fold{index}")), fold: Some(Fold { index, count: k }), ..spec.clone() };
        reports.push(run_experiment(&fold_spec, device)?);
    }
    let cv = CrossValidation::of(&reports)?;
    cv.write(&spec.out)?;
    Ok(cv)
}

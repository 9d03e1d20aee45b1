//! Scoring a classifier's probabilities on labelled data: the `test` object of the reports.

use mri_metrics::{auroc, Confusion, MetricsError};
use serde::{Deserialize, Serialize};

/// Test metrics at one operating point plus the threshold-free AUROC (fractions in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestMetrics {
    /// Accuracy.
    pub accuracy: f64,
    /// Precision of the tumour class.
    pub precision: f64,
    /// Recall of the tumour class.
    pub recall: f64,
    /// F1 of the tumour class.
    pub f1: f64,
    /// Area under the ROC curve; `None` (JSON `null`, printed "undefined") when the labels hold
    /// only one class.
    pub auroc: Option<f64>,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl TestMetrics {
    /// Scores (higher = tumour) against labels (tumour = 1), predicting tumour at `score >= threshold`.
    ///
    /// # Errors
    /// Length mismatch or non-finite scores.
    pub fn from_scores(scores: &[f32], labels: &[u32], threshold: f64) -> Result<Self, MetricsError> {
        let s: Vec<f64> = scores.iter().map(|&v| f64::from(v)).collect();
        Self::from_scores_f64(&s, labels, threshold)
    }

    /// As [`TestMetrics::from_scores`], for f64 scores.
    pub fn from_scores_f64(s: &[f64], labels: &[u32], threshold: f64) -> Result<Self, MetricsError> {
        let t: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        let c = Confusion::from_scores(s, &t, threshold)?;
        Ok(TestMetrics {
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            auroc: if t.iter().any(|&b| b) && t.iter().any(|&b| !b) { Some(auroc(s, &t)?) } else { None },
            tp: c.tp,
            fp: c.fp,
            tn: c.tn,
            fn_: c.fn_,
        })
    }
}

impl TestMetrics {
    /// The AUROC with `digits` decimals, or `undefined` (one class only).
    pub fn auroc_text(&self, digits: usize) -> String {
        self.auroc.map(|a| format!("{a:.digits$}")).unwrap_or_else(|| "undefined".into())
    }
}

impl std::fmt::Display for TestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  AUROC {}  (tp {} fp {} tn {} fn {})",
            self.accuracy,
            self.precision,
            self.recall,
            self.f1,
            self.auroc_text(4),
            self.tp,
            self.fp,
            self.tn,
            self.fn_
        )
    }
}

/// Test metrics over the folds of a cross-validation: mean and sample standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldSummary {
    /// Folds.
    pub folds: usize,
    /// Mean accuracy.
    pub accuracy_mean: f64,
    /// Standard deviation of accuracy over folds (n − 1).
    pub accuracy_sd: f64,
    /// Mean AUROC (folds where it is defined).
    pub auroc_mean: Option<f64>,
    /// Its standard deviation.
    pub auroc_sd: Option<f64>,
    /// Every fold's metrics, in fold order.
    pub per_fold: Vec<TestMetrics>,
}

impl FoldSummary {
    /// The summary of `folds`.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] for fewer than two folds.
    pub fn of(folds: &[TestMetrics]) -> Result<Self, MetricsError> {
        if folds.len() < 2 {
            return Err(MetricsError::Empty);
        }
        let (accuracy_mean, accuracy_sd) = mean_sd(&folds.iter().map(|m| m.accuracy).collect::<Vec<_>>());
        let aurocs: Vec<f64> = folds.iter().filter_map(|m| m.auroc).collect();
        let (auroc_mean, auroc_sd) = if aurocs.len() >= 2 {
            let (m, s) = mean_sd(&aurocs);
            (Some(m), Some(s))
        } else {
            (None, None)
        };
        Ok(FoldSummary { folds: folds.len(), accuracy_mean, accuracy_sd, auroc_mean, auroc_sd, per_fold: folds.to_vec() })
    }
}

/// Mean and sample standard deviation (n − 1) of at least two values.
pub(crate) fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

impl std::fmt::Display for FoldSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "accuracy {:.4} ± {:.4}", self.accuracy_mean, self.accuracy_sd)?;
        if let (Some(m), Some(s)) = (self.auroc_mean, self.auroc_sd) {
            write!(f, ", AUROC {m:.4} ± {s:.4}")?;
        }
        write!(f, " (mean ± sd over {} folds)", self.folds)
    }
}

/// What [`evaluate_folder`] found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderEvaluation {
    /// Metrics over every scored slice.
    pub test: TestMetrics,
    /// Slices scored.
    pub scored: usize,
    /// Files left out under `skip_invalid`, with the reason each.
    pub skipped: Vec<mri_preprocess::SkippedFile>,
}

/// Scores every labelled image of `data` with a saved CNN, or with an anomaly VAE or a denoising
/// autoencoder plus a fitted detector file (its error maps made as the detector's were),
/// preprocessed at the checkpoint's image size: what the `evaluate` example runs.
///
/// # Errors
/// A damaged or unsuitable checkpoint (another model kind, no `image_size`), an anomaly VAE
/// without a detector, unreadable data (unless `skip_invalid`), candle errors.
pub fn evaluate_folder(
    checkpoint: &std::path::Path,
    detector: Option<&std::path::Path>,
    data: &std::path::Path,
    skip_invalid: bool,
    device: &candle_core::Device,
) -> Result<FolderEvaluation, crate::SynthError> {
    use crate::SynthError;
    use mri_train::{Checkpoint, ImageSet, ModelKind};
    let ck = Checkpoint::from_file(checkpoint);
    let side = ck.read_sidecar()?;
    let image_size = side
        .config
        .get("image_size")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| SynthError::Invalid(format!("{}: the config has no image_size", ck.sidecar.display())))? as usize;
    let opts = mri_preprocess::LoadOptions { preprocess: mri_preprocess::PreprocessConfig::with_size(image_size as u32), skip_invalid, ..Default::default() };
    let ds = mri_preprocess::Dataset::load(data, &opts)?;
    let set = ImageSet::from_dataset(&ds)?;
    let test = match side.model {
        ModelKind::Cnn => {
            // A single CNN or an ensemble saved as one checkpoint.
            let (_, model) = mri_cnn::load_classifier(&ck, device)?;
            TestMetrics::from_scores(&mri_cnn::predict_proba(&model, &set, 64, device)?, &set.labels, 0.5)?
        }
        ModelKind::AnomalyVae | ModelKind::DenoisingAe => {
            let path = detector.ok_or_else(|| SynthError::Invalid(format!("a {} checkpoint needs a detector file (a fitted technique's JSON)", side.model)))?;
            let file = mri_cluster::DetectorFile::read(path)?;
            let recon = if side.model == ModelKind::AnomalyVae {
                let (_, model, _) = mri_vae::load_vae::<mri_vae::AnomalyVaeConfig>(&ck, device)?;
                mri_vae::reconstruct_set(&model, &set, 64, device)?
            } else {
                let (_, model, _) = mri_dae::load_dae(&ck, device)?;
                mri_dae::denoise_set(&model, &set, 64, device)?
            };
            let maps = mri_cluster::ErrorMaps::from_reconstructions(&set.pixels, &recon.pixels, set.side, &file.error_maps)?;
            let t = file.detector.operating_point().ok_or(mri_cluster::ClusterError::NotFitted)?.threshold;
            TestMetrics::from_scores_f64(&file.detector.score(&maps), &set.labels, t)?
        }
        other => {
            return Err(SynthError::Invalid(format!(
                "{}: holds a {other} model; evaluate takes a cnn, anomaly-vae or denoising-ae checkpoint",
                ck.sidecar.display()
            )))
        }
    };
    Ok(FolderEvaluation { test, scored: set.len(), skipped: ds.skipped })
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn fold_summary_is_mean_and_sample_sd() {
        let m = |acc: f64, auroc: Option<f64>| TestMetrics { accuracy: acc, precision: 0.0, recall: 0.0, f1: 0.0, auroc, tp: 0, fp: 0, tn: 0, fn_: 0 };
        let s = FoldSummary::of(&[m(0.8, Some(0.9)), m(0.9, Some(1.0)), m(1.0, None)]).unwrap();
        assert!((s.accuracy_mean - 0.9).abs() < 1e-12 && (s.accuracy_sd - 0.1).abs() < 1e-12, "{s:?}");
        // AUROC over the two folds that have one.
        assert!((s.auroc_mean.unwrap() - 0.95).abs() < 1e-12 && (s.auroc_sd.unwrap() - 0.5f64.sqrt() * 0.1).abs() < 1e-12);
        assert_eq!(s.to_string(), "accuracy 0.9000 ± 0.1000, AUROC 0.9500 ± 0.0707 (mean ± sd over 3 folds)");
        assert!(FoldSummary::of(&[m(0.8, None)]).is_err());
    }
}

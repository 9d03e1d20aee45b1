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

//! Binary classification metrics: confusion counts, the usual ratios, ROC / AUROC and the choice
//! of one operating point on validation scores.
//!
//! Conventions (the same as scikit-learn's, so numbers can be checked against it):
//! - the positive class is *tumour*; [`Confusion::flipped`] gives the healthy-as-positive view;
//! - a ratio whose denominator is zero (0/0, e.g. precision when nothing is predicted positive)
//!   is **0.0**, like scikit-learn's `zero_division=0`; never NaN, never a panic;
//! - F1 is `2·tp / (2·tp + fp + fn)` (equal to the harmonic mean of precision and recall when
//!   both are defined, and 0.0 when `tp = 0`);
//! - AUROC of a set with no positives or no negatives is undefined; [`RocCurve::auroc`] returns
//!   **0.5** (chance) there and [`RocCurve::is_defined`] tells the two cases apart.

use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// Divides, giving 0.0 for a zero denominator (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Confusion counts of a binary classifier, tumour = positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Tumour predicted as tumour.
    pub tp: u64,
    /// Healthy predicted as tumour.
    pub fp: u64,
    /// Healthy predicted as healthy.
    pub tn: u64,
    /// Tumour predicted as healthy.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// A named ratio of a [`Confusion`]; used for the weighted metric and for threshold choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// (tp + tn) / n.
    Accuracy,
    /// tp / (tp + fp).
    Precision,
    /// tp / (tp + fn), also called sensitivity or true positive rate.
    Recall,
    /// 2·tp / (2·tp + fp + fn).
    F1,
    /// tn / (tn + fp), the true negative rate.
    Specificity,
    /// (recall + specificity) / 2.
    BalancedAccuracy,
    /// Youden's J = recall + specificity − 1.
    Youden,
}

impl Confusion {
    /// Counts from ground truth and predictions (`true` = tumour).
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] when the slices differ in length.
    pub fn from_predictions(truth: &[bool], predicted: &[bool]) -> Result<Self, MetricsError> {
        if truth.len() != predicted.len() {
            return Err(MetricsError::LengthMismatch { what: "predictions", expected: truth.len(), got: predicted.len() });
        }
        let mut c = Confusion::default();
        for (&t, &p) in truth.iter().zip(predicted) {
            c.add(t, p);
        }
        Ok(c)
    }

    /// Counts from scores: predicted tumour when `score >= threshold`.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] or [`MetricsError::NonFiniteScore`].
    pub fn from_scores(scores: &[f64], truth: &[bool], threshold: f64) -> Result<Self, MetricsError> {
        check_scores(scores, truth)?;
        let mut c = Confusion::default();
        for (&s, &t) in scores.iter().zip(truth) {
            c.add(t, s >= threshold);
        }
        Ok(c)
    }

    fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// The same counts with healthy as the positive class (tp↔tn, fp↔fn).
    pub fn flipped(&self) -> Confusion {
        Confusion { tp: self.tn, fp: self.fn_, tn: self.tp, fn_: self.fp }
    }

    /// (tp + tn) / n; 0.0 for an empty set.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// tp / (tp + fp); 0.0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0.0 when there are no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// tn / (tn + fp); 0.0 when there are no negatives.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// 2·tp / (2·tp + fp + fn); 0.0 when `tp = fp = fn = 0`.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// (recall + specificity) / 2, scikit-learn's `balanced_accuracy_score` for two classes.
    pub fn balanced_accuracy(&self) -> f64 {
        (self.recall() + self.specificity()) / 2.0
    }

    /// Youden's J = recall + specificity − 1, in [−1, 1].
    pub fn youden(&self) -> f64 {
        self.recall() + self.specificity() - 1.0
    }

    /// The value of a named metric.
    pub fn metric(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy(),
            Metric::Precision => self.precision(),
            Metric::Recall => self.recall(),
            Metric::F1 => self.f1(),
            Metric::Specificity => self.specificity(),
            Metric::BalancedAccuracy => self.balanced_accuracy(),
            Metric::Youden => self.youden(),
        }
    }

    /// The study's weighted metric: `α·metric(tumour positive) + (1 − α)·metric(healthy positive)`.
    ///
    /// With `α` = the tumour share of the set this is scikit-learn's `average="weighted"`.
    ///
    /// # Errors
    /// [`MetricsError::InvalidAlpha`] unless `0 ≤ α ≤ 1`.
    pub fn weighted(&self, metric: Metric, alpha: f64) -> Result<f64, MetricsError> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(MetricsError::InvalidAlpha(alpha));
        }
        Ok(alpha * self.metric(metric) + (1.0 - alpha) * self.flipped().metric(metric))
    }

    /// Every headline ratio with the counts, ready for a report.
    pub fn summary(&self) -> ClassificationSummary {
        ClassificationSummary {
            accuracy: self.accuracy(),
            precision: self.precision(),
            recall: self.recall(),
            f1: self.f1(),
            specificity: self.specificity(),
            balanced_accuracy: self.balanced_accuracy(),
            tp: self.tp,
            fp: self.fp,
            tn: self.tn,
            fn_: self.fn_,
        }
    }
}

/// The headline ratios of a [`Confusion`], as fractions in [0, 1], with its counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSummary {
    /// See [`Confusion::accuracy`].
    pub accuracy: f64,
    /// See [`Confusion::precision`].
    pub precision: f64,
    /// See [`Confusion::recall`].
    pub recall: f64,
    /// See [`Confusion::f1`].
    pub f1: f64,
    /// See [`Confusion::specificity`].
    pub specificity: f64,
    /// See [`Confusion::balanced_accuracy`].
    pub balanced_accuracy: f64,
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

fn check_scores(scores: &[f64], truth: &[bool]) -> Result<(), MetricsError> {
    if scores.len() != truth.len() {
        return Err(MetricsError::LengthMismatch { what: "scores", expected: truth.len(), got: scores.len() });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index, value: scores[index] });
    }
    Ok(())
}

/// One point of a ROC curve: predicting tumour for `score >= threshold` gives these rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// False positive rate (1 − specificity).
    pub fpr: f64,
    /// True positive rate (recall).
    pub tpr: f64,
    /// The decision threshold; `+inf` for the first point (nothing predicted positive).
    pub threshold: f64,
}

/// A ROC curve over every distinct score, with tied scores kept together.
///
/// Like scikit-learn's `roc_curve(..., drop_intermediate=False)`: one point per distinct score
/// (descending), preceded by the point (0, 0) at threshold `+inf`. Ties therefore give a
/// diagonal step, and the trapezoidal area counts a tied positive/negative pair as ½ — the
/// Mann–Whitney U statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// The points, from (0, 0) to (1, 1) when both classes are present.
    pub points: Vec<RocPoint>,
    /// Number of tumour samples.
    pub positives: u64,
    /// Number of healthy samples.
    pub negatives: u64,
}

impl RocCurve {
    /// Builds the curve from scores (higher = more tumour-like) and truth (`true` = tumour).
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] or [`MetricsError::NonFiniteScore`].
    pub fn new(scores: &[f64], truth: &[bool]) -> Result<Self, MetricsError> {
        check_scores(scores, truth)?;
        let positives = truth.iter().filter(|&&t| t).count() as u64;
        let negatives = truth.len() as u64 - positives;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        // Descending score; total_cmp is a total order and the scores are finite.
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut points = vec![RocPoint { fpr: 0.0, tpr: 0.0, threshold: f64::INFINITY }];
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut i = 0;
        while i < order.len() {
            let s = scores[order[i]];
            // Take every sample tied at this score before emitting a point.
            while i < order.len() && scores[order[i]] == s {
                if truth[order[i]] {
                    tp += 1;
                } else {
                    fp += 1;
                }
                i += 1;
            }
            points.push(RocPoint { fpr: ratio(fp, negatives), tpr: ratio(tp, positives), threshold: s });
        }
        Ok(RocCurve { points, positives, negatives })
    }

    /// True when both classes are present, so that the AUROC means something.
    pub fn is_defined(&self) -> bool {
        self.positives > 0 && self.negatives > 0
    }

    /// Area under the curve by the trapezoidal rule (ties count ½); **0.5** when undefined.
    pub fn auroc(&self) -> f64 {
        if !self.is_defined() {
            return 0.5;
        }
        self.points.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum()
    }
}

/// Area under the ROC curve of `scores` against `truth`; 0.5 when one class is absent.
///
/// # Errors
/// As [`RocCurve::new`].
pub fn auroc(scores: &[f64], truth: &[bool]) -> Result<f64, MetricsError> {
    Ok(RocCurve::new(scores, truth)?.auroc())
}

/// What to maximise when choosing a threshold on validation scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdCriterion {
    /// F1 of the tumour class (the default: the study reports F1).
    #[default]
    F1,
    /// Balanced accuracy.
    BalancedAccuracy,
    /// Youden's J (recall + specificity − 1); picks the same point as balanced accuracy.
    Youden,
    /// Plain accuracy.
    Accuracy,
}

impl ThresholdCriterion {
    /// The metric this criterion maximises.
    pub fn metric(self) -> Metric {
        match self {
            ThresholdCriterion::F1 => Metric::F1,
            ThresholdCriterion::BalancedAccuracy => Metric::BalancedAccuracy,
            ThresholdCriterion::Youden => Metric::Youden,
            ThresholdCriterion::Accuracy => Metric::Accuracy,
        }
    }
}

impl std::str::FromStr for ThresholdCriterion {
    type Err = MetricsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "f1" => Ok(Self::F1),
            "balanced_accuracy" => Ok(Self::BalancedAccuracy),
            "youden" => Ok(Self::Youden),
            "accuracy" => Ok(Self::Accuracy),
            _ => Err(MetricsError::UnknownCriterion(s.to_string())),
        }
    }
}

/// One operating point: a threshold and what it gave on the data it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Predict tumour when `score >= threshold`. `+inf` (nothing is tumour, the choice when no
    /// threshold beats it) is written as JSON `null`, which JSON has for it, and read back as
    /// `+inf`.
    #[serde(with = "infinite_as_null")]
    pub threshold: f64,
    /// The criterion that chose it.
    pub criterion: ThresholdCriterion,
    /// The criterion's value at this threshold on the choosing data.
    pub value: f64,
    /// Confusion counts on the choosing data.
    pub confusion: Confusion,
}

/// Serde for a threshold that may be `+inf`: JSON has no infinity, so `+inf` goes out as `null`
/// and `null` comes back as `+inf` (the only non-finite threshold [`choose_threshold`] makes).
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Chooses the threshold that maximises `criterion` on (validation) scores.
///
/// Candidates are `+inf` (predict nothing as tumour) and every distinct score. Among equal
/// criterion values the **highest** threshold wins, so the choice is deterministic and
/// conservative. Runs in O(n log n).
///
/// # Errors
/// [`MetricsError::Empty`] for no samples; otherwise as [`RocCurve::new`].
pub fn choose_threshold(scores: &[f64], truth: &[bool], criterion: ThresholdCriterion) -> Result<OperatingPoint, MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty);
    }
    let roc = RocCurve::new(scores, truth)?;
    let (p, n) = (roc.positives, roc.negatives);
    let mut best: Option<OperatingPoint> = None;
    for pt in &roc.points {
        // Recover the counts exactly from the rates (they are ratios of these integers).
        let tp = (pt.tpr * p as f64).round() as u64;
        let fp = (pt.fpr * n as f64).round() as u64;
        let confusion = Confusion { tp, fp, tn: n - fp, fn_: p - tp };
        let value = confusion.metric(criterion.metric());
        if best.as_ref().is_none_or(|b| value > b.value) {
            best = Some(OperatingPoint { threshold: pt.threshold, criterion, value, confusion });
        }
    }
    Ok(best.expect("the curve has at least the +inf point"))
}

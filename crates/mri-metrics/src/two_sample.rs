//! The classifier two-sample test (C2ST; Lopez-Paz & Oquab, "Revisiting classifier two-sample
//! tests", ICLR 2017): train a classifier to tell two sets apart and report its accuracy on
//! rows it did not train on. About ½ means the classifier found nothing that separates them;
//! about 1 means every row carries a mark of its set.
//!
//! Here the classifier is linear — Fisher's discriminant on standardised features with a
//! shrunk within-set covariance — and the accuracy is cross-validated over stratified folds.
//! A linear classifier on fixed features gives a *lower bound* on how separable two sets are:
//! what it finds is there; what it misses may still be found by a CNN. That is what it is for
//! in this project: on hand-crafted texture features it says whether a generator leaves a
//! signature (a texture no real slice has) that a classifier trained on its slices could use as
//! a shortcut, and on two synthetic classes beside two real ones it says whether the synthetic
//! classes differ in ways the real ones do not.
//!
//! ```
//! use mri_metrics::two_sample::{classifier_two_sample, TwoSampleParams};
//! // Two sets on a line: the first in [0, 1), the second in [2, 3): perfectly separable.
//! let a: Vec<f32> = (0..40).map(|i| i as f32 / 40.0).collect();
//! let b: Vec<f32> = a.iter().map(|v| v + 2.0).collect();
//! let t = classifier_two_sample(&a, &b, 1, &TwoSampleParams::default()).unwrap();
//! assert_eq!(t.accuracy, 1.0);
//! ```

use linfa_linalg::eigh::Eigh;
use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::generative::rows;
use crate::MetricsError;

/// Settings of [`classifier_two_sample`], checked by [`TwoSampleParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwoSampleParams {
    /// Cross-validation folds (at least 2); every row is scored once, by the classifier
    /// trained on the other folds.
    pub folds: usize,
    /// Shrinkage γ ∈ [0, 1] of the covariance towards its mean variance:
    /// `(1 − γ)·Σ + γ·(tr Σ / d)·I`. Keeps the discriminant stable when features are
    /// collinear (histogram bins sum to 1) or rows are few.
    pub shrinkage: f64,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for TwoSampleParams {
    /// 5 folds, γ = 0.1, seed 0.
    fn default() -> Self {
        Self { folds: 5, shrinkage: 0.1, seed: 0 }
    }
}

impl TwoSampleParams {
    /// Refuses fewer than 2 folds and a shrinkage outside [0, 1].
    ///
    /// # Errors
    /// [`MetricsError::Shape`] naming the bad parameter.
    pub fn check(&self) -> Result<(), MetricsError> {
        if self.folds < 2 {
            return Err(MetricsError::Shape { what: "two-sample test", reason: format!("folds must be at least 2, got {}", self.folds) });
        }
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return Err(MetricsError::Shape { what: "two-sample test", reason: format!("shrinkage must be in [0, 1], got {}", self.shrinkage) });
        }
        Ok(())
    }
}

/// The outcome of [`classifier_two_sample`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwoSample {
    /// Held-out balanced accuracy, (TPR + TNR) / 2 with the first set as positive, over all
    /// folds: ½ for sets a linear classifier cannot tell apart, 1 for separable ones.
    pub accuracy: f64,
    /// Rows of the first set.
    pub n_a: usize,
    /// Rows of the second set.
    pub n_b: usize,
    /// Folds used.
    pub folds: usize,
}

/// The shrunk Fisher discriminant fitted on `a` and `b` (rows of `dim`): returns `(w, c)` such
/// that `w·x > c` predicts the first set.
fn fit(a: &Array2<f64>, b: &Array2<f64>, shrinkage: f64) -> Result<(Array1<f64>, f64), MetricsError> {
    let d = a.ncols();
    let ma = a.mean_axis(Axis(0)).expect("rows checked");
    let mb = b.mean_axis(Axis(0)).expect("rows checked");
    let (ca, cb) = (a - &ma, b - &mb);
    let n = (a.nrows() + b.nrows()) as f64 - 2.0;
    let mut s = (ca.t().dot(&ca) + cb.t().dot(&cb)) / n.max(1.0);
    let mean_var = s.diag().sum() / d as f64;
    s *= 1.0 - shrinkage;
    // A constant feature (zero variance everywhere) leaves mean_var 0: any ridge keeps S invertible.
    let ridge = shrinkage * mean_var + 1e-9;
    for i in 0..d {
        s[[i, i]] += ridge;
    }
    let (vals, vecs) = s.eigh().map_err(|e| MetricsError::Numerical(format!("eigendecomposition failed: {e}")))?;
    let diff = &ma - &mb;
    let proj = vecs.t().dot(&diff) / vals.mapv(|v| v.max(1e-12));
    let w = vecs.dot(&proj);
    let c = w.dot(&((&ma + &mb) / 2.0));
    Ok((w, c))
}

/// Standardisation (mean 0, sd 1 per feature) fitted on the training rows of both sets.
fn standardiser(a: &Array2<f64>, b: &Array2<f64>) -> (Array1<f64>, Array1<f64>) {
    let both = ndarray::concatenate(Axis(0), &[a.view(), b.view()]).expect("same width");
    let mean = both.mean_axis(Axis(0)).expect("rows checked");
    let sd = both.std_axis(Axis(0), 0.0).mapv(|v| if v > 1e-12 { v } else { 1.0 });
    (mean, sd)
}

/// Rows `idx` of the `dim`-wide row-major `data` as a matrix.
fn take(data: &[f32], dim: usize, idx: &[usize]) -> Array2<f64> {
    let v: Vec<f64> = idx.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().map(|&x| f64::from(x))).collect();
    Array2::from_shape_vec((idx.len(), dim), v).expect("shape from indices")
}

/// Classifier two-sample test of `a` against `b` (row-major, `dim` values a row): the
/// cross-validated balanced accuracy of a shrunk Fisher discriminant (see the module docs).
/// Folds are stratified (each set is shuffled with the seed and dealt round-robin), so each
/// fold holds both sets in their proportions.
///
/// Rows are treated as independent. Near-duplicates within one set that land in different
/// folds give its held-out rows twins among the training rows, which can only make that set
/// easier to recognise; a linear discriminant on a few dozen features barely memorises, so the
/// effect is small, but compare a result with a reference computed the same way (two parts of
/// the real data) rather than with ½ alone.
///
/// # Errors
/// Bad parameters ([`TwoSampleParams::check`]); a set with fewer than `2 × folds` rows (every
/// training side needs at least two rows of each set), a shape that is not `n × dim`, a
/// non-finite value; a failed eigendecomposition.
pub fn classifier_two_sample(a: &[f32], b: &[f32], dim: usize, p: &TwoSampleParams) -> Result<TwoSample, MetricsError> {
    p.check()?;
    let n_a = rows("first set of the two-sample test", a, dim, 2 * p.folds)?;
    let n_b = rows("second set of the two-sample test", b, dim, 2 * p.folds)?;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let deal = |n: usize, rng: &mut ChaCha8Rng| -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let mut fold = vec![0; n];
        for (pos, &i) in order.iter().enumerate() {
            fold[i] = pos % p.folds;
        }
        fold
    };
    let (fold_a, fold_b) = (deal(n_a, &mut rng), deal(n_b, &mut rng));
    let (mut hits_a, mut hits_b) = (0usize, 0usize);
    for k in 0..p.folds {
        let split = |fold: &[usize]| -> (Vec<usize>, Vec<usize>) { (0..fold.len()).partition(|&i| fold[i] != k) };
        let ((tr_a, te_a), (tr_b, te_b)) = (split(&fold_a), split(&fold_b));
        let (xa, xb) = (take(a, dim, &tr_a), take(b, dim, &tr_b));
        let (mean, sd) = standardiser(&xa, &xb);
        let z = |x: Array2<f64>| (x - &mean) / &sd;
        let (w, c) = fit(&z(xa), &z(xb), p.shrinkage)?;
        hits_a += z(take(a, dim, &te_a)).dot(&w).iter().filter(|&&s| s > c).count();
        hits_b += z(take(b, dim, &te_b)).dot(&w).iter().filter(|&&s| s <= c).count();
    }
    let accuracy = 0.5 * (hits_a as f64 / n_a as f64 + hits_b as f64 / n_b as f64);
    Ok(TwoSample { accuracy, n_a, n_b, folds: p.folds })
}

//! Paired comparisons of classifier runs on the same test slices: the rows of an ablation
//! ("this ingredient off" against the recipe), with intervals that resample near-duplicate
//! groups, per split and as the mean over several splits (seeds).
//!
//! `train_cnn` writes each run's test scores as [`TestScores`] (`test_scores.json`);
//! [`compare_runs`] pairs a baseline's runs with a variant's, split by split (each pair must
//! hold the same test slices: same data, split and seed). The mean over splits is bootstrapped
//! by averaging replicate `r` of every split's (independent) group bootstrap, so its interval
//! narrows with the number of seeds as it should, and is not a mean of per-split intervals.

use std::path::Path;

use mri_metrics::{percentile_interval, subset_metrics, GroupBootstrap, Interval};
use serde::{Deserialize, Serialize};

use crate::report::Intervals;
use crate::SynthError;

/// One run's test scores, with what a paired comparison needs to check and resample them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestScores {
    /// Tumour scores (probabilities), one per test slice, in split order.
    pub scores: Vec<f64>,
    /// Labels (tumour = 1), same order.
    pub labels: Vec<u32>,
    /// Near-duplicate group id of each slice, same order.
    pub groups: Vec<String>,
    /// Predict tumour at `score >= threshold`.
    pub threshold: f64,
    /// Hash of the split the slices come from (the run's fingerprint): two runs are paired
    /// only when these agree.
    pub split_hash: String,
}

impl TestScores {
    /// Writes the scores as JSON.
    ///
    /// # Errors
    /// [`SynthError::Io`].
    pub fn write(&self, path: &Path) -> Result<(), SynthError> {
        let text = serde_json::to_string(self).expect("scores serialise");
        mri_preprocess::fsutil::write_atomic(path, text.as_bytes())?;
        Ok(())
    }

    /// Reads scores written by [`TestScores::write`].
    ///
    /// # Errors
    /// [`SynthError::Io`] for an unreadable file, [`SynthError::Invalid`] naming the file for
    /// bad JSON or lengths that disagree.
    pub fn read(path: &Path) -> Result<Self, SynthError> {
        let text = std::fs::read(path).map_err(|e| SynthError::Io { path: path.to_path_buf(), source: e })?;
        let s: TestScores = serde_json::from_slice(&text).map_err(|e| SynthError::Invalid(format!("{}: not test scores: {e}", path.display())))?;
        if s.scores.len() != s.labels.len() || s.groups.len() != s.labels.len() || s.scores.is_empty() {
            return Err(SynthError::Invalid(format!(
                "{}: {} scores, {} labels, {} groups: they must be equal and non-zero",
                path.display(),
                s.scores.len(),
                s.labels.len(),
                s.groups.len()
            )));
        }
        Ok(s)
    }

    fn truth(&self) -> Vec<bool> {
        self.labels.iter().map(|&l| l == 1).collect()
    }

    /// 95 % intervals of accuracy, F1 and AUROC from a bootstrap over the near-duplicate
    /// groups: a report row's intervals ([`Intervals::of`]), for one run.
    ///
    /// # Errors
    /// As [`GroupBootstrap::new`].
    pub fn intervals(&self, replicates: usize, seed: u64) -> Result<Intervals, SynthError> {
        let mut boot = GroupBootstrap::new(&self.groups, seed)?;
        boot.replicates = replicates;
        Ok(Intervals::of(&boot, &self.scores, &self.truth(), self.threshold))
    }
}

/// A statistic of one side, its difference to the other, and the difference's interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedStat {
    /// The baseline's value.
    pub baseline: f64,
    /// The variant's value.
    pub variant: f64,
    /// variant − baseline.
    pub difference: f64,
    /// 95 % interval of the difference (paired group bootstrap).
    pub ci: Option<Interval>,
}

/// One split's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitComparison {
    /// Accuracy at each run's threshold.
    pub accuracy: PairedStat,
    /// AUROC (`None` for a one-class test split).
    pub auroc: Option<PairedStat>,
    /// Test slices.
    pub slices: usize,
    /// Independent groups resampled.
    pub groups: usize,
}

/// A comparison over one or more splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    /// Per split, in the order given.
    pub splits: Vec<SplitComparison>,
    /// Means over splits; the interval bootstraps every split at once.
    pub mean_accuracy: PairedStat,
    /// Mean AUROC over splits (when every split has one).
    pub mean_auroc: Option<PairedStat>,
}

/// Compares `variant[i]` with `baseline[i]` for every split `i` (paired: the same test slices,
/// the same bootstrap replicates), and the means over splits.
///
/// # Errors
/// [`SynthError::Invalid`] for no runs, lists of different lengths, or a pair whose test slices
/// differ (split hash, labels or groups).
pub fn compare_runs(baseline: &[TestScores], variant: &[TestScores], replicates: usize, seed: u64) -> Result<RunComparison, SynthError> {
    if baseline.is_empty() || baseline.len() != variant.len() {
        return Err(SynthError::Invalid(format!(
            "compare {} baseline run(s) with {} variant run(s): need the same number, at least one",
            baseline.len(),
            variant.len()
        )));
    }
    let mut splits = Vec::new();
    // Replicate values of every split: [split][replicate] → (accuracy Δ, AUROC Δ).
    let mut acc_reps: Vec<Vec<Option<f64>>> = Vec::new();
    let mut auc_reps: Vec<Vec<Option<f64>>> = Vec::new();
    for (i, (b, v)) in baseline.iter().zip(variant).enumerate() {
        if b.split_hash != v.split_hash || b.labels != v.labels || b.groups != v.groups {
            return Err(SynthError::Invalid(format!("pair {i}: the two runs were scored on different test slices (other data, split or seed)")));
        }
        let truth = b.truth();
        let mut boot = GroupBootstrap::new(&b.groups, seed.wrapping_add(i as u64))?;
        boot.replicates = replicates;
        let all: Vec<usize> = (0..truth.len()).collect();
        let (mb, mv) = (subset_metrics(&b.scores, &truth, b.threshold, &all)?, subset_metrics(&v.scores, &truth, v.threshold, &all)?);
        let at = |s: &TestScores, idx: &[usize]| subset_metrics(&s.scores, &truth, s.threshold, idx).ok();
        let acc = boot.replicate_values(|idx| Some(at(v, idx)?.accuracy - at(b, idx)?.accuracy));
        let auc = boot.replicate_values(|idx| Some(at(v, idx)?.auroc? - at(b, idx)?.auroc?));
        let stat = |base: f64, var: f64, reps: &[Option<f64>]| PairedStat {
            baseline: base,
            variant: var,
            difference: var - base,
            ci: percentile_interval(&reps.iter().flatten().copied().collect::<Vec<_>>()),
        };
        splits.push(SplitComparison {
            accuracy: stat(mb.accuracy, mv.accuracy, &acc),
            auroc: mb.auroc.zip(mv.auroc).map(|(x, y)| stat(x, y, &auc)),
            slices: truth.len(),
            groups: boot.n_groups(),
        });
        acc_reps.push(acc);
        auc_reps.push(auc);
    }
    let n = splits.len() as f64;
    let mean_of =
        |reps: &[Vec<Option<f64>>]| -> Vec<f64> { (0..replicates).filter_map(|r| reps.iter().map(|s| s[r]).sum::<Option<f64>>().map(|t| t / n)).collect() };
    let mean = |f: &dyn Fn(&SplitComparison) -> Option<PairedStat>, reps: &[Vec<Option<f64>>]| -> Option<PairedStat> {
        let stats: Vec<PairedStat> = splits.iter().map(f).collect::<Option<_>>()?;
        let (b, v) = (stats.iter().map(|s| s.baseline).sum::<f64>() / n, stats.iter().map(|s| s.variant).sum::<f64>() / n);
        Some(PairedStat { baseline: b, variant: v, difference: v - b, ci: percentile_interval(&mean_of(reps)) })
    };
    let mean_accuracy = mean(&|s| Some(s.accuracy), &acc_reps).expect("accuracy is defined on every split");
    let mean_auroc = mean(&|s| s.auroc, &auc_reps);
    Ok(RunComparison { splits, mean_accuracy, mean_auroc })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scores: Vec<f64>, split: &str) -> TestScores {
        let n = scores.len();
        TestScores {
            scores,
            labels: (0..n).map(|i| (i % 2) as u32).collect(),
            groups: (0..n).map(|i| format!("g{}", i / 2)).collect(),
            threshold: 0.5,
            split_hash: split.into(),
        }
    }

    #[test]
    fn a_better_variant_has_a_positive_difference_and_identical_runs_none() {
        // 40 slices, 20 groups; labels alternate 0, 1. The baseline errs on 10 tumours, the
        // variant on none.
        let truthlike: Vec<f64> = (0..40).map(|i| if i % 2 == 1 { 0.9 } else { 0.1 }).collect();
        let mut worse = truthlike.clone();
        for i in (1..20).step_by(2) {
            worse[i] = 0.2;
        }
        let b = vec![run(worse.clone(), "s0"), run(worse, "s1")];
        let v = vec![run(truthlike.clone(), "s0"), run(truthlike, "s1")];
        let c = compare_runs(&b, &v, 500, 3).unwrap();
        assert_eq!(c.splits.len(), 2);
        assert!((c.splits[0].accuracy.baseline - 0.75).abs() < 1e-12 && (c.splits[0].accuracy.variant - 1.0).abs() < 1e-12);
        assert!((c.mean_accuracy.difference - 0.25).abs() < 1e-12);
        let ci = c.mean_accuracy.ci.unwrap();
        assert!(ci.low > 0.0 && ci.high <= 0.5 + 1e-12, "{ci:?}");
        // The mean over two splits is tighter than one split's interval.
        let one = c.splits[0].accuracy.ci.unwrap();
        assert!(ci.high - ci.low < one.high - one.low, "{ci:?} vs {one:?}");
        let same = compare_runs(&v, &v, 200, 3).unwrap();
        assert_eq!(same.mean_accuracy.difference, 0.0);
        assert_eq!(same.mean_accuracy.ci, Some(Interval { low: 0.0, high: 0.0 }));
    }

    #[test]
    fn runs_on_other_slices_are_refused() {
        let a = run(vec![0.1, 0.9, 0.2, 0.8], "s0");
        let e = compare_runs(std::slice::from_ref(&a), &[run(vec![0.1, 0.9, 0.2, 0.8], "s1")], 10, 0).unwrap_err().to_string();
        assert!(e.contains("different test slices"), "{e}");
        assert!(compare_runs(std::slice::from_ref(&a), &[], 10, 0).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("test_scores.json");
        a.write(&p).unwrap();
        assert_eq!(TestScores::read(&p).unwrap(), a);
        std::fs::write(&p, r#"{"scores":[0.1],"labels":[],"groups":[],"threshold":0.5,"split_hash":"x"}"#).unwrap();
        let e = TestScores::read(&p).unwrap_err().to_string();
        assert!(e.contains("test_scores.json") && e.contains("1 scores, 0 labels"), "{e}");
        // A run's own intervals contain its point estimates.
        let iv = run(
            (0..40)
                .map(|i| {
                    if i % 5 == 0 {
                        0.6
                    } else if i % 2 == 1 {
                        0.9
                    } else {
                        0.1
                    }
                })
                .collect(),
            "s",
        )
        .intervals(300, 1)
        .unwrap();
        let acc = iv.accuracy.unwrap();
        assert!(acc.low < 0.9 && 0.9 < acc.high && acc.high <= 1.0, "{iv}");
        assert_eq!(iv.groups, 20);
    }
}

//! Percentile bootstrap intervals that resample **groups**, not items. Near-duplicate slices of
//! one group are not independent evidence: Br35H's ~3000 files hold ~550 distinct slices, so a
//! test split is ~100 independent groups, and an interval over images would be far too narrow.
//! Paired intervals compare two classifiers on the very same resampled slices.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{auroc, Confusion, MetricsError};

/// A 95 % percentile interval (2.5th and 97.5th percentiles of the bootstrap distribution).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// Group-bootstrap settings. Items carry a group id; each replicate draws as many groups as
/// there are, with replacement, and takes all items of each drawn group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBootstrap {
    members: Vec<Vec<usize>>,
    /// Replicates (default 1000).
    pub replicates: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

impl GroupBootstrap {
    /// Groups from one id per item (any type with an order: strings, numbers).
    ///
    /// # Errors
    /// [`MetricsError::Empty`] when there are no items.
    pub fn new<G: Ord + Clone>(groups: &[G], seed: u64) -> Result<Self, MetricsError> {
        if groups.is_empty() {
            return Err(MetricsError::Empty);
        }
        let mut by: BTreeMap<G, Vec<usize>> = BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            by.entry(g.clone()).or_default().push(i);
        }
        Ok(GroupBootstrap { members: by.into_values().collect(), replicates: 1000, seed })
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.members.len()
    }

    /// The item indices of each replicate, in order (the same for every statistic: paired).
    fn samples(&self) -> impl Iterator<Item = Vec<usize>> + '_ {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        (0..self.replicates).map(move |_| {
            let mut idx = Vec::new();
            for _ in 0..self.members.len() {
                idx.extend_from_slice(&self.members[rng.gen_range(0..self.members.len())]);
            }
            idx
        })
    }

    /// The interval of `stat` over replicates; replicates where `stat` is `None` (e.g. AUROC
    /// of a one-class sample) are left out; `None` when every one is.
    pub fn interval(&self, stat: impl Fn(&[usize]) -> Option<f64>) -> Option<Interval> {
        let v: Vec<f64> = self.replicate_values(stat).into_iter().flatten().collect();
        percentile_interval(&v)
    }

    /// `stat` on every replicate, in replicate order (`None` where it is undefined or not
    /// finite). Replicate `r` of two bootstraps over independent test splits can be combined,
    /// e.g. averaged, to bootstrap a statistic over several splits (a mean over seeds).
    pub fn replicate_values(&self, stat: impl Fn(&[usize]) -> Option<f64>) -> Vec<Option<f64>> {
        self.samples().map(|idx| stat(&idx).filter(|x| x.is_finite())).collect()
    }
}

/// The 95 % percentile interval (2.5th and 97.5th percentiles) of bootstrap replicate values;
/// non-finite values are left out, `None` when none is left.
pub fn percentile_interval(values: &[f64]) -> Option<Interval> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Some(Interval { low: q(0.025), high: q(0.975) })
}

/// Metrics of scores at a threshold on the items `idx` (the statistics the report bootstraps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubsetMetrics {
    /// Accuracy.
    pub accuracy: f64,
    /// F1 of the positive class.
    pub f1: f64,
    /// AUROC; `None` when the subset holds one class.
    pub auroc: Option<f64>,
}

/// [`SubsetMetrics`] of `scores` against `truth` on the items `idx`, tumour at `score >= threshold`.
pub fn subset_metrics(scores: &[f64], truth: &[bool], threshold: f64, idx: &[usize]) -> Result<SubsetMetrics, MetricsError> {
    let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
    let t: Vec<bool> = idx.iter().map(|&i| truth[i]).collect();
    let c = Confusion::from_scores(&s, &t, threshold)?;
    let both = t.iter().any(|&b| b) && t.iter().any(|&b| !b);
    Ok(SubsetMetrics { accuracy: c.accuracy(), f1: c.f1(), auroc: if both { Some(auroc(&s, &t)?) } else { None } })
}

//! The four techniques: checked parameters → `fit` on validation maps → a fitted detector with
//! one operating point → `score` / `predict` on any other set.

use mri_metrics::{choose_threshold, OperatingPoint, ThresholdCriterion};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::{dbscan_grid, kmeans2, kmeans2_dense};
use crate::maps::ErrorMaps;
use crate::{ClusterError, Result};

fn check_labels(maps: &ErrorMaps, labels: &[bool]) -> Result<()> {
    if maps.is_empty() || maps.len() != labels.len() {
        return Err(ClusterError::InvalidInput(format!("{} maps but {} labels (need at least one of each)", maps.len(), labels.len())));
    }
    if !labels.iter().any(|&l| l) || labels.iter().all(|&l| l) {
        return Err(ClusterError::InvalidInput("fitting needs both tumour and healthy maps".into()));
    }
    Ok(())
}

fn check_unit_grid(name: &'static str, v: &[f32]) -> Result<()> {
    if v.is_empty() || v.iter().any(|t| !(0.0..1.0).contains(t)) {
        return Err(ClusterError::InvalidParameter { name, reason: format!("needs one or more values in [0, 1), got {v:?}") });
    }
    Ok(())
}

/// How good a candidate parameter is on validation data: the criterion at its operating point
/// first, then (to break ties, common when validation maps separate perfectly) the AUROC and
/// the normalised gap between the lowest tumour score and the highest healthy score — so
/// that among equally good parameters the one with the widest separation is kept.
fn rank(scores: &[f64], labels: &[bool], op: &OperatingPoint) -> (f64, f64, f64) {
    let auroc = mri_metrics::auroc(scores, labels).unwrap_or(0.5);
    let lo_pos = scores.iter().zip(labels).filter(|(_, &l)| l).map(|(s, _)| *s).fold(f64::INFINITY, f64::min);
    let hi_neg = scores.iter().zip(labels).filter(|(_, &l)| !l).map(|(s, _)| *s).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| (a.min(s), b.max(s)));
    (op.value, auroc, (lo_pos - hi_neg) / (hi - lo).max(1e-12))
}

/// Keeps the best candidate by [`rank`].
struct Best<T> {
    item: Option<(T, (f64, f64, f64))>,
}

impl<T> Best<T> {
    fn new() -> Self {
        Best { item: None }
    }
    fn offer(&mut self, item: T, key: (f64, f64, f64)) {
        if self.item.as_ref().is_none_or(|(_, k)| key.partial_cmp(k) == Some(std::cmp::Ordering::Greater)) {
            self.item = Some((item, key));
        }
    }
    fn take(self) -> T {
        self.item.expect("non-empty grid").0
    }
}

/// Moves an operating threshold chosen at a score value to the midpoint of the gap below it,
/// so that new data just under the lowest validation tumour score is not cut off by the edge.
fn centre_threshold(mut op: OperatingPoint, scores: &[f64]) -> OperatingPoint {
    let below = scores.iter().copied().filter(|&s| s < op.threshold).fold(f64::NEG_INFINITY, f64::max);
    if below.is_finite() {
        op.threshold = (op.threshold + below) / 2.0;
    }
    op
}

// ---------------------------------------------------------------- GIAEM

/// GIAEM parameters: the anomaly thresholds searched (on normalised errors) and the criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GiaemParams {
    /// Candidate pixel-anomaly thresholds.
    pub anomaly_thresholds: Vec<f32>,
    /// Criterion of the operating point.
    pub criterion: ThresholdCriterion,
}

impl Default for GiaemParams {
    fn default() -> Self {
        GiaemParams { anomaly_thresholds: (1..19).map(|i| i as f32 * 0.05).collect(), criterion: ThresholdCriterion::BalancedAccuracy }
    }
}

impl GiaemParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        check_unit_grid("anomaly_thresholds", &self.anomaly_thresholds)
    }

    /// Chooses the anomaly threshold and the tumour-fraction threshold on validation maps.
    pub fn fit(&self, maps: &ErrorMaps, labels: &[bool]) -> Result<Giaem> {
        self.check()?;
        check_labels(maps, labels)?;
        let mut best = Best::new();
        for &t in &self.anomaly_thresholds {
            let d = Giaem { anomaly_threshold: t, operating_point: None };
            let scores = d.score(maps);
            let op = centre_threshold(choose_threshold(&scores, labels, self.criterion)?, &scores);
            let key = rank(&scores, labels, &op);
            best.offer(Giaem { anomaly_threshold: t, operating_point: Some(op) }, key);
        }
        Ok(best.take())
    }
}

/// A fitted GIAEM detector. Score: fraction of region pixels whose error exceeds the anomaly
/// threshold; tumour when it reaches the operating point's tumour-fraction threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Giaem {
    /// Pixel anomaly threshold.
    pub anomaly_threshold: f32,
    /// Operating point (tumour-fraction threshold) chosen on validation data.
    pub operating_point: Option<OperatingPoint>,
}

impl Giaem {
    /// Continuous scores.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        (0..maps.len())
            .into_par_iter()
            .map(|i| {
                let above = maps.map(i).iter().zip(maps.region(i)).filter(|(&e, &r)| r && e > self.anomaly_threshold).count();
                above as f64 / maps.region_size(i) as f64
            })
            .collect()
    }
}

// ---------------------------------------------------------------- DBSCAN

/// DBSCAN parameters. Each map's region pixels with error ≥ a high-error threshold become
/// points (x, y, error·`error_scale`) in **pixel units**; `eps` is in pixel spacings.
///
/// Why pixel units: neighbouring pixels are exactly 1 apart, so `eps` ≥ 1 is needed to link
/// any two pixels and 1.5 links a pixel to its 8-neighbourhood. The study scaled coordinates
/// by 1/254 and used eps 0.005 (≈ 1.3 spacings) with min_samples 120, which no neighbourhood
/// can reach (at most 5 grid points lie within 1.3 spacings), so it never found a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbscanParams {
    /// Candidate high-error thresholds (which pixels become points).
    pub high_error_thresholds: Vec<f32>,
    /// Neighbourhood radius in pixel spacings.
    pub eps: f32,
    /// Points (itself included) a core point needs within `eps`.
    pub min_points: usize,
    /// Pixel spacings per unit of error (0.1 error difference = 1 spacing at 10).
    pub error_scale: f32,
    /// Criterion of the operating point.
    pub criterion: ThresholdCriterion,
}

impl Default for DbscanParams {
    fn default() -> Self {
        DbscanParams {
            high_error_thresholds: vec![0.2, 0.3, 0.4, 0.5, 0.6],
            eps: 1.5,
            min_points: 5,
            error_scale: 10.0,
            criterion: ThresholdCriterion::BalancedAccuracy,
        }
    }
}

impl DbscanParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        check_unit_grid("high_error_thresholds", &self.high_error_thresholds)?;
        if !(self.eps >= 1.0 && self.eps.is_finite()) {
            return Err(ClusterError::InvalidParameter {
                name: "eps",
                reason: format!("must be ≥ 1 pixel spacing (neighbouring pixels are 1 apart), got {}", self.eps),
            });
        }
        if self.min_points < 2 || !(self.error_scale >= 0.0 && self.error_scale.is_finite()) {
            return Err(ClusterError::InvalidParameter {
                name: "min_points/error_scale",
                reason: format!("need min_points ≥ 2 and error_scale ≥ 0, got {} and {}", self.min_points, self.error_scale),
            });
        }
        Ok(())
    }

    /// Chooses the high-error threshold and the cluster-size threshold on validation maps.
    pub fn fit(&self, maps: &ErrorMaps, labels: &[bool]) -> Result<Dbscan> {
        self.check()?;
        check_labels(maps, labels)?;
        let mut best = Best::new();
        for &t in &self.high_error_thresholds {
            let d = Dbscan { high_error_threshold: t, eps: self.eps, min_points: self.min_points, error_scale: self.error_scale, operating_point: None };
            let scores = d.score(maps);
            let op = centre_threshold(choose_threshold(&scores, labels, self.criterion)?, &scores);
            let key = rank(&scores, labels, &op);
            best.offer(Dbscan { operating_point: Some(op), ..d }, key);
        }
        Ok(best.take())
    }
}

/// A fitted DBSCAN detector. Score: size of the largest cluster of high-error pixels as a
/// fraction of the region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dbscan {
    /// Pixels with error ≥ this become points.
    pub high_error_threshold: f32,
    /// Radius in pixel spacings.
    pub eps: f32,
    /// Core-point count.
    pub min_points: usize,
    /// Pixel spacings per unit error.
    pub error_scale: f32,
    /// Operating point chosen on validation data.
    pub operating_point: Option<OperatingPoint>,
}

impl Dbscan {
    /// Largest cluster of one map, in pixels.
    pub fn largest_cluster(&self, maps: &ErrorMaps, i: usize) -> usize {
        let s = maps.side;
        let pts: Vec<(u16, u16, f32)> = maps
            .map(i)
            .iter()
            .zip(maps.region(i))
            .enumerate()
            .filter(|(_, (&e, &r))| r && e >= self.high_error_threshold)
            .map(|(k, (&e, _))| ((k % s) as u16, (k / s) as u16, e))
            .collect();
        let labels = dbscan_grid(&pts, s, self.error_scale, self.eps, self.min_points);
        let mut sizes = std::collections::HashMap::new();
        for l in labels.into_iter().flatten() {
            *sizes.entry(l).or_insert(0usize) += 1;
        }
        sizes.values().copied().max().unwrap_or(0)
    }

    /// Continuous scores.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        (0..maps.len()).into_par_iter().map(|i| self.largest_cluster(maps, i) as f64 / maps.region_size(i) as f64).collect()
    }
}

// ---------------------------------------------------------------- per-image KMeans

/// Per-image ("singular-example") KMeans parameters: k = 2 on each map's region pixels as
/// points (error, x·w/S, y·w/S) for each candidate coordinate weight w.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansParams {
    /// Candidate coordinate weights (0 = cluster on error alone; 1 = the study's (error, x, y)
    /// with coordinates scaled to [0, 1]).
    pub coordinate_weights: Vec<f32>,
    /// KMeans initialisations per map (best inertia kept).
    pub n_init: usize,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Seed of the initialisations.
    pub seed: u64,
    /// Criterion of the operating point.
    pub criterion: ThresholdCriterion,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams { coordinate_weights: vec![0.0, 0.25, 1.0], n_init: 1, max_iter: 50, seed: 0, criterion: ThresholdCriterion::BalancedAccuracy }
    }
}

impl KMeansParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        if self.coordinate_weights.is_empty() || self.coordinate_weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(ClusterError::InvalidParameter {
                name: "coordinate_weights",
                reason: format!("need one or more finite values ≥ 0, got {:?}", self.coordinate_weights),
            });
        }
        if self.n_init == 0 || self.max_iter == 0 {
            return Err(ClusterError::InvalidParameter { name: "n_init/max_iter", reason: "must be positive".into() });
        }
        Ok(())
    }

    /// Chooses the coordinate weight and the anomalous-fraction threshold on validation maps.
    pub fn fit(&self, maps: &ErrorMaps, labels: &[bool]) -> Result<PerImageKMeans> {
        self.check()?;
        check_labels(maps, labels)?;
        let mut best = Best::new();
        for &w in &self.coordinate_weights {
            let mut d =
                PerImageKMeans { coordinate_weight: w, n_init: self.n_init, max_iter: self.max_iter, seed: self.seed, polarity: 1.0, operating_point: None };
            let mut scores = d.score(maps);
            // Which direction means tumour is read off the validation labels (see `polarity`).
            if mri_metrics::auroc(&scores, labels)? < 0.5 {
                d.polarity = -1.0;
                scores.iter_mut().for_each(|s| *s = -*s);
            }
            let op = centre_threshold(choose_threshold(&scores, labels, self.criterion)?, &scores);
            let key = rank(&scores, labels, &op);
            best.offer(PerImageKMeans { operating_point: Some(op), ..d }, key);
        }
        Ok(best.take())
    }
}

/// A fitted per-image KMeans detector. Score: the anomalous cluster's share of the region,
/// the anomalous cluster being the one whose centroid has the **higher error** (never "cluster
/// id 1": KMeans numbers its clusters arbitrarily), times `polarity`.
///
/// Why a polarity: k = 2 always splits a map in two. On a map with a compact hot region the
/// hot cluster is that region (a small share); on a map of plain noise the split falls near
/// the middle of the error range (a large share). So a *larger* share can mean *less*
/// tumour; the direction is decided on validation data, like global KMeans' tumour cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerImageKMeans {
    /// Coordinate weight.
    pub coordinate_weight: f32,
    /// Initialisations.
    pub n_init: usize,
    /// Iterations at most.
    pub max_iter: usize,
    /// Seed.
    pub seed: u64,
    /// +1 when a larger anomalous share means tumour on validation data, −1 otherwise.
    pub polarity: f64,
    /// Operating point chosen on validation data.
    pub operating_point: Option<OperatingPoint>,
}

impl PerImageKMeans {
    /// The points of map `i`: (error, x·w/S, y·w/S) for region pixels.
    pub fn points(&self, maps: &ErrorMaps, i: usize) -> Vec<[f32; 3]> {
        let s = maps.side;
        let w = self.coordinate_weight / s as f32;
        maps.map(i).iter().zip(maps.region(i)).enumerate().filter(|(_, (_, &r))| r).map(|(k, (&e, _))| [e, (k % s) as f32 * w, (k / s) as f32 * w]).collect()
    }

    /// Anomalous share of map `i`.
    pub fn anomalous_fraction(&self, maps: &ErrorMaps, i: usize) -> f64 {
        let pts = self.points(maps, i);
        if pts.is_empty() {
            return 0.0;
        }
        let km = kmeans2(&pts, self.n_init, self.max_iter, self.seed ^ i as u64);
        let hot = u8::from(km.centroids[1][0] > km.centroids[0][0]);
        km.assignment.iter().filter(|&&a| a == hot).count() as f64 / pts.len() as f64
    }

    /// Continuous scores.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        (0..maps.len()).into_par_iter().map(|i| self.polarity * self.anomalous_fraction(maps, i)).collect()
    }
}

// ---------------------------------------------------------------- global KMeans

/// Global KMeans parameters: k = 2 across the binarised maps (error > anomaly threshold inside
/// the region) of the whole validation set; which cluster means tumour is read off the
/// validation labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalKMeansParams {
    /// Candidate binarisation thresholds.
    pub anomaly_thresholds: Vec<f32>,
    /// The study's α distance rule: tumour when d(tumour centroid) < α · d(healthy centroid),
    /// α chosen on validation data by the criterion. Off: the nearest centroid decides (α = 1).
    pub alpha_rule: bool,
    /// KMeans initialisations.
    pub n_init: usize,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Seed.
    pub seed: u64,
    /// Criterion of the operating point (and of the threshold search).
    pub criterion: ThresholdCriterion,
}

impl Default for GlobalKMeansParams {
    fn default() -> Self {
        GlobalKMeansParams {
            anomaly_thresholds: vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
            alpha_rule: false,
            n_init: 10,
            max_iter: 100,
            seed: 0,
            criterion: ThresholdCriterion::BalancedAccuracy,
        }
    }
}

fn binarise(maps: &ErrorMaps, t: f32) -> Vec<f32> {
    maps.errors.iter().zip(&maps.region).map(|(&e, &r)| if r && e > t { 1.0 } else { 0.0 }).collect()
}

impl GlobalKMeansParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        check_unit_grid("anomaly_thresholds", &self.anomaly_thresholds)?;
        if self.n_init == 0 || self.max_iter == 0 {
            return Err(ClusterError::InvalidParameter { name: "n_init/max_iter", reason: "must be positive".into() });
        }
        Ok(())
    }

    /// Clusters the validation maps, names the tumour cluster by the labels, and chooses the
    /// threshold (and α with the α rule) by the criterion.
    pub fn fit(&self, maps: &ErrorMaps, labels: &[bool]) -> Result<GlobalKMeans> {
        self.check()?;
        check_labels(maps, labels)?;
        let dim = maps.side * maps.side;
        let mut best = Best::new();
        for &t in &self.anomaly_thresholds {
            let rows = binarise(maps, t);
            let (centroids, assignment, _) = kmeans2_dense(&rows, dim, self.n_init, self.max_iter, self.seed);
            // The tumour cluster holds the larger share of tumour maps (ties: more anomalous pixels).
            let share = |k: u8| {
                let members: Vec<usize> = (0..labels.len()).filter(|&i| assignment[i] == k).collect();
                let tum = members.iter().filter(|&&i| labels[i]).count() as f64;
                (if members.is_empty() { 0.0 } else { tum / members.len() as f64 }, centroids[k as usize].iter().sum::<f32>())
            };
            let (s0, s1) = (share(0), share(1));
            let tumour = if s1.0 > s0.0 || (s1.0 == s0.0 && s1.1 > s0.1) { 1 } else { 0 };
            let mut d = GlobalKMeans {
                anomaly_threshold: t,
                tumour_centroid: centroids[tumour].clone(),
                healthy_centroid: centroids[1 - tumour].clone(),
                alpha: 1.0,
                operating_point: None,
            };
            let scores = d.score(maps);
            let op = if self.alpha_rule {
                centre_threshold(choose_threshold(&scores, labels, self.criterion)?, &scores)
            } else {
                // Nearest centroid: score ≥ 0 ⇔ d_tumour ≤ d_healthy.
                fixed_point(&scores, labels, 0.0, self.criterion)?
            };
            d.alpha = (-op.threshold).exp();
            let key = rank(&scores, labels, &op);
            d.operating_point = Some(op);
            best.offer(d, key);
        }
        Ok(best.take())
    }
}

/// The operating point of a fixed threshold.
fn fixed_point(scores: &[f64], labels: &[bool], threshold: f64, criterion: ThresholdCriterion) -> Result<OperatingPoint> {
    let pred: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
    let confusion = mri_metrics::Confusion::from_predictions(labels, &pred)?;
    Ok(OperatingPoint { threshold, criterion, value: confusion.metric(criterion.metric()), confusion })
}

/// A fitted global KMeans detector. Score: ln(d_healthy / d_tumour), the log-ratio of a map's
/// distances to the two centroids (> 0 when nearer the tumour centroid); tumour when the score
/// reaches the operating threshold, i.e. when d_tumour ≤ α · d_healthy with α = e^−threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalKMeans {
    /// Binarisation threshold.
    pub anomaly_threshold: f32,
    /// Centroid of the tumour cluster (S² values).
    pub tumour_centroid: Vec<f32>,
    /// Centroid of the healthy cluster.
    pub healthy_centroid: Vec<f32>,
    /// The α of the distance rule (1 = nearest centroid).
    pub alpha: f64,
    /// Operating point chosen on validation data.
    pub operating_point: Option<OperatingPoint>,
}

impl GlobalKMeans {
    /// Continuous scores.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        let dim = maps.side * maps.side;
        let rows = binarise(maps, self.anomaly_threshold);
        rows.par_chunks(dim)
            .map(|r| {
                let d = |c: &[f32]| r.iter().zip(c).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>().sqrt() + 1e-9;
                (d(&self.healthy_centroid) / d(&self.tumour_centroid)).ln()
            })
            .collect()
    }
}

// ---------------------------------------------------------------- percentile

/// Percentile parameters: the in-region quantiles searched and the criterion.
///
/// The plainest reading of a map: one high quantile of its values inside the head. On the
/// slice's own intensities (maps made with [`crate::ErrorMaps::from_reconstructions`] against a
/// zero reconstruction, not normalised) it is the intensity baseline that Meissen et al.
/// ("Challenging current semi-supervised anomaly segmentation methods for brain MRI", 2021)
/// found hard to beat; on residual maps it is the plain residual score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileParams {
    /// Candidate quantiles in (0, 1].
    pub quantiles: Vec<f32>,
    /// Operating-point criterion.
    pub criterion: ThresholdCriterion,
}

impl Default for PercentileParams {
    fn default() -> Self {
        PercentileParams { quantiles: vec![0.9, 0.95, 0.98, 0.99, 0.995, 1.0], criterion: ThresholdCriterion::BalancedAccuracy }
    }
}

impl PercentileParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        if self.quantiles.is_empty() || self.quantiles.iter().any(|q| !(*q > 0.0 && *q <= 1.0)) {
            return Err(ClusterError::InvalidParameter { name: "quantiles", reason: format!("needs one or more values in (0, 1], got {:?}", self.quantiles) });
        }
        Ok(())
    }

    /// Chooses the quantile and the operating point on validation maps.
    pub fn fit(&self, maps: &ErrorMaps, labels: &[bool]) -> Result<Percentile> {
        self.check()?;
        check_labels(maps, labels)?;
        let mut best = Best::new();
        for &q in &self.quantiles {
            let d = Percentile { quantile: q, operating_point: None };
            let scores = d.score(maps);
            let op = centre_threshold(choose_threshold(&scores, labels, self.criterion)?, &scores);
            let key = rank(&scores, labels, &op);
            best.offer(Percentile { quantile: q, operating_point: Some(op) }, key);
        }
        Ok(best.take())
    }
}

/// A fitted percentile detector. Score: the chosen quantile of the map's values inside its
/// region (nearest rank); tumour when it reaches the operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// Quantile in (0, 1].
    pub quantile: f32,
    /// Operating point chosen on validation data.
    pub operating_point: Option<OperatingPoint>,
}

impl Percentile {
    /// Continuous scores.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        (0..maps.len())
            .into_par_iter()
            .map(|i| {
                let mut v: Vec<f32> = maps.map(i).iter().zip(maps.region(i)).filter(|(_, &r)| r).map(|(&e, _)| e).collect();
                if v.is_empty() {
                    return 0.0;
                }
                let k = ((self.quantile * v.len() as f32).ceil() as usize).clamp(1, v.len()) - 1;
                let (_, kth, _) = v.select_nth_unstable_by(k, f32::total_cmp);
                f64::from(*kth)
            })
            .collect()
    }
}

// ---------------------------------------------------------------- one interface

/// Any fitted technique, serialisable to JSON (tagged by `technique`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "technique", rename_all = "kebab-case")]
pub enum Detector {
    /// GIAEM.
    Giaem(Giaem),
    /// DBSCAN.
    Dbscan(Dbscan),
    /// Per-image KMeans.
    Kmeans(PerImageKMeans),
    /// Global KMeans.
    GlobalKmeans(GlobalKMeans),
    /// A quantile of the map (the plain residual score, or the intensity baseline).
    Percentile(Percentile),
}

/// The four techniques by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technique {
    /// GIAEM.
    Giaem,
    /// DBSCAN.
    Dbscan,
    /// Per-image KMeans.
    Kmeans,
    /// Global KMeans.
    GlobalKmeans,
    /// A high quantile of the map.
    Percentile,
}

impl Technique {
    /// The study's four, in its order, then the plain percentile score.
    pub const ALL: [Technique; 5] = [Technique::Giaem, Technique::Dbscan, Technique::Kmeans, Technique::GlobalKmeans, Technique::Percentile];

    /// Report name: `vae-giaem`, `vae-dbscan`, `vae-kmeans`, `vae-global-kmeans`, `vae-percentile`.
    pub fn model_name(self) -> &'static str {
        match self {
            Technique::Giaem => "vae-giaem",
            Technique::Dbscan => "vae-dbscan",
            Technique::Kmeans => "vae-kmeans",
            Technique::GlobalKmeans => "vae-global-kmeans",
            Technique::Percentile => "vae-percentile",
        }
    }

    /// Fits the technique with its default parameters and this criterion.
    pub fn fit_default(self, maps: &ErrorMaps, labels: &[bool], criterion: ThresholdCriterion) -> Result<Detector> {
        Ok(match self {
            Technique::Giaem => Detector::Giaem(GiaemParams { criterion, ..Default::default() }.fit(maps, labels)?),
            Technique::Dbscan => Detector::Dbscan(DbscanParams { criterion, ..Default::default() }.fit(maps, labels)?),
            Technique::Kmeans => Detector::Kmeans(KMeansParams { criterion, ..Default::default() }.fit(maps, labels)?),
            Technique::GlobalKmeans => Detector::GlobalKmeans(GlobalKMeansParams { criterion, ..Default::default() }.fit(maps, labels)?),
            Technique::Percentile => Detector::Percentile(PercentileParams { criterion, ..Default::default() }.fit(maps, labels)?),
        })
    }
}

impl Detector {
    /// Continuous tumour scores (higher = more tumour-like), for AUROC.
    pub fn score(&self, maps: &ErrorMaps) -> Vec<f64> {
        match self {
            Detector::Giaem(d) => d.score(maps),
            Detector::Dbscan(d) => d.score(maps),
            Detector::Kmeans(d) => d.score(maps),
            Detector::GlobalKmeans(d) => d.score(maps),
            Detector::Percentile(d) => d.score(maps),
        }
    }

    /// The operating point chosen on validation data.
    pub fn operating_point(&self) -> Option<&OperatingPoint> {
        match self {
            Detector::Giaem(d) => d.operating_point.as_ref(),
            Detector::Dbscan(d) => d.operating_point.as_ref(),
            Detector::Kmeans(d) => d.operating_point.as_ref(),
            Detector::GlobalKmeans(d) => d.operating_point.as_ref(),
            Detector::Percentile(d) => d.operating_point.as_ref(),
        }
    }

    /// Tumour decisions at the operating point.
    ///
    /// # Errors
    /// [`ClusterError::NotFitted`] for a detector built without an operating point.
    pub fn predict(&self, maps: &ErrorMaps) -> Result<Vec<bool>> {
        let t = self.operating_point().ok_or(ClusterError::NotFitted)?.threshold;
        Ok(self.score(maps).into_iter().map(|s| s >= t).collect())
    }

    /// Which technique.
    pub fn technique(&self) -> Technique {
        match self {
            Detector::Giaem(_) => Technique::Giaem,
            Detector::Dbscan(_) => Technique::Dbscan,
            Detector::Kmeans(_) => Technique::Kmeans,
            Detector::GlobalKmeans(_) => Technique::GlobalKmeans,
            Detector::Percentile(_) => Technique::Percentile,
        }
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("detector serialises")
    }

    /// From the JSON form.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| ClusterError::InvalidInput(format!("not a fitted detector: {e}")))
    }
}

/// A fitted detector together with the error-map options it was fitted on: what
/// `mixed_experiment` and `vae_anomaly` save, and what `evaluate` reads back, so that new maps
/// are made exactly as the fitted ones were (head only or whole image, normalised or not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorFile {
    /// How the error maps were made.
    pub error_maps: crate::ErrorMapOptions,
    /// The fitted technique and its operating point.
    pub detector: Detector,
}

impl DetectorFile {
    /// Writes the JSON form (atomically: a temporary file and a rename).
    ///
    /// # Errors
    /// [`ClusterError::File`] naming the file.
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("detector serialises");
        let fail = |e: std::io::Error| ClusterError::File { path: path.to_path_buf(), reason: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }

    /// Reads a file written by [`DetectorFile::write`].
    ///
    /// # Errors
    /// [`ClusterError::File`] naming the file and the reason (unreadable, not JSON, not a
    /// fitted detector with its error-map options).
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let fail = |reason: String| ClusterError::File { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(format!("not a fitted detector with its error-map options: {e}")))
    }
}

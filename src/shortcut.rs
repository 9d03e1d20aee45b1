//! Shortcut checks: what a classifier learns from the *files* rather than from the brain.
//!
//! Br35H's `no/` images are more often square, smaller and letterboxed than its `yes/` images
//! (`../shared/data/README.md`). A CNN sees only the preprocessed slice, but preprocessing keeps
//! traces of the original geometry (how much of the square the head fills, interpolation
//! blur), so a classifier could score by geometry instead of by tumour. The geometry baseline
//! measures how far that cue alone goes on the same split: a k-nearest-neighbour classifier on
//! five features of each original file, with k chosen on validation. A CNN is only as good as
//! its margin over this row.

use mri_preprocess::{Geometry, SplitPart};
use serde::{Deserialize, Serialize};

use crate::data::PreparedData;
use crate::eval::TestMetrics;
use crate::SynthError;

/// Names of [`geometry_features`], in order.
pub const GEOMETRY_FEATURES: [&str; 5] = ["ln width", "ln height", "aspect ratio (width / height)", "letterbox fraction x", "letterbox fraction y"];

/// The k tried, in order; validation AUROC picks one (the first of the best).
pub const K_CANDIDATES: [usize; 5] = [1, 5, 15, 31, 63];

/// Geometry features of one original file: ln width, ln height, aspect ratio, and the fraction
/// of each axis outside the head box (letterbox bars, margins).
pub fn geometry_features(g: &Geometry) -> [f64; 5] {
    let (w, h) = (f64::from(g.width.max(1)), f64::from(g.height.max(1)));
    let [x0, y0, x1, y1] = g.bbox;
    [w.ln(), h.ln(), w / h, 1.0 - f64::from(x1.saturating_sub(x0)) / w, 1.0 - f64::from(y1.saturating_sub(y0)) / h]
}

/// k-nearest neighbours on standardised features (z-scores from the training rows): the score
/// of a row is the tumour fraction among its k nearest training rows (Euclidean; equal
/// distances are broken by training order, so scores are deterministic).
#[derive(Debug, Clone)]
pub struct GeometryKnn {
    k: usize,
    mean: [f64; 5],
    scale: [f64; 5],
    train: Vec<[f64; 5]>,
    labels: Vec<u32>,
}

impl GeometryKnn {
    /// Fits on `train` rows with their labels (1 = tumour).
    ///
    /// # Errors
    /// `k` of 0 or above the number of rows; rows and labels of different lengths.
    pub fn fit(train: &[[f64; 5]], labels: &[u32], k: usize) -> Result<Self, SynthError> {
        if train.len() != labels.len() {
            return Err(SynthError::Invalid(format!("{} feature rows but {} labels", train.len(), labels.len())));
        }
        if k == 0 || k > train.len() {
            return Err(SynthError::Invalid(format!("k must be in 1..={}, got {k}", train.len())));
        }
        let n = train.len() as f64;
        let mut mean = [0.0; 5];
        let mut scale = [0.0; 5];
        for j in 0..5 {
            mean[j] = train.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = train.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
            // A constant feature carries no information: scale 1 keeps it at 0 for everyone.
            scale[j] = if var > 0.0 { var.sqrt() } else { 1.0 };
        }
        let z = |r: &[f64; 5]| std::array::from_fn(|j| (r[j] - mean[j]) / scale[j]);
        Ok(GeometryKnn { k, mean, scale, train: train.iter().map(z).collect(), labels: labels.to_vec() })
    }

    /// The tumour fraction among the k nearest training rows of `row`.
    pub fn score(&self, row: &[f64; 5]) -> f64 {
        let z: [f64; 5] = std::array::from_fn(|j| (row[j] - self.mean[j]) / self.scale[j]);
        let mut d: Vec<(f64, usize)> = self.train.iter().enumerate().map(|(i, t)| (t.iter().zip(&z).map(|(a, b)| (a - b).powi(2)).sum::<f64>(), i)).collect();
        d.select_nth_unstable_by(self.k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d[..self.k].iter().filter(|(_, i)| self.labels[*i] == 1).count() as f64 / self.k as f64
    }

    /// [`GeometryKnn::score`] of every row.
    pub fn scores(&self, rows: &[[f64; 5]]) -> Vec<f64> {
        rows.iter().map(|r| self.score(r)).collect()
    }
}

/// The geometry baseline's result on one split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeometryBaseline {
    /// The k validation picked.
    pub k: usize,
    /// Validation AUROC of each k tried, in [`K_CANDIDATES`] order.
    pub val_auroc: Vec<f64>,
    /// Test metrics at score ≥ 0.5 (a majority of tumour neighbours).
    pub test: TestMetrics,
    /// Test scores, for intervals and ROC curves.
    pub test_scores: Vec<f64>,
}

/// Fits [`GeometryKnn`] on the training rows for every k of [`K_CANDIDATES`] that fits, keeps
/// the one with the best validation AUROC, and scores the test rows with it.
///
/// # Errors
/// Empty or one-class training or validation rows; mismatched lengths.
pub fn geometry_baseline(train: (&[[f64; 5]], &[u32]), val: (&[[f64; 5]], &[u32]), test: (&[[f64; 5]], &[u32])) -> Result<GeometryBaseline, SynthError> {
    for (what, (rows, labels)) in [("training", train), ("validation", val)] {
        if rows.is_empty() || !labels.contains(&0) || !labels.contains(&1) {
            return Err(SynthError::Invalid(format!("the geometry baseline needs {what} slices of both classes")));
        }
    }
    let truth: Vec<bool> = val.1.iter().map(|&l| l == 1).collect();
    let mut best: Option<(f64, GeometryKnn)> = None;
    let mut val_auroc = Vec::new();
    for k in K_CANDIDATES.into_iter().filter(|&k| k <= train.0.len()) {
        let knn = GeometryKnn::fit(train.0, train.1, k)?;
        let a = mri_metrics::auroc(&knn.scores(val.0), &truth)?;
        val_auroc.push(a);
        if best.as_ref().is_none_or(|(b, _)| a > *b) {
            best = Some((a, knn));
        }
    }
    let (_, knn) = best.expect("k = 1 always fits a non-empty training set");
    let test_scores = knn.scores(test.0);
    Ok(GeometryBaseline { k: knn.k, val_auroc, test: TestMetrics::from_scores_f64(&test_scores, test.1, 0.5)?, test_scores })
}

/// Whether every slice of `prepared` came from a file (phantoms have no file geometry).
pub fn has_file_geometry(prepared: &PreparedData) -> bool {
    !prepared.dataset.items.is_empty() && prepared.dataset.items.iter().all(|it| it.geometry.is_some())
}

/// [`geometry_baseline`] on `prepared`'s own split; `None` for phantoms.
///
/// # Errors
/// As [`geometry_baseline`].
pub fn geometry_baseline_of(prepared: &PreparedData) -> Result<Option<GeometryBaseline>, SynthError> {
    if !has_file_geometry(prepared) {
        return Ok(None);
    }
    let items = &prepared.dataset.items;
    let part = |p: SplitPart| -> (Vec<[f64; 5]>, Vec<u32>) {
        prepared
            .dataset
            .indices_in(&prepared.split, p)
            .into_iter()
            .map(|i| (geometry_features(items[i].geometry.as_ref().expect("checked")), items[i].label.index()))
            .unzip()
    };
    let (tr, va, te) = (part(SplitPart::Train), part(SplitPart::Val), part(SplitPart::Test));
    geometry_baseline((&tr.0, &tr.1), (&va.0, &va.1), (&te.0, &te.1)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn geometry(w: u32, h: u32, margin: u32) -> Geometry {
        Geometry { width: w, height: h, bbox: [margin, 0, w - margin, h], square_side: w.max(h) }
    }

    /// Files whose geometry decides the class (tumour wide, healthy square and letterboxed) are
    /// classified from geometry alone; files of one shared geometry distribution are not.
    #[test]
    fn geometry_that_decides_the_class_is_found_and_random_geometry_is_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut draw = |n: usize, informative: bool| -> (Vec<[f64; 5]>, Vec<u32>) {
            (0..n)
                .map(|i| {
                    let label = (i % 2) as u32;
                    let (w, h, m) = if informative && label == 1 {
                        (rng.gen_range(500..700), rng.gen_range(380..450), rng.gen_range(0..10))
                    } else {
                        let s = rng.gen_range(220..300);
                        (s, s, rng.gen_range(20..60))
                    };
                    (geometry_features(&geometry(w, h, m)), label)
                })
                .unzip()
        };
        let (tr, trl) = draw(200, true);
        let (va, val) = draw(60, true);
        let (te, tel) = draw(60, true);
        let r = geometry_baseline((&tr, &trl), (&va, &val), (&te, &tel)).unwrap();
        assert!(r.test.accuracy > 0.95 && r.test.auroc.unwrap() > 0.95, "{:?}", r.test);
        assert_eq!(r.val_auroc.len(), K_CANDIDATES.len());
        let (tr, trl) = draw(200, false);
        let (va, val) = draw(60, false);
        let (te, tel) = draw(400, false);
        let r = geometry_baseline((&tr, &trl), (&va, &val), (&te, &tel)).unwrap();
        assert!((r.test.auroc.unwrap() - 0.5).abs() < 0.1, "{:?}", r.test);
    }

    #[test]
    fn knn_scores_are_neighbour_fractions_and_bad_input_is_refused() {
        let rows = [[0.0, 0.0, 1.0, 0.0, 0.0], [0.1, 0.0, 1.0, 0.0, 0.0], [5.0, 5.0, 1.0, 0.0, 0.0], [5.1, 5.0, 1.0, 0.0, 0.0]];
        let labels = [0, 0, 1, 1];
        let knn = GeometryKnn::fit(&rows, &labels, 2).unwrap();
        assert_eq!(knn.score(&[0.05, 0.0, 1.0, 0.0, 0.0]), 0.0);
        assert_eq!(knn.score(&[5.05, 5.0, 1.0, 0.0, 0.0]), 1.0);
        assert_eq!(GeometryKnn::fit(&rows, &labels, 4).unwrap().score(&[0.0; 5]), 0.5);
        assert!(GeometryKnn::fit(&rows, &labels, 0).is_err());
        assert!(GeometryKnn::fit(&rows, &labels, 5).is_err());
        assert!(GeometryKnn::fit(&rows, &labels[..3], 1).is_err());
        let one_class = [0, 0, 0, 0];
        assert!(geometry_baseline((&rows, &one_class), (&rows, &labels), (&rows, &labels)).is_err());
    }
}

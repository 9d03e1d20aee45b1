//! Fidelity of a synthetic set to a real one, measured on feature vectors: the Fréchet
//! distance (FID's formula, with any feature extractor) and the unbiased maximum mean
//! discrepancy with a Gaussian kernel.
//!
//! Features are passed as row-major `n × dim` slices of `f32` (one row per image), which is
//! what a candle `Tensor::flatten_all()?.to_vec1()` of an `(n, dim)` feature tensor gives.
//!
//! ```
//! use mri_metrics::generative::{frechet_distance, mmd_unbiased};
//! let a: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 / 101.0).collect(); // 100 × 2
//! let fd_same = frechet_distance(&a, &a, 2).unwrap();
//! assert!(fd_same.abs() < 1e-9);
//! let shifted: Vec<f32> = a.iter().map(|v| v + 1.0).collect();
//! assert!(frechet_distance(&a, &shifted, 2).unwrap() > 1.9); // |Δμ|² = 2
//! assert!(mmd_unbiased(&a, &shifted, 2).unwrap().mmd2 > 0.1);
//! ```

use linfa_linalg::eigh::Eigh;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// Checks that `data` is `n × dim` with at least `min_rows` rows; returns `n`.
pub(crate) fn rows(what: &'static str, data: &[f32], dim: usize, min_rows: usize) -> Result<usize, MetricsError> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(MetricsError::Shape { what, reason: format!("{} values do not make rows of {dim}", data.len()) });
    }
    let n = data.len() / dim;
    if n < min_rows {
        return Err(MetricsError::TooFewSamples { what, need: min_rows, got: n });
    }
    if let Some((index, &v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index, value: f64::from(v) });
    }
    Ok(n)
}

fn as_matrix(data: &[f32], dim: usize) -> Array2<f64> {
    let n = data.len() / dim;
    Array2::from_shape_vec((n, dim), data.iter().map(|&v| f64::from(v)).collect()).expect("checked shape")
}

/// Mean and unbiased covariance (divisor n − 1, as `numpy.cov` and pytorch-fid).
fn mean_cov(x: ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = x.nrows() as f64;
    let mu = x.mean_axis(Axis(0)).expect("at least one row");
    let centred = &x - &mu;
    let cov = centred.t().dot(&centred) / (n - 1.0);
    (mu, cov)
}

/// The symmetric square root of a symmetric positive semi-definite matrix (negative
/// eigenvalues from rounding are clamped to 0).
fn sqrtm_psd(m: &Array2<f64>) -> Result<Array2<f64>, MetricsError> {
    let (vals, vecs) = m.eigh().map_err(|e| MetricsError::Numerical(format!("eigendecomposition failed: {e}")))?;
    let root = vals.mapv(|v| v.max(0.0).sqrt());
    Ok((&vecs * &root).dot(&vecs.t()))
}

/// Fréchet distance between Gaussians fitted to two feature sets:
/// `|μa − μb|² + Tr(Σa + Σb − 2 (Σa Σb)^½)`.
///
/// `Tr((Σa Σb)^½)` is computed as the sum of the square roots of the eigenvalues of the
/// symmetric matrix `Σa^½ Σb Σa^½` (same spectrum as `Σa Σb`), which avoids the complex
/// intermediate results `scipy.linalg.sqrtm` can give on near-singular covariances.
///
/// Like FID it is biased upwards for small sets; compare values computed with equal set sizes.
///
/// # Errors
/// [`MetricsError::Shape`] if a slice is not `n × dim`; [`MetricsError::TooFewSamples`] with
/// fewer than 2 rows; non-finite values; a failed eigendecomposition.
pub fn frechet_distance(a: &[f32], b: &[f32], dim: usize) -> Result<f64, MetricsError> {
    rows("first feature set", a, dim, 2)?;
    rows("second feature set", b, dim, 2)?;
    let (ma, ca) = mean_cov(as_matrix(a, dim).view());
    let (mb, cb) = mean_cov(as_matrix(b, dim).view());
    let diff = &ma - &mb;
    let root_a = sqrtm_psd(&ca)?;
    let mut inner = root_a.dot(&cb).dot(&root_a);
    // Symmetrise away rounding before the symmetric eigensolver.
    inner = (&inner + &inner.t()) / 2.0;
    let (vals, _) = inner.eigh().map_err(|e| MetricsError::Numerical(format!("eigendecomposition failed: {e}")))?;
    let tr_sqrt: f64 = vals.iter().map(|v| v.max(0.0).sqrt()).sum();
    let fd = diff.dot(&diff) + ca.diag().sum() + cb.diag().sum() - 2.0 * tr_sqrt;
    // Exact ties give a tiny negative value from rounding; the distance is non-negative.
    Ok(fd.max(0.0))
}

/// An unbiased MMD² estimate and the kernel bandwidth it used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mmd {
    /// Unbiased estimate of MMD² (Gretton et al. 2012, eq. 3). Can be slightly negative when
    /// the two sets come from the same distribution.
    pub mmd2: f64,
    /// Gaussian kernel bandwidth σ in `k(x, y) = exp(−|x − y|² / (2σ²))`.
    pub bandwidth: f64,
}

fn sq_dist(x: &[f32], y: &[f32]) -> f64 {
    x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum()
}

/// The median of the pairwise Euclidean distances within the pooled sets (the median
/// heuristic for the kernel bandwidth). Uses at most 2000 rows, evenly spaced, to bound cost.
pub fn median_pairwise_distance(a: &[f32], b: &[f32], dim: usize) -> Result<f64, MetricsError> {
    let na = rows("first feature set", a, dim, 1)?;
    let nb = rows("second feature set", b, dim, 1)?;
    let pooled: Vec<&[f32]> = a.chunks(dim).chain(b.chunks(dim)).collect();
    let step = (na + nb).div_ceil(2000).max(1);
    let picked: Vec<&[f32]> = pooled.into_iter().step_by(step).collect();
    if picked.len() < 2 {
        return Err(MetricsError::TooFewSamples { what: "pooled feature sets", need: 2, got: picked.len() });
    }
    let mut d: Vec<f64> = (0..picked.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let picked = &picked;
            (i + 1..picked.len()).map(move |j| sq_dist(picked[i], picked[j]).sqrt())
        })
        .collect();
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    Ok(*m)
}

/// Unbiased MMD² between two feature sets with a Gaussian kernel whose bandwidth is the
/// median pairwise distance of the pooled sets (when that is 0, e.g. all rows equal, 1.0).
///
/// # Errors
/// As [`frechet_distance`].
pub fn mmd_unbiased(a: &[f32], b: &[f32], dim: usize) -> Result<Mmd, MetricsError> {
    let med = median_pairwise_distance(a, b, dim)?;
    mmd_unbiased_with_bandwidth(a, b, dim, if med > 0.0 { med } else { 1.0 })
}

/// The sum of per-row values computed in parallel, added in row order: rayon's own `sum`
/// combines partial sums in an order that depends on work stealing, so its last bit varied
/// between runs (a phantom job's MMD², 1.2939211349303263 against …261).
fn ordered_sum(rows: impl IndexedParallelIterator<Item = f64>) -> f64 {
    rows.collect::<Vec<f64>>().iter().sum()
}

/// Unbiased MMD² with a given Gaussian kernel bandwidth σ > 0.
///
/// # Errors
/// As [`frechet_distance`]; [`MetricsError::Shape`] for a bandwidth that is not positive.
pub fn mmd_unbiased_with_bandwidth(a: &[f32], b: &[f32], dim: usize, bandwidth: f64) -> Result<Mmd, MetricsError> {
    let na = rows("first feature set", a, dim, 2)?;
    let nb = rows("second feature set", b, dim, 2)?;
    if !(bandwidth > 0.0 && bandwidth.is_finite()) {
        return Err(MetricsError::Shape { what: "bandwidth", reason: format!("must be positive and finite, got {bandwidth}") });
    }
    let gamma = 1.0 / (2.0 * bandwidth * bandwidth);
    let k = |x: &[f32], y: &[f32]| (-gamma * sq_dist(x, y)).exp();
    // Sum over i ≠ j of k(x_i, x_j) within one set.
    let within = |s: &[f32], n: usize| -> f64 {
        ordered_sum((0..n).into_par_iter().map(|i| (i + 1..n).map(|j| k(&s[i * dim..(i + 1) * dim], &s[j * dim..(j + 1) * dim])).sum::<f64>())) * 2.0
    };
    let kxx = within(a, na) / (na * (na - 1)) as f64;
    let kyy = within(b, nb) / (nb * (nb - 1)) as f64;
    let kxy = ordered_sum((0..na).into_par_iter().map(|i| (0..nb).map(|j| k(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim])).sum::<f64>()))
        / (na * nb) as f64;
    Ok(Mmd { mmd2: kxx + kyy - 2.0 * kxy, bandwidth })
}

/// Per-pixel spread of a set of images: the standard deviation of each pixel across the set
/// (n − 1 in the denominator), averaged over pixels. `set` is `n × px`, one image a row, n ≥ 2.
///
/// A diversity number that needs no pairing and no features: a generator that ignores its
/// noise (mode collapse) draws nearly the same slice every time and its spread falls towards 0,
/// where real phantom slices of a class spread 0.13 (the GAN's training history logs the same
/// number for its fixed noises, `mri_gan::pixel_spread`). Unlike MS-SSIM, which compares
/// structure, it counts a brighter or darker copy, or a shifted one, as different.
///
/// ```
/// use mri_metrics::generative::pixel_spread;
/// let same = [0.5f32, 0.2, 0.5, 0.2]; // two equal 2-pixel images
/// assert_eq!(pixel_spread(&same, 2).unwrap(), 0.0);
/// let apart = [0.0f32, 1.0, 1.0, 0.0];
/// assert!((pixel_spread(&apart, 2).unwrap() - 0.5f64.sqrt()).abs() < 1e-9);
/// ```
///
/// # Errors
/// `px` = 0 or not dividing the length, fewer than 2 images, a non-finite value.
pub fn pixel_spread(set: &[f32], px: usize) -> Result<f64, MetricsError> {
    let n = rows("pixel spread", set, px, 2)?;
    let (mut sum, mut sq) = (vec![0f64; px], vec![0f64; px]);
    for image in set.chunks_exact(px) {
        for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(image) {
            let v = f64::from(v);
            *s += v;
            *q += v * v;
        }
    }
    let nf = n as f64;
    let total: f64 = sum.iter().zip(&sq).map(|(&s, &q)| ((q - s * s / nf) / (nf - 1.0)).max(0.0).sqrt()).sum();
    Ok(total / px as f64)
}

/// Improved precision and recall of a synthetic feature set against a real one (Kynkäänniemi
/// et al. 2019; the reference is NVlabs' `metrics/precision_recall.py` in stylegan2-ada).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecall {
    /// Fraction of synthetic rows inside the real manifold (realism).
    pub precision: f64,
    /// Fraction of real rows inside the synthetic manifold (coverage: what a classifier trained
    /// on the synthetic set has seen of the real one).
    pub recall: f64,
    /// The neighbourhood size the manifolds were built with.
    pub k: usize,
}

/// Squared Euclidean distances from every row of `q` to every row of `r` (`nq × nr`, row-major).
fn sq_distances(q: &[f32], r: &[f32], dim: usize) -> Vec<f64> {
    let nr = r.len() / dim;
    let mut out = vec![0f64; q.len() / dim * nr];
    out.par_chunks_mut(nr.max(1)).zip(q.par_chunks_exact(dim)).for_each(|(row, a)| {
        for (d, b) in row.iter_mut().zip(r.chunks_exact(dim)) {
            *d = a.iter().zip(b).map(|(&x, &y)| f64::from(x - y) * f64::from(x - y)).sum();
        }
    });
    out
}

/// Each row's squared distance to its `k`-th nearest other row of the same set: the radius of
/// its ball in the set's k-NN manifold.
fn knn_radii(set: &[f32], dim: usize, k: usize) -> Vec<f64> {
    let n = set.len() / dim;
    let d = sq_distances(set, set, dim);
    (0..n)
        .map(|i| {
            let mut row: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| d[i * n + j]).collect();
            let (_, kth, _) = row.select_nth_unstable_by(k - 1, f64::total_cmp);
            *kth
        })
        .collect()
}

/// Fraction of `queries` rows within the ball of at least one `manifold` row (radii `radii`).
fn coverage(queries: &[f32], manifold: &[f32], radii: &[f64], dim: usize) -> f64 {
    let d = sq_distances(queries, manifold, dim);
    let nm = radii.len();
    let inside = d.chunks_exact(nm).filter(|row| row.iter().zip(radii).any(|(&dist, &r)| dist <= r)).count();
    inside as f64 / (d.len() / nm) as f64
}

/// Improved precision and recall with `k`-nearest-neighbour manifolds (the paper's k = 3):
/// precision is the fraction of synthetic rows that fall in a ball around some real row (its
/// radius the distance to that row's k-th real neighbour), recall the fraction of real rows in
/// a ball around some synthetic row. Two sets drawn from one distribution score near 1 on
/// both; a generator that draws one part of the real data well has high precision and low
/// recall. Both depend on the set sizes: compare values computed at equal sizes.
///
/// ```
/// use mri_metrics::generative::precision_recall;
/// let real: Vec<f32> = (0..100).map(|i| i as f32).collect(); // 100 points on a line
/// let half: Vec<f32> = (0..50).map(|i| i as f32 + 0.5).collect(); // draws only the lower half
/// let pr = precision_recall(&real, &half, 1, 3).unwrap();
/// assert_eq!(pr.precision, 1.0);
/// assert!(pr.recall < 0.6);
/// ```
///
/// # Errors
/// `k` = 0, a set with no more than `k` rows, a shape that is not `n × dim`, a non-finite value.
pub fn precision_recall(real: &[f32], synthetic: &[f32], dim: usize, k: usize) -> Result<PrecisionRecall, MetricsError> {
    if k == 0 {
        return Err(MetricsError::Shape { what: "precision/recall", reason: "k must be at least 1".into() });
    }
    rows("real feature set", real, dim, k + 1)?;
    rows("synthetic feature set", synthetic, dim, k + 1)?;
    let precision = coverage(synthetic, real, &knn_radii(real, dim, k), dim);
    let recall = coverage(real, synthetic, &knn_radii(synthetic, dim, k), dim);
    Ok(PrecisionRecall { precision, recall, k })
}

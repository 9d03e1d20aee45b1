//! Does a generator copy its training images? Distance to the closest record (DCR): for every
//! synthetic image, the distance to its nearest training image; the same for real **held-out**
//! images (which the generator never saw) gives the reference of how close a new, genuine
//! image comes to the training set by chance. A synthetic image closer to a training image
//! than the 1st percentile of the held-out DCRs counts as memorised.
//!
//! Works in any vector space: raw pixels, or features of a network (pass `n × dim` rows).
//!
//! ```
//! use mri_metrics::privacy::{memorisation, MemorisationParams};
//! // 1-D "images": training points 0, 10, 20, …; held-out points in between.
//! let train: Vec<f32> = (0..50).map(|i| 10.0 * i as f32).collect();
//! let heldout: Vec<f32> = (0..50).map(|i| 10.0 * i as f32 + 3.0 + (i % 3) as f32).collect();
//! let copies: Vec<f32> = train[..20].to_vec();
//! let m = memorisation(&copies, &heldout, &train, 1, &MemorisationParams::default()).unwrap();
//! assert_eq!(m.memorised_fraction, 1.0);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::generative::rows;
use crate::MetricsError;

/// A query's nearest reference row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Index of the nearest reference row.
    pub index: usize,
    /// Euclidean distance to it.
    pub distance: f64,
}

/// For each `dim`-long row of `queries`, its nearest row of `references` (brute force, in
/// parallel over queries; ties go to the lower index).
///
/// # Errors
/// Rows that do not divide evenly, an empty reference set, non-finite values.
pub fn nearest_neighbours(queries: &[f32], references: &[f32], dim: usize) -> Result<Vec<Neighbour>, MetricsError> {
    rows("queries", queries, dim, 0)?;
    rows("references", references, dim, 1)?;
    Ok(queries
        .par_chunks(dim)
        .map(|q| {
            let mut best = Neighbour { index: 0, distance: f64::INFINITY };
            for (j, r) in references.chunks(dim).enumerate() {
                // f32 partial sums over short runs keep the loop vectorised; f64 across runs.
                let d2: f64 = q.chunks(64).zip(r.chunks(64)).map(|(a, b)| f64::from(a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>())).sum();
                if d2 < best.distance {
                    best = Neighbour { index: j, distance: d2 };
                }
            }
            best.distance = best.distance.sqrt();
            best
        })
        .collect())
}

/// Settings of [`memorisation`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemorisationParams {
    /// Percentile (in [0, 1]) of the held-out DCRs below which a synthetic image counts as
    /// memorised. Default 0.01.
    pub percentile: f64,
}

impl Default for MemorisationParams {
    fn default() -> Self {
        MemorisationParams { percentile: 0.01 }
    }
}

/// What [`memorisation`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    /// Each synthetic row's nearest training row.
    pub synthetic: Vec<Neighbour>,
    /// Each held-out row's nearest training row.
    pub heldout: Vec<Neighbour>,
    /// The held-out DCR at the chosen percentile (linear interpolation, as `numpy.percentile`).
    pub threshold: f64,
    /// Fraction of synthetic rows with DCR strictly below `threshold`.
    pub memorised_fraction: f64,
    /// Median synthetic DCR.
    pub synthetic_median: f64,
    /// Median held-out DCR (the reference).
    pub heldout_median: f64,
}

/// The `q`-quantile (q in [0, 1]) of `v` with linear interpolation between order statistics.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Distances to the closest training record for synthetic and held-out rows, and the
/// fraction of synthetic rows closer than the held-out `percentile`.
///
/// # Errors
/// As [`nearest_neighbours`]; [`MetricsError::TooFewSamples`] for an empty synthetic or
/// held-out set; a percentile outside [0, 1].
pub fn memorisation(synthetic: &[f32], heldout: &[f32], train: &[f32], dim: usize, p: &MemorisationParams) -> Result<Memorisation, MetricsError> {
    rows("synthetic set", synthetic, dim, 1)?;
    rows("held-out set", heldout, dim, 1)?;
    if !(0.0..=1.0).contains(&p.percentile) {
        return Err(MetricsError::Shape { what: "percentile", reason: format!("must be in [0, 1], got {}", p.percentile) });
    }
    let syn = nearest_neighbours(synthetic, train, dim)?;
    let held = nearest_neighbours(heldout, train, dim)?;
    let sd: Vec<f64> = syn.iter().map(|n| n.distance).collect();
    let hd: Vec<f64> = held.iter().map(|n| n.distance).collect();
    let threshold = quantile(&hd, p.percentile);
    let memorised_fraction = sd.iter().filter(|&&d| d < threshold).count() as f64 / sd.len() as f64;
    Ok(Memorisation { synthetic_median: quantile(&sd, 0.5), heldout_median: quantile(&hd, 0.5), synthetic: syn, heldout: held, threshold, memorised_fraction })
}

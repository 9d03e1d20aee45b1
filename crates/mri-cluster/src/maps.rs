//! Per-pixel reconstruction-error maps.

use serde::{Deserialize, Serialize};

use crate::{ClusterError, Result};

/// How error maps are made from images and their reconstructions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorMapOptions {
    /// Min–max normalise each map to [0, 1] over its region (the study's choice).
    pub normalise: bool,
    /// Restrict every technique to the head: pixels whose original value exceeds
    /// `brain_threshold`. The preprocessing fills the background with the image minimum (0
    /// after scaling), where errors carry no information — the study counted them anyway.
    pub brain_only: bool,
    /// Intensity above which a pixel belongs to the head.
    pub brain_threshold: f32,
    /// Shrink the head region by this many pixels (a pixel stays when every pixel within this
    /// Chebyshev distance is in the head): drops the skull ring, the brightest tissue of a slice,
    /// and the edge where reconstructions err most. 0 (the study's) keeps the whole head.
    #[serde(default)]
    pub erode_px: usize,
}

impl Default for ErrorMapOptions {
    fn default() -> Self {
        ErrorMapOptions { normalise: true, brain_only: true, brain_threshold: 0.05, erode_px: 0 }
    }
}

/// Erodes each `side`² mask of `mask` by `r` pixels (square structuring element, outside the
/// map counts as outside the region), as a row pass then a column pass of running minima.
fn erode(mask: &mut [bool], side: usize, r: usize) {
    if r == 0 {
        return;
    }
    let px = side * side;
    let mut tmp = vec![false; px];
    for m in mask.chunks_mut(px) {
        for y in 0..side {
            for x in 0..side {
                let (lo, hi) = (x.checked_sub(r), x + r);
                tmp[y * side + x] = lo.is_some() && hi < side && m[y * side + lo.unwrap()..=y * side + hi].iter().all(|&v| v);
            }
        }
        for x in 0..side {
            for y in 0..side {
                let (lo, hi) = (y.checked_sub(r), y + r);
                m[y * side + x] = lo.is_some() && hi < side && (lo.unwrap()..=hi).all(|yy| tmp[yy * side + x]);
            }
        }
    }
}

/// `n` square error maps of side `side` with the region each technique looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorMaps {
    /// Side S.
    pub side: usize,
    /// `n × S × S` errors, map after map.
    pub errors: Vec<f32>,
    /// `n × S × S` region flags (true = inside the head, or everywhere when not restricted).
    pub region: Vec<bool>,
}

impl ErrorMaps {
    /// |x − x̂| per pixel for `originals` and `reconstructions` (`n × S × S` each, in [0, 1]).
    ///
    /// # Errors
    /// [`ClusterError::InvalidInput`] when the lengths disagree or are not whole maps.
    pub fn from_reconstructions(originals: &[f32], reconstructions: &[f32], side: usize, opts: &ErrorMapOptions) -> Result<Self> {
        let px = side * side;
        if side == 0 || originals.len() != reconstructions.len() || originals.len() % px != 0 {
            return Err(ClusterError::InvalidInput(format!(
                "{} original and {} reconstructed values are not the same whole number of {side}×{side} maps",
                originals.len(),
                reconstructions.len()
            )));
        }
        let errors: Vec<f32> = originals.iter().zip(reconstructions).map(|(a, b)| (a - b).abs()).collect();
        let mut region: Vec<bool> = originals.iter().map(|&v| !opts.brain_only || v > opts.brain_threshold).collect();
        if opts.brain_only {
            erode(&mut region, side, opts.erode_px);
        }
        let mut maps = ErrorMaps { side, errors, region };
        if opts.normalise {
            maps.normalise();
        }
        Ok(maps)
    }

    /// Maps made elsewhere (e.g. by hand in tests), with an optional region (`None` = everywhere).
    pub fn from_raw(side: usize, errors: Vec<f32>, region: Option<Vec<bool>>) -> Result<Self> {
        let px = side * side;
        if side == 0 || errors.len() % px != 0 || region.as_ref().is_some_and(|r| r.len() != errors.len()) {
            return Err(ClusterError::InvalidInput(format!("{} values are not whole {side}×{side} maps (or the region differs in length)", errors.len())));
        }
        let region = region.unwrap_or_else(|| vec![true; errors.len()]);
        Ok(ErrorMaps { side, errors, region })
    }

    /// Min–max normalises each map over its region (constant maps become 0).
    pub fn normalise(&mut self) {
        let px = self.side * self.side;
        for (e, r) in self.errors.chunks_mut(px).zip(self.region.chunks(px)) {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for (&v, &inside) in e.iter().zip(r) {
                if inside {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            let span = hi - lo;
            for (v, &inside) in e.iter_mut().zip(r) {
                *v = if inside && span > 0.0 { ((*v - lo) / span).clamp(0.0, 1.0) } else { 0.0 };
            }
        }
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.errors.len() / (self.side * self.side)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Map `i`.
    pub fn map(&self, i: usize) -> &[f32] {
        let px = self.side * self.side;
        &self.errors[i * px..(i + 1) * px]
    }

    /// Region of map `i`.
    pub fn region(&self, i: usize) -> &[bool] {
        let px = self.side * self.side;
        &self.region[i * px..(i + 1) * px]
    }

    /// Pixels in the region of map `i` (at least 1, so fractions stay finite).
    pub fn region_size(&self, i: usize) -> usize {
        self.region(i).iter().filter(|&&r| r).count().max(1)
    }
}

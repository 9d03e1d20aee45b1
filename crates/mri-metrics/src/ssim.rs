//! Structural similarity (SSIM, Wang et al. 2004) and multi-scale SSIM (Wang et al. 2003) of
//! square greyscale images, and the mean pairwise MS-SSIM of a set (a diversity measure: a
//! generator that collapses to a few modes gives high values).
//!
//! ## Window and scales
//! The usual settings — an 11×11 Gaussian window (σ = 1.5) and 5 scales — need images of more
//! than (11 − 1)·2⁴ = 160 px a side (pytorch-msssim asserts this; MONAI's and burn's defaults
//! reject images under 160–176 px), and this project works at 64 and 128 px. So the defaults
//! here are a **7×7 Gaussian window, σ = 1.5**, filtered without padding (as pytorch-msssim
//! does), and as many scales (at most 5) as keep the coarsest level larger than
//! (7 − 1)·2^(scales − 1): 3 scales at 32 px, 4 at 64 px, 5 at 128 px. The scale weights are
//! the first `scales` of Wang's (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), renormalised to sum
//! to 1; negative contrast-structure terms are clamped to 0 before the product (as
//! pytorch-msssim's `normalize="relu"`), so MS-SSIM stays in [0, 1].
//!
//! ```
//! use mri_metrics::ssim::{ms_ssim, ssim, SsimParams};
//! let side = 64;
//! let img: Vec<f32> = (0..side * side).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
//! let p = SsimParams::default();
//! assert!((ssim(&img, &img, side, &p).unwrap() - 1.0).abs() < 1e-9);
//! assert!((ms_ssim(&img, &img, side, &p).unwrap() - 1.0).abs() < 1e-9);
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// Wang et al.'s MS-SSIM scale weights, finest first.
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// SSIM settings (see the module docs for why the window is 7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SsimParams {
    /// Side of the Gaussian window (odd). Default 7.
    pub window: usize,
    /// Standard deviation of the window. Default 1.5.
    pub sigma: f64,
    /// Range of the pixel values. Default 1.0 (images in [0, 1]).
    pub data_range: f64,
    /// K1 of `C1 = (K1·L)²`. Default 0.01.
    pub k1: f64,
    /// K2 of `C2 = (K2·L)²`. Default 0.03.
    pub k2: f64,
    /// Number of MS-SSIM scales; `None` = as many as the image side allows (at most 5).
    pub scales: Option<usize>,
}

impl Default for SsimParams {
    fn default() -> Self {
        SsimParams { window: 7, sigma: 1.5, data_range: 1.0, k1: 0.01, k2: 0.03, scales: None }
    }
}

impl SsimParams {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`MetricsError::Shape`] naming the bad parameter.
    pub fn check(&self) -> Result<(), MetricsError> {
        let bad = |reason: String| Err(MetricsError::Shape { what: "SSIM parameters", reason });
        if self.window < 3 || self.window % 2 == 0 {
            return bad(format!("window must be odd and at least 3, got {}", self.window));
        }
        if !(self.sigma > 0.0 && self.data_range > 0.0 && self.k1 > 0.0 && self.k2 > 0.0) {
            return bad("sigma, data_range, k1 and k2 must be positive".into());
        }
        if let Some(s) = self.scales {
            if !(1..=5).contains(&s) {
                return bad(format!("scales must be in 1..=5, got {s}"));
            }
        }
        Ok(())
    }

    /// The number of MS-SSIM scales used at image side `side`: the given count, or the
    /// largest (≤ 5) whose coarsest level is larger than `(window − 1)·2^(scales − 1)`.
    ///
    /// # Errors
    /// [`MetricsError::Shape`] when the image is too small for even one scale, or for the
    /// requested count.
    pub fn scales_at(&self, side: usize) -> Result<usize, MetricsError> {
        let fits = |s: usize| side > (self.window - 1) << (s - 1);
        let n = match self.scales {
            Some(s) => s,
            None => (1..=5).rev().find(|&s| fits(s)).unwrap_or(1),
        };
        if !fits(n) {
            return Err(MetricsError::Shape {
                what: "image",
                reason: format!(
                    "{side} px is too small for {n} MS-SSIM scale(s) with a {w}×{w} window (needs more than {} px)",
                    (self.window - 1) << (n - 1),
                    w = self.window
                ),
            });
        }
        Ok(n)
    }

    fn gaussian(&self) -> Vec<f64> {
        let c = (self.window / 2) as f64;
        let g: Vec<f64> = (0..self.window).map(|i| (-((i as f64 - c).powi(2)) / (2.0 * self.sigma * self.sigma)).exp()).collect();
        let s: f64 = g.iter().sum();
        g.into_iter().map(|v| v / s).collect()
    }
}

/// Valid separable filtering of a `side × side` image: `(side − w + 1)²` values.
fn filter(img: &[f64], side: usize, g: &[f64]) -> Vec<f64> {
    let w = g.len();
    let o = side + 1 - w;
    let mut rows = vec![0.0; side * o];
    for y in 0..side {
        for x in 0..o {
            rows[y * o + x] = (0..w).map(|k| g[k] * img[y * side + x + k]).sum();
        }
    }
    let mut out = vec![0.0; o * o];
    for y in 0..o {
        for x in 0..o {
            out[y * o + x] = (0..w).map(|k| g[k] * rows[(y + k) * o + x]).sum();
        }
    }
    out
}

/// Mean SSIM and mean contrast-structure term at one scale.
fn ssim_cs(a: &[f64], b: &[f64], side: usize, p: &SsimParams, g: &[f64]) -> (f64, f64) {
    let c1 = (p.k1 * p.data_range).powi(2);
    let c2 = (p.k2 * p.data_range).powi(2);
    let prod = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> { a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect() };
    let mu_a = filter(a, side, g);
    let mu_b = filter(b, side, g);
    let aa = filter(&prod(&|x, _| x * x), side, g);
    let bb = filter(&prod(&|_, y| y * y), side, g);
    let ab = filter(&prod(&|x, y| x * y), side, g);
    let n = mu_a.len() as f64;
    let (mut s_sum, mut cs_sum) = (0.0, 0.0);
    for i in 0..mu_a.len() {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let va = aa[i] - ma * ma;
        let vb = bb[i] - mb * mb;
        let cov = ab[i] - ma * mb;
        let cs = (2.0 * cov + c2) / (va + vb + c2);
        s_sum += (2.0 * ma * mb + c1) / (ma * ma + mb * mb + c1) * cs;
        cs_sum += cs;
    }
    (s_sum / n, cs_sum / n)
}

fn check_pair(a: &[f32], b: &[f32], side: usize) -> Result<(), MetricsError> {
    for (what, img) in [("first image", a), ("second image", b)] {
        if img.len() != side * side {
            return Err(MetricsError::Shape { what, reason: format!("{} values, expected {side}×{side}", img.len()) });
        }
        if let Some((index, &v)) = img.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MetricsError::NonFiniteScore { index, value: f64::from(v) });
        }
    }
    Ok(())
}

/// Mean SSIM of two `side × side` images (row-major).
///
/// # Errors
/// Bad parameters; images of the wrong size, smaller than the window, or with non-finite values.
pub fn ssim(a: &[f32], b: &[f32], side: usize, p: &SsimParams) -> Result<f64, MetricsError> {
    p.check()?;
    check_pair(a, b, side)?;
    if side < p.window {
        return Err(MetricsError::Shape { what: "image", reason: format!("{side} px is smaller than the {}-px window", p.window) });
    }
    let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    Ok(ssim_cs(&to64(a), &to64(b), side, p, &p.gaussian()).0)
}

fn downsample2(img: &[f64], side: usize) -> (Vec<f64>, usize) {
    let h = side / 2;
    let mut out = vec![0.0; h * h];
    for y in 0..h {
        for x in 0..h {
            out[y * h + x] =
                (img[2 * y * side + 2 * x] + img[2 * y * side + 2 * x + 1] + img[(2 * y + 1) * side + 2 * x] + img[(2 * y + 1) * side + 2 * x + 1]) / 4.0;
        }
    }
    (out, h)
}

/// Multi-scale SSIM of two `side × side` images (row-major); see the module docs for the
/// window, scale count and weights.
///
/// # Errors
/// As [`ssim`]; an image too small for the scales ([`SsimParams::scales_at`]).
pub fn ms_ssim(a: &[f32], b: &[f32], side: usize, p: &SsimParams) -> Result<f64, MetricsError> {
    p.check()?;
    check_pair(a, b, side)?;
    let scales = p.scales_at(side)?;
    let w = &MS_SSIM_WEIGHTS[..scales];
    let total: f64 = w.iter().sum();
    let g = p.gaussian();
    let (mut x, mut y, mut s) = (a.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), b.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), side);
    let mut out = 1.0;
    for (j, wj) in w.iter().enumerate() {
        let (full, cs) = ssim_cs(&x, &y, s, p, &g);
        let term = if j + 1 == scales { full } else { cs };
        out *= term.max(0.0).powf(wj / total);
        if j + 1 < scales {
            let (nx, ns) = downsample2(&x, s);
            let (ny, _) = downsample2(&y, s);
            (x, y, s) = (nx, ny, ns);
        }
    }
    Ok(out)
}

/// Mean MS-SSIM over pairs of distinct images within a set of `side × side` images: all
/// pairs when there are at most `max_pairs`, otherwise `max_pairs` pairs drawn at random
/// (seeded). Returns the mean and the number of pairs used.
///
/// # Errors
/// [`MetricsError::TooFewSamples`] for fewer than 2 images; as [`ms_ssim`].
pub fn mean_pairwise_ms_ssim(set: &[f32], side: usize, max_pairs: usize, seed: u64, p: &SsimParams) -> Result<(f64, usize), MetricsError> {
    let px = side * side;
    let n = crate::generative::rows("image set", set, px, 2)?;
    p.scales_at(side)?;
    let all = n * (n - 1) / 2;
    let pairs: Vec<(usize, usize)> = if all <= max_pairs {
        (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..max_pairs)
            .map(|_| {
                let i = rng.gen_range(0..n);
                let mut j = rng.gen_range(0..n - 1);
                if j >= i {
                    j += 1;
                }
                (i, j)
            })
            .collect()
    };
    let values: Vec<f64> =
        pairs.par_iter().map(|&(i, j)| ms_ssim(&set[i * px..(i + 1) * px], &set[j * px..(j + 1) * px], side, p)).collect::<Result<_, _>>()?;
    Ok((values.iter().sum::<f64>() / values.len() as f64, values.len()))
}

//! Texture-statistics matching for the generator: a loss on the statistics that told 92–95 % of
//! the Br35H GAN's draws from real slices in session 26's classifier two-sample test, while the
//! texture FD on the same features stayed near its floor (docs/models.md, session 26).
//!
//! [`texture_stats`] is a differentiable twin of `mri_metrics::texture::texture_features` as
//! candle tensor ops (so it runs and backpropagates on every device): per image, the mean
//! |band| and RMS band of a 4-level Laplacian pyramid (2×2 area averages, log-scaled), a 12-bin
//! histogram of forward-difference gradient magnitude over [0, 0.6] and a 16-bin histogram of
//! intensity. The histograms are soft — each value shares a unit of mass between its two
//! nearest bin centres (linear interpolation) — so that they have a gradient; a value at a bin's
//! centre lands in that bin alone, as in the hard histogram.
//!
//! [`TextureTarget`] holds each class's mean and standard deviation of these statistics over
//! the real training slices, and [`TextureTarget::loss`] is the pseudo-Huber gap, in real
//! standard deviations, between a generated batch's first two moments and its classes' real ones (the
//! feature matching of Salimans et al., "Improved techniques for training GANs", NeurIPS 2016,
//! on fixed hand-made features rather than the discriminator's). A Fisher discriminant — the
//! two-sample test's classifier — separates two sets by their mean gap in the features' own
//! spread, which is what this loss closes.
//!
//! The target is a summary of the patient slices (36 means and 36 deviations per class), the
//! same information the discriminator already sees, and is not saved with the checkpoint: it
//! is recomputed from the training set.

use candle_core::{DType, Device, Tensor, D};
use mri_train::ImageSet;

use crate::Result;

/// Pyramid levels (two statistics each).
const LEVELS: usize = 4;
/// Gradient-magnitude bins over [0, [`GRAD_MAX`]] (the last one open-ended).
const GRAD_BINS: usize = 12;
/// Gradient magnitudes binned over [0, this] (intensities in [0, 1]).
const GRAD_MAX: f64 = 0.6;
/// Intensity bins over [0, 1].
const INTENSITY_BINS: usize = 16;
/// Length of a row of [`texture_stats`] (the same as `mri_metrics::texture::TEXTURE_DIM`).
pub const TEXTURE_STATS: usize = 2 * LEVELS + GRAD_BINS + INTENSITY_BINS;
/// Floor of a statistic's real standard deviation in [`TextureTarget::loss`], so that a
/// statistic constant over the real slices (an empty histogram bin) weighs like one that varies
/// by 0.01 and does not divide by zero.
const SD_FLOOR: f64 = 1e-2;

/// Soft histogram of `v` (N, P) with `bins` bins of unit width after `v` is mapped to bin units
/// by `v · scale − ½` and clamped to [0, bins − 1]: (N, bins), each row summing to 1.
fn soft_histogram(v: &Tensor, scale: f64, bins: usize) -> Result<Tensor> {
    let (n, p) = v.dims2()?;
    let t = v.affine(scale, -0.5)?.clamp(0f32, (bins - 1) as f32)?.reshape((n, 1, p))?;
    let centres = Tensor::arange(0u32, bins as u32, v.device())?.to_dtype(DType::F32)?.reshape((1, bins, 1))?;
    let weight = (1.0 - t.broadcast_sub(&centres)?.abs()?)?.relu()?;
    Ok(weight.mean(D::Minus1)?)
}

/// The texture statistics of each image of `x` (N, 1, S, S) with intensities in [0, 1]:
/// (N, [`TEXTURE_STATS`]), differentiable in `x`. The pyramid stops when the side turns odd;
/// missing levels read ln 1e-4, as in `mri_metrics::texture::texture_features`.
pub fn texture_stats(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if c != 1 || h != w || h < 2 {
        return Err(crate::GanError::Data(format!("texture statistics need (N, 1, S, S) images with S ≥ 2, got {:?}", x.dims())));
    }
    let mut parts = Vec::with_capacity(LEVELS + 2);
    let mut cur = x.clone();
    let mut s = h;
    for _ in 0..LEVELS {
        if s % 2 != 0 {
            parts.push(Tensor::full((1e-4f32).ln(), (n, 2), x.device())?);
            continue;
        }
        let low = cur.avg_pool2d(2)?;
        let band = (&cur - low.upsample_nearest2d(s, s)?)?.reshape((n, s * s))?;
        let mean_abs = (band.abs()?.mean_keepdim(1)? + 1e-4)?.log()?;
        // 1e-12 inside the root keeps its gradient finite on a band that is exactly zero.
        let rms = ((band.sqr()?.mean_keepdim(1)? + 1e-12)?.sqrt()? + 1e-4)?.log()?;
        parts.push(Tensor::cat(&[mean_abs, rms], 1)?);
        cur = low;
        s /= 2;
    }
    let top_left = x.narrow(2, 0, h - 1)?.narrow(3, 0, w - 1)?;
    let dx = (x.narrow(2, 0, h - 1)?.narrow(3, 1, w - 1)? - &top_left)?;
    let dy = (x.narrow(2, 1, h - 1)?.narrow(3, 0, w - 1)? - &top_left)?;
    // The small constant keeps sqrt's gradient finite on flat background.
    let grad = ((dx.sqr()? + dy.sqr()?)? + 1e-8)?.sqrt()?.reshape((n, (h - 1) * (w - 1)))?;
    parts.push(soft_histogram(&grad, GRAD_BINS as f64 / GRAD_MAX, GRAD_BINS)?);
    parts.push(soft_histogram(&x.reshape((n, h * w))?, INTENSITY_BINS as f64, INTENSITY_BINS)?);
    Ok(Tensor::cat(&parts, 1)?)
}

/// Each class's mean and standard deviation of [`texture_stats`] over real training slices.
#[derive(Debug, Clone)]
pub struct TextureTarget {
    /// (classes, [`TEXTURE_STATS`]).
    mean: Tensor,
    /// (classes, [`TEXTURE_STATS`]), floored at [`SD_FLOOR`].
    sd: Tensor,
}

impl TextureTarget {
    /// The statistics of `train`'s slices, one row per class 0..`classes` (a class with no
    /// slice takes the whole set's row); `classes` = 0 pools every slice into one row (an
    /// unconditional generator, whatever the labels).
    pub fn from_images(train: &ImageSet, classes: usize, device: &Device) -> Result<Self> {
        if train.is_empty() {
            return Err(crate::GanError::Data("texture target of an empty training set".into()));
        }
        let mut rows = Vec::with_capacity(train.len());
        for start in (0..train.len()).step_by(256) {
            let idx: Vec<usize> = (start..(start + 256).min(train.len())).collect();
            let (x, _) = train.batch(&idx, None, device)?;
            rows.push(texture_stats(&x)?.to_dtype(DType::F64)?.to_vec2::<f64>()?);
        }
        let rows: Vec<Vec<f64>> = rows.into_iter().flatten().collect();
        let moments = |of: &[usize]| -> (Vec<f64>, Vec<f64>) {
            let k = of.len() as f64;
            let mean: Vec<f64> = (0..TEXTURE_STATS).map(|j| of.iter().map(|&i| rows[i][j]).sum::<f64>() / k).collect();
            let sd = (0..TEXTURE_STATS)
                .map(|j| (of.iter().map(|&i| (rows[i][j] - mean[j]).powi(2)).sum::<f64>() / (k - 1.0).max(1.0)).sqrt().max(SD_FLOOR))
                .collect();
            (mean, sd)
        };
        let all: Vec<usize> = (0..train.len()).collect();
        let (mut means, mut sds) = (Vec::new(), Vec::new());
        for c in 0..classes.max(1) {
            let of: Vec<usize> = if classes == 0 { all.clone() } else { all.iter().copied().filter(|&i| train.labels[i] as usize == c).collect() };
            let (m, s) = moments(if of.is_empty() { &all } else { &of });
            means.extend(m);
            sds.extend(s);
        }
        let k = classes.max(1);
        Ok(TextureTarget {
            mean: Tensor::from_vec(means.iter().map(|&v| v as f32).collect::<Vec<_>>(), (k, TEXTURE_STATS), device)?,
            sd: Tensor::from_vec(sds.iter().map(|&v| v as f32).collect::<Vec<_>>(), (k, TEXTURE_STATS), device)?,
        })
    }

    /// The class means, (classes, [`TEXTURE_STATS`]).
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The gap between generated images `fake` (N, 1, S, S) in [0, 1] and the real slices of
    /// their classes (`labels`, u32, for a class-conditional target; `None` reads row 0): with
    /// z = (stats − class mean) / class sd per image, the mean over statistics of
    /// h(mean z) + h(sd z − 1), h(a) = √(1 + a²) − 1 — first and second moments, so that
    /// neither a shifted nor a too-uniform (or too-varied) batch passes. h, the pseudo-Huber
    /// function, is a²/2 near 0 and |a| far from it, so that a generator far off (a first
    /// step's flat grey has bands 100 real deviations away) is pulled at a bounded rate and
    /// does not drown the adversarial term. Real slices of the class score about 3 / (4N) for
    /// a batch of N; noise scores tens.
    pub fn loss(&self, fake: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let n = fake.dim(0)?;
        let stats = texture_stats(fake)?;
        let rows = match labels {
            Some(y) => y.clone(),
            None => Tensor::zeros(n, DType::U32, fake.device())?,
        };
        let z = (stats - self.mean.index_select(&rows, 0)?)?.div(&self.sd.index_select(&rows, 0)?)?;
        let pseudo_huber = |a: Tensor| -> candle_core::Result<Tensor> { (a.sqr()? + 1.0)?.sqrt()? - 1.0 };
        let mean = z.mean_keepdim(0)?;
        let sd = (z.broadcast_sub(&mean)?.sqr()?.mean(0)? + 1e-8)?.sqrt()?;
        Ok((pseudo_huber(mean.squeeze(0)?)? + pseudo_huber((sd - 1.0)?)?)?.mean_all()?)
    }
}

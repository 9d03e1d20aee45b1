//! Sampling from where the codes lie: a full-covariance Gaussian fitted to the posterior means
//! of the training images ("ex-post density estimation", Ghosh et al., "From Variational to
//! Deterministic Autoencoders", ICLR 2020). A VAE trained on a few hundred slices leaves
//! holes in N(0, I) that its decoder never saw; decoding prior samples there gives the grey
//! square blobs of the study's VAE. Codes drawn from the fitted Gaussian stay in the region
//! the decoder was trained on. (The two-stage VAE of Dai & Wipf, ICLR 2019, is the learned
//! version of the same idea; a PixelCNN over a spatial code, [`CodePixelCnn`], the non-linear
//! one that can place a small structure anywhere.)

use candle_core::{Device, Tensor};
use mri_train::{seeded_normal, ImageSet};
use serde::{Deserialize, Serialize};

use crate::model::VaeModel;
use crate::pixelcnn::CodePixelCnn;
use crate::two_stage::SecondStage;
use crate::{LatentLayout, VaeConfig};
use crate::{Result, VaeError};

/// Where a generative VAE draws its latent codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatentSampler {
    /// The prior N(0, I) (the study).
    #[default]
    Prior,
    /// A Gaussian with the mean and (shrunk) covariance of the training images' codes μ.
    FittedGaussian,
    /// A second, small VAE fitted to the training images' codes μ ([`SecondStage`]: the
    /// two-stage VAE of Dai & Wipf).
    TwoStage,
    /// A PixelCNN over the spatial code map ([`CodePixelCnn`]): each code position drawn given
    /// the ones above and to its left. Needs [`crate::LatentLayout::Spatial`].
    Autoregressive,
}

/// What a generative VAE's codes are drawn from, fitted to its training codes (saved beside
/// its checkpoint as `<name>.latent.json`; files from before the two-stage sampler hold a
/// bare [`LatentGaussian`], which still reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CodeSampler {
    /// [`LatentSampler::FittedGaussian`].
    Gaussian(LatentGaussian),
    /// [`LatentSampler::TwoStage`].
    TwoStage(SecondStage),
    /// [`LatentSampler::Autoregressive`].
    Autoregressive(Box<CodePixelCnn>),
}

impl CodeSampler {
    /// Fits what `cfg.sampler` says to the codes μ of every image of `set` (eval mode); `None`
    /// for the prior. `seed` seeds the second stage.
    ///
    /// # Errors
    /// Fewer than two images, candle errors.
    pub fn fit<M: VaeModel>(model: &M, set: &ImageSet, cfg: &VaeConfig, seed: u64, device: &Device) -> Result<Option<Self>> {
        let codes = || training_codes(model, set, cfg.batch_size, device);
        Ok(match cfg.sampler {
            LatentSampler::Prior => None,
            LatentSampler::FittedGaussian => Some(CodeSampler::Gaussian(LatentGaussian::from_codes(&codes()?, model.latent(), cfg.latent_shrinkage)?)),
            LatentSampler::TwoStage => Some(CodeSampler::TwoStage(SecondStage::fit(&codes()?, model.latent(), cfg.second_stage, seed, device)?)),
            LatentSampler::Autoregressive => {
                let channels = match cfg.latent_layout {
                    LatentLayout::Spatial { channels } => channels,
                    LatentLayout::Flat => return Err(VaeError::Config("the autoregressive code sampler needs a spatial code (latent_layout)".into())),
                };
                Some(CodeSampler::Autoregressive(Box::new(CodePixelCnn::fit(&codes()?, channels, cfg.bottleneck_side(), cfg.pixel_cnn, seed, device)?)))
            }
        })
    }

    /// Dimension of the codes it draws.
    pub fn dim(&self) -> usize {
        match self {
            CodeSampler::Gaussian(g) => g.dim,
            CodeSampler::TwoStage(s) => s.code_dim,
            CodeSampler::Autoregressive(p) => p.dim(),
        }
    }

    /// `n` codes from the seeded stream `samples`: (n, dim).
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        match self {
            CodeSampler::Gaussian(g) => g.sample(n, seed, device),
            CodeSampler::TwoStage(s) => s.sample(n, seed, device),
            CodeSampler::Autoregressive(p) => p.sample(n, seed, device),
        }
    }
}

/// A set covariance shrinkage must lie in (0, 1]; `None` (automatic) always passes.
pub(crate) fn check_shrinkage(shrinkage: Option<f64>) -> Result<()> {
    match shrinkage {
        Some(s) if !(s > 0.0 && s <= 1.0) => Err(VaeError::Config(format!("latent_shrinkage must be in (0, 1], got {s}"))),
        _ => Ok(()),
    }
}

/// The number of codes in `codes` (n × `dim`, row-major, n ≥ 2) and their per-dimension mean.
pub(crate) fn code_count_and_mean(codes: &[f64], dim: usize) -> Result<(usize, Vec<f64>)> {
    let n = codes.len() / dim.max(1);
    if dim == 0 || n < 2 || codes.len() != n * dim {
        return Err(VaeError::Data(format!("{} values are not at least 2 codes of dimension {dim}", codes.len())));
    }
    let mut mean = vec![0f64; dim];
    for c in codes.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(c) {
            *m += v / n as f64;
        }
    }
    Ok((n, mean))
}

/// The codes μ of every image of `set` (eval mode), n × latent, row-major; a class-conditional
/// model encodes each image with its own label.
///
/// # Errors
/// Fewer than two images, candle errors.
pub fn training_codes<M: VaeModel>(model: &M, set: &ImageSet, batch_size: usize, device: &Device) -> Result<Vec<f64>> {
    if set.len() < 2 {
        return Err(VaeError::Data(format!("fitting a code sampler needs at least 2 images, got {}", set.len())));
    }
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut codes: Vec<f64> = Vec::with_capacity(set.len() * model.latent());
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = set.batch(chunk, None, device)?;
        let (mu, _) = model.encode_labelled(&x, &y, false)?;
        codes.extend(mu.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f64::from));
    }
    Ok(codes)
}

/// A Gaussian N(mean, L Lᵀ) over latent codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentGaussian {
    /// Latent dimension.
    pub dim: usize,
    /// Mean code.
    pub mean: Vec<f64>,
    /// Lower-triangular Cholesky factor of the covariance, row-major (dim × dim).
    pub chol: Vec<f64>,
}

impl LatentGaussian {
    /// Fits the Gaussian to the codes μ of every image of `set` (eval mode). The covariance
    /// is shrunk towards its mean variance, Σ' = (1 − s)·Σ + s·(tr Σ / d)·I, so that it stays
    /// positive definite when there are fewer images than dimensions: s = `shrinkage`, or
    /// d / (n + d) when `None`.
    pub fn fit<M: VaeModel>(model: &M, set: &ImageSet, batch_size: usize, shrinkage: Option<f64>, device: &Device) -> Result<Self> {
        Self::from_codes(&training_codes(model, set, batch_size, device)?, model.latent(), shrinkage)
    }

    /// Fits the Gaussian to `codes` (n × dim, row-major), shrunk as [`LatentGaussian::fit`] says.
    pub fn from_codes(codes: &[f64], dim: usize, shrinkage: Option<f64>) -> Result<Self> {
        let (n, mean) = code_count_and_mean(codes, dim)?;
        let mut cov = vec![0f64; dim * dim];
        for c in codes.chunks(dim) {
            for i in 0..dim {
                let di = c[i] - mean[i];
                for j in 0..=i {
                    cov[i * dim + j] += di * (c[j] - mean[j]) / (n - 1) as f64;
                }
            }
        }
        let trace: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        check_shrinkage(shrinkage)?;
        let s = shrinkage.unwrap_or(dim as f64 / (n + dim) as f64);
        let floor = (trace / dim as f64).max(1e-8);
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] *= 1.0 - s;
            }
            cov[i * dim + i] += s * floor;
        }
        // Cholesky of the lower triangle.
        let mut l = vec![0f64; dim * dim];
        for i in 0..dim {
            for j in 0..=i {
                let sum: f64 = cov[i * dim + j] - (0..j).map(|k| l[i * dim + k] * l[j * dim + k]).sum::<f64>();
                if i == j {
                    if sum <= 0.0 {
                        return Err(VaeError::Data("the latent covariance is not positive definite".into()));
                    }
                    l[i * dim + i] = sum.sqrt();
                } else {
                    l[i * dim + j] = sum / l[j * dim + j];
                }
            }
        }
        Ok(LatentGaussian { dim, mean, chol: l })
    }

    /// `n` codes mean + L·ε with ε from the seeded stream `samples` (the same stream the prior
    /// sampler uses, so a seed picks the same ε either way): (n, dim).
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let eps: Vec<f32> = seeded_normal(seed, "samples", (n, self.dim), &Device::Cpu)?.flatten_all()?.to_vec1()?;
        let d = self.dim;
        let mut z = vec![0f32; n * d];
        for (row, e) in z.chunks_mut(d).zip(eps.chunks(d)) {
            for (i, z_i) in row.iter_mut().enumerate() {
                let v: f64 = (0..=i).map(|k| self.chol[i * d + k] * e[k] as f64).sum();
                *z_i = (self.mean[i] + v) as f32;
            }
        }
        Ok(Tensor::from_vec(z, (n, d), &Device::Cpu)?.to_device(device)?)
    }
}

//! # mri-vae
//!
//! The study's two variational autoencoders on Candle:
//!
//! - [`GenerativeVae`] ([`VaeConfig`]): trained per class, then sampled to make synthetic
//!   slices. Paper preset: six conv 3×3 stride-2 blocks (64→…→1024) with BatchNorm and
//!   LeakyReLU 0.2, latent 512, a mirrored nearest-upsample decoder, summed BCE + KL, AdamW
//!   lr 2e-4, betas (0.5, 0.999), weight decay 1e-5.
//! - [`AnomalyVae`] ([`AnomalyVaeConfig`]): trained on healthy slices only; its reconstruction
//!   error is the tumour evidence that `mri-cluster` turns into decisions. Paper preset: the
//!   study's two-conv encoder (32, 64; latent 64) and its large-kernel transposed-conv decoder
//!   (kernels 33 and 65 at 128 px); the default preset keeps the encoder and mirrors it with
//!   4×4 stride-2 transposed convs ([`AnomalyDecoder::Mirrored`]).
//!
//! One trainer ([`train_vae`]) serves both: loss selectable ([`VaeLoss`]: summed BCE + KL, or
//! MSE + β·KL), Adam/AdamW from `mri-train`, the epoch with the best validation loss kept,
//! seeded reparameterisation noise, checkpoints every epoch so a killed run resumes where it
//! stopped, reconstruction / sample grids every N epochs; a KL warm-up and a minimum number of
//! optimiser steps (small sets get more epochs). [`sample`] decodes seeded prior noise;
//! [`sample_from`] decodes codes drawn from a [`CodeSampler`] fitted to the training codes: a
//! [`LatentGaussian`] (what the default preset's generative VAE does: with β = 0.01 its codes
//! lie far from N(0, I)) or a [`SecondStage`] VAE on the codes (the two-stage VAE);
//! [`reconstruct_set`] gives the reconstructions anomaly scoring needs.
//!
//! Weight names (safetensors keys, readable with Python's `safetensors.numpy.load_file`):
//! generative — `enc{i}.conv.{weight,bias}`, `enc{i}.bn.{weight,bias,running_mean,running_var}`,
//! `mu.*`, `logvar.*`, `dec_in.*`, `dec{j}.conv.*`, `dec{j}.bn.*`; anomaly — `enc{i}.*`, `mu.*`,
//! `logvar.*`, `dec_in.*`, `dec{j}.*` (transposed convs, weight shape (in, out, k, k)).
//!
//! ```
//! use mri_vae::{train_vae, sample, VaeConfig};
//! use mri_train::{ImageSet, RunOptions};
//! use mri_preprocess::{Dataset, PhantomConfig};
//!
//! let ds = Dataset::phantom(&PhantomConfig { image_size: 16, per_class: 8, ..Default::default() }).unwrap();
//! let mut set = ImageSet::new(16);
//! for it in &ds.items { set.push(&it.pixels, it.label.index()).unwrap(); }
//! let healthy = set.of_class(0);
//! let cfg = VaeConfig { epochs: 1, ..VaeConfig::quick(16) };
//! let dev = candle_core::Device::Cpu;
//! let out = train_vae(&cfg, &healthy, &healthy, &dev, &RunOptions::quiet(0)).unwrap();
//! let images = sample(&out.model, 4, 1, 8, &dev).unwrap();
//! assert_eq!(images.dims(), &[4, 1, 16, 16]);
//! ```
//!
//! Dependencies: `candle-core`/`candle-nn` (layers, autograd), `mri-train` (seeded init and
//! noise, Adam, checkpoints, progress, grids), `serde`/`serde_json` (configs, sidecars),
//! `thiserror` (errors), `rand`/`rand_chacha` (the code prior's seeded draws of a
//! mixture component per position).
#![warn(missing_docs)]

mod config;
mod latent;
mod model;
mod pixelcnn;
mod trainer;
mod two_stage;

pub use config::{AnomalyDecoder, AnomalyVaeConfig, ClassModels, LatentLayout, VaeConfig, VaeLoss};
pub use latent::{training_codes, CodeSampler, LatentGaussian, LatentSampler};
pub use model::{AnomalyVae, GenerativeVae, VaeModel};
pub use pixelcnn::{code_nll, CodePixelCnn, ConvWeights, PixelCnnConfig};
pub use trainer::{
    evaluate_vae_loss, load_vae, reconstruct_set, sample, sample_from, train_vae, vae_loss, vae_loss_weighted, LossParts, VaeEpoch, VaeSpec, VaeTrainOutput,
};
pub use two_stage::{DenseWeights, SecondStage, SecondStageConfig};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    /// From the training machinery (checkpoints, optimiser, devices).
    #[error(transparent)]
    Train(#[from] mri_train::TrainError),
    /// A candle operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The configuration is invalid.
    #[error("invalid VAE config: {0}")]
    Config(String),
    /// The data cannot be used.
    #[error("data: {0}")]
    Data(String),
}

/// The crate's result type.
pub type Result<T, E = VaeError> = std::result::Result<T, E>;

//! # mri-dae
//!
//! A denoising autoencoder for unsupervised tumour detection (Kascenas et al., "Denoising
//! autoencoders for unsupervised anomaly detection in brain MRI", MIDL 2022; reference code
//! github.com/AntanasKascenas/DenoisingAE, read for the recipe, not copied): a UNet trained on
//! healthy slices to remove **coarse** noise — Gaussian noise drawn at a low resolution,
//! upsampled bilinearly, randomly rolled and applied inside the head only. Coarse noise looks
//! like a blob of changed tissue, so the network learns to put healthy tissue where a blob
//! was; shown a tumour, it "repairs" it, and the residual |x − DAE(x)| marks the tumour. Unlike
//! a VAE's bottleneck, the skip connections keep healthy detail sharp, so the residual is low
//! everywhere else.
//!
//! Smooth blobs teach it to repair smooth deviations only: on the built-in phantoms, whose
//! lesions are small and sharp-edged, it then passes them through untouched (AUROC ~0.7). The
//! default preset therefore draws, per image, either bilinear (smooth) or nearest-neighbour
//! (sharp square patches) upsampled noise ([`NoiseUpsampling::Mixed`]; an addition to the
//! paper's recipe, ~0.9 on phantoms, Br35H unchanged).
//!
//! - [`DaeConfig`] (presets through [`mri_train::Presets`]) and [`DenoisingAe`] (`X::new(cfg,
//!   vb)`, [`candle_core::ModuleT`]): per level two conv 3×3 → BatchNorm → ReLU blocks, max-pool
//!   down, nearest upsample + conv 3×3 up, skip concatenation, a 1×1 conv predicting the
//!   correction that is added to the input.
//! - [`train_dae`]: the shared epoch loop of `mri-train` (seeded, resumable checkpoints, best
//!   validation epoch kept, grids of noisy above denoised slices every N epochs); the loss is the
//!   mean squared error over the whole image; noise streams are seeded per step.
//! - [`denoise_set`] gives the reconstructions that `mri-cluster` turns into error maps.
//!
//! ```
//! use mri_dae::{train_dae, denoise_set, DaeConfig};
//! use mri_train::{ImageSet, RunOptions};
//! use mri_preprocess::{Dataset, PhantomConfig};
//!
//! let ds = Dataset::phantom(&PhantomConfig { image_size: 16, per_class: 8, ..Default::default() }).unwrap();
//! let mut set = ImageSet::new(16);
//! for it in &ds.items { set.push(&it.pixels, it.label.index()).unwrap(); }
//! let healthy = set.of_class(0);
//! let cfg = DaeConfig { epochs: 1, ..DaeConfig::quick(16) };
//! let dev = candle_core::Device::Cpu;
//! let out = train_dae(&cfg, &healthy, &healthy, &dev, &RunOptions::quiet(0)).unwrap();
//! let recon = denoise_set(&out.model, &set, 8, &dev).unwrap();
//! assert_eq!(recon.len(), set.len());
//! ```
//!
//! Dependencies: `candle-core`/`candle-nn` (layers, autograd), `mri-train` (fast conv and batch
//! norm ops, seeded init and noise, Adam, checkpoints, epoch loop, grids), `serde`/`serde_json`
//! (configs, sidecars), `thiserror` (errors), `clap` (optional feature `clap`: the noise
//! upsampling as a command-line value).
#![warn(missing_docs)]

mod config;
mod model;
mod trainer;

pub use config::{DaeConfig, NoiseUpsampling};
pub use model::DenoisingAe;
pub use trainer::{coarse_noise, denoise_set, evaluate_dae_loss, load_dae, train_dae, DaeEpoch, DaeTrainOutput};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DaeError {
    /// A config value out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The field.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Unusable training or validation data.
    #[error("data: {0}")]
    Data(String),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// From mri-train (checkpoints, the epoch loop).
    #[error(transparent)]
    Train(#[from] mri_train::TrainError),
}

/// Result with [`DaeError`].
pub type Result<T, E = DaeError> = std::result::Result<T, E>;

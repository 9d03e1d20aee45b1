//! # mri-gan
//!
//! The study's GAN on Candle, trained separately for each class to make synthetic slices.
//! Paper preset ([`GanConfig::paper`]): generator Linear(100 → 128·8·8) + ReLU, then
//! 4 × [nearest upsample ×2 → conv 3×3 → BN → ReLU] through 128 → 128 → 64 → 32 → 1, the last
//! without BN and with tanh (output range **[−1, 1]**; [`sample`] returns [0, 1]);
//! discriminator 4 × [conv 4×4 stride 2 → LeakyReLU 0.2] through 1 → 64 → 128 → 256 → 512,
//! flatten → Linear → one **logit**. Loss: the numerically stable BCE on logits; Adam lr 2e-4,
//! betas (0.5, 0.999) for each network, with separate `VarMap`s and optimisers.
//!
//! The default preset adds, each ingredient a config field that the `paper` preset leaves
//! off: a **packing discriminator** (`d_pack`, PacGAN: it judges pairs of images, so a generator
//! that draws one image for every noise is seen), two-time-scale Adam (D faster than G, β₁ = 0),
//! the hinge loss ([`GanLoss::Hinge`]), spectral normalisation of every discriminator weight
//! ([`SnWeight`]; its power-iteration vectors are saved with the checkpoint), an exponential
//! moving average of the generator's weights that does the sampling, DCGAN's N(0, 0.02)
//! initialisation, and a minimum number of optimiser steps. No R1 or gradient penalty: candle
//! has no second-order gradients (candle issue 2462). Options, off in the default preset:
//! [`DiffAugment`] (differentiable brightness, contrast, translation and cutout on real and fake
//! images in both steps, drawn once per pack with packing), a minibatch-standard-deviation
//! channel in the discriminator ([`minibatch_std`]), a class-conditional GAN (`classes`: one
//! generator with a class embedding and a projection discriminator for both classes,
//! [`sample`] given the class; with packing each pack holds one class, [`pack_order`]) with
//! AC-GAN's auxiliary classifier (`aux_classifier`: a class head on the discriminator learnt
//! from real slices, whose verdict the generator must earn), the mode-seeking term
//! (`mode_seeking`), a generator step on the discriminator step's own fakes (`reuse_fake`:
//! one generator forward a step fewer), and texture-statistics matching (`texture_match`: the
//! generator pays for the gap between its fakes' Laplacian band energies, gradient and
//! intensity histograms and the real slices' of the class, [`TextureTarget`]), and the LeCam
//! regulariser (`lecam`: D's logits pulled towards moving anchors of the other side's,
//! [`LeCamAnchors`], saved with the resume state; Tseng et al. 2021).
//!
//! [`train_gan`] logs D and G losses, D(x), D(G(z)), the sampling generator's spread across
//! its fixed noises ([`pixel_spread`]: a collapsing generator's falls towards 0) and the
//! texture gap (when matched) per epoch,
//! writes sample grids from fixed noise every N epochs, checkpoints every epoch and resumes a
//! killed run exactly.
//!
//! Weight names (safetensors keys, readable with Python's `safetensors.numpy.load_file`):
//! `generator.fc.*`, `generator.block{i}.conv.*`, `generator.block{i}.bn.*`, `generator.out.*`,
//! `discriminator.conv{i}.*`, `discriminator.out.*` (conditional: also `generator.class_embed`,
//! `discriminator.proj.*`); optimiser state in `NAME-last.optim.safetensors`
//! as `g.m.<var>`, `g.v.<var>`, `d.m.<var>`, `d.v.<var>`.
//!
//! ```
//! use mri_gan::{train_gan, sample, GanConfig};
//! use mri_train::{ImageSet, RunOptions};
//! use mri_preprocess::{Dataset, PhantomConfig};
//!
//! let ds = Dataset::phantom(&PhantomConfig { image_size: 16, per_class: 8, ..Default::default() }).unwrap();
//! let mut set = ImageSet::new(16);
//! for it in &ds.items { set.push(&it.pixels, it.label.index()).unwrap(); }
//! let cfg = GanConfig { epochs: 1, ..GanConfig::quick(16) };
//! let dev = candle_core::Device::Cpu;
//! let out = train_gan(&cfg, &set.of_class(1), &dev, &RunOptions::quiet(0)).unwrap();
//! let images = sample(&out.generator, None, 4, 1, 8, &dev).unwrap();
//! assert_eq!(images.dims(), &[4, 1, 16, 16]);
//!
//! // One class-conditional GAN for both classes, asked for tumour slices (label 1).
//! let cond = GanConfig { classes: 2, ..cfg };
//! let out = train_gan(&cond, &set, &dev, &RunOptions::quiet(0)).unwrap();
//! assert_eq!(sample(&out.generator, Some(1), 4, 1, 8, &dev).unwrap().dims(), &[4, 1, 16, 16]);
//! ```
//!
//! Dependencies: `candle-core`/`candle-nn` (layers, autograd), `mri-train` (seeded init and
//! noise, Adam, stable BCE, checkpoints, progress, grids), `rand`/`rand_chacha` (DiffAugment's
//! seeded draws, reproducible on resume), `serde`/`serde_json` (config, sidecars),
//! `thiserror` (errors), `clap` (optional feature `clap`: [`DiscriminatorBlur`] as a
//! command-line value for the examples).
#![warn(missing_docs)]

mod diffaug;
mod model;
mod spectral;
mod texture;
mod trainer;

pub use diffaug::DiffAugment;
pub use model::{binomial_blur3, minibatch_std, Discriminator, DiscriminatorBlur, GanConfig, GanLoss, Generator};
pub use spectral::{SnWeight, SN_U};
pub use texture::{texture_stats, TextureTarget, TEXTURE_STATS};
pub use trainer::{build_gan, gan_step, load_gan, pack_order, pixel_spread, sample, train_gan, GanEpoch, GanTrainOutput, LeCamAnchors, LECAM_DECAY};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum GanError {
    /// From the training machinery (checkpoints, optimiser, devices).
    #[error(transparent)]
    Train(#[from] mri_train::TrainError),
    /// A candle operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The configuration is invalid.
    #[error("invalid GAN config: {0}")]
    Config(String),
    /// The data cannot be used.
    #[error("data: {0}")]
    Data(String),
}

/// The crate's result type.
pub type Result<T, E = GanError> = std::result::Result<T, E>;

//! # mri-gan
//!
//! Will hold the study's GAN for brain MRI slices: a generator (latent 100 → Linear → 4 ×
//! [upsample ×2 → conv3×3 → BN → ReLU], tanh output) and a discriminator (4 × [conv4×4 s2 →
//! LeakyReLU 0.2] → logit), their configs and presets, per-class training with separate
//! optimisers, checkpoints and sampling. Filled by the `[models]` issue; empty for now.
#![warn(missing_docs)]

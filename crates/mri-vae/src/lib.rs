//! # mri-vae
//!
//! Will hold the generative VAE (latent 512, six strided conv blocks each way, summed BCE + KL)
//! and the anomaly VAE (latent 64, trained on healthy slices only) with their configs, presets,
//! training, checkpoints, sampling and reconstruction. Filled by the `[models]` issue; empty for now.
#![warn(missing_docs)]

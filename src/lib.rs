//! # mri-synth
//!
//! Synthetic brain-MRI generation and tumour classification on Candle: the facade of the
//! workspace. It re-exports each crate under a short name and will hold the experiment
//! protocol (real / synthetic / mixed training, tested on real data) and its report.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`preprocess`] | `mri-preprocess` | loading, preprocessing, near-duplicate groups, splits, phantoms, PNG, batches |
//! | [`metrics`] | `mri-metrics` | confusion, accuracy / precision / recall / F1, ROC / AUROC, threshold choice |
//! | [`gan`] | `mri-gan` | GAN (to come) |
//! | [`vae`] | `mri-vae` | generative and anomaly VAEs (to come) |
//! | [`cnn`] | `mri-cnn` | CNN classifier (to come) |
//! | [`cluster`] | `mri-cluster` | reconstruction-error anomaly scoring (to come) |
#![warn(missing_docs)]

pub use mri_cluster as cluster;
pub use mri_cnn as cnn;
pub use mri_gan as gan;
pub use mri_metrics as metrics;
pub use mri_preprocess as preprocess;
pub use mri_vae as vae;

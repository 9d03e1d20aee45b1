//! # mri-synth
//!
//! Synthetic brain-MRI generation and tumour classification on Candle: the facade of the
//! workspace. It re-exports each crate under a short name and will hold the experiment
//! protocol (real / synthetic / mixed training, tested on real data) and its report. Today it
//! holds [`data`]: the shared load → group → split → image-set path of the examples.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`preprocess`] | `mri-preprocess` | loading, preprocessing, near-duplicate groups, splits, phantoms, PNG, batches |
//! | [`metrics`] | `mri-metrics` | confusion, accuracy / precision / recall / F1, ROC / AUROC, threshold choice |
//! | [`gan`] | `mri-gan` | GAN (to come) |
//! | [`vae`] | `mri-vae` | generative and anomaly VAEs (to come) |
//! | [`cnn`] | `mri-cnn` | the study's CNN classifier: presets, seeded resumable training, prediction |
//! | [`train`] | `mri-train` | devices, seeded init and dropout, Adam, schedules, checkpoints |
//! | [`cluster`] | `mri-cluster` | reconstruction-error anomaly scoring (to come) |
#![warn(missing_docs)]

pub mod data;
pub mod eval;

pub use mri_cluster as cluster;
pub use mri_cnn as cnn;
pub use mri_gan as gan;
pub use mri_metrics as metrics;
pub use mri_preprocess as preprocess;
pub use mri_train as train;
pub use mri_vae as vae;

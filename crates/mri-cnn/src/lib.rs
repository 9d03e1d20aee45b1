//! # mri-cnn
//!
//! Tumour / no-tumour classifiers, two layouts ([`CnnArch`]):
//! - **plain**, the study's: `len(channels)` × [conv 3×3 s1 p1 → BatchNorm → ReLU → max-pool 2],
//!   flatten, then for each hidden width [Dropout → Linear → ReLU], then Linear → 2 logits
//!   (index 1 = tumour). [`CnnConfig::paper`] is the study's layout (32/64/128 channels,
//!   1024/512/128 hidden, dropout 0.5, 128 px); [`CnnConfig::plain`] scales it down for a
//!   2-core CPU (`train_cnn --arch plain`); [`CnnConfig::quick`] is for tests.
//! - **residual**: a stem conv stride 2, one residual block per width (stride 2 from the
//!   second), global average pooling, dropout, Linear → 2; trained with seeded augmentation,
//!   label smoothing, weight decay and a cosine schedule, predicting with test-time flips
//!   ([`CnnConfig::residual`], 30 epochs; the `default` preset is it at 20 epochs).
//!
//! Weight names (safetensors keys): `conv{i}.conv.weight`, `conv{i}.conv.bias`,
//! `conv{i}.bn.{weight,bias,running_mean,running_var}`, `fc{i}.{weight,bias}`,
//! `out.{weight,bias}`; residual: `stem.{conv,bn}.*`, `block{i}.{conv1,bn1,conv2,bn2}.*`,
//! `block{i}.shortcut.{conv,bn}.*` — readable from Python with `safetensors.numpy.load_file`.
//!
//! Ensembles ([`train_ensemble`], [`CnnEnsemble`]): k members of one config from different
//! seeds on the same split, averaging their tumour probabilities, saved as one checkpoint that
//! [`load_classifier`] reads like a single CNN's (weights `member{i}.<name>`).
//!
//! Training ([`train`]): cross-entropy, Adam (explicit β, decay), ReduceLROnPlateau on the
//! validation loss, the epoch with the best validation loss kept; seeded initialisation,
//! dropout, shuffling and flips (see `mri-train`); checkpoints every epoch so a killed run
//! resumes where it stopped.
//!
//! ```
//! use mri_cnn::{train, CnnConfig, TrainOptions, predict_proba};
//! use mri_preprocess::{Dataset, PhantomConfig};
//! use mri_train::ImageSet;
//!
//! let ds = Dataset::phantom(&PhantomConfig { image_size: 16, per_class: 8, ..Default::default() }).unwrap();
//! let mut set = ImageSet::new(16);
//! for it in &ds.items { set.push(&it.pixels, it.label.index()).unwrap(); }
//! let cfg = CnnConfig { epochs: 1, ..CnnConfig::quick(16) };
//! let out = train(&cfg, &set, &set, &candle_core::Device::Cpu, &TrainOptions::quiet(0)).unwrap();
//! let p = predict_proba(&out.model, &set, 8, &candle_core::Device::Cpu).unwrap();
//! assert_eq!(p.len(), 16);
//! ```
//!
//! Dependencies: `candle-core`/`candle-nn` (layers, autograd), `mri-train` (seeded init,
//! dropout, Adam, schedules, checkpoints), `serde`/`serde_json` (config, sidecars),
//! `thiserror` (errors).
#![warn(missing_docs)]

mod ensemble;
mod model;
mod trainer;

pub use ensemble::{ensemble_size, load_classifier, member_seed, save_ensemble, train_ensemble, CnnEnsemble, EnsembleOutput, TumourClassifier};
pub use model::{Cnn, CnnArch, CnnConfig, LrSchedule};
pub use trainer::{evaluate_loss, load_cnn, predict_proba, smoothed_cross_entropy, train, EpochRecord, TrainOptions, TrainOutput};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum CnnError {
    /// From the training machinery (checkpoints, optimiser, devices).
    #[error(transparent)]
    Train(#[from] mri_train::TrainError),
    /// A candle operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The configuration is invalid.
    #[error("invalid CNN config: {0}")]
    Config(String),
    /// The data cannot be used (empty set, wrong image size).
    #[error("data: {0}")]
    Data(String),
}

/// The crate's result type.
pub type Result<T, E = CnnError> = std::result::Result<T, E>;

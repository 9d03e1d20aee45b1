//! # mri-synth
//!
//! Synthetic brain-MRI generation and tumour classification on Candle: the facade of the
//! workspace. It re-exports each crate under a short name and holds the study's protocol:
//! [`data`] (load → group → split → image sets, tumour masks), [`generators`] (per-class VAE /
//! GAN training and synthetic sets), [`anomaly`] (error maps and the four techniques),
//! [`quality`] (fidelity, diversity, privacy and localisation of what the models produce),
//! [`experiment`] (real / synthetic / mixed, tested on real data, with `report.json` /
//! `report.md`, written by [`report`]), [`rundir`] (an output folder bound to one run by its
//! fingerprint), [`shortcut`] (what the original files' geometry alone predicts), [`eval`],
//! [`compare`] (paired differences between runs on the same test slices: ablation rows),
//! [`crossval`] (the study over the folds of a grouped cross-validation, mean ± sd),
//! [`plots`] and [`throughput`].
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`preprocess`] | `mri-preprocess` | loading, preprocessing, near-duplicate groups, splits, phantoms, PNG, batches |
//! | [`metrics`] | `mri-metrics` | confusion, accuracy / precision / recall / F1, ROC / AUROC, threshold choice; Fréchet distance, MMD, SSIM / MS-SSIM, memorisation, Dice |
//! | [`gan`] | `mri-gan` | the study's GAN: presets, separate G/D optimisers, seeded resumable training, sampling |
//! | [`vae`] | `mri-vae` | generative and anomaly VAEs: presets, selectable loss, seeded resumable training, sampling, reconstruction |
//! | [`dae`] | `mri-dae` | denoising autoencoder (UNet) for anomaly detection: presets, coarse-noise training, seeded resumable, denoising |
//! | [`cnn`] | `mri-cnn` | the study's CNN classifier: presets, seeded resumable training, prediction |
//! | [`train`] | `mri-train` | devices, seeded init and dropout, Adam, schedules, checkpoints |
//! | [`cluster`] | `mri-cluster` | reconstruction-error anomaly detection: GIAEM, DBSCAN, per-image and global KMeans |
#![warn(missing_docs)]

/// The global allocator of every binary that links this crate with its default feature
/// `mimalloc` (the examples, the tests): mimalloc, which keeps freed blocks of every size for
/// reuse, told by [`train::configure_allocator`] never to purge them. Under glibc's malloc every
/// block over 32 MiB (the paper preset's activations and its CNN head's gradients, 134 MiB
/// each) was mapped and page-faulted afresh on each use: the paper CNN trained 2.6× as fast
/// with mimalloc, and the default preset's CNN and GAN about 10 % faster (docs/performance.md,
/// session 33). A program of your own that depends on `mri-synth` can keep its own allocator
/// with `default-features = false`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `FromStr` for a unit enum from its command-line spellings (the same as its serde names),
/// with an error that names the kind of thing and lists every spelling: one parser for the
/// root crate's option kinds (`GeneratorKind`, `AnomalySets`, `CnnBudget`).
macro_rules! from_str_by_name {
    ($t:ty, $what:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl std::str::FromStr for $t {
            type Err = $crate::SynthError;
            fn from_str(s: &str) -> Result<Self, $crate::SynthError> {
                match s {
                    $($s => Ok(<$t>::$v),)+
                    _ => Err($crate::SynthError::Invalid(format!(concat!("unknown ", $what, " {:?}; expected one of: {}"), s, [$($s),+].join(", ")))),
                }
            }
        }
    };
}

pub mod anomaly;
pub mod compare;
pub mod crossval;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod generators;
pub mod plots;
pub mod quality;
pub mod report;
pub mod rundir;
pub mod shortcut;
pub mod throughput;

/// Errors of the facade's own modules (the protocol, throughput); the crates' errors convert into it.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// A candle operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// From mri-train.
    #[error(transparent)]
    Train(#[from] mri_train::TrainError),
    /// From mri-cnn.
    #[error(transparent)]
    Cnn(#[from] mri_cnn::CnnError),
    /// From mri-vae.
    #[error(transparent)]
    Vae(#[from] mri_vae::VaeError),
    /// From mri-gan.
    #[error(transparent)]
    Gan(#[from] mri_gan::GanError),
    /// From mri-dae.
    #[error(transparent)]
    Dae(#[from] mri_dae::DaeError),
    /// From mri-preprocess.
    #[error(transparent)]
    Preprocess(#[from] mri_preprocess::PreprocessError),
    /// From mri-metrics.
    #[error(transparent)]
    Metrics(#[from] mri_metrics::MetricsError),
    /// From mri-cluster.
    #[error(transparent)]
    Cluster(#[from] mri_cluster::ClusterError),
    /// An output folder (or a result in it) was made by another run: other data, split,
    /// seed, preset or image size. Never reused.
    #[error("{path} was made by another run: {reason}; use another --out, or --fresh to start over in this folder")]
    RunMismatch {
        /// The file that records the other run.
        path: std::path::PathBuf,
        /// What differs.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
}

pub use mri_cluster as cluster;
pub use mri_cnn as cnn;
pub use mri_dae as dae;
pub use mri_gan as gan;
pub use mri_metrics as metrics;
pub use mri_preprocess as preprocess;
pub use mri_train as train;
pub use mri_vae as vae;

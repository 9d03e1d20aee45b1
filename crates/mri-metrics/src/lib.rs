//! # mri-metrics
//!
//! Metrics for the mri-synth study:
//! - [`classification`]: confusion counts; accuracy, precision, recall, F1, specificity and
//!   balanced accuracy; the study's weighted metric; ROC curves and AUROC with ties handled;
//!   the choice of one operating point on validation scores by a named criterion.
//! - [`generative`]: fidelity of a synthetic set on feature vectors — Fréchet distance (FID's
//!   formula with any feature extractor) and unbiased Gaussian-kernel MMD²; improved precision
//!   and recall (k-NN manifolds: realism and coverage apart); the per-pixel spread of a set.
//! - [`ssim`](mod@ssim): SSIM, MS-SSIM (window and scales valid at 64 and 128 px) and the mean pairwise
//!   MS-SSIM of a set (diversity).
//! - [`privacy`]: distance to the closest training record and the memorisation rate.
//! - [`segmentation`]: Dice at a threshold and the best Dice (pixel-level localisation).
//! - [`texture`]: hand-crafted realism features (Laplacian band energies, gradient and
//!   intensity histograms) for a Fréchet distance that sees noise, stripes and blur.
//! - [`two_sample`]: the classifier two-sample test (cross-validated accuracy of a linear
//!   discriminant telling two sets apart): a generator's signature, and whether two synthetic
//!   classes differ where the real ones do not.
//!
//! Definitions follow scikit-learn's so results can be cross-checked; undefined ratios (0/0)
//! are 0.0 and an undefined AUROC is 0.5 — never NaN, never a panic (see [`classification`]).
//!
//! ```
//! use mri_metrics::{choose_threshold, auroc, Confusion, ThresholdCriterion};
//!
//! // Validation scores (higher = more tumour-like) and truth (true = tumour).
//! let val_scores = [0.9, 0.8, 0.35, 0.3, 0.1];
//! let val_truth = [true, true, false, true, false];
//! let op = choose_threshold(&val_scores, &val_truth, ThresholdCriterion::F1).unwrap();
//! assert_eq!(op.threshold, 0.3);
//!
//! // Apply that one operating point to the test set.
//! let test_scores = [0.7, 0.2, 0.4];
//! let test_truth = [true, false, false];
//! let c = Confusion::from_scores(&test_scores, &test_truth, op.threshold).unwrap();
//! assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 1, 1, 0));
//! assert_eq!(auroc(&test_scores, &test_truth).unwrap(), 1.0);
//! ```
//!
//! Dependencies: `serde` (metrics go into `report.json`), `thiserror` (the crate's error enum),
//! `ndarray` + `linfa-linalg` (covariances and the symmetric eigendecomposition behind the
//! Fréchet distance; pure Rust, already built for the clustering crate's tests), `rayon`
//! (pairwise distances in parallel), `rand`/`rand_chacha` (seeded pair sampling for MS-SSIM, seeded folds of the two-sample test).
#![warn(missing_docs)]

pub mod bootstrap;
pub mod classification;
pub mod generative;
pub mod privacy;
pub mod segmentation;
pub mod ssim;
pub mod texture;
pub mod two_sample;

pub use bootstrap::{percentile_interval, subset_metrics, GroupBootstrap, Interval, SubsetMetrics};
pub use classification::{auroc, choose_threshold, ClassificationSummary, Confusion, Metric, OperatingPoint, RocCurve, RocPoint, ThresholdCriterion};
pub use generative::{frechet_distance, mmd_unbiased, pixel_spread, precision_recall, Mmd, PrecisionRecall};
pub use privacy::{memorisation, nearest_neighbours, Memorisation, MemorisationParams, Neighbour};
pub use segmentation::{best_dice, dice_at, DiceAt};
pub use ssim::{mean_pairwise_ms_ssim, ms_ssim, ssim, SsimParams};
pub use two_sample::{classifier_two_sample, TwoSample, TwoSampleParams};

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Two inputs that must pair up element by element differ in length.
    #[error("{what}: expected {expected} values (one per ground-truth label), got {got}")]
    LengthMismatch {
        /// Which input was off.
        what: &'static str,
        /// The number of ground-truth labels.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// A score is NaN or infinite.
    #[error("score #{index} is {value}; scores must be finite")]
    NonFiniteScore {
        /// Position of the first bad score.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The weighting α of the study's weighted metric is outside [0, 1].
    #[error("alpha must be in [0, 1], got {0}")]
    InvalidAlpha(f64),
    /// A threshold cannot be chosen on no data.
    #[error("cannot choose a threshold on an empty set of scores")]
    Empty,
    /// An unknown threshold criterion name.
    #[error("unknown threshold criterion {0:?}; expected one of f1, balanced_accuracy, youden, accuracy")]
    UnknownCriterion(String),
    /// An input has the wrong shape, or a parameter is out of range.
    #[error("{what}: {reason}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A set is too small for the statistic.
    #[error("{what}: needs at least {need} rows, got {got}")]
    TooFewSamples {
        /// Which set.
        what: &'static str,
        /// The minimum.
        need: usize,
        /// What was given.
        got: usize,
    },
    /// A linear-algebra step failed.
    #[error("numerical failure: {0}")]
    Numerical(String),
}

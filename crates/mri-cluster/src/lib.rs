//! # mri-cluster
//!
//! Turns an anomaly VAE's reconstructions into tumour decisions by the study's four
//! techniques (and a plain percentile score). [`ErrorMaps`] holds per-pixel |x − x̂| (optionally min–max normalised per map,
//! optionally restricted to the head — the study counted background pixels too). Then:
//!
//! | technique | parameters searched on validation | score (higher = tumour) |
//! |---|---|---|
//! | [`GiaemParams`] → [`Giaem`] | pixel anomaly threshold | fraction of region pixels above it |
//! | [`DbscanParams`] → [`Dbscan`] | high-error threshold (eps, min_points fixed, in pixel units) | largest cluster of high-error pixels / region |
//! | [`KMeansParams`] → [`PerImageKMeans`] | coordinate weight (direction set on validation) | share of the higher-error-centroid cluster |
//! | [`GlobalKMeansParams`] → [`GlobalKMeans`] | binarisation threshold (α optional) | ln(d_healthy / d_tumour) |
//! | [`PercentileParams`] → [`Percentile`] | quantile | that quantile of the region's values (the plain residual score; on raw intensities, the intensity baseline) |
//!
//! Each parameter set has a linfa-style `check()` and `fit(val_maps, val_labels)`, which
//! searches its grid and keeps **one operating point** chosen by a selectable criterion
//! (balanced accuracy by default: F1, the study's choice, pushes weak detectors to "everything
//! is tumour") on validation data only. The fitted [`Detector`] gives continuous scores (for
//! AUROC) and decisions on any other set, and serialises to JSON for later reuse.
//!
//! The clustering kernels ([`kernels`]) are specialised for k = 2, 3-D points and pixel grids,
//! and tested against linfa-clustering's KMeans and DBSCAN (tests/cluster.rs); criterion
//! benches `kmeans_per_map`, `dbscan_per_map` and `global_kmeans` time them (benches/cluster.rs).
//!
//! ```
//! use mri_cluster::{ErrorMaps, GiaemParams, Detector};
//! // Eight 16×16 maps: tumour maps carry a bright 5×5 blob on faint noise.
//! let side = 16;
//! let mut errors = Vec::new();
//! let labels: Vec<bool> = (0..8).map(|i| i % 2 == 0).collect();
//! for (i, &tumour) in labels.iter().enumerate() {
//!     for p in 0..side * side {
//!         let (x, y) = (p % side, p / side);
//!         let blob = tumour && (5..10).contains(&x) && (5..10).contains(&y);
//!         errors.push(if blob { 0.9 } else { 0.05 * (((p * 7 + i * 13) % 10) as f32 / 10.0) });
//!     }
//! }
//! let maps = ErrorMaps::from_raw(side, errors, None).unwrap();
//! let detector = Detector::Giaem(GiaemParams::default().fit(&maps, &labels).unwrap());
//! assert_eq!(detector.predict(&maps).unwrap(), labels);
//! ```
//!
//! Dependencies: `mri-metrics` (threshold choice, confusion), `rayon` (maps in parallel),
//! `rand` + `rand_chacha` (seeded k-means++), `serde`/`serde_json` (fitted detectors as JSON),
//! `thiserror` (errors). linfa, linfa-clustering, linfa-nn and ndarray 0.16 are
//! dev-dependencies: the reference implementations in tests and benches.
#![warn(missing_docs)]

pub mod kernels;
mod maps;
mod techniques;

pub use maps::{ErrorMapOptions, ErrorMaps};
pub use techniques::{
    Dbscan, DbscanParams, Detector, DetectorFile, Giaem, GiaemParams, GlobalKMeans, GlobalKMeansParams, KMeansParams, PerImageKMeans, Percentile,
    PercentileParams, Technique,
};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Maps, labels or JSON that cannot be used.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A detector without an operating point was asked to decide.
    #[error("the detector has no operating point: fit it on validation data first")]
    NotFitted,
    /// From mri-metrics.
    #[error(transparent)]
    Metrics(#[from] mri_metrics::MetricsError),
    /// A detector file that cannot be read, written or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

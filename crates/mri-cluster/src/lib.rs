//! # mri-cluster
//!
//! Will turn an anomaly VAE's per-pixel reconstruction errors into tumour decisions by the
//! study's four techniques (GIAEM, DBSCAN, per-image KMeans, global KMeans), each with checked
//! parameters, an operating point fitted on validation data, and JSON-serialisable fitted
//! detectors. Filled by the `[cluster]` issue; empty for now.
#![warn(missing_docs)]

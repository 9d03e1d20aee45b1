//! Anomaly detection with the anomaly VAE: reconstructions → error maps → the four techniques
//! fitted on validation → test metrics, plus figures. Used by the `vae_anomaly` example and the
//! experiment protocol.

use std::path::Path;

use candle_core::Device;
use mri_cluster::{Detector, ErrorMapOptions, ErrorMaps, Technique};
use mri_metrics::ThresholdCriterion;
use mri_train::ImageSet;
use mri_vae::{reconstruct_set, VaeModel};
use serde::{Deserialize, Serialize};

use crate::eval::TestMetrics;
use crate::report::Classifier;
use crate::SynthError;

/// One technique's result on the test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TechniqueResult {
    /// The report row it fills.
    pub model: Classifier,
    /// Metrics on test at the operating point chosen on validation.
    pub test: TestMetrics,
    /// The fitted detector (parameters and operating point).
    pub detector: Detector,
}

/// Error maps of a set under a model.
pub fn error_maps<M: VaeModel>(model: &M, set: &ImageSet, opts: &ErrorMapOptions, device: &Device) -> Result<(ImageSet, ErrorMaps), SynthError> {
    let recon = reconstruct_set(model, set, 64, device)?;
    let maps = ErrorMaps::from_reconstructions(&set.pixels, &recon.pixels, set.side, opts)?;
    Ok((recon, maps))
}

fn truth(set: &ImageSet) -> Vec<bool> {
    set.labels.iter().map(|&l| l == 1).collect()
}

/// Fits every technique on `val` (both classes) and scores `test`.
pub fn evaluate_techniques<M: VaeModel>(
    model: &M,
    val: &ImageSet,
    test: &ImageSet,
    opts: &ErrorMapOptions,
    criterion: ThresholdCriterion,
    device: &Device,
) -> Result<(Vec<TechniqueResult>, ImageSet, ErrorMaps), SynthError> {
    let (_, val_maps) = error_maps(model, val, opts, device)?;
    let (test_recon, test_maps) = error_maps(model, test, opts, device)?;
    let mut out = Vec::new();
    for t in Technique::ALL {
        let detector = t.fit_default(&val_maps, &truth(val), criterion)?;
        let threshold = detector.operating_point().map(|op| op.threshold).unwrap_or(0.5);
        let test_metrics = TestMetrics::from_scores_f64(&detector.score(&test_maps), &test.labels, threshold)?;
        out.push(TechniqueResult { model: Classifier::of_technique(t), test: test_metrics, detector });
    }
    Ok((out, test_recon, test_maps))
}

/// A figure of `n_each` tumour and `n_each` healthy test slices, one per row:
/// original | reconstruction | error map | decision (the error map's pixels above the
/// technique's pixel threshold, bright when the slice is called tumour, dim otherwise).
pub fn save_anomaly_figure(path: &Path, test: &ImageSet, recon: &ImageSet, maps: &ErrorMaps, detector: &Detector, n_each: usize) -> Result<(), SynthError> {
    let px = test.side * test.side;
    let pixel_threshold = match detector {
        Detector::Giaem(d) => d.anomaly_threshold,
        Detector::Dbscan(d) => d.high_error_threshold,
        Detector::GlobalKmeans(d) => d.anomaly_threshold,
        Detector::Kmeans(_) => 0.5,
    };
    let decisions = detector.predict(maps)?;
    let mut picks: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] == 1).take(n_each).collect();
    picks.extend((0..test.len()).filter(|&i| test.labels[i] == 0).take(n_each));
    let mut tiles: Vec<Vec<f32>> = Vec::new();
    for &i in &picks {
        tiles.push(test.image(i).to_vec());
        tiles.push(recon.image(i).to_vec());
        tiles.push(maps.map(i).to_vec());
        let level = if decisions[i] { 1.0 } else { 0.35 };
        tiles.push(maps.map(i).iter().map(|&e| if e > pixel_threshold { level } else { 0.0 }).collect());
    }
    let refs: Vec<&[f32]> = tiles.iter().map(|t| &t[..px]).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SynthError::Io { path: dir.to_path_buf(), source: e })?;
    }
    mri_preprocess::save_grid(path, &refs, test.side, 4)?;
    Ok(())
}

//! Anomaly detection with the anomaly VAE: reconstructions → error maps → the four techniques
//! fitted on validation → test metrics, plus figures. Used by the `vae_anomaly` example and the
//! experiment protocol.

use std::path::Path;

use candle_core::Device;
use mri_cluster::{Detector, ErrorMapOptions, ErrorMaps, PercentileParams, Technique};
use mri_metrics::ThresholdCriterion;
use mri_train::ImageSet;
use mri_vae::{reconstruct_set, VaeModel};
use serde::{Deserialize, Serialize};

use crate::eval::TestMetrics;
use crate::report::Classifier;
use crate::SynthError;

/// Which reconstruction model an anomaly row or localisation row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyModel {
    /// The study's anomaly VAE.
    Vae,
    /// The denoising autoencoder (`mri-dae`).
    Dae,
}

impl AnomalyModel {
    /// `vae` or `dae`.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyModel::Vae => "vae",
            AnomalyModel::Dae => "dae",
        }
    }
}

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

/// Map options of the intensity baseline: the slice's own values inside the head shrunk by 3
/// pixels (without the skull ring, the brightest tissue of a slice), as preprocessed (each
/// slice scaled to [0, 1]), not normalised again.
pub const INTENSITY_MAPS: ErrorMapOptions = ErrorMapOptions { normalise: false, brain_only: true, brain_threshold: 0.05, erode_px: 3 };

/// The slice's own intensities as maps (see [`INTENSITY_MAPS`]).
pub fn intensity_maps(set: &ImageSet) -> Result<ErrorMaps, SynthError> {
    Ok(ErrorMaps::from_reconstructions(&set.pixels, &vec![0.0; set.pixels.len()], set.side, &INTENSITY_MAPS)?)
}

/// The intensity baseline at image level (Meissen et al. 2021: a bright lesion is brighter than
/// healthy tissue): a quantile of each slice's in-head intensities, the quantile and the
/// operating point chosen on `val` by `criterion`, scored on `test`. No model is trained.
pub fn intensity_baseline(val: &ImageSet, test: &ImageSet, criterion: ThresholdCriterion) -> Result<(TechniqueResult, ErrorMaps), SynthError> {
    let (val_maps, test_maps) = (intensity_maps(val)?, intensity_maps(test)?);
    let detector = Detector::Percentile(PercentileParams { criterion, ..Default::default() }.fit(&val_maps, &truth(val))?);
    let threshold = detector.operating_point().map_or(0.5, |op| op.threshold);
    let test_metrics = TestMetrics::from_scores_f64(&detector.score(&test_maps), &test.labels, threshold)?;
    Ok((TechniqueResult { model: Classifier::IntensityBaseline, test: test_metrics, detector }, test_maps))
}

fn truth(set: &ImageSet) -> Vec<bool> {
    set.labels.iter().map(|&l| l == 1).collect()
}

/// What [`evaluate_techniques`] and [`evaluate_dae`] give.
pub struct AnomalyEvaluation {
    /// One result per technique.
    pub results: Vec<TechniqueResult>,
    /// The test slices' reconstructions.
    pub test_recon: ImageSet,
    /// The test slices' error maps.
    pub test_maps: ErrorMaps,
    /// Mean PSNR (dB, peak 1) of the reconstructions of the healthy validation slices: does the
    /// model reproduce healthy anatomy at all? A blur everywhere (the study's VAE) scores low,
    /// and then a tumour cannot stand out of its error map.
    pub val_healthy_psnr_db: Option<f64>,
}

/// Mean PSNR in dB (peak 1: slices are scaled to [0, 1]) of `recon` against `set` over the
/// slices of class `label`; `None` when there is none. A perfect copy counts as 100 dB.
pub fn mean_psnr_db(set: &ImageSet, recon: &ImageSet, label: u32) -> Option<f64> {
    let psnr: Vec<f64> = (0..set.len())
        .filter(|&i| set.labels[i] == label)
        .map(|i| {
            let (a, b) = (set.image(i), recon.image(i));
            let mse = a.iter().zip(b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
            if mse > 0.0 {
                (-10.0 * mse.log10()).min(100.0)
            } else {
                100.0
            }
        })
        .collect();
    (!psnr.is_empty()).then(|| psnr.iter().sum::<f64>() / psnr.len() as f64)
}

/// Fits every technique on `val` (both classes) and scores `test`, for an anomaly VAE.
pub fn evaluate_techniques<M: VaeModel>(
    model: &M,
    val: &ImageSet,
    test: &ImageSet,
    opts: &ErrorMapOptions,
    criterion: ThresholdCriterion,
    device: &Device,
) -> Result<AnomalyEvaluation, SynthError> {
    let (val_recon, test_recon) = (reconstruct_set(model, val, 64, device)?, reconstruct_set(model, test, 64, device)?);
    evaluate_reconstructions(val, &val_recon, test, test_recon, opts, criterion, Classifier::of_technique)
}

/// Map options for the denoising autoencoder: residuals inside the head shrunk by 2 pixels (as
/// Kascenas et al. erode theirs: reconstructions err most at the edge), not normalised per
/// slice (their size is the evidence; Kascenas et al. score raw residuals).
pub const DAE_MAPS: ErrorMapOptions = ErrorMapOptions { normalise: false, brain_only: true, brain_threshold: 0.05, erode_px: 2 };

/// Fits every technique on `val` (both classes) and scores `test`, for a denoising autoencoder:
/// its "reconstruction" is the denoised slice.
pub fn evaluate_dae(
    model: &mri_dae::DenoisingAe,
    val: &ImageSet,
    test: &ImageSet,
    opts: &ErrorMapOptions,
    criterion: ThresholdCriterion,
    device: &Device,
) -> Result<AnomalyEvaluation, SynthError> {
    let (val_recon, test_recon) = (mri_dae::denoise_set(model, val, 64, device)?, mri_dae::denoise_set(model, test, 64, device)?);
    evaluate_reconstructions(val, &val_recon, test, test_recon, opts, criterion, Classifier::of_dae_technique)
}

/// Every technique fitted on the error maps of `val` against `val_recon` and scored on those of
/// `test`; `row` names each technique's report row.
pub fn evaluate_reconstructions(
    val: &ImageSet,
    val_recon: &ImageSet,
    test: &ImageSet,
    test_recon: ImageSet,
    opts: &ErrorMapOptions,
    criterion: ThresholdCriterion,
    row: fn(Technique) -> Classifier,
) -> Result<AnomalyEvaluation, SynthError> {
    let val_maps = ErrorMaps::from_reconstructions(&val.pixels, &val_recon.pixels, val.side, opts)?;
    let test_maps = ErrorMaps::from_reconstructions(&test.pixels, &test_recon.pixels, test.side, opts)?;
    let mut out = Vec::new();
    for t in Technique::ALL {
        let detector = t.fit_default(&val_maps, &truth(val), criterion)?;
        let threshold = detector.operating_point().map(|op| op.threshold).unwrap_or(0.5);
        let test_metrics = TestMetrics::from_scores_f64(&detector.score(&test_maps), &test.labels, threshold)?;
        out.push(TechniqueResult { model: row(t), test: test_metrics, detector });
    }
    Ok(AnomalyEvaluation { results: out, test_recon, test_maps, val_healthy_psnr_db: mean_psnr_db(val, val_recon, 0) })
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
        // The score is a pixel value: the pixels at or above the operating point carry it.
        Detector::Percentile(d) => d.operating_point.as_ref().map_or(0.5, |op| op.threshold as f32),
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

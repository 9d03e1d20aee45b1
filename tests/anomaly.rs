//! Anomaly VAE and denoising autoencoder + the techniques end to end on 16 px phantoms (quick
//! preset), and the intensity baseline.

use candle_core::Device;
use mri_synth::anomaly::{evaluate_dae, evaluate_techniques, intensity_baseline, save_anomaly_figure, DAE_MAPS};
use mri_synth::cluster::{Detector, ErrorMapOptions};
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::metrics::ThresholdCriterion;
use mri_synth::preprocess::SplitPart;
use mri_synth::train::RunOptions;
use mri_synth::vae::{train_vae, AnomalyVaeConfig};

#[test]
fn every_technique_is_fitted_on_val_and_scored_on_test() {
    let mut spec = DataSpec::phantoms(16, 1);
    spec.phantoms_per_class = 20;
    spec.verbose = false;
    let data = PreparedData::load(&spec).unwrap();
    let (tr, va, te) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val), data.image_set(SplitPart::Test));
    let cfg = AnomalyVaeConfig { epochs: 2, ..AnomalyVaeConfig::quick(16) };
    let dev = Device::Cpu;
    let model = train_vae(&cfg, &tr.of_class(0), &va.of_class(0), &dev, &RunOptions::quiet(0)).unwrap().model;
    let ev = evaluate_techniques(&model, &va, &te, &ErrorMapOptions::default(), ThresholdCriterion::F1, &dev).unwrap();
    // A PSNR in dB of the healthy validation reconstructions (peak 1; a tiny VAE: low but finite).
    assert!(ev.val_healthy_psnr_db.is_some_and(|p| p.is_finite() && p > 0.0), "{:?}", ev.val_healthy_psnr_db);
    let (results, recon, maps) = (ev.results, ev.test_recon, ev.test_maps);
    let names: Vec<&str> = results.iter().map(|r| r.model.name()).collect();
    assert_eq!(names, ["vae-giaem", "vae-dbscan", "vae-kmeans", "vae-global-kmeans", "vae-percentile"]);
    for r in &results {
        let m = &r.test;
        assert_eq!((m.tp + m.fp + m.tn + m.fn_) as usize, te.len());
        assert!(m.auroc.is_some_and(|a| (0.0..=1.0).contains(&a)) && (0.0..=1.0).contains(&m.accuracy));
        assert!(r.detector.operating_point().is_some());
        assert_eq!(Detector::from_json(&r.detector.to_json()).unwrap(), r.detector);
    }
    assert_eq!((recon.len(), maps.len()), (te.len(), te.len()));
    let dir = tempfile::tempdir().unwrap();
    let fig = dir.path().join("a.png");
    save_anomaly_figure(&fig, &te, &recon, &maps, &results[0].detector, 2).unwrap();
    assert!(fig.exists());
}

#[test]
fn dae_rows_and_the_intensity_baseline() {
    let mut spec = DataSpec::phantoms(16, 2);
    spec.phantoms_per_class = 20;
    spec.verbose = false;
    let data = PreparedData::load(&spec).unwrap();
    let (tr, va, te) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val), data.image_set(SplitPart::Test));
    let dev = Device::Cpu;
    let cfg = mri_synth::dae::DaeConfig { epochs: 2, ..mri_synth::dae::DaeConfig::quick(16) };
    let model = mri_synth::dae::train_dae(&cfg, &tr.of_class(0), &va.of_class(0), &dev, &RunOptions::quiet(0)).unwrap().model;
    let ev = evaluate_dae(&model, &va, &te, &DAE_MAPS, ThresholdCriterion::BalancedAccuracy, &dev).unwrap();
    assert!(ev.val_healthy_psnr_db.is_some());
    let (results, recon, maps) = (ev.results, ev.test_recon, ev.test_maps);
    let names: Vec<&str> = results.iter().map(|r| r.model.name()).collect();
    assert_eq!(names, ["dae-giaem", "dae-dbscan", "dae-kmeans", "dae-global-kmeans", "dae-percentile"]);
    assert_eq!((recon.len(), maps.len()), (te.len(), te.len()));
    // Raw residuals: not normalised per slice, so values stay small but not all zero.
    assert!(maps.errors.iter().all(|e| (0.0..=1.0).contains(e)) && maps.errors.iter().any(|&e| e > 0.0));
    let (base, base_maps) = intensity_baseline(&va, &te, ThresholdCriterion::BalancedAccuracy).unwrap();
    assert_eq!(base.model.name(), "intensity-baseline");
    assert!(matches!(base.detector, Detector::Percentile(_)));
    // Its scores are in-head intensity quantiles of the slices themselves.
    let scores = base.detector.score(&base_maps);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    assert_eq!((base.test.tp + base.test.fp + base.test.tn + base.test.fn_) as usize, te.len());
}

#[test]
fn psnr_of_reconstructions_per_class() {
    use mri_synth::anomaly::mean_psnr_db;
    use mri_synth::train::ImageSet;
    let set = ImageSet { pixels: vec![0.5; 4 * 3], labels: vec![0, 1, 0], side: 2 };
    // Healthy slice 0 copied exactly (capped at 100 dB), healthy slice 2 off by 0.1 everywhere
    // (MSE 0.01: 20 dB), the tumour slice ignored.
    let mut recon = set.clone();
    recon.pixels[8..12].iter_mut().for_each(|p| *p += 0.1);
    recon.pixels[4..8].iter_mut().for_each(|p| *p = 0.0);
    let p = mean_psnr_db(&set, &recon, 0).unwrap();
    assert!((p - 60.0).abs() < 1e-3, "{p}");
    assert_eq!(mean_psnr_db(&ImageSet { labels: vec![1, 1, 1], ..set.clone() }, &recon, 0), None);
}

//! `evaluate` as library code: a saved CNN applied to a labelled folder; skipped files are
//! listed (finding 4 of the [structure] issue); a malformed detector file is named.

use candle_core::Device;
use mri_synth::cnn::{train, CnnConfig, TrainOptions};
use mri_synth::eval::evaluate_folder;
use mri_synth::preprocess::{save_png, Dataset, PhantomConfig};
use mri_synth::train::ImageSet;

/// A labelled folder (`yes/`, `no/`) of phantom PNGs, and the dataset it was written from.
fn phantom_folder(side: u32, per_class: usize, seed: u64) -> (tempfile::TempDir, Dataset) {
    let ds = Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap();
    let data = tempfile::tempdir().unwrap();
    for (i, it) in ds.items.iter().enumerate() {
        save_png(&data.path().join(it.label.as_str()).join(format!("{i}.png")), &it.pixels, side as usize, side as usize).unwrap();
    }
    (data, ds)
}

/// The folder as `evaluate` reads it back (PNG round trip, no cache), for reference scores.
fn reread(dir: &std::path::Path, side: u32) -> ImageSet {
    let opts = mri_synth::preprocess::LoadOptions {
        preprocess: mri_synth::preprocess::PreprocessConfig::with_size(side),
        cache: mri_synth::preprocess::CacheMode::Disabled,
        ..Default::default()
    };
    ImageSet::from_dataset(&Dataset::load(dir, &opts).unwrap()).unwrap()
}

#[test]
fn evaluate_lists_what_it_skipped_and_names_bad_files() {
    let (data, ds) = phantom_folder(32, 6, 5);
    std::fs::write(data.path().join("yes/broken.jpg"), b"not an image").unwrap();

    let set = ImageSet::from_dataset(&ds).unwrap();
    let out = tempfile::tempdir().unwrap();
    let opts = TrainOptions { checkpoint_dir: Some(out.path().to_path_buf()), name: "cnn-real".into(), ..TrainOptions::quiet(0) };
    train(&CnnConfig { epochs: 1, ..CnnConfig::quick(32) }, &set, &set, &Device::Cpu, &opts).unwrap();
    let ck = out.path().join("cnn-real.json");

    let e = evaluate_folder(&ck, None, data.path(), false, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("broken.jpg") && e.to_string().contains("not an image"), "{e}");
    let r = evaluate_folder(&ck, None, data.path(), true, &Device::Cpu).unwrap();
    assert_eq!(r.scored, 12);
    assert_eq!(r.skipped.iter().map(|s| s.rel_path.as_str()).collect::<Vec<_>>(), ["yes/broken.jpg"]);
    assert_eq!((r.test.tp + r.test.fp + r.test.tn + r.test.fn_) as usize, 12);

    // An anomaly detector file that is not one is named in the error.
    let det = out.path().join("detector.json");
    std::fs::write(&det, "{ \"technique\": \"giaem\" }").unwrap();
    let e = mri_synth::cluster::DetectorFile::read(&det).unwrap_err();
    assert!(e.to_string().starts_with(&det.display().to_string()) && e.to_string().contains("not a fitted detector"), "{e}");
}

/// Finding 3: the AUROC of a one-class set was printed as 0.5; it is undefined.
#[test]
fn auroc_of_one_class_is_undefined() {
    let m = mri_synth::eval::TestMetrics::from_scores(&[0.2, 0.9], &[1, 1], 0.5).unwrap();
    assert_eq!(m.auroc, None);
    assert!(m.to_string().contains("AUROC undefined"), "{m}");
    assert_eq!(serde_json::to_value(m).unwrap()["auroc"], serde_json::Value::Null);
    let both = mri_synth::eval::TestMetrics::from_scores(&[0.2, 0.9], &[0, 1], 0.5).unwrap();
    assert_eq!(both.auroc, Some(1.0));
}

/// Finding 6: `vae_anomaly --whole-image` fitted on whole-image maps but `evaluate` scored
/// head-only maps. The detector file now carries its error-map options.
#[test]
fn detector_files_keep_their_error_map_options() {
    use mri_synth::cluster::{Detector, DetectorFile, ErrorMapOptions, ErrorMaps, GiaemParams};
    let side = 8;
    let labels: Vec<bool> = (0..4).map(|i| i % 2 == 0).collect();
    let errors: Vec<f32> = labels.iter().flat_map(|&t| (0..side * side).map(move |p| if t && p < 20 { 0.9 } else { 0.05 })).collect();
    let maps = ErrorMaps::from_raw(side, errors, None).unwrap();
    let detector = Detector::Giaem(GiaemParams::default().fit(&maps, &labels).unwrap());
    let file = DetectorFile { error_maps: ErrorMapOptions { brain_only: false, ..Default::default() }, detector };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("detectors/whole.json");
    file.write(&path).unwrap();
    let back = DetectorFile::read(&path).unwrap();
    assert_eq!(back, file);
    assert!(!back.error_maps.brain_only);
}

/// A denoising-autoencoder checkpoint with a fitted detector scores a folder like the run did.
#[test]
fn evaluate_takes_a_denoising_autoencoder_and_its_detector() {
    use mri_synth::anomaly::{evaluate_dae, DAE_MAPS};
    use mri_synth::cluster::DetectorFile;
    use mri_synth::dae::{train_dae, DaeConfig};
    use mri_synth::metrics::ThresholdCriterion;
    use mri_synth::train::RunOptions;
    let (data, _) = phantom_folder(16, 8, 6);
    let set = reread(data.path(), 16);
    let out = tempfile::tempdir().unwrap();
    let opts = RunOptions { checkpoint_dir: Some(out.path().to_path_buf()), name: "anomaly-dae-real".into(), ..RunOptions::quiet(0) };
    let cfg = DaeConfig { epochs: 1, ..DaeConfig::quick(16) };
    let model = train_dae(&cfg, &set.of_class(0), &set.of_class(0), &Device::Cpu, &opts).unwrap().model;
    let results = evaluate_dae(&model, &set, &set, &DAE_MAPS, ThresholdCriterion::BalancedAccuracy, &Device::Cpu).unwrap().results;
    let r = results.iter().find(|r| r.model.name() == "dae-percentile").unwrap();
    let det = out.path().join("dae-percentile.json");
    DetectorFile { error_maps: DAE_MAPS, detector: r.detector.clone() }.write(&det).unwrap();

    let ck = out.path().join("anomaly-dae-real.json");
    let e = evaluate_folder(&ck, None, data.path(), false, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("denoising-ae checkpoint needs a detector file"), "{e}");
    let got = evaluate_folder(&ck, Some(&det), data.path(), false, &Device::Cpu).unwrap();
    assert_eq!(got.scored, 16);
    assert_eq!(got.test, r.test, "the same slices, model and detector give the same metrics");
}

/// An operating point that calls nothing tumour has threshold +inf: JSON writes it as null and
/// it reads back as +inf (a detector file with it could not be read before).
#[test]
fn an_infinite_threshold_round_trips_through_json() {
    use mri_synth::metrics::{choose_threshold, OperatingPoint, ThresholdCriterion};
    // All scores equal and both classes: predicting nothing ties with predicting everything,
    // and the higher threshold (+inf) wins.
    let op = choose_threshold(&[0.3, 0.3], &[true, false], ThresholdCriterion::BalancedAccuracy).unwrap();
    assert_eq!(op.threshold, f64::INFINITY);
    let text = serde_json::to_string(&op).unwrap();
    assert!(text.contains("\"threshold\":null"), "{text}");
    let back: OperatingPoint = serde_json::from_str(&text).unwrap();
    assert_eq!(back, op);
}

/// An ensemble saved by `train_cnn --members K` is one checkpoint for `evaluate`, which scores
/// with the members' mean probability.
#[test]
fn evaluate_takes_an_ensemble_checkpoint() {
    use mri_synth::cnn::{predict_proba, train_ensemble};
    let (data, _) = phantom_folder(32, 5, 8);
    let set = reread(data.path(), 32);
    let out = tempfile::tempdir().unwrap();
    let opts = TrainOptions { checkpoint_dir: Some(out.path().to_path_buf()), name: "cnn-real".into(), ..TrainOptions::quiet(2) };
    let ens = train_ensemble(&CnnConfig { epochs: 1, ..CnnConfig::quick(32) }, 2, &set, &set, &Device::Cpu, &opts).unwrap();
    let r = evaluate_folder(&out.path().join("cnn-real.json"), None, data.path(), false, &Device::Cpu).unwrap();
    assert_eq!(r.scored, 10);
    let want = mri_synth::eval::TestMetrics::from_scores(&predict_proba(&ens.ensemble, &set, 64, &Device::Cpu).unwrap(), &set.labels, 0.5).unwrap();
    assert_eq!(r.test, want);
}

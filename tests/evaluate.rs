//! `evaluate` as library code: a saved CNN applied to a labelled folder; skipped files are
//! listed (finding 4 of the [structure] issue); a malformed detector file is named.

use candle_core::Device;
use mri_synth::cnn::{train, CnnConfig, TrainOptions};
use mri_synth::eval::evaluate_folder;
use mri_synth::preprocess::{save_png, Dataset, PhantomConfig};
use mri_synth::train::ImageSet;

#[test]
fn evaluate_lists_what_it_skipped_and_names_bad_files() {
    let ds = Dataset::phantom(&PhantomConfig { image_size: 32, per_class: 6, seed: 5, ..Default::default() }).unwrap();
    let data = tempfile::tempdir().unwrap();
    for (i, it) in ds.items.iter().enumerate() {
        save_png(&data.path().join(it.label.as_str()).join(format!("{i}.png")), &it.pixels, 32, 32).unwrap();
    }
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

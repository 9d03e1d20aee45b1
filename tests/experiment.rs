//! The main job at the quick preset on phantoms: report schema, protocol and resume.

use candle_core::Device;
use mri_synth::experiment::{run_experiment, ExperimentSpec, TrainData};
use mri_synth::train::Preset;
use mri_synth::SynthError;

fn quick_spec(out: &std::path::Path) -> ExperimentSpec {
    ExperimentSpec { phantoms_per_class: 30, image_size: Some(16), ..ExperimentSpec::phantoms(Preset::Quick, out) }
}

#[test]
fn quick_experiment_writes_the_report_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExperimentSpec {
        dae: mri_synth::experiment::AnomalySets::All,
        synthetic_cnn_overrides: vec!["augment.blur_prob=1".parse().unwrap()],
        ..quick_spec(dir.path())
    };
    let report = run_experiment(&spec, &Device::Cpu).unwrap();
    // `synthetic_cnn_overrides` reach the CNNs trained on a synthetic set alone, and only them.
    let blur = |name: &str| -> f64 {
        let path = dir.path().join("checkpoints").join(format!("{name}.json"));
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json["config"]["augment"]["blur_prob"].as_f64().unwrap()
    };
    for g in ["vae", "gan"] {
        assert_eq!(blur(&format!("cnn-synthetic-{g}")), 1.0);
        assert_eq!(blur(&format!("cnn-mixed-{g}")), 0.0);
    }
    assert_eq!(blur("cnn-real"), 0.0);
    // One row per model × train data × generator: cnn 1 + 2×2, the intensity baseline,
    // anomaly VAE and DAE 5 techniques × (1 + 2×2) each.
    assert_eq!(report.classification.len(), 5 + 1 + 25 + 25);
    assert_eq!(report.classification.iter().filter(|r| r.model.name().starts_with("dae-")).count(), 25);
    assert_eq!(report.classification.iter().filter(|r| r.model == mri_synth::report::Classifier::IntensityBaseline).count(), 1);
    // A reconstruction PSNR per anomaly model (5 VAEs, 5 DAEs), none for the baseline.
    assert_eq!(report.reconstruction.len(), 10);
    assert!(report.reconstruction.iter().all(|r| r.val_healthy_psnr_db.is_finite() && r.val_healthy_psnr_db > 0.0));
    // No leak check on phantoms: independent draws (tests/br35h.rs checks it on real data).
    assert!(report.dataset.leak_check.is_none());
    assert!(!dir.path().join("leaks_test.csv").exists());
    for r in &report.classification {
        assert_eq!(r.generator.is_none(), r.train_data == TrainData::Real, "{} {}", r.model, r.train_data);
        let m = &r.test;
        let n = m.tp + m.fp + m.tn + m.fn_;
        let c = &report.dataset.counts["test"];
        assert_eq!(n as usize, c.yes + c.no);
        for v in [m.accuracy, m.precision, m.recall, m.f1, m.auroc.expect("both classes in test")] {
            assert!((0.0..=1.0).contains(&v));
        }
        // Group-bootstrap intervals on every row; paired differences on synthetic and mixed rows.
        let ci = r.ci95.expect("intervals");
        let acc = ci.accuracy.expect("accuracy interval");
        assert!(acc.low <= acc.high && (0.0..=1.0).contains(&acc.low) && (0.0..=1.0).contains(&acc.high), "{acc:?}");
        assert!(ci.groups > 0 && ci.groups <= n as usize);
        assert_eq!(r.vs_real.is_some(), r.train_data != TrainData::Real, "{} {}", r.model, r.train_data);
    }
    // The default CNN budget: mixed sets (twice the real one) train half the epochs, synthetic
    // sets (as large as the real one) the same.
    let cnn_epochs = |d: TrainData| -> Vec<u64> {
        report
            .classification
            .iter()
            .filter(|r| r.model == mri_synth::report::Classifier::Cnn && r.train_data == d)
            .map(|r| r.operating_point["epochs"].as_u64().unwrap())
            .collect()
    };
    let real_epochs = cnn_epochs(TrainData::Real)[0];
    assert!(cnn_epochs(TrainData::Synthetic).iter().all(|&e| e == real_epochs));
    assert!(
        cnn_epochs(TrainData::Mixed).iter().all(|&e| e == (real_epochs as f64 / 2.0).round().max(1.0) as u64),
        "{:?} vs {real_epochs}",
        cnn_epochs(TrainData::Mixed)
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    // Generation: both generators × both classes; localisation: the five anomaly VAEs.
    assert_eq!(report.generation.len(), 4);
    for g in &report.generation {
        assert!(g.fd_cnn >= 0.0 && g.fd_floor >= 0.0 && g.n > 0, "{g:?}");
        assert!((0.0..=1.0).contains(&g.ms_ssim) && (0.0..=1.0).contains(&g.ms_ssim_real), "{g:?}");
        // Slices in [0, 1]: a spread above 0.5 is impossible; real phantom slices differ.
        assert!((0.0..=0.5).contains(&g.spread) && g.spread_real > 0.01 && g.spread_real <= 0.5, "{g:?}");
        assert!((0.0..=1.0).contains(&g.memorized_fraction) && g.dcr_median > 0.0, "{g:?}");
        assert!((0.0..=1.0).contains(&g.real_cnn_class_rate) && (0.0..=1.0).contains(&g.real_cnn_class_rate_real), "{g:?}");
        // Precision and recall need more than 3 slices a side; the quick fixture's test split
        // has 4–5 a class, so they are computed here (NaN would mean too few).
        for v in [g.precision, g.recall, g.precision_real, g.recall_real] {
            assert!((0.0..=1.0).contains(&v), "{g:?}");
        }
        // The two-sample tests: balanced accuracies. The quick preset's generators are far
        // from real (a few steps), so a linear discriminant on texture tells their draws from
        // real slices better than real training slices from real held-out ones.
        for v in [g.c2st_texture, g.c2st_texture_real, g.c2st_thumbs, g.c2st_thumbs_real, g.class_texture, g.class_texture_real] {
            assert!((0.0..=1.0).contains(&v), "{g:?}");
        }
        assert!(g.c2st_texture > g.c2st_texture_real, "{g:?}");
        // The statistic that gives the draws away: named, and as far off as its z says.
        let gap = g.texture_gap.as_ref().expect("a largest texture gap");
        assert!(gap.index < mri_synth::metrics::texture::TEXTURE_DIM && !gap.statistic.is_empty(), "{gap:?}");
        assert!(gap.z.is_finite() && gap.z.abs() > 0.0 && (gap.z > 0.0) == (gap.mean > gap.reference_mean), "{gap:?}");
    }
    // The class separation belongs to a generator: both of its rows hold it.
    for pair in report.generation.chunks(2) {
        assert_eq!((pair[0].class_texture, pair[0].class_texture_real), (pair[1].class_texture, pair[1].class_texture_real));
    }
    // Localisation: five anomaly VAEs and five DAEs.
    assert_eq!(report.localization.len(), 10);
    assert_eq!(report.localization.iter().filter(|l| l.model == Some(mri_synth::anomaly::AnomalyModel::Dae)).count(), 5);
    assert!(report.localization_baseline.as_ref().is_some_and(|b| b.train_data.is_none() && (0.0..=1.0).contains(&b.pixel_auroc)));
    let sal = report.cnn_saliency.as_ref().expect("phantoms have lesion masks: the CNN's saliency is scored");
    assert!(sal.model.is_none() && sal.n_images > 0 && (0.0..=1.0).contains(&sal.pixel_auroc) && sal.dice_val_threshold <= sal.dice + 1e-12, "{sal:?}");
    assert!(dir.path().join("figures").join("saliency-cnn-real.png").exists());
    for l in &report.localization {
        assert!(l.n_images > 0 && (0.0..=1.0).contains(&l.pixel_auroc) && (0.0..=1.0).contains(&l.dice), "{l:?}");
        assert!(l.dice_val_threshold <= l.dice + 1e-12, "the best Dice bounds any threshold's: {l:?}");
    }
    for key in ["dataset", "classification", "generation", "localization", "timings_s"] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    let row = &json["classification"][0];
    for key in ["model", "train_data", "generator", "test", "operating_point"] {
        assert!(row.get(key).is_some(), "row lacks {key}");
    }
    for key in [
        "generator",
        "class",
        "n",
        "fd_cnn",
        "fd_floor",
        "mmd",
        "ms_ssim",
        "ms_ssim_real",
        "spread",
        "spread_real",
        "memorized_fraction",
        "dcr_median",
        "real_cnn_class_rate",
        "c2st_texture",
        "class_texture",
        "texture_gap",
    ] {
        assert!(json["generation"][0].get(key).is_some(), "generation row lacks {key}");
    }
    for key in ["train_data", "generator", "pixel_auroc", "dice"] {
        assert!(json["localization"][0].get(key).is_some(), "localization row lacks {key}");
    }
    assert!(row["test"].get("fn").is_some());
    for f in [
        "split.json",
        "report.md",
        "figures/roc-cnn.svg",
        "figures/loss-cnn.svg",
        "synthetic/vae/yes-grid.png",
        "synthetic/gan/no/no-00000.png",
        "checkpoints/cnn-real.json",
        "checkpoints/cnn-mixed-gan.json",
        "checkpoints/anomaly-vae-real.json",
        "detectors/anomaly-vae-real-vae-giaem.json",
        // Named like its detector file (the stage name already says "anomaly").
        "figures/anomaly-vae-real-vae-giaem.png",
        "run.json",
        "figures/copies-gan-yes.png",
        "figures/localization-anomaly-vae-mixed-vae.png",
    ] {
        assert!(dir.path().join(f).exists(), "missing {f}");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let gap = report.generation[0].texture_gap.as_ref().unwrap();
    assert!(md.contains("Largest texture gap") && md.contains(&format!("{}, {:+.1}", gap.statistic, gap.z)), "report.md lacks the texture gap");
    // Synthetic images never enter val or test: the split lists real files only.
    let split = std::fs::read_to_string(dir.path().join("split.json")).unwrap();
    assert!(!split.contains("synthetic"));
    // A second run finds every stage complete and reports the same numbers.
    let again = run_experiment(&spec, &Device::Cpu).unwrap();
    let key = |r: &mri_synth::experiment::Report| r.classification.iter().map(|x| (x.model, x.train_data, x.generator, x.test)).collect::<Vec<_>>();
    assert_eq!(key(&report), key(&again));
    assert_eq!(report.generation, again.generation);
    assert_eq!(report.localization, again.localization);
}

/// Finding 1 of the [structure] issue: a re-run with the same output folder but another seed
/// (or other data) reused every finished stage under the new run's name. Now it is refused with
/// the difference named, the earlier report stays as it was, and `fresh` recomputes.
#[test]
fn another_run_in_the_same_folder_is_refused_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExperimentSpec { epochs: Some(1), generators: vec![mri_synth::generators::GeneratorKind::Vae], ..quick_spec(dir.path()) };
    let first = run_experiment(&spec, &Device::Cpu).unwrap();
    let report_before = std::fs::read(dir.path().join("report.json")).unwrap();
    for (other, what) in [
        // Phantoms are drawn from the seed, so another seed is first seen as other data.
        (ExperimentSpec { seed: 1, ..spec.clone() }, "seed 0)\" there but \"phantom (built-in synthetic slices, seed 1)\" here"),
        (ExperimentSpec { phantoms_per_class: 31, ..spec.clone() }, "data_hash"),
        (ExperimentSpec { split: "0.6,0.2,0.2".parse().unwrap(), ..spec.clone() }, "split_fractions"),
        (ExperimentSpec { image_size: Some(32), ..spec.clone() }, "data_hash"),
    ] {
        let e = run_experiment(&other, &Device::Cpu).unwrap_err();
        assert!(matches!(e, SynthError::RunMismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(what) && msg.contains("--fresh") && msg.contains("run.json"), "{msg}");
        assert_eq!(std::fs::read(dir.path().join("report.json")).unwrap(), report_before, "the earlier report was overwritten");
    }
    // Other model settings on the same data (here more epochs) are refused, not answered with
    // the stored stages of the shorter run.
    let e = run_experiment(&ExperimentSpec { epochs: Some(2), ..spec.clone() }, &Device::Cpu).unwrap_err();
    assert!(matches!(e, SynthError::RunMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("stages") && msg.contains("settings.") && msg.contains("epochs is 1 there but 2 here") && msg.contains("--fresh"), "{msg}");
    assert_eq!(std::fs::read(dir.path().join("report.json")).unwrap(), report_before, "the earlier report was overwritten");
    // A config field changed from the command line (`--cnn-set`, `--vae-set`) is another
    // setting too, named by its path.
    let e = run_experiment(&ExperimentSpec { cnn_overrides: vec!["label_smoothing=0.5".parse().unwrap()], ..spec.clone() }, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("settings.cnn.label_smoothing is 0.0 there but 0.5 here"), "{e}");
    let e = run_experiment(&ExperimentSpec { vae_overrides: vec!["latent=4".parse().unwrap()], ..spec.clone() }, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("settings.vae_set"), "{e}");
    let e = run_experiment(&ExperimentSpec { synthetic_cnn_overrides: vec!["augment.noise=0.1".parse().unwrap()], ..spec.clone() }, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("settings.synthetic_cnn_set"), "{e}");
    let e = run_experiment(&ExperimentSpec { cnn_overrides: vec!["label_smoothin=0.2".parse().unwrap()], ..spec.clone() }, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("no field label_smoothin"), "{e}");
    // A folder written before a config gained a field (here: stage files without
    // `cnn.label_smoothing`, whose default 0.0 this run uses) still describes this run: the
    // recorded settings are read back through today's types, and every stage is reused.
    let mut older = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("stages")).unwrap() {
        let path = entry.unwrap().path();
        let mut stage: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(stage["settings"]["cnn"].as_object_mut().unwrap().remove("label_smoothing").is_some(), "{}", path.display());
        let bytes = serde_json::to_vec(&stage).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        older.push((path, bytes));
    }
    let again = run_experiment(&spec, &Device::Cpu).unwrap();
    let key = |r: &mri_synth::experiment::Report| r.classification.iter().map(|x| (x.model, x.train_data, x.generator, x.test)).collect::<Vec<_>>();
    assert_eq!(key(&again), key(&first));
    for (path, bytes) in older {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{} was recomputed, not reused", path.display());
    }
    // A stage file carried into a folder of another run is refused too, even without run.json.
    let stage = dir.path().join("stages").join("cnn-real.json");
    let other_dir = tempfile::tempdir().unwrap();
    let other = ExperimentSpec { seed: 1, ..quick_spec(other_dir.path()) };
    std::fs::create_dir_all(other_dir.path().join("stages")).unwrap();
    std::fs::copy(&stage, other_dir.path().join("stages").join("cnn-real.json")).unwrap();
    let e = run_experiment(&other, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("cnn-real.json") && e.to_string().contains("seed"), "{e}");
    // With `fresh`, the other seed's run replaces the first one.
    let fresh = run_experiment(&ExperimentSpec { seed: 1, fresh: true, ..spec.clone() }, &Device::Cpu).unwrap();
    assert_eq!(fresh.fingerprint.seed, 1);
    assert_ne!(fresh.fingerprint.split_hash, first.fingerprint.split_hash);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["fingerprint"]["seed"], 1);
}

#[test]
fn synthetic_and_mixed_models_train_at_the_real_sets_cost() {
    use mri_synth::experiment::equal_budget_epochs;
    // A mixed set twice the real one: half the epochs; a set as large: the same; never 0.
    assert_eq!(equal_budget_epochs(8, 1045, 2090), 4);
    assert_eq!(equal_budget_epochs(8, 1045, 1045), 8);
    assert_eq!(equal_budget_epochs(3, 10, 1000), 1);
    assert_eq!(equal_budget_epochs(15, 140, 280), 8);
}

#[test]
fn option_kinds_parse_their_serde_spellings_and_list_them_on_error() {
    use mri_synth::experiment::{AnomalySets, CnnBudget, SyntheticFilter, SyntheticTexture};
    use mri_synth::generators::GeneratorKind;
    for (budget, name) in [(CnnBudget::SameImages, "same-images"), (CnnBudget::SameEpochs, "same-epochs")] {
        assert_eq!(name.parse::<CnnBudget>().unwrap(), budget);
        assert_eq!(serde_json::to_value(budget).unwrap(), name);
    }
    for (sets, name) in [(AnomalySets::Off, "off"), (AnomalySets::Real, "real"), (AnomalySets::All, "all")] {
        assert_eq!(name.parse::<AnomalySets>().unwrap(), sets);
        assert_eq!(serde_json::to_value(sets).unwrap(), name);
    }
    for (filter, name) in [(SyntheticFilter::Off, "off"), (SyntheticFilter::RealCnn, "real-cnn")] {
        assert_eq!(name.parse::<SyntheticFilter>().unwrap(), filter);
        assert_eq!(serde_json::to_value(filter).unwrap(), name);
    }
    for (texture, name) in [(SyntheticTexture::Off, "off"), (SyntheticTexture::Rings, "rings"), (SyntheticTexture::Amplitudes, "amplitudes")] {
        assert_eq!(name.parse::<SyntheticTexture>().unwrap(), texture);
        assert_eq!(serde_json::to_value(texture).unwrap(), name);
    }
    assert_eq!("gan".parse::<GeneratorKind>().unwrap(), GeneratorKind::Gan);
    let e = "same".parse::<CnnBudget>().unwrap_err().to_string();
    assert!(e.contains("CNN budget \"same\"") && e.contains("same-images, same-epochs"), "{e}");
    let e = "gans".parse::<GeneratorKind>().unwrap_err().to_string();
    assert!(e.contains("generator \"gans\"") && e.contains("vae, gan"), "{e}");
}

/// The real-CNN filter in the main job: on the quick fixture the real CNN calls every 16-px
/// phantom healthy, so no tumour draw passes and the run stops with the class and the
/// acceptance named rather than training on a short or mislabelled set. (Which draws are
/// kept, and in what order, is `tests/generators.rs`'s filtered-writer test.)
#[test]
fn the_real_cnn_filter_refuses_a_class_it_cannot_fill() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExperimentSpec {
        epochs: Some(1),
        generators: vec![mri_synth::generators::GeneratorKind::Vae],
        dae: mri_synth::experiment::AnomalySets::Off,
        synthetic_filter: mri_synth::experiment::SyntheticFilter::RealCnn,
        ..quick_spec(dir.path())
    };
    let e = run_experiment(&spec, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("synthetic filter kept 0 of 420 draws of class yes (20 rounds); 21 were needed"), "{e}");
}

#[test]
fn cross_validation_tests_every_slice_once_and_summarises_the_folds() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExperimentSpec {
        epochs: Some(1),
        generators: vec![mri_synth::generators::GeneratorKind::Vae],
        // The real anomaly VAE only: a generator study's setting, checked here.
        anomaly_vae: mri_synth::experiment::AnomalySets::Real,
        dae: mri_synth::experiment::AnomalySets::Off,
        // The texture exchange on the synthetic set: its files are the exchanged images.
        synthetic_texture: mri_synth::experiment::SyntheticTexture::Rings,
        // 40 draws a class for the synthetic-only CNN; the other stages keep the first ones.
        synthetic_only_per_class: Some(40),
        // The mixed CNN takes the first 5 of each class's shared draws.
        mixed_synthetic_per_class: Some(5),
        ..quick_spec(dir.path())
    };
    let cv = mri_synth::crossval::run_cross_validation(&spec, 2, &Device::Cpu).unwrap();
    let stage = std::fs::read_to_string(dir.path().join("fold0/stages/cnn-mixed-vae.json")).unwrap();
    assert!(stage.contains(r#""mixed_synthetic_per_class":5"#), "{stage}");
    // The exchange ran (its errors would have stopped the run) and the stages record it.
    let stage = std::fs::read_to_string(dir.path().join("fold0/stages/cnn-synthetic-vae.json")).unwrap();
    assert!(stage.contains(r#""synthetic_texture":"rings""#), "{stage}");
    let pngs = std::fs::read_dir(dir.path().join("fold0/synthetic/vae/yes")).unwrap().count();
    assert_eq!(pngs, 40, "every draw of the synthetic-only set is written");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("fold0/report.json")).unwrap()).unwrap();
    let split = mri_synth::preprocess::SplitManifest::read(&dir.path().join("fold0/split.json")).unwrap();
    let rows = report["generation"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one generation row per class");
    for row in rows {
        let class = row["class"].as_str().unwrap();
        let n_train =
            split.items.iter().filter(|i| i.split == mri_synth::preprocess::SplitPart::Train && serde_json::to_value(i.label).unwrap() == class).count();
        assert_eq!(row["n"].as_u64().unwrap() as usize, n_train, "the generation metrics use the shared set ({class})");
    }
    let trained = |name: &str| dir.path().join(format!("fold0/checkpoints/{name}.json")).exists();
    assert!(trained("anomaly-vae-real") && !trained("anomaly-vae-synthetic-vae") && !trained("anomaly-vae-mixed-vae"));
    assert_eq!(cv.folds, 2);
    // Every slice is tested in exactly one fold.
    let splits: Vec<_> = (0..2).map(|i| mri_synth::preprocess::SplitManifest::read(&dir.path().join(format!("fold{i}/split.json"))).unwrap()).collect();
    let tested = |m: &mri_synth::preprocess::SplitManifest| -> std::collections::BTreeSet<String> {
        m.items.iter().filter(|i| i.split == mri_synth::preprocess::SplitPart::Test).map(|i| i.path.clone()).collect()
    };
    let (t0, t1) = (tested(&splits[0]), tested(&splits[1]));
    assert!(t0.is_disjoint(&t1));
    assert_eq!(t0.len() + t1.len(), splits[0].items.len());
    // One summary row per report row: cnn real / synthetic / mixed, the baseline, 5 VAE
    // techniques on the real set; each with both folds, the means between the folds' values.
    assert_eq!(cv.rows.len(), 3 + 1 + 5);
    for r in &cv.rows {
        assert_eq!(r.test.per_fold.len(), 2);
        let (a, b) = (r.test.per_fold[0].accuracy, r.test.per_fold[1].accuracy);
        assert!((r.test.accuracy_mean - (a + b) / 2.0).abs() < 1e-12);
        assert!((r.test.accuracy_sd - (a - b).abs() / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.vs_real_accuracy.is_some(), r.train_data != TrainData::Real, "{} {}", r.model, r.train_data);
    }
    let md = std::fs::read_to_string(dir.path().join("folds.md")).unwrap();
    assert!(md.contains("2-fold grouped cross-validation") && md.contains("| cnn | real |"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("folds.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), cv.rows.len());
    // A second call reuses both folds' stages.
    let again = mri_synth::crossval::run_cross_validation(&spec, 2, &Device::Cpu).unwrap();
    assert_eq!(again.rows[0].test.accuracy_mean, cv.rows[0].test.accuracy_mean);
    assert!(mri_synth::crossval::run_cross_validation(&spec, 1, &Device::Cpu).is_err());
}

#[test]
fn the_mixed_cnn_takes_the_first_synthetic_draws_it_is_given() {
    use mri_synth::experiment::equal_budget_epochs;
    let dir = tempfile::tempdir().unwrap();
    let spec = ExperimentSpec {
        generators: vec![mri_synth::generators::GeneratorKind::Vae],
        anomaly_vae: mri_synth::experiment::AnomalySets::Off,
        dae: mri_synth::experiment::AnomalySets::Off,
        mixed_synthetic_per_class: Some(3),
        ..quick_spec(dir.path())
    };
    let report = run_experiment(&spec, &Device::Cpu).unwrap();
    // Same image budget as the real CNN: the mixed set's size shows in its epochs (real + 3 a
    // class, not real + as many synthetic slices again).
    let n_train = report.dataset.counts["train"].yes + report.dataset.counts["train"].no;
    let epochs = mri_synth::cnn::CnnConfig::preset(Preset::Quick, Some(16)).epochs;
    let mixed = report.classification.iter().find(|r| r.train_data == TrainData::Mixed && r.model == mri_synth::report::Classifier::Cnn).unwrap();
    assert_eq!(mixed.operating_point["epochs"].as_u64().unwrap() as usize, equal_budget_epochs(epochs, n_train, n_train + 6));
    assert_ne!(equal_budget_epochs(epochs, n_train, n_train + 6), equal_budget_epochs(epochs, n_train, 2 * n_train), "the test tells the sets apart");
    // The generation metrics keep the whole shared set.
    assert!(report.generation.iter().all(|g| g.n > 3));
    // More than the shared set holds is refused, naming the option.
    let dir = tempfile::tempdir().unwrap();
    let e =
        run_experiment(&ExperimentSpec { mixed_synthetic_per_class: Some(1000), out: dir.path().to_path_buf(), ..spec }, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("--mixed-synthetic-per-class 1000 exceeds the"), "{e}");
}

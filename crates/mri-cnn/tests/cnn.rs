//! CNN: overfitting, shapes, checkpoints, determinism and resume. Phantoms at 16 px.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarMap;
use mri_cnn::{load_cnn, predict_proba, train, Cnn, CnnConfig, TrainOptions};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{seeded_var_builder, Adam, Checkpoint, ImageSet, ModelKind, Preset, TrainError};

fn phantom_set(side: u32, per_class: usize, seed: u64) -> ImageSet {
    ImageSet::from_dataset(&Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap()).unwrap()
}

fn weights(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    mri_train::var_values(vm).unwrap()
}

#[test]
fn overfits_a_tiny_batch() {
    let set = phantom_set(16, 4, 1);
    let cfg = CnnConfig { dropout: 0.0, ..CnnConfig::quick(16) };
    let vm = VarMap::new();
    let model = Cnn::new(&cfg, seeded_var_builder(&vm, 3, DType::F32, &Device::Cpu), 3).unwrap();
    let mut adam = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_")).unwrap();
    let idx: Vec<usize> = (0..set.len()).collect();
    let (x, y) = set.batch(&idx, None, &Device::Cpu).unwrap();
    let mut losses = Vec::new();
    for _ in 0..60 {
        let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true).unwrap(), &y).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        adam.backward_step(&loss).unwrap();
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(first / last >= 5.0, "loss {first} → {last}");
}

#[test]
fn shapes_and_parameter_count() {
    let cfg = CnnConfig::quick(16);
    let vm = VarMap::new();
    let model = Cnn::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu), 0).unwrap();
    let x = Tensor::zeros((3, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward_t(&x, false).unwrap().dims(), &[3, 2]);
    assert_eq!(model.features(&x, false).unwrap().dims(), &[3, 16]);
    let trainable: usize = vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_")).map(|(_, v)| v.elem_count()).sum();
    assert_eq!(trainable, cfg.param_count());
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    assert!(names.contains(&"conv0.conv.weight".to_string()) && names.contains(&"out.bias".to_string()), "{names:?}");
    // Paper layout: 128·16·16 → 1024 first hidden layer.
    assert!(CnnConfig::paper().param_count() > 33_000_000);
    assert!(CnnConfig { image_size: 30, ..CnnConfig::quick(16) }.check().is_err());
}

#[test]
fn same_seed_same_weights_and_predictions() {
    let set = phantom_set(16, 6, 2);
    let cfg = CnnConfig { augment_flip: true, ..CnnConfig::quick(16) };
    let a = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(5)).unwrap();
    let b = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(5)).unwrap();
    let c = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(6)).unwrap();
    assert_eq!(weights(&a.varmap), weights(&b.varmap), "bit for bit");
    assert_ne!(weights(&a.varmap), weights(&c.varmap));
    assert_eq!(a.history, b.history.iter().map(|r| mri_cnn::EpochRecord { seconds: a.history[r.epoch - 1].seconds, ..r.clone() }).collect::<Vec<_>>());
    let pa = predict_proba(&a.model, &set, 5, &Device::Cpu).unwrap();
    assert_eq!(pa, predict_proba(&b.model, &set, 5, &Device::Cpu).unwrap());
    assert!(pa.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn save_load_gives_identical_outputs() {
    let set = phantom_set(16, 4, 3);
    let cfg = CnnConfig::quick(16);
    let out = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoint::at(dir.path(), "cnn-test");
    let side = mri_train::Sidecar::new(ModelKind::Cnn, Some(Preset::Quick), serde_json::to_value(&cfg).unwrap(), 3, 1);
    ck.save(&out.varmap, None, &side).unwrap();
    let vm = VarMap::new();
    let loaded = Cnn::new(&cfg, seeded_var_builder(&vm, 99, DType::F32, &Device::Cpu), 0).unwrap();
    ck.check(&ck.read_sidecar().unwrap(), ModelKind::Cnn, &serde_json::to_value(&cfg).unwrap(), &[]).unwrap();
    ck.load_weights(&vm).unwrap();
    assert_eq!(predict_proba(&out.model, &set, 4, &Device::Cpu).unwrap(), predict_proba(&loaded, &set, 4, &Device::Cpu).unwrap());
    // A different config is refused with the differing field named; `epochs` only when not continuable.
    let other = CnnConfig { hidden: vec![32], ..cfg.clone() };
    let e = ck.check(&ck.read_sidecar().unwrap(), ModelKind::Cnn, &serde_json::to_value(&other).unwrap(), &["epochs"]).unwrap_err();
    assert!(matches!(e, TrainError::CheckpointMismatch { .. }));
    assert!(e.to_string().contains("config field hidden is [16] in the checkpoint but [32] here"), "{e}");
    let longer = serde_json::to_value(CnnConfig { epochs: 9, ..cfg.clone() }).unwrap();
    ck.check(&ck.read_sidecar().unwrap(), ModelKind::Cnn, &longer, &["epochs"]).unwrap();
    assert!(ck.check(&ck.read_sidecar().unwrap(), ModelKind::Cnn, &longer, &[]).is_err());
    let e = ck.check(&ck.read_sidecar().unwrap(), ModelKind::Gan, &serde_json::to_value(&cfg).unwrap(), &[]).unwrap_err();
    assert!(e.to_string().contains("it holds a \"cnn\" model, not \"gan\""), "{e}");
    // Weights of another shape are refused.
    let vm2 = VarMap::new();
    let _ = Cnn::new(&other, seeded_var_builder(&vm2, 0, DType::F32, &Device::Cpu), 0).unwrap();
    assert!(matches!(ck.load_weights(&vm2), Err(TrainError::CheckpointMismatch { .. })));
    // A damaged weights file is found by its hash, naming the file; a broken manifest as such.
    let weights_file = ck.file("weights").unwrap();
    std::fs::write(&weights_file, b"not safetensors").unwrap();
    let e = ck.load_weights(&vm).unwrap_err();
    assert!(matches!(e, TrainError::CorruptCheckpoint { .. }) && e.to_string().contains(&weights_file.display().to_string()), "{e}");
    std::fs::write(&ck.sidecar, b"{ half").unwrap();
    assert!(matches!(ck.read_sidecar(), Err(TrainError::CorruptCheckpoint { .. })));
}

/// Finding 2 of the [structure] issue: a single flipped byte inside a weights file went
/// unnoticed (and `evaluate` then called every image "no").
#[test]
fn a_flipped_byte_in_the_weights_is_found() {
    let set = phantom_set(16, 4, 3);
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "cnn-real".into(), ..TrainOptions::quiet(1) };
    train(&CnnConfig { epochs: 1, ..CnnConfig::quick(16) }, &set, &set, &Device::Cpu, &opts).unwrap();
    let ck = Checkpoint::at(dir.path(), "cnn-real");
    load_cnn(&ck, &Device::Cpu).unwrap();
    let path = ck.file("weights").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() - 5; // inside the last tensor's data, so safetensors itself cannot tell
    bytes[i] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let e = load_cnn(&ck, &Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("does not match the manifest"), "{e}");
}

/// Finding 2: a run killed between writing a checkpoint's files left epoch-2 weights beside
/// the epoch-1 sidecar and optimiser state, and the resumed run accepted the mix. Now the data
/// files are written under new (hash) names before the manifest switches, so a kill at any
/// point leaves the previous epoch's checkpoint whole; resuming from it equals an
/// uninterrupted run, and the kill's leftovers are swept.
#[test]
fn a_kill_between_checkpoint_writes_rolls_back_and_resumes_exactly() {
    let set = phantom_set(16, 6, 4);
    let val = phantom_set(16, 3, 40);
    let cfg = CnnConfig { epochs: 3, augment_flip: true, ..CnnConfig::quick(16) };
    let opts = |dir: &std::path::Path, stop_after| TrainOptions {
        checkpoint_dir: Some(dir.to_path_buf()),
        name: "cnn-real".into(),
        stop_after,
        ..TrainOptions::quiet(8)
    };
    let whole = train(&cfg, &set, &val, &Device::Cpu, &TrainOptions::quiet(8)).unwrap();

    // Epoch 1 complete, then simulate epoch 2's save killed after its data files were written
    // (and a temporary file was left half-written) but before its manifest was renamed.
    let dir = tempfile::tempdir().unwrap();
    train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), Some(1))).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    train(&cfg, &set, &val, &Device::Cpu, &opts(scratch.path(), Some(2))).unwrap();
    let last = Checkpoint::at(dir.path(), "cnn-real-last");
    let epoch1 = last.read_sidecar().unwrap();
    assert_eq!(epoch1.epoch, 1);
    let later = Checkpoint::at(scratch.path(), "cnn-real-last");
    for key in ["weights", "optim"] {
        let f = later.file(key).unwrap();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join(format!("cnn-real-last.json.tmp-{}", 4242)), b"{ half a manif").unwrap();
    // The manifest still names epoch 1's files, and they still verify.
    assert_eq!(last.read_sidecar().unwrap(), epoch1);
    last.weights_file().unwrap();

    let resumed = train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), None)).unwrap();
    assert_eq!(weights(&whole.varmap), weights(&resumed.varmap), "bit for bit");
    assert_eq!(whole.best_epoch, resumed.best_epoch);
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "temporary files left: {names:?}");
    // One weights + one optimiser file for the resume point, one weights file for the best.
    let data = names.iter().filter(|n| n.ends_with(".safetensors")).count();
    assert_eq!(data, 3, "{names:?}");
}

/// Findings 1 and 5: another seed or other data on the same checkpoint folder is refused (it
/// used to be reused, and its "held-out" test held training images); a finished run asked for
/// more epochs continues, and equals an uninterrupted longer run.
#[test]
fn resume_checks_seed_and_data_and_more_epochs_continue() {
    let set = phantom_set(16, 6, 4);
    let val = phantom_set(16, 3, 40);
    let fp = |seed| mri_train::Fingerprint {
        data_source: "phantoms".into(),
        data_hash: "abc".into(),
        image_size: 16,
        split_fractions: [0.7, 0.15, 0.15],
        split_hash: "def".into(),
        seed,
        preset: Some(Preset::Quick),
    };
    let opts = |dir: &std::path::Path, seed: u64, fingerprint| TrainOptions {
        checkpoint_dir: Some(dir.to_path_buf()),
        name: "cnn-real".into(),
        fingerprint: Some(fingerprint),
        ..TrainOptions::quiet(seed)
    };
    let dir = tempfile::tempdir().unwrap();
    let two = CnnConfig { epochs: 2, ..CnnConfig::quick(16) };
    train(&two, &set, &val, &Device::Cpu, &opts(dir.path(), 8, fp(8))).unwrap();
    let e = train(&two, &set, &val, &Device::Cpu, &opts(dir.path(), 9, fp(9))).err().unwrap();
    assert!(e.to_string().contains("seed 8 but this run has seed 9") && e.to_string().contains("--fresh"), "{e}");
    let other_data = mri_train::Fingerprint { data_hash: "xyz".into(), ..fp(8) };
    let e = train(&two, &set, &val, &Device::Cpu, &opts(dir.path(), 8, other_data)).err().unwrap();
    assert!(e.to_string().contains("data_hash is \"abc\" there but \"xyz\" here"), "{e}");
    // Fewer epochs than done cannot be honoured.
    let e = train(&CnnConfig { epochs: 1, ..two.clone() }, &set, &val, &Device::Cpu, &opts(dir.path(), 8, fp(8))).err().unwrap();
    assert!(e.to_string().contains("more than the 1 asked"), "{e}");
    // 2 → 3 epochs continues and equals a 3-epoch run.
    let three = CnnConfig { epochs: 3, ..two.clone() };
    let continued = train(&three, &set, &val, &Device::Cpu, &opts(dir.path(), 8, fp(8))).unwrap();
    let whole = train(&three, &set, &val, &Device::Cpu, &TrainOptions::quiet(8)).unwrap();
    assert_eq!(continued.history.len(), 3);
    assert_eq!(weights(&whole.varmap), weights(&continued.varmap));
    assert_eq!(whole.best_epoch, continued.best_epoch);
    assert_eq!(continued.history.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3], "epochs count from 1");
}

/// Finding 3: a one-class training set trained and reported accuracy 1.0; `epochs 0` reported
/// an untrained model.
#[test]
fn one_class_sets_and_zero_epochs_are_refused() {
    let set = phantom_set(16, 4, 3);
    let yes = set.of_class(1);
    let e = train(&CnnConfig::quick(16), &yes, &set, &Device::Cpu, &TrainOptions::quiet(0)).err().unwrap();
    assert!(e.to_string().contains("the training set holds only tumour (yes) slices"), "{e}");
    let e = train(&CnnConfig::quick(16), &set, &set.of_class(0), &Device::Cpu, &TrainOptions::quiet(0)).err().unwrap();
    assert!(e.to_string().contains("the validation set holds only healthy (no) slices"), "{e}");
    let e = train(&CnnConfig { epochs: 0, ..CnnConfig::quick(16) }, &set, &set, &Device::Cpu, &TrainOptions::quiet(0)).err().unwrap();
    assert!(e.to_string().contains("epochs") && e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let set = phantom_set(16, 6, 4);
    let val = phantom_set(16, 3, 40);
    let cfg = CnnConfig { epochs: 5, augment_flip: true, ..CnnConfig::quick(16) };
    let whole_dir = tempfile::tempdir().unwrap();
    let opts = |dir: &std::path::Path, stop_after| TrainOptions {
        checkpoint_dir: Some(dir.to_path_buf()),
        name: "cnn-real".into(),
        stop_after,
        ..TrainOptions::quiet(8)
    };
    let whole = train(&cfg, &set, &val, &Device::Cpu, &opts(whole_dir.path(), None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), Some(2))).unwrap();
    assert!(first.stopped_early && first.history.len() == 2);
    let resumed = train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), None)).unwrap();
    assert_eq!(resumed.history.len(), 5);
    assert_eq!(weights(&whole.varmap), weights(&resumed.varmap));
    assert_eq!(whole.best_epoch, resumed.best_epoch);
    let strip = |h: &[mri_cnn::EpochRecord]| h.iter().map(|r| (r.train_loss, r.val_loss, r.lr)).collect::<Vec<_>>();
    assert_eq!(strip(&whole.history), strip(&resumed.history));
    // Resuming with another config is refused.
    let other = CnnConfig { epochs: 5, hidden: vec![8], ..CnnConfig::quick(16) };
    assert!(train(&other, &set, &val, &Device::Cpu, &opts(dir.path(), None)).is_err());
    assert!(Checkpoint::at(dir.path(), "cnn-real").weights_file().is_ok() && Checkpoint::at(dir.path(), "cnn-real-last").file("optim").unwrap().exists());
}

/// The residual network with global average pooling: shapes, parameter count, learning, and a
/// resumed run with full augmentation and a cosine schedule equal to an uninterrupted one.
#[test]
fn residual_cnn_learns_and_resumes_exactly() {
    let set = phantom_set(16, 6, 4);
    let val = phantom_set(16, 3, 40);
    let cfg = CnnConfig { channels: vec![4, 8], epochs: 4, batch_size: 6, ..CnnConfig::residual(16) };
    let vm = VarMap::new();
    let model = Cnn::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu), 0).unwrap();
    let (x, _) = set.batch(&[0, 1, 2], None, &Device::Cpu).unwrap();
    assert_eq!(model.forward_t(&x, false).unwrap().dims(), &[3, 2]);
    assert_eq!(model.features(&x, false).unwrap().dims(), &[3, 8]);
    let trainable: usize = vm.data().lock().unwrap().iter().filter(|(n, _)| !n.contains("running_")).map(|(_, v)| v.elem_count()).sum();
    assert_eq!(cfg.param_count(), trainable, "running statistics excluded");

    let opts = |dir: &std::path::Path, stop_after| TrainOptions {
        checkpoint_dir: Some(dir.to_path_buf()),
        name: "cnn-real".into(),
        stop_after,
        ..TrainOptions::quiet(3)
    };
    let whole = train(&cfg, &set, &val, &Device::Cpu, &TrainOptions::quiet(3)).unwrap();
    let lrs: Vec<f64> = whole.history.iter().map(|r| r.lr).collect();
    assert!(lrs[0] < lrs[1] && lrs[2] > lrs[3], "warm-up then cosine decay: {lrs:?}");
    let dir = tempfile::tempdir().unwrap();
    train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), Some(2))).unwrap();
    let resumed = train(&cfg, &set, &val, &Device::Cpu, &opts(dir.path(), None)).unwrap();
    assert_eq!(weights(&whole.varmap), weights(&resumed.varmap));

    // It fits a tiny batch (dropout off): full-batch Adam steps, as `overfits_a_tiny_batch`.
    let fit = CnnConfig { dropout: 0.0, adam: mri_train::AdamConfig { lr: 1e-2, ..Default::default() }, ..cfg.clone() };
    let vm = VarMap::new();
    let model = Cnn::new(&fit, seeded_var_builder(&vm, 3, DType::F32, &Device::Cpu), 3).unwrap();
    let mut adam = Adam::from_varmap(&vm, fit.adam, |n| !n.contains("running_")).unwrap();
    let (x, y) = set.batch(&(0..set.len()).collect::<Vec<_>>(), None, &Device::Cpu).unwrap();
    let mut losses = Vec::new();
    for _ in 0..60 {
        let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true).unwrap(), &y).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        adam.backward_step(&loss).unwrap();
    }
    assert!(losses[0] / losses[59] >= 5.0, "{losses:?}");
}

#[test]
fn label_smoothing_by_hand() {
    // logits (0, ln 3): softmax (1/4, 3/4). y = 1: CE = −ln ¾; the uniform term −(ln ¼ + ln ¾)/2.
    let logits = Tensor::new(&[[0f32, 3f32.ln()]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[1u32], &Device::Cpu).unwrap();
    let got = mri_cnn::smoothed_cross_entropy(&logits, &y, 0.1).unwrap().to_scalar::<f32>().unwrap() as f64;
    let ce = -(0.75f64).ln();
    let uniform = -((0.25f64).ln() + (0.75f64).ln()) / 2.0;
    assert!((got - (0.9 * ce + 0.1 * uniform)).abs() < 1e-5, "{got}");
}

/// Test-time flips: the prediction is the mean over the slice and its mirror image, so it is the
/// same for a set and for the mirrored set, and it differs from the plain prediction.
#[test]
fn test_time_flip_averages_a_slice_and_its_mirror() {
    let set = phantom_set(16, 4, 7);
    let mirrored = {
        let mut m = ImageSet::new(16);
        for i in 0..set.len() {
            let row_flipped: Vec<f32> = set.image(i).chunks(16).flat_map(|r| r.iter().rev().copied()).collect();
            m.push(&row_flipped, set.labels[i]).unwrap();
        }
        m
    };
    let plain = CnnConfig { dropout: 0.0, ..CnnConfig::quick(16) };
    let tta = CnnConfig { test_time_flip: true, ..plain.clone() };
    let vm = VarMap::new();
    let model = Cnn::new(&plain, seeded_var_builder(&vm, 4, DType::F32, &Device::Cpu), 4).unwrap();
    let model_tta = Cnn::new(&tta, candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), 4).unwrap();
    let p = predict_proba(&model, &set, 3, &Device::Cpu).unwrap();
    let p_mirror = predict_proba(&model, &mirrored, 3, &Device::Cpu).unwrap();
    let t = predict_proba(&model_tta, &set, 3, &Device::Cpu).unwrap();
    let t_mirror = predict_proba(&model_tta, &mirrored, 3, &Device::Cpu).unwrap();
    for i in 0..set.len() {
        assert!((t[i] - 0.5 * (p[i] + p_mirror[i])).abs() < 1e-6, "slice {i}: {} vs mean of {} and {}", t[i], p[i], p_mirror[i]);
        assert!((t[i] - t_mirror[i]).abs() < 1e-6);
    }
    assert!(p.iter().zip(&p_mirror).any(|(a, b)| (a - b).abs() > 1e-4), "an untrained net should not be mirror-symmetric already");
}

/// Ensembles: member 0 is the single CNN of the run's seed, the prediction is the members'
/// mean, and the one-checkpoint ensemble loads back with identical predictions; `load_cnn`
/// refuses it by name.
#[test]
fn ensemble_averages_members_and_round_trips_through_one_checkpoint() {
    use mri_cnn::{load_classifier, member_seed, train_ensemble, CnnEnsemble};
    let set = phantom_set(16, 4, 4);
    let cfg = CnnConfig { epochs: 2, ..CnnConfig::quick(16) };
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "cnn-ens".into(), ..TrainOptions::quiet(7) };
    let ens = train_ensemble(&cfg, 3, &set, &set, &Device::Cpu, &opts).unwrap();
    assert_eq!(ens.ensemble.len(), 3);
    // Member 0 is what a plain training with the same seed gives; the others differ.
    let single = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(7)).unwrap();
    assert_eq!(weights(&ens.members[0].varmap), weights(&single.varmap));
    assert_eq!(member_seed(7, 0), 7);
    assert_ne!(weights(&ens.members[1].varmap), weights(&ens.members[2].varmap));
    // The prediction is the members' mean.
    let p: Vec<Vec<f32>> = ens.members.iter().map(|m| predict_proba(&m.model, &set, 4, &Device::Cpu).unwrap()).collect();
    let mean = predict_proba(&ens.ensemble, &set, 4, &Device::Cpu).unwrap();
    for (i, &m) in mean.iter().enumerate() {
        let want = (p[0][i] + p[1][i] + p[2][i]) / 3.0;
        assert!((m - want).abs() < 1e-6, "image {i}: {m} vs {want}");
    }
    // One member predicts exactly what it does alone.
    let one = CnnEnsemble::new(vec![ens.members[1].model.clone()]).unwrap();
    assert_eq!(predict_proba(&one, &set, 4, &Device::Cpu).unwrap(), p[1]);
    assert!(CnnEnsemble::new(vec![]).is_err());
    assert!(train_ensemble(&cfg, 0, &set, &set, &Device::Cpu, &opts).is_err());
    // Saved as `cnn-ens` (members as `cnn-ens-m{i}`), it loads back as one predictor.
    let ck = Checkpoint::at(dir.path(), "cnn-ens");
    assert_eq!(mri_cnn::ensemble_size(&ck).unwrap(), Some(3));
    assert!(Checkpoint::at(dir.path(), "cnn-ens-m2").exists());
    let (cfg2, loaded) = load_classifier(&ck, &Device::Cpu).unwrap();
    assert_eq!(cfg2, cfg);
    assert_eq!(loaded.len(), 3);
    assert_eq!(predict_proba(&loaded, &set, 4, &Device::Cpu).unwrap(), mean);
    let e = load_cnn(&ck, &Device::Cpu).err().expect("an ensemble is not one CNN");
    assert!(e.to_string().contains("ensemble of 3 CNNs") && e.to_string().contains("cnn-ens.json"), "{e}");
    // A member's own checkpoint is a single CNN for both loaders.
    let (_, m1) = load_classifier(&Checkpoint::at(dir.path(), "cnn-ens-m1"), &Device::Cpu).unwrap();
    assert_eq!(m1.len(), 1);
    assert_eq!(predict_proba(&m1, &set, 4, &Device::Cpu).unwrap(), p[1]);
    // Re-running with the same folder resumes every finished member: same ensemble.
    let again = train_ensemble(&cfg, 3, &set, &set, &Device::Cpu, &opts).unwrap();
    assert_eq!(predict_proba(&again.ensemble, &set, 4, &Device::Cpu).unwrap(), mean);
}

#[test]
fn small_sets_train_at_least_min_steps() {
    // The default preset: 20 epochs, at least 540 steps of 32 — 60 epochs on 280 phantoms
    // (9 batches an epoch), 20 on Br35H's ~2000 training slices.
    let d = CnnConfig::default_preset(64);
    assert_eq!((d.epochs_for(280), d.epochs_for(2000)), (60, 20));
    // 12 images in batches of 8 = 2 steps an epoch: 1 epoch grows to 3 for 5 steps.
    let set = phantom_set(16, 6, 4);
    let cfg = CnnConfig { epochs: 1, min_steps: 5, ..CnnConfig::quick(16) };
    let out = train(&cfg, &set, &set, &Device::Cpu, &TrainOptions::quiet(1)).unwrap();
    assert_eq!(out.history.len(), 3);
    // Older configs without the field read as 0 (exactly `epochs`).
    let mut json = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut().unwrap().remove("min_steps");
    assert_eq!(serde_json::from_value::<CnnConfig>(json).unwrap().min_steps, 0);
}

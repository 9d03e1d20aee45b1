//! CNN: overfitting, shapes, checkpoints, determinism and resume. Phantoms at 16 px.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarMap;
use mri_cnn::{predict_proba, train, Cnn, CnnConfig, TrainOptions};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{seeded_var_builder, Adam, Checkpoint, ImageSet, TrainError};

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
    assert_eq!(a.history, b.history.iter().map(|r| mri_cnn::EpochRecord { seconds: a.history[r.epoch].seconds, ..r.clone() }).collect::<Vec<_>>());
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
    let side = mri_train::Sidecar {
        model: "cnn".into(),
        preset: "quick".into(),
        config: serde_json::to_value(&cfg).unwrap(),
        epoch: 3,
        step: 0,
        seed: 1,
        lr: 1e-3,
        metrics: serde_json::Value::Null,
        extra: serde_json::Value::Null,
        crate_version: "test".into(),
    };
    ck.save(&out.varmap, None, &side).unwrap();
    let vm = VarMap::new();
    let loaded = Cnn::new(&cfg, seeded_var_builder(&vm, 99, DType::F32, &Device::Cpu), 0).unwrap();
    ck.check(&ck.read_sidecar().unwrap(), "cnn", &serde_json::to_value(&cfg).unwrap()).unwrap();
    ck.load_weights(&vm).unwrap();
    assert_eq!(predict_proba(&out.model, &set, 4, &Device::Cpu).unwrap(), predict_proba(&loaded, &set, 4, &Device::Cpu).unwrap());
    // A different config is refused with the differing field named.
    let other = CnnConfig { hidden: vec![32], ..cfg.clone() };
    let e = ck.check(&ck.read_sidecar().unwrap(), "cnn", &serde_json::to_value(&other).unwrap()).unwrap_err();
    assert!(matches!(e, TrainError::CheckpointMismatch { .. }));
    assert!(e.to_string().contains("config field hidden is [16] in the checkpoint but [32] here"), "{e}");
    let e = ck.check(&ck.read_sidecar().unwrap(), "gan", &serde_json::to_value(&cfg).unwrap()).unwrap_err();
    assert!(e.to_string().contains("it holds a \"cnn\" model, not \"gan\""), "{e}");
    // Weights of another shape are refused.
    let vm2 = VarMap::new();
    let _ = Cnn::new(&other, seeded_var_builder(&vm2, 0, DType::F32, &Device::Cpu), 0).unwrap();
    assert!(matches!(ck.load_weights(&vm2), Err(TrainError::CheckpointMismatch { .. })));
    // A corrupt weights file or sidecar is reported as such, naming the file.
    std::fs::write(&ck.weights, b"not safetensors").unwrap();
    let e = ck.load_weights(&vm).unwrap_err();
    assert!(matches!(e, TrainError::CorruptCheckpoint { .. }) && e.to_string().contains("cnn-test.safetensors"), "{e}");
    std::fs::write(&ck.sidecar, b"{ half").unwrap();
    assert!(matches!(ck.read_sidecar(), Err(TrainError::CorruptCheckpoint { .. })));
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
    assert!(dir.path().join("cnn-real.safetensors").exists() && dir.path().join("cnn-real-last.optim.safetensors").exists());
}

//! GAN: each network fits, shapes and ranges, checkpoints, determinism and resume. 16 px.

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::VarMap;
use mri_gan::{build_gan, load_gan, sample, train_gan, GanConfig, GanError};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{bce_with_logits, Adam, Checkpoint, ImageSet, RunOptions, TrainError};

fn phantom_set(side: u32, per_class: usize, seed: u64) -> ImageSet {
    ImageSet::from_dataset(&Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap()).unwrap()
}

fn weights(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    mri_train::var_values(vm).unwrap()
}

#[test]
fn each_network_fits_a_tiny_batch() {
    let dev = Device::Cpu;
    // A larger step than the study's 2e-4 so that 80 steps suffice.
    let fast = mri_train::AdamConfig { lr: 2e-3, beta1: 0.5, ..Default::default() };
    let cfg = GanConfig { adam_g: fast, adam_d: fast, ..GanConfig::quick(16) };
    let (g, g_vm, d, d_vm) = build_gan(&cfg, 3, &dev).unwrap();
    let (real, _) = phantom_set(16, 2, 1).batch(&[0, 1, 2, 3], None, &dev).unwrap();
    let real = real.affine(2.0, -1.0).unwrap();
    let z = mri_train::seeded_normal(1, "z", (4, cfg.latent), &dev).unwrap();
    let fake = g.forward_t(&z, true).unwrap().detach();
    let (ones, zeros) = (Tensor::ones((4, 1), DType::F32, &dev).unwrap(), Tensor::zeros((4, 1), DType::F32, &dev).unwrap());
    // D learns to tell this real batch from these fakes.
    let mut adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |_| true).unwrap();
    let mut d_losses = Vec::new();
    for _ in 0..80 {
        let l = (bce_with_logits(&d.forward(&real).unwrap(), &ones).unwrap() + bce_with_logits(&d.forward(&fake).unwrap(), &zeros).unwrap()).unwrap();
        d_losses.push(l.to_scalar::<f32>().unwrap());
        adam_d.backward_step(&l).unwrap();
    }
    // G learns to fool the now fixed D.
    let mut adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
    let mut g_losses = Vec::new();
    for _ in 0..80 {
        let l = bce_with_logits(&d.forward(&g.forward_t(&z, true).unwrap()).unwrap(), &ones).unwrap();
        g_losses.push(l.to_scalar::<f32>().unwrap());
        adam_g.backward_step(&l).unwrap();
    }
    let ratio = |v: &[f32]| v[0] / v[v.len() - 1];
    assert!(ratio(&d_losses) >= 5.0, "D loss {d_losses:?}");
    assert!(ratio(&g_losses) >= 5.0, "G loss {} → {}", g_losses[0], g_losses[g_losses.len() - 1]);
}

#[test]
fn shapes_ranges_and_parameter_counts() {
    let dev = Device::Cpu;
    for cfg in [GanConfig::quick(16), GanConfig { image_size: 32, ..GanConfig::default_preset(32) }] {
        let (g, g_vm, d, d_vm) = build_gan(&cfg, 0, &dev).unwrap();
        let z = (Tensor::randn(0f32, 1f32, (3, cfg.latent), &dev).unwrap() * 10.0).unwrap();
        let img = g.forward_t(&z, false).unwrap();
        assert_eq!(img.dims(), &[3, 1, cfg.image_size, cfg.image_size]);
        let v: Vec<f32> = img.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|p| (-1.0..=1.0).contains(p)), "generator output leaves [-1, 1]");
        assert_eq!(d.forward(&img).unwrap().dims(), &[3 / cfg.pack(), 1], "one logit an image, or a pack");
        let drawn = sample(&g, None, 5, 0, 2, &dev).unwrap();
        // No autograd graph held by the draws (it held gigabytes for 20 000 of them).
        assert!(!drawn.track_op(), "samples are detached");
        let s: Vec<f32> = drawn.flatten_all().unwrap().to_vec1().unwrap();
        assert!(s.iter().all(|p| (0.0..=1.0).contains(p)), "samples leave [0, 1]");
        let count = |vm: &VarMap| {
            vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with(mri_gan::SN_U)).map(|(_, v)| v.elem_count()).sum::<usize>()
        };
        assert_eq!((count(&g_vm), count(&d_vm)), cfg.param_counts());
        assert!(g_vm.data().lock().unwrap().keys().all(|k| k.starts_with("generator.")));
        assert!(d_vm.data().lock().unwrap().keys().all(|k| k.starts_with("discriminator.")));
    }
    assert_eq!(GanConfig::paper().start_side(), 8);
    assert!(matches!(GanConfig::quick(18).check(), Err(GanError::Config(_))));
}

#[test]
fn same_seed_same_weights_and_resume_equals_uninterrupted() {
    let set = phantom_set(16, 6, 4).of_class(1);
    let cfg = GanConfig { epochs: 4, ..GanConfig::quick(16) };
    let dev = Device::Cpu;
    let a = train_gan(&cfg, &set, &dev, &RunOptions::quiet(5)).unwrap();
    let b = train_gan(&cfg, &set, &dev, &RunOptions::quiet(5)).unwrap();
    assert_eq!(weights(&a.g_varmap), weights(&b.g_varmap));
    assert_eq!(weights(&a.d_varmap), weights(&b.d_varmap));
    assert!(a.history.iter().all(|r| r.d_loss.is_finite() && (0.0..=1.0).contains(&r.d_real) && (0.0..=1.0).contains(&r.d_fake)));
    let opts =
        |dir: &std::path::Path, stop_after| RunOptions { checkpoint_dir: Some(dir.to_path_buf()), name: "gan-yes".into(), stop_after, ..RunOptions::quiet(5) };
    let dir = tempfile::tempdir().unwrap();
    let first = train_gan(&cfg, &set, &dev, &opts(dir.path(), Some(1))).unwrap();
    assert!(first.stopped_early && first.history.len() == 1);
    // A checkpoint written before a config field existed (here: `aux_classifier` taken out of
    // its sidecar) resumes: the field reads as its default.
    let last = Checkpoint::at(dir.path(), "gan-yes-last");
    let mut side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&last.sidecar).unwrap()).unwrap();
    assert!(side["config"].as_object_mut().unwrap().remove("aux_classifier").is_some());
    std::fs::write(&last.sidecar, serde_json::to_string(&side).unwrap()).unwrap();
    let resumed = train_gan(&cfg, &set, &dev, &opts(dir.path(), None)).unwrap();
    assert_eq!(weights(&a.g_varmap), weights(&resumed.g_varmap));
    assert_eq!(weights(&a.d_varmap), weights(&resumed.d_varmap));
    assert_eq!(a.history.iter().map(|r| r.g_loss).collect::<Vec<_>>(), resumed.history.iter().map(|r| r.g_loss).collect::<Vec<_>>());

    // Save → load → identical samples.
    let ck = Checkpoint::at(dir.path(), "gan-yes");
    let (loaded_cfg, g, _) = load_gan(&ck, &dev).unwrap();
    assert_eq!(loaded_cfg, cfg);
    let s1: Vec<f32> = sample(&a.generator, None, 4, 2, 4, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let s2: Vec<f32> = sample(&g, None, 4, 2, 4, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(s1, s2);
    // A mismatched config, then a truncated optimiser file.
    let other = GanConfig { g_base: 4, ..cfg.clone() };
    let err = train_gan(&other, &set, &dev, &opts(dir.path(), None)).err().unwrap();
    assert!(matches!(err, GanError::Train(TrainError::CheckpointMismatch { .. })), "{err}");
    let last = Checkpoint::at(dir.path(), "gan-yes-last");
    let optim = last.file("optim").unwrap();
    let bytes = std::fs::read(&optim).unwrap();
    std::fs::write(&optim, &bytes[..bytes.len() / 2]).unwrap();
    let more = GanConfig { epochs: 5, ..cfg.clone() };
    let err = train_gan(&more, &set, &dev, &opts(dir.path(), None)).err().unwrap();
    // More epochs would continue the run, but the damaged optimiser file fails its hash.
    assert!(matches!(err, GanError::Train(TrainError::CorruptCheckpoint { .. })), "{err}");
    assert!(err.to_string().contains("does not match the manifest"), "{err}");
    std::fs::write(&last.sidecar, "{ not json").unwrap();
    let err = train_gan(&cfg, &set, &dev, &opts(dir.path(), None)).err().unwrap();
    assert!(matches!(err, GanError::Train(TrainError::CorruptCheckpoint { .. })), "{err}");
}

/// The GAN trains through the shared epoch loop: two networks and two optimisers resume bit
/// for bit, and a finished run asked for more epochs continues to exactly what an
/// uninterrupted longer run gives.
#[test]
fn gan_continues_a_finished_run_bit_for_bit() {
    let set = phantom_set(16, 6, 4).of_class(1);
    let dev = Device::Cpu;
    let opts = |dir: &std::path::Path| RunOptions { checkpoint_dir: Some(dir.to_path_buf()), name: "gan-yes".into(), ..RunOptions::quiet(3) };
    let three = train_gan(&GanConfig { epochs: 3, ..GanConfig::quick(16) }, &set, &dev, &RunOptions::quiet(3)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let two = train_gan(&GanConfig { epochs: 2, ..GanConfig::quick(16) }, &set, &dev, &opts(dir.path())).unwrap();
    assert_eq!(two.history.len(), 2);
    let continued = train_gan(&GanConfig { epochs: 3, ..GanConfig::quick(16) }, &set, &dev, &opts(dir.path())).unwrap();
    assert_eq!(continued.history.len(), 3);
    assert_eq!(weights(&three.g_varmap), weights(&continued.g_varmap));
    assert_eq!(weights(&three.d_varmap), weights(&continued.d_varmap));
    let side = Checkpoint::at(dir.path(), "gan-yes-last").read_sidecar().unwrap();
    assert_eq!(side.epoch, 3);
    assert_eq!(side.optimizers.keys().map(String::as_str).collect::<Vec<_>>(), ["d", "g"]);
}

//! VAEs: overfitting, shapes and ranges, checkpoints, determinism and resume. Phantoms at 16 px.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{seeded_var_builder, Adam, Checkpoint, ImageSet, RunOptions, TrainError};
use mri_vae::{
    load_vae, reconstruct_set, sample, train_vae, vae_loss, AnomalyDecoder, AnomalyVae, AnomalyVaeConfig, GenerativeVae, LatentLayout, VaeConfig, VaeError,
    VaeLoss, VaeModel,
};

fn phantom_set(side: u32, per_class: usize, seed: u64) -> ImageSet {
    ImageSet::from_dataset(&Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap()).unwrap()
}

fn weights(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    mri_train::var_values(vm).unwrap()
}

/// Sum over pixels of the Bernoulli entropy of the targets: the lowest summed BCE possible
/// (grey targets are not 0/1), so "BCE falls 5×" is measured above this floor.
fn bce_floor(x: &Tensor) -> f64 {
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let n = x.dim(0).unwrap() as f64;
    v.iter()
        .map(|&p| {
            let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
            -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// Trains `model` on one fixed batch for `steps` full-batch steps; returns the first and last
/// reconstruction terms (minus `floor`).
fn overfit<M: VaeModel>(model: &M, vm: &VarMap, loss: VaeLoss, x: &Tensor, steps: usize, floor: f64) -> (f64, f64) {
    let mut adam = Adam::from_varmap(vm, mri_train::AdamConfig { lr: 2e-3, ..Default::default() }, |n| !n.contains("running_")).unwrap();
    let mut recon = Vec::new();
    for _ in 0..steps {
        let (mu, logvar) = model.encode(x, true).unwrap();
        let parts = vae_loss(loss, &model.decode_logits(&mu, true).unwrap(), x, &mu, &logvar).unwrap();
        recon.push(parts.recon - floor);
        adam.backward_step(&parts.total).unwrap();
    }
    (recon[0], *recon.last().unwrap())
}

#[test]
fn generative_vae_overfits_a_tiny_batch() {
    let set = phantom_set(16, 2, 1);
    let (x, _) = set.batch(&[0, 1, 2, 3], None, &Device::Cpu).unwrap();
    let cfg = VaeConfig { loss: VaeLoss::MseKl { beta: 1e-3 }, ..VaeConfig::quick(16) };
    let vm = VarMap::new();
    let model = GenerativeVae::new(&cfg, seeded_var_builder(&vm, 2, DType::F32, &Device::Cpu)).unwrap();
    let (first, last) = overfit(&model, &vm, cfg.loss, &x, 150, 0.0);
    assert!(first / last >= 5.0, "squared error {first} → {last}");
    // Summed BCE (the study's loss), measured above its entropy floor.
    let vm = VarMap::new();
    let model = GenerativeVae::new(&VaeConfig::quick(16), seeded_var_builder(&vm, 2, DType::F32, &Device::Cpu)).unwrap();
    let (first, last) = overfit(&model, &vm, VaeLoss::BceKl, &x, 150, bce_floor(&x));
    assert!(first / last >= 5.0, "BCE above its floor {first} → {last}");
    // A spatial code map overfits too.
    let cfg = VaeConfig { loss: VaeLoss::MseKl { beta: 1e-3 }, latent_layout: LatentLayout::Spatial { channels: 4 }, latent: 64, ..VaeConfig::quick(16) };
    let vm = VarMap::new();
    let model = GenerativeVae::new(&cfg, seeded_var_builder(&vm, 2, DType::F32, &Device::Cpu)).unwrap();
    let (first, last) = overfit(&model, &vm, cfg.loss, &x, 150, 0.0);
    assert!(first / last >= 5.0, "spatial code: squared error {first} → {last}");
}

#[test]
fn anomaly_vae_overfits_a_tiny_batch_with_both_decoders() {
    let set = phantom_set(16, 2, 1);
    let (x, _) = set.batch(&[0, 1], None, &Device::Cpu).unwrap();
    for decoder in [AnomalyDecoder::Mirrored, AnomalyDecoder::Study] {
        let cfg = AnomalyVaeConfig { decoder, loss: VaeLoss::MseKl { beta: 1e-3 }, ..AnomalyVaeConfig::quick(16) };
        let vm = VarMap::new();
        let model = AnomalyVae::new(&cfg, seeded_var_builder(&vm, 2, DType::F32, &Device::Cpu)).unwrap();
        let (first, last) = overfit(&model, &vm, cfg.loss, &x, 150, 0.0);
        assert!(first / last >= 5.0, "{decoder:?}: squared error {first} → {last}");
    }
}

#[test]
fn shapes_ranges_and_parameter_counts() {
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1f32, (3, 1, 32, 32), &dev).unwrap();
    let cfg = VaeConfig::quick(32);
    let vm = VarMap::new();
    let g = GenerativeVae::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &dev)).unwrap();
    let (mu, lv) = g.encode(&x, false).unwrap();
    assert_eq!((mu.dims(), lv.dims()), (&[3, 8][..], &[3, 8][..]));
    let r = g.reconstruct(&x).unwrap();
    assert_eq!(r.dims(), &[3, 1, 32, 32]);
    let z = (Tensor::randn(0f32, 1f32, (5, 8), &dev).unwrap() * 30.0).unwrap();
    let v: Vec<f32> = g.decode(&z, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)), "decoder output leaves [0, 1]");
    let trainable = |vm: &VarMap| vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_")).map(|(_, v)| v.elem_count()).sum::<usize>();
    assert_eq!(trainable(&vm), cfg.param_count());
    for decoder in [AnomalyDecoder::Mirrored, AnomalyDecoder::Study] {
        let cfg = AnomalyVaeConfig { decoder, ..AnomalyVaeConfig::quick(32) };
        let vm = VarMap::new();
        let a = AnomalyVae::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &dev)).unwrap();
        assert_eq!(a.reconstruct(&x).unwrap().dims(), &[3, 1, 32, 32], "{decoder:?}");
        assert_eq!(trainable(&vm), cfg.param_count(), "{decoder:?}");
    }
    // A spatial code: 2 channels on the 8×8 bottleneck of a two-block VAE at 32 px = 128 values,
    // flattened channel-major, and an extra decoder conv; parameters counted; a wrong `latent`
    // is named.
    let spatial = VaeConfig { latent_layout: LatentLayout::Spatial { channels: 2 }, latent: 128, decoder_extra_convs: 1, ..VaeConfig::quick(32) };
    let vm = VarMap::new();
    let g = GenerativeVae::new(&spatial, seeded_var_builder(&vm, 0, DType::F32, &dev)).unwrap();
    assert_eq!(g.encode(&x, false).unwrap().0.dims(), &[3, 128]);
    assert_eq!(g.reconstruct(&x).unwrap().dims(), &[3, 1, 32, 32]);
    assert_eq!(trainable(&vm), spatial.param_count());
    let e = VaeConfig { latent: 100, ..spatial.clone() }.check().unwrap_err().to_string();
    assert!(e.contains("128 values") && e.contains("it is 100"), "{e}");
    // The code keeps where things are: an image that differs only in its left half gives
    // codes that differ only in (or next to) the left half of each code channel.
    let left = Tensor::cat(&[Tensor::ones((1, 1, 32, 16), DType::F32, &dev).unwrap(), Tensor::zeros((1, 1, 32, 16), DType::F32, &dev).unwrap()], 3).unwrap();
    let zero = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    let d: Vec<f32> = (g.encode(&left, false).unwrap().0 - g.encode(&zero, false).unwrap().0).unwrap().abs().unwrap().flatten_all().unwrap().to_vec1().unwrap();
    // Columns 6 and 7 of the 8×8 map see only the right, all-zero half (receptive field of two
    // stride-2 3×3 convs: 7 px, so column 6 starts at pixel 23 ≥ 16 + 7 − 1).
    for (i, v) in d.iter().enumerate() {
        if i % 8 >= 6 {
            assert!(*v < 1e-6, "code value {i} moved by {v}: a right-half position saw the left half");
        }
    }
    assert!(d.iter().any(|v| *v > 1e-4));
    // The default preset's spatial code fits every side it is asked for (2 · (S/8)² values),
    // and its parameters are counted.
    for side in [32, 64, 128] {
        VaeConfig::default_preset(side).check().unwrap();
    }
    let d = VaeConfig::default_preset(64);
    let vm = VarMap::new();
    let g = GenerativeVae::new(&d, seeded_var_builder(&vm, 0, DType::F32, &dev)).unwrap();
    assert_eq!(trainable(&vm), d.param_count());
    assert_eq!(g.encode(&Tensor::zeros((1, 1, 64, 64), DType::F32, &dev).unwrap(), false).unwrap().0.dims(), &[1, 128]);
    // The study's decoder kernels at 128 px are 33 and 65.
    assert_eq!(AnomalyVaeConfig::paper().decoder_kernels(), vec![33, 65]);
    // And the paper generative VAE has a 2×2 bottleneck of 1024 channels.
    assert_eq!(VaeConfig::paper().bottleneck_side(), 2);
    assert!(matches!(VaeConfig::quick(30).check(), Err(VaeError::Config(_))));
}

#[test]
fn same_seed_same_weights_and_resume_equals_uninterrupted() {
    let set = phantom_set(16, 6, 4).of_class(0);
    let val = phantom_set(16, 3, 40).of_class(0);
    let cfg = AnomalyVaeConfig { epochs: 4, ..AnomalyVaeConfig::quick(16) };
    let dev = Device::Cpu;
    let a = train_vae(&cfg, &set, &val, &dev, &RunOptions::quiet(5)).unwrap();
    let b = train_vae(&cfg, &set, &val, &dev, &RunOptions::quiet(5)).unwrap();
    assert_eq!(weights(&a.varmap), weights(&b.varmap), "same seed, different weights");
    let c = train_vae(&cfg, &set, &val, &dev, &RunOptions::quiet(6)).unwrap();
    assert_ne!(weights(&a.varmap), weights(&c.varmap));

    let opts = |dir: &std::path::Path, stop_after| RunOptions {
        checkpoint_dir: Some(dir.to_path_buf()),
        name: "anomaly-vae-real".into(),
        stop_after,
        ..RunOptions::quiet(5)
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = train_vae(&cfg, &set, &val, &dev, &opts(whole_dir.path(), None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = train_vae(&cfg, &set, &val, &dev, &opts(dir.path(), Some(2))).unwrap();
    assert!(first.stopped_early && first.history.len() == 2);
    let resumed = train_vae(&cfg, &set, &val, &dev, &opts(dir.path(), None)).unwrap();
    assert_eq!(weights(&whole.varmap), weights(&resumed.varmap));
    assert_eq!(whole.best_epoch, resumed.best_epoch);
    let strip = |h: &[mri_vae::VaeEpoch]| h.iter().map(|r| (r.train_loss, r.val_loss)).collect::<Vec<_>>();
    assert_eq!(strip(&whole.history), strip(&resumed.history));
    assert_eq!(weights(&whole.varmap), weights(&a.varmap), "checkpointing changed the result");
}

#[test]
fn save_load_gives_identical_outputs_and_bad_checkpoints_are_refused() {
    let set = phantom_set(16, 4, 2);
    let cfg = VaeConfig { epochs: 2, ..VaeConfig::quick(16) };
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "vae-yes".into(), ..RunOptions::quiet(1) };
    let out = train_vae(&cfg, &set.of_class(1), &set.of_class(1), &dev, &opts).unwrap();
    let ck = Checkpoint::at(dir.path(), "vae-yes");
    let (loaded_cfg, model, _) = load_vae::<VaeConfig>(&ck, &dev).unwrap();
    assert_eq!(loaded_cfg, cfg);
    let drawn = sample(&out.model, 6, 9, 4, &dev).unwrap();
    assert!(!drawn.track_op(), "samples are detached: no autograd graph held by the draws");
    let a = drawn.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = sample(&model, 6, 9, 4, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    let ra = reconstruct_set(&out.model, &set, 4, &dev).unwrap();
    let rb = reconstruct_set(&model, &set, 4, &dev).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(ra.labels, set.labels);

    // Another model kind.
    let err = load_vae::<AnomalyVaeConfig>(&ck, &dev).err().unwrap();
    assert!(matches!(err, VaeError::Train(TrainError::CheckpointMismatch { .. })), "{err}");
    // Another config on resume.
    let other = VaeConfig { latent: 4, ..cfg.clone() };
    let err = train_vae(&other, &set.of_class(1), &set.of_class(1), &dev, &opts).err().unwrap();
    assert!(err.to_string().contains("latent"), "{err}");
    // A damaged weights file.
    let weights = ck.file("weights").unwrap();
    std::fs::write(&weights, b"not safetensors").unwrap();
    let err = load_vae::<VaeConfig>(&ck, &dev).err().unwrap();
    assert!(matches!(err, VaeError::Train(TrainError::CorruptCheckpoint { .. })), "{err}");
    assert!(err.to_string().contains(&weights.display().to_string()), "{err}");
}

/// The fitted code Gaussian recovers a known mean and covariance, samples reproducibly, and
/// the generative trainer's step budget sets the epochs.
#[test]
fn latent_gaussian_fits_codes_and_min_steps_set_the_epochs() {
    use mri_vae::{LatentGaussian, VaeConfig};
    // Codes from N((1, −2), [[4, 1.2], [1.2, 1]]) via a fixed Cholesky factor.
    let eps: Vec<f32> = mri_train::seeded_normal(3, "codes", (4000, 2), &candle_core::Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let codes: Vec<f64> = eps.chunks(2).flat_map(|e| [1.0 + 2.0 * e[0] as f64, -2.0 + 0.6 * e[0] as f64 + 0.8 * e[1] as f64]).collect();
    let g = LatentGaussian::from_codes(&codes, 2, None).unwrap();
    assert!((g.mean[0] - 1.0).abs() < 0.1 && (g.mean[1] + 2.0).abs() < 0.05, "{:?}", g.mean);
    // L·Lᵀ ≈ the covariance (shrinkage at n = 4000, d = 2 is negligible).
    let (l00, l10, l11) = (g.chol[0], g.chol[2], g.chol[3]);
    assert!((l00 * l00 - 4.0).abs() < 0.3 && (l10 * l00 - 1.2).abs() < 0.15 && (l10 * l10 + l11 * l11 - 1.0).abs() < 0.1, "{:?}", g.chol);
    let dev = candle_core::Device::Cpu;
    let a: Vec<f32> = g.sample(5, 9, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, g.sample(5, 9, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert_eq!(a.len(), 10);
    // Fewer codes than dimensions still give a positive-definite factor.
    assert!(LatentGaussian::from_codes(&[0.0, 1.0, 2.0, 1.0, 0.5, 0.0], 3, None).is_ok());
    assert!(LatentGaussian::from_codes(&[0.0, 1.0, 2.0], 3, None).is_err());
    // A set shrinkage s: Σ' = (1 − s)·Σ + s·(tr Σ / d)·I. Two codes (1, 0) and (−1, 0): Σ =
    // [[2, 0], [0, 0]], tr Σ / d = 1; s = 0.1 gives [[1.9, 0], [0, 0.1]].
    let g = LatentGaussian::from_codes(&[1.0, 0.0, -1.0, 0.0], 2, Some(0.1)).unwrap();
    let (l00, l10, l11) = (g.chol[0], g.chol[2], g.chol[3]);
    assert!((l00 * l00 - 1.9).abs() < 1e-12 && l10.abs() < 1e-12 && (l11 * l11 - 0.1).abs() < 1e-12, "{:?}", g.chol);
    // The automatic s = d / (n + d) = 0.5 here: [[1.5, 0], [0, 0.5]].
    let g = LatentGaussian::from_codes(&[1.0, 0.0, -1.0, 0.0], 2, None).unwrap();
    assert!((g.chol[0] * g.chol[0] - 1.5).abs() < 1e-12 && (g.chol[3] * g.chol[3] - 0.5).abs() < 1e-12, "{:?}", g.chol);
    for bad in [0.0, -0.1, 1.5] {
        assert!(LatentGaussian::from_codes(&[1.0, 0.0, -1.0, 0.0], 2, Some(bad)).is_err(), "{bad}");
    }
    let cfg = VaeConfig { min_steps: 10, epochs: 2, batch_size: 8, ..VaeConfig::quick(16) };
    assert_eq!(cfg.epochs_for(20), 4, "3 batches an epoch, 10 steps");
    assert_eq!(cfg.epochs_for(200), 2);
}

/// The two-stage sampler learns a distribution a Gaussian cannot: codes in two tight clusters
/// at (±3, 0) are sampled near the clusters, not in the gap between them that a fitted
/// Gaussian fills; sampling is seeded; both samplers round-trip through `.latent.json`'s JSON.
#[test]
fn second_stage_samples_where_the_codes_lie() {
    use mri_vae::{CodeSampler, LatentGaussian, SecondStage, SecondStageConfig};
    let dev = candle_core::Device::Cpu;
    let eps: Vec<f32> = mri_train::seeded_normal(5, "codes", (200, 2), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let codes: Vec<f64> = eps.chunks(2).enumerate().flat_map(|(i, e)| [if i % 2 == 0 { 3.0 } else { -3.0 } + 0.1 * e[0] as f64, 0.1 * e[1] as f64]).collect();
    let cfg = SecondStageConfig { hidden: 32, latent: 2, steps: 1500, lr: 3e-3 };
    let stage = SecondStage::fit(&codes, 2, cfg, 0, &dev).unwrap();
    assert!(stage.final_loss.is_finite() && stage.gamma < 1.0, "γ {} loss {}", stage.gamma, stage.final_loss);
    let near = |s: &CodeSampler| -> f64 {
        let z: Vec<f32> = s.sample(400, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        z.chunks(2).filter(|c| (c[0].abs() - 3.0).abs() < 1.0 && c[1].abs() < 1.0).count() as f64 / 400.0
    };
    let two = CodeSampler::TwoStage(stage);
    let gauss = CodeSampler::Gaussian(LatentGaussian::from_codes(&codes, 2, None).unwrap());
    let (n_two, n_gauss) = (near(&two), near(&gauss));
    eprintln!("near the clusters: two-stage {n_two}, Gaussian {n_gauss}");
    assert!(n_two > 0.7 && n_two > n_gauss + 0.3, "two-stage {n_two}, Gaussian {n_gauss}");
    let a: Vec<f32> = two.sample(5, 7, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, two.sample(5, 7, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    for s in [&two, &gauss] {
        let back: CodeSampler = serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap();
        assert_eq!(&back, s);
    }
    assert!(SecondStage::fit(&codes, 2, SecondStageConfig { steps: 0, ..cfg }, 0, &dev).is_err());
    assert!(SecondStage::fit(&codes[..2], 2, cfg, 0, &dev).is_err());
}

/// A class-conditional VAE (flat and spatial code): the class planes add their weights (counted),
/// the decoder draws differently for each class from the same code, an unlabelled call needs a
/// class (`of_class`), and `of_class(l)` is the labelled call with every label l.
#[test]
fn class_conditional_vae_is_told_the_class() {
    use mri_vae::ClassModels;
    let trainable = |vm: &VarMap| vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_")).map(|(_, v)| v.elem_count()).sum::<usize>();
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1f32, (3, 1, 32, 32), &dev).unwrap();
    for layout in [LatentLayout::Flat, LatentLayout::Spatial { channels: 2 }] {
        let latent = if layout == LatentLayout::Flat { 8 } else { 128 };
        let cfg = VaeConfig { latent_layout: layout, latent, class_models: ClassModels::Conditional, ..VaeConfig::quick(32) };
        let vm = VarMap::new();
        let g = GenerativeVae::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &dev)).unwrap();
        assert_eq!(trainable(&vm), cfg.param_count(), "{layout:?}");
        assert_eq!(g.classes(), 2);
        let e = g.encode(&x, false).unwrap_err().to_string();
        assert!(e.contains("of_class"), "{e}");
        let ones = Tensor::from_vec(vec![1u32; 3], 3, &dev).unwrap();
        let zeros = Tensor::from_vec(vec![0u32; 3], 3, &dev).unwrap();
        let (mu, _) = g.encode_labelled(&x, &ones, false).unwrap();
        assert_eq!(mu.dims(), &[3, latent]);
        let as_one: Vec<f32> = g.of_class(1).decode_logits(&mu, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let labelled: Vec<f32> = g.decode_logits_labelled(&mu, &ones, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let as_zero: Vec<f32> = g.decode_logits_labelled(&mu, &zeros, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(as_one, labelled, "{layout:?}");
        assert_ne!(as_one, as_zero, "{layout:?}: the class changes the drawing");
        let (mu1, _) = g.of_class(1).encode(&x, false).unwrap();
        assert_eq!(mu1.flatten_all().unwrap().to_vec1::<f32>().unwrap(), mu.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        // Labels outside the two classes are refused with the reason.
        let two = Tensor::from_vec(vec![2u32; 3], 3, &dev).unwrap();
        assert!(g.encode_labelled(&x, &two, false).unwrap_err().to_string().contains("label 2"));
    }
}

/// The PixelCNN code prior places a structure anywhere, which a Gaussian cannot: each code map
/// (1 × 3 × 3) holds one bright value 3 at a random place and zeros elsewhere (plus a little
/// noise). The prior's samples mostly have exactly one bright value and clean zeros; the
/// fitted Gaussian's are blends. Sampling is seeded and the prior round-trips through
/// `.latent.json`'s JSON; a flat code is refused by the config check.
#[test]
fn pixel_cnn_prior_draws_one_bright_spot_where_a_gaussian_blends() {
    use mri_vae::{code_nll, CodePixelCnn, CodeSampler, LatentGaussian, LatentSampler, PixelCnnConfig};
    let dev = candle_core::Device::Cpu;
    let n = 400;
    let eps: Vec<f32> = mri_train::seeded_normal(3, "codes", (n, 9), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let codes: Vec<f64> =
        eps.chunks(9).enumerate().flat_map(|(i, e)| (0..9).map(move |p| if p == (i * 7) % 9 { 3.0 } else { 0.0 } + 0.05 * e[p] as f64)).collect();
    let cfg = PixelCnnConfig { hidden: 16, layers: 2, kernel: 5, mixtures: 3, steps: 600, batch_size: 64, lr: 3e-3, temperature: 1.0 };
    let prior = CodePixelCnn::fit(&codes, 1, 3, cfg, 0, &dev).unwrap();
    assert!(prior.final_nll.is_finite());
    assert!((code_nll(&prior, &codes, &dev).unwrap() - prior.final_nll).abs() < 0.5);
    let one_spot = |s: &CodeSampler| -> f64 {
        let z: Vec<f32> = s.sample(300, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        z.chunks(9).filter(|c| c.iter().filter(|v| **v > 2.0).count() == 1 && c.iter().filter(|v| (0.5..2.0).contains(*v)).count() == 0).count() as f64 / 300.0
    };
    let ar = CodeSampler::Autoregressive(Box::new(prior));
    let gauss = CodeSampler::Gaussian(LatentGaussian::from_codes(&codes, 9, None).unwrap());
    let (f_ar, f_gauss) = (one_spot(&ar), one_spot(&gauss));
    eprintln!("one bright spot: PixelCNN {f_ar}, Gaussian {f_gauss}");
    assert!(f_ar > 0.7 && f_ar > f_gauss + 0.3, "PixelCNN {f_ar}, Gaussian {f_gauss}");
    let a: Vec<f32> = ar.sample(4, 7, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, ar.sample(4, 7, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let back: CodeSampler = serde_json::from_str(&serde_json::to_string(&ar).unwrap()).unwrap();
    assert_eq!(back, ar);
    assert!(CodePixelCnn::fit(&codes, 1, 3, PixelCnnConfig { kernel: 4, ..cfg }, 0, &dev).is_err());
    assert!(CodePixelCnn::fit(&codes[..9], 1, 3, cfg, 0, &dev).is_err());
    let flat = VaeConfig { sampler: LatentSampler::Autoregressive, ..VaeConfig::quick(16) };
    assert!(flat.check().unwrap_err().to_string().contains("spatial"));
}

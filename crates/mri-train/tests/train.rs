//! Losses, optimiser, schedules, devices and seeded streams against hand-computed values.

use candle_core::{Device, Tensor, Var};
use mri_train::*;

#[test]
fn bce_with_logits_is_stable_and_correct() {
    // By hand: x = 0, y = 1 → ln 2; x = 2, y = 0 → 2 + ln(1 + e^-2) = 2.126928…;
    // x = −1000, y = 1 → 1000 (a naive log(sigmoid) gives inf); x = 1000, y = 1 → 0.
    let x = Tensor::new(&[0f32, 2.0, -1000.0, 1000.0], &Device::Cpu).unwrap();
    let y = Tensor::new(&[1f32, 0.0, 1.0, 1.0], &Device::Cpu).unwrap();
    let per = [std::f64::consts::LN_2, 2.0 + (1.0 + (-2f64).exp()).ln(), 1000.0, 0.0];
    let expected = per.iter().sum::<f64>() / 4.0;
    let got = bce_with_logits(&x, &y).unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
}

#[test]
fn adam_first_step_by_hand() {
    // With bias correction the first Adam step moves each weight by lr·g/(|g| + ε) ≈ lr·sign(g).
    // Loss = sum(w · c) with c = (2, −3) → g = c; w0 = (1, 1), lr 0.1 → (0.9, 1.1).
    let w = Var::new(&[1f32, 1.0], &Device::Cpu).unwrap();
    let c = Tensor::new(&[2f32, -3.0], &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![("w".into(), w.clone())], AdamConfig { lr: 0.1, ..Default::default() }).unwrap();
    adam.backward_step(&(w.as_tensor() * &c).unwrap().sum_all().unwrap()).unwrap();
    let v: Vec<f32> = w.as_tensor().to_vec1().unwrap();
    assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.1).abs() < 1e-6, "{v:?}");
    // Decoupled weight decay shrinks the weight by lr·wd·w on top.
    let w2 = Var::new(&[1f32], &Device::Cpu).unwrap();
    let mut adamw = Adam::new(vec![("w".into(), w2.clone())], AdamConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() }).unwrap();
    adamw.backward_step(&(w2.as_tensor() * 2.0).unwrap().sum_all().unwrap()).unwrap();
    let v2: Vec<f32> = w2.as_tensor().to_vec1().unwrap();
    assert!((v2[0] - (1.0 * (1.0 - 0.05) - 0.1)).abs() < 1e-6, "{v2:?}");
    assert_eq!(adam.steps(), 1);
    assert_eq!(adam.state().unwrap().len(), 2);
    assert!(AdamConfig { beta1: 1.0, ..Default::default() }.check().is_err());
    assert!(AdamConfig { lr: 0.0, ..Default::default() }.check().is_err());
}

#[test]
fn reduce_on_plateau_like_pytorch() {
    // patience 2: the rate drops on the 3rd epoch without improvement.
    let mut s = ReduceOnPlateau::new(0.1, 2, 1e-6);
    let mut lr = 1.0;
    let mut lrs = Vec::new();
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85] {
        lr = s.step(loss, lr);
        lrs.push(lr);
    }
    assert_eq!(lrs, [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1]);
    assert_eq!(StepDecay { every: 10, gamma: 0.5 }.lr_at(1.0, 25), 0.25);
}

#[test]
fn devices_parse_and_cpu_opens() {
    assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
    assert!(matches!(DeviceChoice::Cpu.device().unwrap(), Device::Cpu));
    assert!(DeviceChoice::Auto.device().is_ok());
    let e = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert_eq!(e.to_string(), "device: unknown device \"tpu\"; expected cpu, cuda, metal or auto");
}

#[test]
fn dropout_masks_are_keyed_by_step() {
    let key = StepKey::new();
    let d = SeededDropout::new(0.5, 1, "fc0", key.clone());
    let x = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
    let a: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
    let b: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
    key.set(1);
    let c: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
    let kept = a.iter().filter(|&&v| v > 0.0).count();
    assert!((400..600).contains(&kept), "{kept}");
    assert_eq!(d.forward_t(&x, false).unwrap().to_vec1::<f32>().unwrap(), vec![1.0; 1000]);
}

#[test]
fn image_set_batches_and_flips() {
    let mut s = ImageSet::new(2);
    s.push(&[0.0, 1.0, 2.0, 3.0], 1).unwrap();
    s.push(&[4.0, 5.0, 6.0, 7.0], 0).unwrap();
    assert!(s.push(&[0.0], 0).is_err());
    let (x, y) = s.batch(&[1, 0], None, &Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[2, 1, 2, 2]);
    assert_eq!(y.to_vec1::<u32>().unwrap(), [0, 1]);
    // Some seed flips the first image: rows reversed left–right.
    let flipped = (0..64).find_map(|seed| {
        let (x, _) = s.batch(&[0], Some(seed), &Device::Cpu).unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        (v != [0.0, 1.0, 2.0, 3.0]).then_some(v)
    });
    assert_eq!(flipped.unwrap(), [1.0, 0.0, 3.0, 2.0]);
    let both = s.concat(&s).unwrap();
    assert_eq!(both.len(), 4);
    assert_eq!(s.epoch_batches(3, 0, 1).len(), 2);
}

#[test]
fn adam_moments_do_not_keep_the_graph() {
    // Regression: moments built from a gradient that still tracked its graph chained every
    // step's graph to the last, and a 1M-parameter CNN grew ~100 MB per step.
    let w = Var::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
    for _ in 0..3 {
        let loss = (w.as_tensor().sqr().unwrap() * 2.0).unwrap().sum_all().unwrap();
        adam.backward_step(&loss).unwrap();
    }
    for (name, t) in adam.state().unwrap() {
        assert!(!t.track_op(), "{name} keeps a backprop graph");
    }
}

#[test]
fn fused_adam_matches_the_tensor_op_update() {
    // The fused in-place CPU update against the tensor-op path (the one GPUs take): odd sizes,
    // one tensor large enough for the parallel chunks, a weight whose gradient is
    // non-contiguous (x·Wᵀ), several steps, with and without decoupled weight decay.
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap();
    let target = Tensor::randn(0f32, 1.0, 100_003, &dev).unwrap();
    for weight_decay in [0.0, 0.01] {
        let cfg = AdamConfig { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-8, weight_decay };
        let init_w = Tensor::randn(0f32, 1.0, (3, 7), &dev).unwrap();
        let init_b = Tensor::randn(0f32, 1.0, 100_003, &dev).unwrap();
        let run = |fused: bool| -> (Vec<f32>, Vec<f32>, Vec<f32>) {
            let w = Var::from_tensor(&init_w).unwrap();
            let b = Var::from_tensor(&init_b).unwrap();
            let mut adam = Adam::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], cfg).unwrap();
            adam.set_fused(fused);
            for _ in 0..4 {
                let lw = x.matmul(&w.as_tensor().t().unwrap()).unwrap().sqr().unwrap().sum_all().unwrap();
                let lb = (b.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                adam.backward_step(&(lw + lb).unwrap()).unwrap();
            }
            let m: Vec<f32> = adam.state().unwrap()["v.b"].to_vec1().unwrap();
            (w.as_tensor().flatten_all().unwrap().to_vec1().unwrap(), b.as_tensor().to_vec1().unwrap(), m)
        };
        let (fast, reference) = (run(true), run(false));
        for (name, a, b) in [("w", &fast.0, &reference.0), ("b", &fast.1, &reference.1), ("v.b", &fast.2, &reference.2)] {
            // Relative to the value, floored at one step (lr): values crossing 0 carry rounding of a step.
            let worst = a.iter().zip(b.iter()).map(|(a, b)| ((a - b).abs() / b.abs().max(cfg.lr as f32)) as f64).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{name} (weight decay {weight_decay}): relative error {worst}");
        }
        // The weights moved: the comparison is not between two untouched copies.
        assert!(fast.1.iter().zip(init_b.to_vec1::<f32>().unwrap()).any(|(a, b)| (a - b).abs() > 1e-3));
    }
}

/// A conv layer's forward and both gradients on seeded inputs (batch 5, 20 px: the per-image
/// parallel path), as bits.
fn conv_step_bits(seed: u64) -> Vec<u32> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&seeded_normal(seed, "x", (5, 3, 20, 20), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&seeded_normal(seed, "w", (4, 3, 3, 3), &dev).unwrap()).unwrap();
    let y = leaky_relu(&fastconv::conv2d(x.as_tensor(), w.as_tensor(), None, 1, 1).unwrap(), 0.2).unwrap();
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    [y, grads.get(x.as_tensor()).unwrap().clone(), grads.get(w.as_tensor()).unwrap().clone()]
        .iter()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .map(f32::to_bits)
        .collect()
}

#[test]
fn concurrent_jobs_return_in_order_with_the_bits_of_one_after_the_other() {
    let seeds = [1u64, 2, 3];
    let one_after_the_other: Vec<Vec<u32>> = seeds.iter().map(|&s| in_pool(|| conv_step_bits(s))).collect();
    let jobs: Vec<Job<'_, Vec<u32>>> = seeds.iter().map(|&s| -> Job<'_, Vec<u32>> { Box::new(move || conv_step_bits(s)) }).collect();
    assert_eq!(concurrently(jobs), one_after_the_other);
    // Borrowing jobs, a single job, and none.
    let names = ["a", "b"];
    let jobs: Vec<Job<'_, String>> = names.iter().map(|n| -> Job<'_, String> { Box::new(move || n.repeat(2)) }).collect();
    assert_eq!(concurrently(jobs), vec!["aa".to_string(), "bb".to_string()]);
    assert_eq!(concurrently(vec![Box::new(|| 7) as Job<'_, i32>]), vec![7]);
    assert!(concurrently(Vec::<Job<'_, i32>>::new()).is_empty());
}

/// Under glibc, with none of its malloc tunables in the environment, the thresholds are set
/// (mallopt accepted both values); elsewhere, or when the user set them, nothing changes. With
/// the `mimalloc` feature, mimalloc's purge delay reads back as "never" unless the user set it.
#[test]
fn the_allocator_keeps_freed_buffers() {
    let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
    let setup = mri_train::configure_allocator();
    assert_eq!(setup.glibc_thresholds, glibc && !mri_train::malloc_tunables_set());
    let mimalloc = cfg!(feature = "mimalloc");
    assert_eq!(setup.mimalloc_keeps_freed, mimalloc && std::env::var_os("MIMALLOC_PURGE_DELAY").is_none());
}

#[test]
fn class_pngs_are_written_in_order_with_their_pixels() {
    // Written on rayon's pool: the paths come back in index order and each file holds its own
    // image (every image a different constant grey, so a mix-up would show).
    let dir = tempfile::tempdir().unwrap();
    let (n, s) = (37usize, 8usize);
    let values: Vec<f32> = (0..n).flat_map(|i| std::iter::repeat_n(i as f32 / 40.0, s * s)).collect();
    let images = Tensor::from_vec(values, (n, 1, s, s), &Device::Cpu).unwrap();
    let paths = write_class_pngs(dir.path(), "yes", &images, 5).unwrap();
    assert_eq!(paths.len(), n);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(path, &dir.path().join("yes").join(format!("yes-{:05}.png", i + 5)));
        let img = mri_preprocess::decode_grey(&std::fs::read(path).unwrap(), path, 1).unwrap();
        assert_eq!((img.width, img.height), (s, s));
        assert!(img.data.iter().all(|&v| (v - i as f32 / 40.0).abs() <= 0.5 / 255.0 + 1e-6), "image {i}");
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path().join("yes")).unwrap().count(), n);
}

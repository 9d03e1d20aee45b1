//! The denoising autoencoder: config checks, coarse noise, training that denoises, resumable
//! checkpoints that load back.

use candle_core::{Device, ModuleT, Tensor};
use mri_dae::{coarse_noise, denoise_set, load_dae, train_dae, DaeConfig, DenoisingAe};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{seeded_var_builder, Checkpoint, ImageSet, RunOptions};

fn phantoms(side: usize, per_class: usize) -> ImageSet {
    let ds = Dataset::phantom(&PhantomConfig { image_size: side as u32, per_class, ..Default::default() }).unwrap();
    let mut set = ImageSet::new(side);
    for it in &ds.items {
        set.push(&it.pixels, it.label.index()).unwrap();
    }
    set
}

#[test]
fn config_errors_name_the_field() {
    for (cfg, field) in [
        (DaeConfig { channels: vec![], ..DaeConfig::quick(16) }, "channels"),
        (DaeConfig { image_size: 18, channels: vec![4, 8, 8], ..DaeConfig::quick(16) }, "image_size"),
        (DaeConfig { noise_res: 0, ..DaeConfig::quick(16) }, "noise_res"),
        (DaeConfig { noise_std: 0.0, ..DaeConfig::quick(16) }, "noise_std"),
        (DaeConfig { epochs: 0, ..DaeConfig::quick(16) }, "epochs"),
    ] {
        let e = cfg.check().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    for p in mri_train::Preset::ALL {
        DaeConfig::preset(p, None).check().unwrap();
    }
}

#[test]
fn coarse_noise_is_seeded_smooth_and_inside_the_head() {
    let cfg = DaeConfig { noise_res: 4, ..DaeConfig::quick(32) };
    let set = phantoms(32, 2);
    let (x, _) = set.batch(&[0, 1], None, &Device::Cpu).unwrap();
    let a = coarse_noise(&cfg, &x, 3, "noise/0").unwrap();
    let b = coarse_noise(&cfg, &x, 3, "noise/0").unwrap();
    let c = coarse_noise(&cfg, &x, 3, "noise/1").unwrap();
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v(&a), v(&b));
    assert_ne!(v(&a), v(&c));
    let (xs, ns) = (v(&x), v(&a));
    // Zero outside the head, non-zero inside.
    assert!(xs.iter().zip(&ns).all(|(p, n)| *p > cfg.head_threshold || *n == 0.0));
    assert!(ns.iter().any(|n| *n != 0.0));
    // Coarse: neighbouring pixels inside the head differ far less than the noise's spread.
    let sd = (ns.iter().map(|n| n * n).sum::<f32>() / ns.iter().filter(|n| **n != 0.0).count() as f32).sqrt();
    let mut diffs = Vec::new();
    for i in 0..xs.len() - 1 {
        if (i + 1) % 32 != 0 && ns[i] != 0.0 && ns[i + 1] != 0.0 {
            diffs.push((ns[i] - ns[i + 1]).abs());
        }
    }
    let mean_diff = diffs.iter().sum::<f32>() / diffs.len() as f32;
    assert!(mean_diff < 0.3 * sd, "neighbour difference {mean_diff} against spread {sd}");
    // Bright-only noise (the grid's magnitude, then upsampled) never darkens a pixel.
    let bright = v(&coarse_noise(&DaeConfig { bright_noise_only: true, ..cfg.clone() }, &x, 3, "noise/0").unwrap());
    assert!(bright.iter().all(|&n| n >= 0.0) && bright.iter().any(|&n| n > 0.0));
}

#[test]
fn training_denoises_and_the_checkpoint_loads_back() {
    let set = phantoms(16, 24);
    let healthy = set.of_class(0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = DaeConfig { epochs: 6, ..DaeConfig::quick(16) };
    let dev = Device::Cpu;
    let opts = RunOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "dae".into(), ..RunOptions::quiet(1) };
    let out = train_dae(&cfg, &healthy, &healthy, &dev, &opts).unwrap();
    assert_eq!(out.history.len(), 6);
    // Validation loss falls below that of the untrained network, which starts near the
    // identity (its output is input + correction).
    let untrained = {
        let vm = candle_nn::VarMap::new();
        let m = DenoisingAe::new(&cfg, seeded_var_builder(&vm, 1, candle_core::DType::F32, &dev)).unwrap();
        mri_dae::evaluate_dae_loss(&m, &cfg, &healthy, 1, &dev).unwrap()
    };
    assert!(out.best_val_loss < untrained, "trained {} vs untrained {untrained}", out.best_val_loss);
    // The saved best epoch loads back and denoises the same way.
    let (cfg2, model2, _) = load_dae(&Checkpoint::at(dir.path(), "dae"), &dev).unwrap();
    assert_eq!(cfg2, cfg);
    let (x, _) = healthy.batch(&[0, 1, 2], None, &dev).unwrap();
    let d1 = out.model.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let d2 = model2.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(d1, d2);
    let recon = denoise_set(&model2, &set, 8, &dev).unwrap();
    assert_eq!((recon.len(), recon.labels.clone()), (set.len(), set.labels.clone()));
    assert!(recon.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    // A second call resumes from NAME-last and is a no-op for the finished run.
    let again = train_dae(&cfg, &healthy, &healthy, &dev, &opts).unwrap();
    assert_eq!(again.history, out.history);
    // Another kind's checkpoint is refused by name.
    assert!(load_dae(&Checkpoint::at(dir.path(), "missing"), &dev).is_err());
}

/// Share of horizontally neighbouring pixel pairs with exactly the same noise value, per image.
fn flat_share(noise: &Tensor) -> Vec<f32> {
    let (n, _, h, w) = noise.dims4().unwrap();
    let v = noise.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (0..n)
        .map(|i| {
            let img = &v[i * h * w..(i + 1) * h * w];
            let same = (0..h).flat_map(|y| (0..w - 1).map(move |x| (y, x))).filter(|&(y, x)| img[y * w + x] == img[y * w + x + 1]).count();
            same as f32 / (h * (w - 1)) as f32
        })
        .collect()
}

#[test]
fn nearest_noise_is_square_patches_and_mixed_draws_either_per_image() {
    use mri_dae::NoiseUpsampling;
    // A batch of plain bright squares: every pixel is "head", so the noise is never masked.
    let x = Tensor::full(0.5f32, (16, 1, 32, 32), &Device::Cpu).unwrap();
    let cfg = DaeConfig { noise_res: 4, ..DaeConfig::quick(32) };
    let with = |u| coarse_noise(&DaeConfig { noise_upsampling: u, ..cfg.clone() }, &x, 5, "noise/0").unwrap();
    // Nearest: 8-px cells, so 7 of 8 neighbour pairs are equal; bilinear: only where the
    // border is held (half a cell at each edge of the grid).
    let (near, smooth) = (flat_share(&with(NoiseUpsampling::Nearest)), flat_share(&with(NoiseUpsampling::Bilinear)));
    assert!(near.iter().all(|&s| (s - 7.0 / 8.0 * 32.0 / 31.0).abs() < 0.05), "{near:?}");
    assert!(smooth.iter().all(|&s| s < 0.25), "{smooth:?}");
    // Mixed: each image is one of the two (both kinds occur in 16 images), seeded.
    let mixed = flat_share(&with(NoiseUpsampling::Mixed));
    assert!(mixed.iter().all(|&s| s < 0.25 || (s - 7.0 / 8.0 * 32.0 / 31.0).abs() < 0.05), "{mixed:?}");
    let sharp = mixed.iter().filter(|&&s| s > 0.5).count();
    assert!((1..16).contains(&sharp), "{sharp} of 16 images drew sharp patches");
    assert_eq!(flat_share(&with(NoiseUpsampling::Mixed)), mixed);
}

//! Texture-statistics matching: the differentiable statistics agree with the report's texture
//! features, real slices meet their own target and noise does not, the gap has a gradient that
//! closes it, and a GAN trains with it. 16–32 px.

use candle_core::{Device, Tensor, Var};
use mri_gan::{texture_stats, train_gan, GanConfig, GanLoss, TextureTarget, TEXTURE_STATS};
use mri_metrics::texture::{texture_features, TEXTURE_DIM};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{ImageSet, RunOptions};

fn phantom_set(side: u32, per_class: usize, seed: u64) -> ImageSet {
    ImageSet::from_dataset(&Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap()).unwrap()
}

#[test]
fn the_statistics_are_the_reports_texture_features_with_soft_histograms() {
    assert_eq!(TEXTURE_STATS, TEXTURE_DIM);
    let dev = Device::Cpu;
    let set = phantom_set(32, 3, 1);
    let idx: Vec<usize> = (0..set.len()).collect();
    let (x, _) = set.batch(&idx, None, &dev).unwrap();
    let soft = texture_stats(&x).unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in soft.iter().enumerate() {
        let hard = texture_features(set.image(i), 32);
        // The pyramid's eight band energies are the same numbers.
        for j in 0..8 {
            assert!((row[j] as f64 - hard[j]).abs() < 1e-4, "image {i} band statistic {j}: {} vs {}", row[j], hard[j]);
        }
        // Each histogram is a distribution near the hard one: mass only moves to a neighbour bin.
        for (from, to) in [(8, 20), (20, 36)] {
            let total: f32 = row[from..to].iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "image {i} histogram {from}..{to} sums to {total}");
            let l1: f64 = (from..to).map(|j| (row[j] as f64 - hard[j]).abs()).sum();
            assert!(l1 < 1.0, "image {i} histogram {from}..{to}: L1 {l1} from the hard one");
        }
    }
    // Intensities at bin centres land in their bin alone: the histograms agree exactly.
    let centres: Vec<f32> = (0..16 * 16).map(|k| ((k * 7) % 16) as f32 / 16.0 + 1.0 / 32.0).collect();
    let y = Tensor::from_vec(centres.clone(), (1, 1, 16, 16), &dev).unwrap();
    let soft = texture_stats(&y).unwrap().to_vec2::<f32>().unwrap().remove(0);
    let hard = texture_features(&centres, 16);
    for j in 20..36 {
        assert!((soft[j] as f64 - hard[j]).abs() < 1e-6, "intensity bin {}: {} vs {}", j - 20, soft[j], hard[j]);
    }
    assert!(texture_stats(&Tensor::zeros((2, 3, 16, 16), candle_core::DType::F32, &dev).unwrap()).is_err(), "three channels are refused");
}

#[test]
fn real_slices_meet_their_target_noise_does_not_and_the_gradient_closes_the_gap() {
    let dev = Device::Cpu;
    let set = phantom_set(32, 24, 2);
    let target = TextureTarget::from_images(&set, 2, &dev).unwrap();
    assert_eq!(target.mean().dims(), &[2, TEXTURE_STATS]);
    let held_out = phantom_set(32, 24, 3);
    let idx: Vec<usize> = (0..held_out.len()).collect();
    let (x, labels) = held_out.batch(&idx, None, &dev).unwrap();
    let real = target.loss(&x, Some(&labels)).unwrap().to_scalar::<f32>().unwrap();
    let noise = Tensor::rand(0f32, 1f32, x.shape(), &dev).unwrap();
    let far = target.loss(&noise, Some(&labels)).unwrap().to_scalar::<f32>().unwrap();
    assert!(real < 1.0, "held-out real slices of the same classes: gap {real}");
    assert!(far > 20.0 * real, "uniform noise: gap {far} against real {real}");
    // Plain gradient descent on the gap alone, from blurred noise, lowers it.
    let start = noise.avg_pool2d(2).unwrap().upsample_nearest2d(32, 32).unwrap();
    let v = Var::from_tensor(&start).unwrap();
    let gap = |t: &Tensor| target.loss(t, Some(&labels)).unwrap();
    let before = gap(v.as_tensor()).to_scalar::<f32>().unwrap();
    for _ in 0..40 {
        let g = gap(v.as_tensor()).backward().unwrap();
        let step = g.get(v.as_tensor()).expect("a gradient for the images");
        let size = step.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(size.is_finite() && size > 0.0, "gradient size {size}");
        v.set(&(v.as_tensor() - (step * 100.0).unwrap()).unwrap().clamp(0f32, 1f32).unwrap()).unwrap();
    }
    let after = gap(v.as_tensor()).to_scalar::<f32>().unwrap();
    assert!(after < 0.7 * before, "40 descent steps: gap {before} → {after}");
}

#[test]
fn a_gan_trains_with_texture_matching_and_reports_the_gap() {
    let dev = Device::Cpu;
    let set = phantom_set(16, 8, 4).of_class(1);
    let cfg = GanConfig { epochs: 2, loss: GanLoss::Hinge, texture_match: 1.0, ..GanConfig::quick(16) };
    let out = train_gan(&cfg, &set, &dev, &RunOptions::quiet(5)).unwrap();
    assert!(out.history.iter().all(|r| r.texture_gap.is_finite() && r.texture_gap > 0.0), "{:?}", out.history);
    let off = train_gan(&GanConfig { texture_match: 0.0, ..cfg.clone() }, &set, &dev, &RunOptions::quiet(5)).unwrap();
    assert!(off.history.iter().all(|r| r.texture_gap == 0.0));
    assert_eq!(off.history[0].d_loss, out.history[0].d_loss, "the first discriminator step does not see the term");
    // The step refuses the weight without a target, and the config a negative weight.
    let (g, g_vm, d, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
    let mut adam_g = mri_train::Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
    let mut adam_d = mri_train::Adam::from_varmap(&d_vm, cfg.adam_d, |_| true).unwrap();
    let (x, _) = set.batch(&[0, 1, 2, 3], None, &dev).unwrap();
    let e = mri_gan::gan_step(&g, &d, &mut adam_g, &mut adam_d, &x, None, &cfg, 0, None, &mut Default::default()).err().unwrap().to_string();
    assert!(e.contains("texture"), "{e}");
    let e = GanConfig { texture_match: -1.0, ..cfg }.check().err().unwrap().to_string();
    assert!(e.contains("texture_match"), "{e}");
}

//! Augmentation: exact geometry on constructed images, reproducibility, ranges.

use candle_core::Device;
use mri_train::{AugmentConfig, AugmentParams, ImageSet, RandConv};

fn identity() -> AugmentParams {
    AugmentParams {
        flip: false,
        angle: 0.0,
        zoom: 1.0,
        shift: (0.0, 0.0),
        gamma: 1.0,
        contrast: 1.0,
        brightness: 0.0,
        noise: 0.0,
        noise_seed: 0,
        blur: false,
        cutout: None,
        rand_conv: None,
    }
}

fn dot(side: usize, x: usize, y: usize) -> Vec<f32> {
    let mut img = vec![0f32; side * side];
    img[y * side + x] = 1.0;
    img
}

#[test]
fn geometry_is_exact_on_constructed_images() {
    let img: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
    assert_eq!(identity().apply(&img, 4), img);
    // Flip: columns reversed.
    let flipped = AugmentParams { flip: true, ..identity() }.apply(&img, 4);
    for y in 0..4 {
        for x in 0..4 {
            assert_eq!(flipped[y * 4 + x], img[y * 4 + 3 - x]);
        }
    }
    // A quarter turn: the inverse map reads source (y, 3 − x), so the dot at (1, 0) lands at (3, 1).
    let rotated = AugmentParams { angle: std::f32::consts::FRAC_PI_2, ..identity() }.apply(&dot(4, 1, 0), 4);
    let at = rotated.iter().position(|&v| v > 0.99).unwrap();
    assert_eq!((at % 4, at / 4), (3, 1), "{rotated:?}");
    assert!((rotated.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    // A shift of a quarter of 8 px moves a dot 2 px right; zoom 2 about the centre doubles distances.
    let shifted = AugmentParams { shift: (0.25, 0.0), ..identity() }.apply(&dot(8, 3, 5), 8);
    assert_eq!(shifted[5 * 8 + 5], 1.0);
    let big = AugmentParams { zoom: 2.0, ..identity() }.apply(&vec![1.0; 64], 8);
    assert!(big.iter().all(|&v| v == 1.0), "zooming in a constant image keeps it constant");
    let small = AugmentParams { zoom: 0.5, ..identity() }.apply(&vec![1.0; 64], 8);
    assert_eq!(small[0], 0.0, "zooming out brings in the background");
    // Cutout zeroes a square; gamma 2 squares values.
    let cut = AugmentParams { cutout: Some((0.5, 0.5, 0.5)), ..identity() }.apply(&vec![1.0; 64], 8);
    assert_eq!(cut.iter().filter(|&&v| v == 0.0).count(), 16);
    let g = AugmentParams { gamma: 2.0, ..identity() }.apply(&[0.5; 4], 2);
    assert_eq!(g, [0.25; 4]);
}

#[test]
fn batches_are_reproducible_and_in_range() {
    let mut set = ImageSet::new(16);
    for i in 0..6 {
        set.push(&(0..256).map(|p| ((p * 7 + i * 13) % 256) as f32 / 255.0).collect::<Vec<_>>(), (i % 2) as u32).unwrap();
    }
    let aug = AugmentConfig::standard();
    let get = |seed| set.batch_augmented(&[0, 3, 5], &aug, seed, &Device::Cpu).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (a, b, c) = (get(1), get(1), get(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    let plain = set.batch_augmented(&[0, 3, 5], &AugmentConfig::default(), 1, &Device::Cpu).unwrap().0;
    assert_eq!(
        plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        set.batch(&[0, 3, 5], None, &Device::Cpu).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    assert!(AugmentConfig { rotate_deg: -1.0, ..aug }.check().is_err());
    assert!(AugmentConfig { scale: 1.0, ..aug }.check().is_err());
}

#[test]
fn random_convolutions_change_texture_keep_moments_and_leave_old_configs_alone() {
    // A 16×16 slice: a bright disc on a checkerboard texture.
    let side = 16;
    let img: Vec<f32> = (0..side * side)
        .map(|p| {
            let (x, y) = ((p % side) as f32 - 7.5, (p / side) as f32 - 7.5);
            let disc = if x * x + y * y < 16.0 { 0.5 } else { 0.0 };
            0.2 + disc + 0.1 * (((p % side) + p / side) % 2) as f32
        })
        .collect();
    let mean_sd = |v: &[f32]| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (m, (v.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / v.len() as f32).sqrt())
    };
    // mix = 1 keeps the image; a 1×1 kernel is a scale, undone by the rescaling (its sign too).
    assert_eq!(RandConv { kernel: 5, mix: 1.0, seed: 3 }.apply(&img, side), img);
    for seed in 0..8 {
        let one = RandConv { kernel: 1, mix: 0.0, seed }.apply(&img, side);
        assert!(one.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-5), "seed {seed}");
    }
    // A 3×3 or larger filter changes the texture but keeps the image's mean and spread, and
    // stays positively correlated with it (no inverted slices).
    let (m0, s0) = mean_sd(&img);
    for (kernel, seed) in [(3, 1), (5, 2), (7, 3), (3, 4)] {
        let f = RandConv { kernel, mix: 0.0, seed }.apply(&img, side);
        let (m, s) = mean_sd(&f);
        assert!((m - m0).abs() < 1e-4 && (s - s0).abs() < 1e-4, "k {kernel}: {m} {s} vs {m0} {s0}");
        let cov: f32 = f.iter().zip(&img).map(|(a, b)| (a - m) * (b - m0)).sum();
        assert!(cov > 0.0, "k {kernel}: anti-correlated");
        assert!(f.iter().zip(&img).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) > 0.01, "k {kernel}: unchanged");
        assert_eq!(RandConv { kernel, mix: 0.0, seed }.apply(&img, side), f, "not reproducible");
    }
    // Through AugmentConfig: rand_conv 1 always filters; results stay in [0, 1].
    let on = AugmentConfig { rand_conv: 1.0, ..Default::default() };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(9);
    for _ in 0..10 {
        let p = on.draw(&mut rng);
        let rc = p.rand_conv.expect("probability 1");
        assert!(RandConv::KERNELS.contains(&rc.kernel) && (0.0..1.0).contains(&rc.mix));
        assert!(p.apply(&img, side).iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // A config written before the field existed reads as 0 and draws the same stream as today's
    // default: old augmentation is bit-identical.
    let standard = AugmentConfig::standard();
    let mut json = serde_json::to_value(standard).unwrap();
    json.as_object_mut().unwrap().remove("rand_conv");
    let old: AugmentConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old, standard);
    let draws = |c: &AugmentConfig| {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        (0..20).map(|_| c.draw(&mut rng)).collect::<Vec<_>>()
    };
    assert!(draws(&standard).iter().all(|p| p.rand_conv.is_none()));
    assert_eq!(draws(&standard), draws(&old));
    assert!(AugmentConfig { rand_conv: 1.5, ..standard }.check().is_err());
}

//! Generative, diversity, privacy and segmentation metrics on constructed cases with known answers.

use mri_metrics::generative::{frechet_distance, mmd_unbiased, pixel_spread, precision_recall};
use mri_metrics::privacy::{memorisation, nearest_neighbours, quantile, MemorisationParams};
use mri_metrics::segmentation::{best_dice, dice_at};
use mri_metrics::ssim::{mean_pairwise_ms_ssim, ms_ssim, ssim, SsimParams, MS_SSIM_WEIGHTS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `n` rows of `dim` independent N(mean, scale²) values.
fn gaussian_rows(seed: u64, n: usize, dim: usize, mean: f32, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| mean + scale * normal(&mut rng)).collect()
}

#[test]
fn identical_sets_have_zero_fd_and_mmd() {
    let a = gaussian_rows(1, 300, 8, 0.0, 1.0);
    assert!(frechet_distance(&a, &a, 8).unwrap() < 1e-9);
    // The unbiased estimator on two identical samples is −2(1 − mean off-diagonal k)/n: ≈ 0.
    let m = mmd_unbiased(&a, &a, 8).unwrap();
    assert!(m.mmd2.abs() < 0.01, "{m:?}");
    assert!(m.bandwidth > 0.0);
}

#[test]
fn fd_matches_the_closed_form_for_gaussians() {
    let d = 4;
    let a = gaussian_rows(2, 20_000, d, 0.0, 1.0);
    // Mean shift m in every coordinate: FD = d·m².
    let b = gaussian_rows(3, 20_000, d, 0.5, 1.0);
    let fd = frechet_distance(&a, &b, d).unwrap();
    assert!((fd - 1.0).abs() < 0.05, "shift: {fd}");
    // Scale σ: FD = d·(σ − 1)².
    let c = gaussian_rows(4, 20_000, d, 0.0, 2.0);
    let fd = frechet_distance(&a, &c, d).unwrap();
    assert!((fd - 4.0).abs() < 0.15, "scale: {fd}");
}

#[test]
fn a_shifted_distribution_gives_a_larger_fd_and_mmd() {
    let real = gaussian_rows(5, 400, 16, 0.0, 1.0);
    let same = gaussian_rows(6, 400, 16, 0.0, 1.0);
    let near = gaussian_rows(7, 400, 16, 0.3, 1.0);
    let far = gaussian_rows(8, 400, 16, 1.0, 1.0);
    let fd: Vec<f64> = [&same, &near, &far].iter().map(|s| frechet_distance(&real, s, 16).unwrap()).collect();
    assert!(fd[0] < fd[1] && fd[1] < fd[2], "{fd:?}");
    let mmd: Vec<f64> = [&same, &near, &far].iter().map(|s| mmd_unbiased(&real, s, 16).unwrap().mmd2).collect();
    assert!(mmd[0] < mmd[1] && mmd[1] < mmd[2], "{mmd:?}");
    assert!(mmd[0].abs() < 0.01, "same distribution: {}", mmd[0]);
}

#[test]
fn feature_shape_errors_are_reported() {
    assert!(frechet_distance(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2).is_err());
    assert!(frechet_distance(&[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0], 2).is_err(), "one row cannot give a covariance");
    assert!(mmd_unbiased(&[f32::NAN, 0.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0], 2).is_err());
}

fn noise_image(seed: u64, side: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..side * side).map(|_| rng.gen_range(0.0..1.0)).collect()
}

#[test]
fn ssim_of_an_image_with_itself_is_one() {
    let p = SsimParams::default();
    for side in [16, 32, 64, 128] {
        let img = noise_image(side as u64, side);
        assert!((ssim(&img, &img, side, &p).unwrap() - 1.0).abs() < 1e-12);
        assert!((ms_ssim(&img, &img, side, &p).unwrap() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn ssim_of_constant_images_has_the_closed_form() {
    // No variance: the contrast-structure term is C2/C2 = 1, so SSIM is the luminance term.
    let p = SsimParams::default();
    let (a, b) = (0.2f32, 0.7f32);
    let c1 = (0.01f64).powi(2);
    let (fa, fb) = (f64::from(a), f64::from(b));
    let lum = (2.0 * fa * fb + c1) / (fa * fa + fb * fb + c1);
    let side = 64;
    let (x, y) = (vec![a; side * side], vec![b; side * side]);
    assert!((ssim(&x, &y, side, &p).unwrap() - lum).abs() < 1e-6);
    // MS-SSIM: only the coarsest scale's luminance term is not 1 → lum^(w_last / Σw).
    let w = &MS_SSIM_WEIGHTS[..4];
    let expect = lum.powf(w[3] / w.iter().sum::<f64>());
    assert!((ms_ssim(&x, &y, side, &p).unwrap() - expect).abs() < 1e-6);
}

#[test]
fn ssim_falls_with_noise_and_is_symmetric() {
    let p = SsimParams::default();
    let side = 64;
    // A smooth image plus growing noise.
    let base: Vec<f32> = (0..side * side).map(|i| (((i % side) as f32 / 9.0).sin() * ((i / side) as f32 / 7.0).cos() + 1.0) / 2.0).collect();
    let noise = noise_image(9, side);
    let noisy = |amp: f32| -> Vec<f32> { base.iter().zip(&noise).map(|(b, n)| b + amp * (n - 0.5)).collect() };
    let s: Vec<f64> = [0.05, 0.2, 0.6].iter().map(|&a| ms_ssim(&base, &noisy(a), side, &p).unwrap()).collect();
    assert!(s[0] > s[1] && s[1] > s[2] && s[0] < 1.0, "{s:?}");
    let (u, v) = (noise_image(10, side), noise_image(11, side));
    assert!((ssim(&u, &v, side, &p).unwrap() - ssim(&v, &u, side, &p).unwrap()).abs() < 1e-12);
    assert!(ssim(&u, &v, side, &p).unwrap() < 0.1, "independent noise is dissimilar");
}

#[test]
fn ms_ssim_scales_fit_64_and_128_px_and_small_images_are_refused() {
    let p = SsimParams::default();
    assert_eq!(p.scales_at(32).unwrap(), 3);
    assert_eq!(p.scales_at(64).unwrap(), 4);
    assert_eq!(p.scales_at(128).unwrap(), 5);
    assert!(SsimParams { scales: Some(5), ..p }.scales_at(64).is_err());
    let tiny = vec![0.5f32; 36];
    let e = ms_ssim(&tiny, &tiny, 6, &p).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
    assert!(SsimParams { window: 8, ..p }.check().is_err());
}

#[test]
fn a_collapsed_set_has_higher_pairwise_ms_ssim_than_a_diverse_one() {
    let side = 32;
    let p = SsimParams::default();
    let diverse: Vec<f32> = (0..12).flat_map(|i| noise_image(100 + i, side)).collect();
    let one = noise_image(200, side);
    let collapsed: Vec<f32> = (0..12).flat_map(|i| one.iter().map(move |v| v + 0.01 * (i as f32 % 3.0))).collect();
    let (d, n) = mean_pairwise_ms_ssim(&diverse, side, 1000, 0, &p).unwrap();
    assert_eq!(n, 66, "all pairs when they fit");
    let (c, _) = mean_pairwise_ms_ssim(&collapsed, side, 30, 0, &p).unwrap();
    assert!(c > 0.99 && d < 0.2, "collapsed {c}, diverse {d}");
    // Sampled pairs are seeded.
    assert_eq!(mean_pairwise_ms_ssim(&diverse, side, 20, 5, &p).unwrap(), mean_pairwise_ms_ssim(&diverse, side, 20, 5, &p).unwrap());
}

#[test]
fn nearest_neighbours_match_a_naive_search() {
    let dim = 37;
    let q = gaussian_rows(20, 25, dim, 0.0, 1.0);
    let r = gaussian_rows(21, 60, dim, 0.0, 1.0);
    let got = nearest_neighbours(&q, &r, dim).unwrap();
    for (i, n) in got.iter().enumerate() {
        let qi = &q[i * dim..(i + 1) * dim];
        let (j, d) = r
            .chunks(dim)
            .map(|rj| qi.iter().zip(rj).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt())
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(n.index, j);
        assert!((n.distance - d).abs() < 1e-4 * d.max(1.0));
    }
}

#[test]
fn copies_of_training_images_are_all_memorised_and_fresh_samples_are_not() {
    let dim = 64;
    let train = gaussian_rows(30, 300, dim, 0.0, 1.0);
    let heldout = gaussian_rows(31, 200, dim, 0.0, 1.0);
    let p = MemorisationParams::default();
    // Exact copies, and copies with a little noise (well under the spacing of real images).
    let copies: Vec<f32> = train[..100 * dim].to_vec();
    assert_eq!(memorisation(&copies, &heldout, &train, dim, &p).unwrap().memorised_fraction, 1.0);
    let jitter = gaussian_rows(32, 100, dim, 0.0, 0.05);
    let near: Vec<f32> = copies.iter().zip(&jitter).map(|(a, b)| a + b).collect();
    let m = memorisation(&near, &heldout, &train, dim, &p).unwrap();
    assert_eq!(m.memorised_fraction, 1.0);
    assert!(m.synthetic_median < 0.1 * m.heldout_median);
    // New draws from the same distribution behave like held-out images.
    let fresh = gaussian_rows(33, 400, dim, 0.0, 1.0);
    let m = memorisation(&fresh, &heldout, &train, dim, &p).unwrap();
    assert!(m.memorised_fraction < 0.05, "{}", m.memorised_fraction);
    assert!((m.synthetic_median / m.heldout_median - 1.0).abs() < 0.05);
    assert!(memorisation(&fresh, &heldout, &train, dim, &MemorisationParams { percentile: 1.5 }).is_err());
}

#[test]
fn quantile_interpolates_like_numpy() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&v, 0.0), 1.0);
    assert_eq!(quantile(&v, 1.0), 4.0);
    assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
    assert!((quantile(&v, 0.01) - 1.03).abs() < 1e-12);
}

#[test]
fn best_dice_is_the_maximum_over_all_thresholds() {
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let truth: Vec<bool> = (0..500).map(|_| rng.gen_bool(0.2)).collect();
    // Informative but noisy scores, with ties.
    let scores: Vec<f32> = truth.iter().map(|&t| (((if t { 0.6 } else { 0.3 }) + rng.gen_range(-0.3f32..0.3)) * 10.0).round() / 10.0).collect();
    let best = best_dice(&scores, &truth).unwrap();
    let mut brute = 0.0f64;
    for &t in &scores {
        brute = brute.max(dice_at(&scores, &truth, t).unwrap());
    }
    assert!((best.dice - brute).abs() < 1e-12);
    assert!((dice_at(&scores, &truth, best.threshold).unwrap() - best.dice).abs() < 1e-12);
    assert!(best.dice > 0.4 && best.dice < 1.0);
    assert!(best_dice(&[0.1], &[true, false]).is_err());
}

/// One image repeated (a collapsed generator) spreads 0; i.i.d. uniform pixels spread
/// 1/√12 ≈ 0.289; shapes and too-small sets are refused with the reason.
#[test]
fn pixel_spread_sees_collapse_and_refuses_bad_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let one: Vec<f32> = (0..64).map(|_| rng.gen()).collect();
    let collapsed: Vec<f32> = one.iter().cycle().take(64 * 20).copied().collect();
    assert!(pixel_spread(&collapsed, 64).unwrap() < 1e-6);
    let varied: Vec<f32> = (0..64 * 2000).map(|_| rng.gen()).collect();
    let s = pixel_spread(&varied, 64).unwrap();
    assert!((s - 12f64.sqrt().recip()).abs() < 0.01, "{s}");
    assert!(pixel_spread(&one, 64).unwrap_err().to_string().contains("pixel spread"));
    assert!(pixel_spread(&varied[..100], 64).is_err());
}

/// Improved precision and recall: two draws of one Gaussian score high on both; a generator
/// that draws only half of the real data (x₀ < 0) keeps its precision and loses recall; one
/// that draws off the data (shifted by 6 σ) loses both; bad parameters are refused.
#[test]
fn precision_recall_separates_realism_from_coverage() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let dim = 4;
    let mut gauss = |n: usize| -> Vec<f32> {
        (0..n * dim)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    };
    let real = gauss(300);
    let same = gauss(300);
    let pr = precision_recall(&real, &same, dim, 3).unwrap();
    assert!(pr.precision > 0.85 && pr.recall > 0.85 && pr.k == 3, "{pr:?}");
    let pool = gauss(1200);
    let half: Vec<f32> = pool.chunks_exact(dim).filter(|r| r[0] < 0.0).take(300).flatten().copied().collect();
    assert_eq!(half.len(), 300 * dim);
    let pr_half = precision_recall(&real, &half, dim, 3).unwrap();
    assert!(pr_half.precision > 0.85 && pr_half.recall < 0.7 && pr_half.recall < pr.recall - 0.15, "{pr_half:?}");
    let off: Vec<f32> = same.iter().map(|v| v + 6.0).collect();
    let pr_off = precision_recall(&real, &off, dim, 3).unwrap();
    assert!(pr_off.precision < 0.05 && pr_off.recall < 0.05, "{pr_off:?}");
    assert!(precision_recall(&real, &same, dim, 0).unwrap_err().to_string().contains("k must be"));
    assert!(precision_recall(&real, &same[..3 * dim], dim, 3).is_err());
    assert!(precision_recall(&real[..real.len() - 1], &same, dim, 3).is_err());
}

#[test]
fn the_two_sample_test_is_near_chance_for_one_distribution_and_near_one_for_shifted_sets() {
    use mri_metrics::two_sample::{classifier_two_sample, TwoSampleParams};
    let p = TwoSampleParams::default();
    let d = 8;
    let a = gaussian_rows(11, 400, d, 0.0, 1.0);
    let same = gaussian_rows(12, 300, d, 0.0, 1.0);
    let t = classifier_two_sample(&a, &same, d, &p).unwrap();
    assert!((t.accuracy - 0.5).abs() < 0.08, "one distribution: {t:?}");
    assert_eq!((t.n_a, t.n_b, t.folds), (400, 300, 5));
    // A shift of 1 sd in every coordinate: Mahalanobis distance √8, Bayes accuracy Φ(√2) ≈ 0.92.
    let shifted = gaussian_rows(13, 300, d, 1.0, 1.0);
    let t = classifier_two_sample(&a, &shifted, d, &p).unwrap();
    assert!((t.accuracy - 0.92).abs() < 0.04, "shifted: {t:?}");
    // The same seed deals the same folds: the result is reproducible.
    assert_eq!(classifier_two_sample(&a, &shifted, d, &p).unwrap(), t);
    // A constant feature (zero variance) is harmless.
    let with_const = |x: &[f32]| -> Vec<f32> { x.chunks(d).flat_map(|r| r.iter().copied().chain([0.5])).collect() };
    let t2 = classifier_two_sample(&with_const(&a), &with_const(&shifted), d + 1, &p).unwrap();
    assert!((t2.accuracy - t.accuracy).abs() < 0.02, "{t2:?} vs {t:?}");
}

#[test]
fn the_two_sample_test_refuses_bad_parameters_and_small_sets() {
    use mri_metrics::two_sample::{classifier_two_sample, TwoSampleParams};
    let a = gaussian_rows(14, 40, 2, 0.0, 1.0);
    for bad in [TwoSampleParams { folds: 1, ..Default::default() }, TwoSampleParams { shrinkage: 1.5, ..Default::default() }] {
        assert!(classifier_two_sample(&a, &a, 2, &bad).is_err(), "{bad:?} accepted");
    }
    // 5 folds need at least 10 rows a set.
    let err = classifier_two_sample(&a, &a[..18], 2, &TwoSampleParams::default()).unwrap_err();
    assert!(err.to_string().contains("needs at least 10 rows, got 9"), "{err}");
    assert!(classifier_two_sample(&a, &a[..39], 2, &TwoSampleParams::default()).is_err(), "a ragged set accepted");
}

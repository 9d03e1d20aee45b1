//! The Fourier exchanges of `mri_train::spectral`: the plan against a naive DFT, identities,
//! what each exchange moves, and the set-level exchange that makes texture independent of the
//! label.

use mri_train::spectral::{exchange_across_set, exchange_amplitudes, exchange_ring_energies, SpectralExchange, Spectrum2d};
use mri_train::ImageSet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_image(side: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..side * side).map(|_| rng.gen_range(0.0..1.0)).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Energy of each whole-cycle ring of the spectrum.
fn ring_energies(plan: &Spectrum2d, img: &[f32], side: usize) -> Vec<f64> {
    let spec = plan.forward(img);
    let mut e = vec![0f64; side];
    for v in 0..side {
        for u in 0..side {
            e[plan.radius(u, v).round() as usize] += f64::from(spec[v * side + u].norm_sqr());
        }
    }
    e
}

#[test]
fn spectrum_matches_a_naive_dft_and_inverts_on_odd_and_even_sides() {
    for side in [5usize, 8, 12] {
        let plan = Spectrum2d::new(side);
        let img = random_image(side, side as u64);
        let spec = plan.forward(&img);
        for (v, u) in [(0, 0), (1, 2), (side - 1, 1), (side / 2, side / 2)] {
            let (mut re, mut im) = (0f64, 0f64);
            for y in 0..side {
                for x in 0..side {
                    let ang = -std::f64::consts::TAU * ((u * x) as f64 + (v * y) as f64) / side as f64;
                    re += f64::from(img[y * side + x]) * ang.cos();
                    im += f64::from(img[y * side + x]) * ang.sin();
                }
            }
            let c = spec[v * side + u];
            assert!((f64::from(c.re) - re).abs() < 1e-4 && (f64::from(c.im) - im).abs() < 1e-4, "side {side} ({u},{v}): {c} vs {re}+{im}i");
        }
        assert!(max_abs_diff(&plan.inverse(spec), &img) < 1e-5, "side {side}: round trip");
        // Signed frequencies: index side − 1 is frequency −1.
        assert_eq!(plan.radius(side - 1, 0), 1.0);
    }
}

#[test]
fn an_image_exchanged_with_itself_or_above_every_frequency_is_unchanged() {
    let side = 16;
    let plan = Spectrum2d::new(side);
    let (a, b) = (random_image(side, 1), random_image(side, 2));
    for cutoff in [0.0, 3.0] {
        assert!(max_abs_diff(&exchange_amplitudes(&plan, &a, &a, cutoff).unwrap(), &a) < 1e-5);
        assert!(max_abs_diff(&exchange_ring_energies(&plan, &a, &a, cutoff).unwrap(), &a) < 1e-5);
    }
    // Radii reach √2·8 ≈ 11.3 at 16 px: a cut-off of 12 exchanges nothing.
    assert!(max_abs_diff(&exchange_amplitudes(&plan, &a, &b, 12.0).unwrap(), &a) < 1e-5);
    assert!(max_abs_diff(&exchange_ring_energies(&plan, &a, &b, 12.0).unwrap(), &a) < 1e-5);
    // A cut-off of 0 with whole amplitudes gives b's amplitudes with a's phase: not a, not b.
    let mixed = exchange_amplitudes(&plan, &a, &b, 0.0).unwrap();
    assert!(max_abs_diff(&mixed, &a) > 0.05 && max_abs_diff(&mixed, &b) > 0.05);
}

#[test]
fn each_exchange_moves_what_it_says_and_keeps_the_rest() {
    let side = 16;
    let plan = Spectrum2d::new(side);
    let (a, b) = (random_image(side, 3), random_image(side, 4));
    let cutoff = 4.0;
    // Ring energies: the partner's from ring 4 (the cut-off) on, own below it, and the phase
    // kept everywhere.
    let out = exchange_ring_energies(&plan, &a, &b, cutoff).unwrap();
    let (ea, eb, eo) = (ring_energies(&plan, &a, side), ring_energies(&plan, &b, side), ring_energies(&plan, &out, side));
    for k in 0..side {
        let want = if k >= 4 { eb[k] } else { ea[k] };
        if want > 1e-9 {
            assert!((eo[k] - want).abs() / want < 1e-3, "ring {k}: {} against {want}", eo[k]);
        }
    }
    let (sa, so) = (plan.forward(&a), plan.forward(&out));
    for (x, y) in sa.iter().zip(&so).filter(|(x, _)| x.norm() > 1e-3) {
        assert!((x.arg() - y.arg()).abs() < 1e-3 || ((x.arg() - y.arg()).abs() - std::f32::consts::TAU).abs() < 1e-3);
    }
    // Whole amplitudes: |F| of the partner above the cut-off, own phase; own below.
    let out = exchange_amplitudes(&plan, &a, &b, cutoff).unwrap();
    let (sb, so) = (plan.forward(&b), plan.forward(&out));
    for v in 0..side {
        for u in 0..side {
            let i = v * side + u;
            let want = if plan.radius(u, v) >= cutoff { sb[i].norm() } else { sa[i].norm() };
            assert!((so[i].norm() - want).abs() < 1e-3 * (1.0 + want), "({u},{v}): {} against {want}", so[i].norm());
        }
    }
}

/// Two classes that differ in texture only: smooth blobs (label 0) and the same blobs with
/// strong pixel noise (label 1), on a zero background.
fn two_texture_classes(side: usize, per_class: usize) -> ImageSet {
    let mut set = ImageSet::new(side);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in 0..2 * per_class {
        let label = (i % 2) as u32;
        let (cx, cy, r) = (rng.gen_range(6.0..10.0), rng.gen_range(6.0..10.0), rng.gen_range(4.0..6.0f32));
        let img: Vec<f32> = (0..side * side)
            .map(|p| {
                let (x, y) = ((p % side) as f32, (p / side) as f32);
                let inside = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() < r;
                if !inside {
                    0.0
                } else if label == 1 {
                    (0.5 + rng.gen_range(-0.45..0.45f32)).clamp(0.05, 1.0)
                } else {
                    0.5
                }
            })
            .collect();
        set.push(&img, label).unwrap();
    }
    set
}

fn high_energy(plan: &Spectrum2d, img: &[f32], side: usize) -> f64 {
    ring_energies(plan, img, side)[5..].iter().sum()
}

#[test]
fn exchanging_across_a_set_makes_texture_energy_independent_of_the_label() {
    let side = 16;
    let set = two_texture_classes(side, 40);
    let plan = Spectrum2d::new(side);
    let class_mean = |s: &ImageSet, label: u32| -> f64 {
        let c = s.of_class(label);
        (0..c.len()).map(|i| high_energy(&plan, c.image(i), side)).sum::<f64>() / c.len() as f64
    };
    let before = class_mean(&set, 1) / class_mean(&set, 0);
    assert!(before > 3.0, "the fixture's classes should differ in texture: ratio {before}");
    for what in [SpectralExchange::RingEnergies, SpectralExchange::Amplitudes] {
        // Background kept: pixels at or under 0 stay as they were.
        let masked = exchange_across_set(&set, what, 4.0, 0.0, 7).unwrap();
        for i in 0..set.len() {
            for (o, e) in set.image(i).iter().zip(masked.image(i)) {
                if *o <= 0.0 {
                    assert_eq!(e, o, "{what:?}: background pixels stay");
                }
            }
        }
        // The exchange itself, every pixel taking part (the mask would cut the exchanged
        // energy that falls outside the discs).
        let out = exchange_across_set(&set, what, 4.0, -1.0, 7).unwrap();
        assert_eq!(out.labels, set.labels, "{what:?}: labels and order kept");
        assert!(out.pixels.iter().all(|v| (0.0..=1.0).contains(v)), "{what:?}: clamped");
        let after = class_mean(&out, 1) / class_mean(&out, 0);
        assert!(after < 1.5 && after > 0.67, "{what:?}: texture ratio between the classes {before} before, {after} after");
        // Seeded: the same seed gives the same set, another seed other partners.
        assert_eq!(exchange_across_set(&set, what, 4.0, -1.0, 7).unwrap().pixels, out.pixels);
        assert_ne!(exchange_across_set(&set, what, 4.0, -1.0, 8).unwrap().pixels, out.pixels);
    }
}

#[test]
fn bad_inputs_are_refused() {
    let plan = Spectrum2d::new(8);
    let a = random_image(8, 1);
    assert!(exchange_amplitudes(&plan, &a, &a[..10], 2.0).is_err());
    assert!(exchange_ring_energies(&plan, &a, &a, -1.0).is_err());
    assert!(exchange_ring_energies(&plan, &a, &a, f32::NAN).is_err());
    assert!(exchange_across_set(&ImageSet::new(8), SpectralExchange::RingEnergies, 2.0, 0.0, 0).is_err());
}

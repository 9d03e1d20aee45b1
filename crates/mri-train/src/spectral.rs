//! Fourier-amplitude exchange between images: one image's phase with another's amplitude above
//! a cut-off frequency.
//!
//! Why: a generator leaves a texture signature in its draws (docs/models.md, sessions 26–27),
//! and two per-class generators leave two different ones, so in a synthetic set texture tells
//! the classes apart better than in real data and a classifier trained on that set learns the
//! signature instead of the tumour. An image's Fourier **phase** carries where its edges and
//! structures lie, its **amplitude** spectrum how much energy each scale has — texture (Oppenheim
//! & Lim, "The importance of phase in signals", 1981). Giving every draw the high-frequency
//! amplitude of a partner drawn from the whole set, whatever its class, keeps each draw's
//! anatomy and lesion and makes its texture energy independent of its label. The operation is
//! the amplitude transfer of FDA (Yang & Soatto, "FDA: Fourier Domain Adaptation for Semantic
//! Segmentation", CVPR 2020), turned around: FDA swaps the *low* band to carry a target domain's
//! style; this swaps the *high* band between classes of one domain to remove a class cue.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

use crate::{ImageSet, Result, TrainError};

/// A plan for `side`×`side` 2-D FFTs (rows, then columns).
pub struct Spectrum2d {
    side: usize,
    forward: std::sync::Arc<dyn rustfft::Fft<f32>>,
    inverse: std::sync::Arc<dyn rustfft::Fft<f32>>,
}

impl Spectrum2d {
    /// Plans the transforms for `side`×`side` images.
    pub fn new(side: usize) -> Self {
        let mut planner = FftPlanner::<f32>::new();
        Spectrum2d { side, forward: planner.plan_fft_forward(side), inverse: planner.plan_fft_inverse(side) }
    }

    fn transform(&self, data: &mut [Complex<f32>], fft: &dyn rustfft::Fft<f32>) {
        let s = self.side;
        // Rows are contiguous; columns go through a transpose so that both passes are rows.
        fft.process(data);
        let mut t = vec![Complex::new(0.0, 0.0); s * s];
        transpose(data, &mut t, s);
        fft.process(&mut t);
        transpose(&t, data, s);
    }

    /// The complex spectrum of an image (unnormalised DFT).
    pub fn forward(&self, img: &[f32]) -> Vec<Complex<f32>> {
        let mut data: Vec<Complex<f32>> = img.iter().map(|&v| Complex::new(v, 0.0)).collect();
        self.transform(&mut data, self.forward.as_ref());
        data
    }

    /// The image of a spectrum ([`Spectrum2d::forward`]'s inverse; the real part).
    pub fn inverse(&self, mut spec: Vec<Complex<f32>>) -> Vec<f32> {
        self.transform(&mut spec, self.inverse.as_ref());
        let norm = 1.0 / (self.side * self.side) as f32;
        spec.iter().map(|c| c.re * norm).collect()
    }

    /// Radius of frequency (u, v) in cycles per image side (signed frequencies, so the DFT's
    /// index s − k is frequency −k).
    pub fn radius(&self, u: usize, v: usize) -> f32 {
        let f = |k: usize| if k <= self.side / 2 { k as f32 } else { k as f32 - self.side as f32 };
        (f(u).powi(2) + f(v).powi(2)).sqrt()
    }
}

fn transpose(src: &[Complex<f32>], dst: &mut [Complex<f32>], s: usize) {
    for y in 0..s {
        for x in 0..s {
            dst[x * s + y] = src[y * s + x];
        }
    }
}

/// `phase_from` with the Fourier amplitudes of `amplitude_from` at every frequency of radius ≥
/// `cutoff` cycles per side (below it `phase_from` is unchanged: brightness, head shape). Both
/// are `side`×`side`; the result is not clamped. The amplitude spectrum of a real image is
/// symmetric and its phase antisymmetric, so the result is real up to rounding.
///
/// # Errors
/// [`TrainError::InvalidParameter`] when an image is not `side`×`side` or `cutoff` is negative
/// or not finite.
pub fn exchange_amplitudes(plan: &Spectrum2d, phase_from: &[f32], amplitude_from: &[f32], cutoff: f32) -> Result<Vec<f32>> {
    check_pair(plan, phase_from, amplitude_from, cutoff)?;
    let mut a = plan.forward(phase_from);
    let b = plan.forward(amplitude_from);
    let s = plan.side;
    for v in 0..s {
        for u in 0..s {
            if plan.radius(u, v) < cutoff {
                continue;
            }
            let i = v * s + u;
            let (mag_a, mag_b) = (a[i].norm(), b[i].norm());
            // No phase to keep where a has no energy: take b's coefficient whole.
            a[i] = if mag_a > 1e-12 { a[i] * (mag_b / mag_a) } else { b[i] };
        }
    }
    Ok(plan.inverse(a))
}

/// `own` with the energy of each ring of frequencies (radius rounded to whole cycles per side)
/// whose rounded radius is ≥ `cutoff` scaled to `partner`'s energy in that ring: one gain per ring, so
/// `own`'s phase **and** its pattern of amplitudes within a ring (orientation, the head's own
/// outline) stay, and only how much energy each scale holds — what a radially averaged power
/// spectrum or a Laplacian band energy reads — comes from `partner`. Gentler than
/// [`exchange_amplitudes`], which takes the partner's whole amplitude pattern and leaves its
/// structures' echo in the result. Not clamped.
///
/// # Errors
/// As [`exchange_amplitudes`].
pub fn exchange_ring_energies(plan: &Spectrum2d, own: &[f32], partner: &[f32], cutoff: f32) -> Result<Vec<f32>> {
    check_pair(plan, own, partner, cutoff)?;
    let mut a = plan.forward(own);
    let b = plan.forward(partner);
    let s = plan.side;
    let rings = (plan.radius(s / 2, s / 2).round() as usize) + 1;
    let ring = |u: usize, v: usize| plan.radius(u, v).round() as usize;
    let (mut ea, mut eb) = (vec![0f64; rings], vec![0f64; rings]);
    for v in 0..s {
        for u in 0..s {
            let k = ring(u, v);
            ea[k] += f64::from(a[v * s + u].norm_sqr());
            eb[k] += f64::from(b[v * s + u].norm_sqr());
        }
    }
    for v in 0..s {
        for u in 0..s {
            let k = ring(u, v);
            if (k as f32) < cutoff || ea[k] <= 1e-24 {
                continue;
            }
            a[v * s + u] *= (eb[k] / ea[k]).sqrt() as f32;
        }
    }
    Ok(plan.inverse(a))
}

fn check_pair(plan: &Spectrum2d, a: &[f32], b: &[f32], cutoff: f32) -> Result<()> {
    let n = plan.side * plan.side;
    if a.len() != n || b.len() != n {
        return Err(TrainError::InvalidParameter {
            name: "spectral exchange",
            reason: format!("images of {} and {} pixels for a {s}×{s} plan", a.len(), b.len(), s = plan.side),
        });
    }
    if !cutoff.is_finite() || cutoff < 0.0 {
        return Err(TrainError::InvalidParameter { name: "spectral exchange", reason: format!("cutoff must be finite and >= 0, got {cutoff}") });
    }
    Ok(())
}

/// What [`exchange_across_set`] takes from each image's partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpectralExchange {
    /// The whole amplitude spectrum above the cut-off ([`exchange_amplitudes`]).
    Amplitudes,
    /// Only each ring's energy above the cut-off ([`exchange_ring_energies`]).
    RingEnergies,
}

/// Every image of `set` with what `what` names of the spectrum at radius ≥ `cutoff` of a
/// partner drawn uniformly from the whole set (one seeded draw per image, itself included,
/// whatever its label). Pixels at or under `background` stay as they were, so
/// that the exchanged high frequencies do not ring into an empty field; the others are
/// clamped to [0, 1]. Labels and order are kept.
///
/// # Errors
/// [`TrainError::InvalidParameter`] for an empty set or a bad `cutoff`.
pub fn exchange_across_set(set: &ImageSet, what: SpectralExchange, cutoff: f32, background: f32, seed: u64) -> Result<ImageSet> {
    if set.is_empty() {
        return Err(TrainError::InvalidParameter { name: "exchange_across_set", reason: "the set is empty".into() });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let partners: Vec<usize> = (0..set.len()).map(|_| rng.gen_range(0..set.len())).collect();
    let plan = Spectrum2d::new(set.side);
    let images: Vec<Vec<f32>> = partners
        .par_iter()
        .enumerate()
        .map(|(i, &j)| {
            let own = set.image(i);
            let exchanged = match what {
                SpectralExchange::Amplitudes => exchange_amplitudes(&plan, own, set.image(j), cutoff)?,
                SpectralExchange::RingEnergies => exchange_ring_energies(&plan, own, set.image(j), cutoff)?,
            };
            Ok(own.iter().zip(exchanged).map(|(&o, e)| if o <= background { o } else { e.clamp(0.0, 1.0) }).collect())
        })
        .collect::<Result<_>>()?;
    let mut out = ImageSet::new(set.side);
    for (img, &label) in images.iter().zip(&set.labels) {
        out.push(img, label)?;
    }
    Ok(out)
}

//! Seeded, on-the-fly augmentation of greyscale slices for classifier training: geometry
//! (flip, rotation, scale, translation; one inverse affine map with bilinear sampling, outside
//! filled with 0 = the preprocessing's background), random convolutions (texture), intensity
//! (gamma, contrast, brightness, Gaussian noise, blur) and cutout. Every draw comes from a ChaCha stream the caller seeds, so
//! an augmented epoch is reproducible and a resumed run sees the same images.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Ranges of each augmentation (0 switches one off). Every draw is uniform in its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Mirror left–right with probability ½ (axial slices are roughly symmetric).
    pub flip: bool,
    /// Rotation in degrees, drawn in ±`rotate_deg`.
    pub rotate_deg: f32,
    /// Zoom factor drawn in 1 ± `scale`.
    pub scale: f32,
    /// Shift in each axis, drawn in ±`translate` × side.
    pub translate: f32,
    /// Gamma drawn log-uniformly in [1/(1+`gamma`), 1+`gamma`].
    pub gamma: f32,
    /// Contrast about the image mean, factor drawn in 1 ± `contrast`.
    pub contrast: f32,
    /// Brightness offset drawn in ±`brightness`.
    pub brightness: f32,
    /// Gaussian noise with standard deviation drawn in [0, `noise`].
    pub noise: f32,
    /// Probability of a 3×3 box blur.
    pub blur_prob: f32,
    /// With probability ½, a square of side `cutout` × side set to 0 at a random place.
    pub cutout: f32,
    /// Probability of a random convolution ([`RandConv`]: RandConv, Xu et al. 2021): texture
    /// randomised, shapes kept. Missing in configs written before it existed: 0.
    #[serde(default)]
    pub rand_conv: f32,
}

impl Default for AugmentConfig {
    /// No augmentation.
    fn default() -> Self {
        AugmentConfig {
            flip: false,
            rotate_deg: 0.0,
            scale: 0.0,
            translate: 0.0,
            gamma: 0.0,
            contrast: 0.0,
            brightness: 0.0,
            noise: 0.0,
            blur_prob: 0.0,
            cutout: 0.0,
            rand_conv: 0.0,
        }
    }
}

impl AugmentConfig {
    /// Flips only (the study's setting).
    pub fn flips() -> Self {
        AugmentConfig { flip: true, ..Default::default() }
    }

    /// Small-data practice for brain slices: flips, ±15°, ±10 % zoom, ±8 % shift, mild gamma,
    /// contrast, brightness and noise, occasional blur, cutout of ¼ of the side.
    pub fn standard() -> Self {
        AugmentConfig {
            flip: true,
            rotate_deg: 15.0,
            scale: 0.10,
            translate: 0.08,
            gamma: 0.25,
            contrast: 0.15,
            brightness: 0.08,
            noise: 0.02,
            blur_prob: 0.2,
            cutout: 0.25,
            rand_conv: 0.0,
        }
    }

    /// True when nothing is switched on.
    pub fn is_identity(&self) -> bool {
        *self == AugmentConfig::default()
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`TrainError::InvalidParameter`] for a negative or non-finite range, a zoom ≥ 1 or a
    /// probability or cutout outside [0, 1].
    pub fn check(&self) -> Result<()> {
        let fields = [
            ("rotate_deg", self.rotate_deg),
            ("scale", self.scale),
            ("translate", self.translate),
            ("gamma", self.gamma),
            ("contrast", self.contrast),
            ("brightness", self.brightness),
            ("noise", self.noise),
            ("blur_prob", self.blur_prob),
            ("cutout", self.cutout),
            ("rand_conv", self.rand_conv),
        ];
        if let Some((name, v)) = fields.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(TrainError::InvalidParameter { name: "augment", reason: format!("{name} must be finite and >= 0, got {v}") });
        }
        if self.scale >= 1.0 || self.contrast >= 1.0 || self.blur_prob > 1.0 || self.cutout > 1.0 || self.rand_conv > 1.0 {
            return Err(TrainError::InvalidParameter {
                name: "augment",
                reason: "scale and contrast must be < 1; blur_prob, cutout and rand_conv <= 1".into(),
            });
        }
        Ok(())
    }

    /// Draws one image's parameters.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> AugmentParams {
        let mut sym = |r: f32| if r > 0.0 { rng.gen_range(-r..=r) } else { 0.0 };
        let angle = sym(self.rotate_deg).to_radians();
        let zoom = 1.0 + sym(self.scale);
        let shift = (sym(self.translate), sym(self.translate));
        let log_gamma = sym((1.0 + self.gamma).ln());
        let contrast = 1.0 + sym(self.contrast);
        let brightness = sym(self.brightness);
        let flip = self.flip && rng.gen_bool(0.5);
        let noise = if self.noise > 0.0 { rng.gen_range(0.0..=self.noise) } else { 0.0 };
        let noise_seed = rng.gen();
        let blur = self.blur_prob > 0.0 && rng.gen_bool(f64::from(self.blur_prob));
        let cutout = (self.cutout > 0.0 && rng.gen_bool(0.5)).then(|| (rng.gen_range(0.0..1.0), rng.gen_range(0.0..1.0), self.cutout));
        // Drawn last and only when switched on, so that configs without it see the same
        // stream as before it existed (bit-identical augmentation, reusable checkpoints).
        let rand_conv = (self.rand_conv > 0.0 && rng.gen_bool(f64::from(self.rand_conv))).then(|| RandConv {
            kernel: RandConv::KERNELS[rng.gen_range(0..RandConv::KERNELS.len())],
            mix: rng.gen_range(0.0..1.0),
            seed: rng.gen(),
        });
        AugmentParams { flip, angle, zoom, shift, gamma: log_gamma.exp(), contrast, brightness, noise, noise_seed, blur, cutout, rand_conv }
    }
}

/// One image's drawn augmentation (see [`AugmentConfig::draw`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentParams {
    /// Mirror left–right (before the rotation).
    pub flip: bool,
    /// Rotation in radians, counter-clockwise on screen.
    pub angle: f32,
    /// Zoom factor (> 1 enlarges).
    pub zoom: f32,
    /// Shift as fractions of the side (x, y).
    pub shift: (f32, f32),
    /// Gamma (v ↦ v^gamma).
    pub gamma: f32,
    /// Contrast factor about the mean.
    pub contrast: f32,
    /// Brightness offset.
    pub brightness: f32,
    /// Noise standard deviation.
    pub noise: f32,
    /// Seed of the noise.
    pub noise_seed: u64,
    /// Apply a 3×3 box blur.
    pub blur: bool,
    /// Cutout centre (fractions) and side (fraction).
    pub cutout: Option<(f32, f32, f32)>,
    /// A random convolution, applied after the geometry.
    pub rand_conv: Option<RandConv>,
}

/// One random convolution (RandConv, Xu, Liu, Wang & Niethammer, "Robust and generalizable
/// visual representation learning via random convolutions", ICLR 2021): the image filtered by a
/// `kernel`×`kernel` filter of N(0, 1/kernel²) weights, rescaled to the image's own mean and
/// standard deviation, then mixed with it, `mix`·image + (1 − `mix`)·filtered. A random filter
/// blurs, sharpens or picks out edges in a random way, so fine texture and noise stop being a
/// reliable cue while shapes stay where they were: what a classifier trained on one source of
/// slices (a generator's) should not lean on.
///
/// One departure from the paper: a filtered image anti-correlated with the original is negated
/// before rescaling. In these slices polarity is part of anatomy (tumours and the skull are
/// bright, ventricles dark), so an inverted-contrast slice would ask the classifier to unlearn
/// a real cue, not a texture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandConv {
    /// Kernel side (odd; one of [`RandConv::KERNELS`] when drawn).
    pub kernel: usize,
    /// Weight of the original image in the mix, in [0, 1].
    pub mix: f32,
    /// Seed of the filter's weights.
    pub seed: u64,
}

impl RandConv {
    /// Kernel sides drawn uniformly (the paper's multi-scale choice).
    pub const KERNELS: [usize; 4] = [1, 3, 5, 7];

    /// The filtered, rescaled and mixed `side`×`side` image (not clamped).
    pub fn apply(&self, img: &[f32], side: usize) -> Vec<f32> {
        let k = self.kernel.max(1) | 1;
        let half = (k / 2) as isize;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let sd = 1.0 / k as f32;
        let weights: Vec<f32> = (0..k * k)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
                sd * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        let n = side as isize;
        let mut filtered = vec![0f32; img.len()];
        for y in 0..n {
            for x in 0..n {
                let mut acc = 0f32;
                for dy in -half..=half {
                    let yy = y + dy;
                    if yy < 0 || yy >= n {
                        continue;
                    }
                    for dx in -half..=half {
                        let xx = x + dx;
                        if xx >= 0 && xx < n {
                            acc += weights[((dy + half) * k as isize + dx + half) as usize] * img[(yy * n + xx) as usize];
                        }
                    }
                }
                filtered[(y * n + x) as usize] = acc;
            }
        }
        let moments = |v: &[f32]| -> (f32, f32) {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (m, (v.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / v.len() as f32).sqrt())
        };
        let ((mo, so), (mf, sf)) = (moments(img), moments(&filtered));
        if sf < 1e-8 || so < 1e-8 {
            return img.to_vec();
        }
        let cov: f32 = img.iter().zip(&filtered).map(|(a, b)| (a - mo) * (b - mf)).sum();
        let sign = if cov < 0.0 { -1.0 } else { 1.0 };
        img.iter().zip(&filtered).map(|(&a, &b)| self.mix * a + (1.0 - self.mix) * (mo + sign * (b - mf) / sf * so)).collect()
    }
}

impl AugmentParams {
    /// Applies these parameters to an S×S image with values in [0, 1]; the result is clamped
    /// to [0, 1].
    pub fn apply(&self, img: &[f32], side: usize) -> Vec<f32> {
        let s = side as f32;
        let c = (s - 1.0) / 2.0;
        let (sin, cos) = self.angle.sin_cos();
        let geometric = self.flip || self.angle != 0.0 || self.zoom != 1.0 || self.shift != (0.0, 0.0);
        let mut out = if geometric {
            // Inverse map: output pixel → source position (undo shift, rotation, zoom, flip).
            let mut out = vec![0f32; side * side];
            for y in 0..side {
                for x in 0..side {
                    let (dx, dy) = (x as f32 - c - self.shift.0 * s, y as f32 - c - self.shift.1 * s);
                    let (rx, ry) = ((cos * dx + sin * dy) / self.zoom, (-sin * dx + cos * dy) / self.zoom);
                    let sx = if self.flip { c - rx } else { c + rx };
                    out[y * side + x] = bilinear(img, side, sx, c + ry);
                }
            }
            out
        } else {
            img.to_vec()
        };
        if let Some(rc) = &self.rand_conv {
            out = rc.apply(&out, side);
        }
        if self.blur {
            out = box_blur3(&out, side);
        }
        if self.gamma != 1.0 {
            out.iter_mut().for_each(|v| *v = v.max(0.0).powf(self.gamma));
        }
        if self.contrast != 1.0 || self.brightness != 0.0 {
            let mean = out.iter().sum::<f32>() / out.len() as f32;
            out.iter_mut().for_each(|v| *v = (*v - mean) * self.contrast + mean + self.brightness);
        }
        if self.noise > 0.0 {
            let mut rng = ChaCha8Rng::seed_from_u64(self.noise_seed);
            for v in out.iter_mut() {
                // Box–Muller.
                let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
                *v += self.noise * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            }
        }
        if let Some((cx, cy, frac)) = self.cutout {
            let half = frac * s / 2.0;
            let (x0, x1) = (((cx * s) - half).max(0.0) as usize, ((cx * s) + half).min(s) as usize);
            let (y0, y1) = (((cy * s) - half).max(0.0) as usize, ((cy * s) + half).min(s) as usize);
            for y in y0..y1 {
                out[y * side + x0..y * side + x1].fill(0.0);
            }
        }
        out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        out
    }
}

fn bilinear(img: &[f32], side: usize, x: f32, y: f32) -> f32 {
    if x < -0.5 || y < -0.5 || x > side as f32 - 0.5 || y > side as f32 - 0.5 {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= side as f32 || yi >= side as f32 {
            0.0
        } else {
            img[yi as usize * side + xi as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn box_blur3(img: &[f32], side: usize) -> Vec<f32> {
    let mut out = vec![0f32; img.len()];
    for y in 0..side {
        for x in 0..side {
            let (mut sum, mut n) = (0f32, 0f32);
            for yy in y.saturating_sub(1)..(y + 2).min(side) {
                for xx in x.saturating_sub(1)..(x + 2).min(side) {
                    sum += img[yy * side + xx];
                    n += 1.0;
                }
            }
            out[y * side + x] = sum / n;
        }
    }
    out
}

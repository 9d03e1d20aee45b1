//! Built-in **phantom** data: brain-like axial slices drawn from a seeded generator, so every
//! example and test runs with no download and no patient data.
//!
//! Each slice: an irregular elliptical head, a bright skull ring over a dark CSF rim, cortex
//! (grey matter) around white matter with a gyral texture, two ventricles, a random contrast
//! (gamma), a smooth multiplicative bias field and Rician-like noise. A tumour slice adds one to
//! three irregular lesions — a bright or ring-enhancing core inside a darker oedema halo. The
//! same seed gives the same pixels on every machine (ChaCha RNG, no platform maths beyond
//! IEEE `f32` arithmetic, `sin`/`cos`/`exp`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{DataSource, Dataset, Item, LoadStats};
use crate::error::{PreprocessError, Result};
use crate::image_ops::{min_max_normalise, THUMB_SIZE};
use crate::load::Label;

/// Settings of the phantom generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhantomConfig {
    /// Side S of each slice. Default 64.
    pub image_size: u32,
    /// Slices per class. Default 200.
    pub per_class: usize,
    /// Seed: the same seed gives the same slices. Default 0.
    pub seed: u64,
    /// Standard deviation of the noise, as a fraction of full scale. Default 0.03.
    pub noise: f32,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        PhantomConfig { image_size: 64, per_class: 200, seed: 0, noise: 0.03 }
    }
}

impl PhantomConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for a side under 16 or over 4096, zero slices,
    /// or a negative or non-finite noise level.
    pub fn check(&self) -> Result<()> {
        if !(16..=4096).contains(&self.image_size) {
            return Err(PreprocessError::param("image_size", format!("must be in 16..=4096, got {}", self.image_size)));
        }
        if self.per_class == 0 {
            return Err(PreprocessError::param("per_class", "must be at least 1"));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(PreprocessError::param("noise", format!("must be finite and >= 0, got {}", self.noise)));
        }
        Ok(())
    }
}

/// Smooth random field: bilinear interpolation of a coarse random grid, `cells` per side.
struct ValueNoise {
    cells: usize,
    grid: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut impl Rng, cells: usize) -> Self {
        ValueNoise { cells, grid: (0..(cells + 1) * (cells + 1)).map(|_| rng.gen_range(-1.0..1.0)).collect() }
    }

    /// Value at (u, v) in [0, 1]²; in [-1, 1].
    fn at(&self, u: f32, v: f32) -> f32 {
        let c = self.cells as f32;
        let (x, y) = ((u.clamp(0.0, 1.0) * c).min(c - 1e-4), (v.clamp(0.0, 1.0) * c).min(c - 1e-4));
        let (x0, y0) = (x as usize, y as usize);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        // Smoothstep weights avoid visible grid lines.
        let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
        let w = self.cells + 1;
        let g = |i: usize, j: usize| self.grid[j * w + i];
        (1.0 - sy) * ((1.0 - sx) * g(x0, y0) + sx * g(x0 + 1, y0)) + sy * ((1.0 - sx) * g(x0, y0 + 1) + sx * g(x0 + 1, y0 + 1))
    }
}

/// A closed blob whose radius varies with angle: `r(θ) = r0·(1 + Σ aₖ cos(kθ + φₖ))`.
struct Blob {
    cx: f32,
    cy: f32,
    r0: f32,
    harmonics: Vec<(f32, f32, f32)>,
}

impl Blob {
    fn new(rng: &mut impl Rng, cx: f32, cy: f32, r0: f32, roughness: f32) -> Self {
        let harmonics = (2..=5).map(|k| (k as f32, rng.gen_range(-roughness..roughness) / k as f32 * 2.0, rng.gen_range(0.0..std::f32::consts::TAU))).collect();
        Blob { cx, cy, r0, harmonics }
    }

    /// Distance from the centre in units of the local radius (< 1 inside).
    fn rel(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let theta = dy.atan2(dx);
        let r = self.r0 * (1.0 + self.harmonics.iter().map(|(k, a, p)| a * (k * theta + p).cos()).sum::<f32>());
        (dx * dx + dy * dy).sqrt() / r.max(1e-3)
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Draws one phantom slice of side `s`, with lesions when `tumour`. Values in [0, 1].
pub fn phantom_slice(rng: &mut impl Rng, s: usize, tumour: bool, noise: f32) -> Vec<f32> {
    phantom_slice_with_mask(rng, s, tumour, noise).0
}

/// As [`phantom_slice`] (same draws, same pixels), plus the lesion mask: pixels inside a
/// lesion (core or ring, not the oedema halo) and inside the brain. All false when healthy.
pub fn phantom_slice_with_mask(rng: &mut impl Rng, s: usize, tumour: bool, noise: f32) -> (Vec<f32>, Vec<bool>) {
    // Head: ellipse in normalised coordinates [-1, 1]², slightly rotated and irregular.
    let (hx, hy) = (rng.gen_range(-0.06..0.06), rng.gen_range(-0.06..0.06));
    let (ax, ay) = (rng.gen_range(0.62..0.78), rng.gen_range(0.74..0.88));
    let rot: f32 = rng.gen_range(-0.25..0.25);
    let (rs, rc) = rot.sin_cos();
    let outline = Blob::new(rng, 0.0, 0.0, 1.0, 0.04);
    let skull = rng.gen_range(0.07..0.10);
    let csf = rng.gen_range(0.03..0.05);
    let cortex = rng.gen_range(0.12..0.2);
    let (skull_i, gm_i, wm_i, csf_i) = (rng.gen_range(0.75..1.0), rng.gen_range(0.45..0.6), rng.gen_range(0.65..0.8), rng.gen_range(0.08..0.2));
    let gyri = ValueNoise::new(rng, 9);
    let texture = ValueNoise::new(rng, 20);
    let bias = ValueNoise::new(rng, 2);
    let bias_amp = rng.gen_range(0.05..0.2);
    let gamma: f32 = rng.gen_range(0.8..1.25);
    // Ventricles: two crescents either side of the midline, in head coordinates.
    let vent_sep = rng.gen_range(0.06..0.12);
    let vent_size = rng.gen_range(0.10..0.2);
    let ventricles = [Blob::new(rng, -vent_sep, -0.05, vent_size, 0.25), Blob::new(rng, vent_sep, -0.05, vent_size, 0.25)];
    let lesions: Vec<(Blob, f32, bool)> = if tumour {
        (0..rng.gen_range(1..=3))
            .map(|i| {
                let r0 = if i == 0 { rng.gen_range(0.12..0.24) } else { rng.gen_range(0.06..0.14) };
                let (a, d) = (rng.gen_range(0.0..std::f32::consts::TAU), rng.gen_range(0.0..0.5));
                let blob = Blob::new(rng, d * a.cos(), d * a.sin(), r0, 0.35);
                (blob, rng.gen_range(0.85..1.0), rng.gen_bool(0.4))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut img = vec![0f32; s * s];
    let mut mask = vec![false; s * s];
    for py in 0..s {
        for px in 0..s {
            let (x, y) = (2.0 * (px as f32 + 0.5) / s as f32 - 1.0 - hx, 2.0 * (py as f32 + 0.5) / s as f32 - 1.0 - hy);
            // Head-aligned, scaled coordinates: the head is the unit disc there.
            let (u, v) = ((rc * x + rs * y) / ax, (-rs * x + rc * y) / ay);
            let r = outline.rel(u, v);
            let (tu, tv) = ((u + 1.0) / 2.0, (v + 1.0) / 2.0);
            let mut val = if r > 1.0 {
                0.0
            } else if r > 1.0 - skull {
                skull_i
            } else if r > 1.0 - skull - csf {
                csf_i
            } else {
                // Cortex thickness wiggles with the gyral field.
                let depth = (1.0 - skull - csf - r) + 0.06 * gyri.at(tu, tv);
                let w = smoothstep(cortex * 0.6, cortex * 1.3, depth);
                let mut b = gm_i + (wm_i - gm_i) * w + 0.04 * texture.at(tu, tv);
                if ventricles.iter().any(|vb| vb.rel(u, v) < 1.0) {
                    b = csf_i;
                }
                for (blob, core_i, ring) in &lesions {
                    let lr = blob.rel(u, v);
                    if lr < 1.0 {
                        mask[py * s + px] = true;
                        b = if *ring && lr < 0.55 { csf_i + 0.1 } else { *core_i };
                    } else if lr < 1.6 {
                        // Oedema: darker halo fading out.
                        b -= 0.2 * (1.0 - smoothstep(1.0, 1.6, lr));
                    }
                }
                b
            };
            if val > 0.0 {
                val = val.clamp(0.0, 1.0).powf(gamma) * (1.0 + bias_amp * bias.at(tu, tv));
            }
            // Rician-like noise: magnitude of a complex Gaussian around the signal.
            let (n1, n2) = (gaussian(rng) * noise, gaussian(rng) * noise);
            img[py * s + px] = ((val + n1).powi(2) + n2 * n2).sqrt();
        }
    }
    min_max_normalise(&mut img);
    (img, mask)
}

/// A standard normal draw (Box–Muller), so no extra distribution crate is needed.
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Shrinks an `s`×`s` image to `t`×`t` by averaging the pixels of each cell (every cell gets
/// at least one pixel, so `t > s` repeats pixels). Phantoms use it for their grouping thumbnails;
/// quality metrics use it for coarse appearance features.
pub fn area_downsample(pixels: &[f32], s: usize, t: usize) -> Vec<f32> {
    let mut out = vec![0f32; t * t];
    for ty in 0..t {
        for tx in 0..t {
            let (y0, y1) = (ty * s / t, ((ty + 1) * s / t).max(ty * s / t + 1));
            let (x0, x1) = (tx * s / t, ((tx + 1) * s / t).max(tx * s / t + 1));
            let mut acc = 0.0;
            for y in y0..y1 {
                for x in x0..x1 {
                    acc += pixels[y * s + x];
                }
            }
            out[ty * t + tx] = acc / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    out
}

/// The RNG stream of phantom slice `i` of class `label`.
fn slice_rng(cfg: &PhantomConfig, label: Label, i: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((u64::from(label.index()) << 40) | i as u64))
}

impl Dataset {
    /// The lesion masks of the slices [`Dataset::phantom`] generates with `cfg`, in the same
    /// order as its items: `Some(mask)` for tumour slices, `None` for healthy ones (the same
    /// shape as [`Dataset::tumour_masks`] gives for annotated real data).
    ///
    /// # Errors
    /// As [`Dataset::phantom`].
    pub fn phantom_masks(cfg: &PhantomConfig) -> Result<Vec<Option<Vec<bool>>>> {
        use rayon::prelude::*;
        cfg.check()?;
        let s = cfg.image_size as usize;
        // Items are sorted by path: "phantom/no/…" before "phantom/yes/…", index order within.
        let mut jobs: Vec<(Label, usize)> = Label::ALL.iter().flat_map(|&l| (0..cfg.per_class).map(move |i| (l, i))).collect();
        jobs.sort_by_key(|&(l, i)| (format!("phantom/{}", l.as_str()), i));
        Ok(jobs.par_iter().map(|&(label, i)| label.is_tumour().then(|| phantom_slice_with_mask(&mut slice_rng(cfg, label, i), s, true, cfg.noise).1)).collect())
    }

    /// Generates a phantom data set: `per_class` tumour and healthy slices with virtual paths
    /// `phantom/yes/00000.png`, `phantom/no/00000.png`, …. Each slice has its own RNG stream
    /// (seeded from the config seed, class and index) so slices are generated in parallel and
    /// any count gives the same first slices.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] from [`PhantomConfig::check`].
    pub fn phantom(cfg: &PhantomConfig) -> Result<Self> {
        use rayon::prelude::*;
        cfg.check()?;
        let start = std::time::Instant::now();
        let s = cfg.image_size as usize;
        let jobs: Vec<(Label, usize)> = Label::ALL.iter().flat_map(|&l| (0..cfg.per_class).map(move |i| (l, i))).collect();
        let mut items: Vec<Item> = jobs
            .par_iter()
            .map(|&(label, i)| {
                let pixels = phantom_slice(&mut slice_rng(cfg, label, i), s, label.is_tumour(), cfg.noise);
                Item {
                    rel_path: format!("phantom/{}/{i:05}.png", label.as_str()),
                    label,
                    thumb: area_downsample(&pixels, s, THUMB_SIZE),
                    pixels,
                    geometry: None,
                }
            })
            .collect();
        items.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        let n = items.len();
        Ok(Dataset {
            source: DataSource::Phantom { seed: cfg.seed },
            image_size: cfg.image_size,
            items,
            skipped: Vec::new(),
            stats: LoadStats { files: n, cache_hits: 0, decoded: n, cache_write_errors: 0, seconds: start.elapsed().as_secs_f64() },
        })
    }
}

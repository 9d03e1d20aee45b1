//! Hand-crafted realism features of a greyscale slice: what a tumour classifier's features
//! and 8×8 thumbnails are both blind to — texture and intensity distribution.
//!
//! A CNN trained to tell tumour from healthy maps any image without tumour-like structure to
//! "healthy" (on Br35H the study's GAN noise scored under the real floor in its feature
//! space), and thumbnails average texture away. These features see exactly that:
//! - band energies of a 4-level Laplacian pyramid (2×2 area averages): pixel noise and stripes
//!   raise the finest bands, blur lowers them (8 values: mean |band| and RMS band per level,
//!   log-scaled);
//! - a 12-bin histogram of gradient magnitude (edges: the skull's sharp rim, smooth tissue);
//! - a 16-bin histogram of intensity (grey- and white-matter levels, background fraction).
//!
//! They know nothing of anatomy or layout (the thumbnails' and the CNN's job). Fréchet distance
//! in this space, against the same real-vs-real floor, is the report's texture FD.

/// Length of [`texture_features`]' vector.
pub const TEXTURE_DIM: usize = 8 + GRAD_BINS + INTENSITY_BINS;
const LEVELS: usize = 4;
const GRAD_BINS: usize = 12;
const INTENSITY_BINS: usize = 16;
/// Gradient magnitudes (forward differences, intensities in [0, 1]) binned over [0, this].
const GRAD_MAX: f64 = 0.6;

/// 2×2 area average of a `side`×`side` image (side even).
fn down2(img: &[f64], side: usize) -> Vec<f64> {
    let h = side / 2;
    let mut out = vec![0f64; h * h];
    for y in 0..h {
        for x in 0..h {
            let (a, b) = (2 * y * side + 2 * x, (2 * y + 1) * side + 2 * x);
            out[y * h + x] = 0.25 * (img[a] + img[a + 1] + img[b] + img[b + 1]);
        }
    }
    out
}

/// The realism features of one slice (`side`×`side` intensities in [0, 1], row-major). The
/// pyramid stops when the side turns odd (a side of 16, 32, 64, 128 … has all four levels);
/// missing levels read as zero energy.
///
/// # Panics
/// When `img.len() != side²` or `side` is 0.
pub fn texture_features(img: &[f32], side: usize) -> Vec<f64> {
    assert_eq!(img.len(), side * side, "image is not {side}×{side}");
    assert!(side > 0, "empty image");
    let mut f = Vec::with_capacity(TEXTURE_DIM);
    let mut cur: Vec<f64> = img.iter().map(|&v| v as f64).collect();
    let mut s = side;
    for _ in 0..LEVELS {
        if s % 2 != 0 {
            f.extend([(1e-4f64).ln(); 2]);
            continue;
        }
        let low = down2(&cur, s);
        let (mut abs, mut sq) = (0f64, 0f64);
        for y in 0..s {
            for x in 0..s {
                let band = cur[y * s + x] - low[(y / 2) * (s / 2) + x / 2];
                abs += band.abs();
                sq += band * band;
            }
        }
        let n = (s * s) as f64;
        f.push((1e-4 + abs / n).ln());
        f.push((1e-4 + (sq / n).sqrt()).ln());
        cur = low;
        s /= 2;
    }
    let px: Vec<f64> = img.iter().map(|&v| v as f64).collect();
    let mut grad = [0f64; GRAD_BINS];
    let mut count = 0f64;
    for y in 0..side - 1 {
        for x in 0..side - 1 {
            let v = px[y * side + x];
            let g = ((px[y * side + x + 1] - v).powi(2) + (px[(y + 1) * side + x] - v).powi(2)).sqrt();
            let b = ((g / GRAD_MAX * GRAD_BINS as f64) as usize).min(GRAD_BINS - 1);
            grad[b] += 1.0;
            count += 1.0;
        }
    }
    f.extend(grad.iter().map(|c| c / count));
    let mut hist = [0f64; INTENSITY_BINS];
    for &v in &px {
        hist[((v.clamp(0.0, 1.0) * INTENSITY_BINS as f64) as usize).min(INTENSITY_BINS - 1)] += 1.0;
    }
    f.extend(hist.iter().map(|c| c / px.len() as f64));
    f
}

/// [`texture_features`] of every image of a set of `side`×`side` images laid end to end, as
/// f32 rows (`n × TEXTURE_DIM`) for [`crate::generative::frechet_distance`].
pub fn texture_feature_rows(pixels: &[f32], side: usize) -> Vec<f32> {
    use rayon::prelude::*;
    pixels.par_chunks(side * side).flat_map_iter(|img| texture_features(img, side).into_iter().map(|v| v as f32)).collect()
}

/// What statistic `i` of [`texture_features`] is, in words: `band 1 mean|·|` (level 1 is the
/// finest), `band 1 RMS`, `gradient [0.05, 0.10)`, `intensity [0.94, 1.00]`, ….
///
/// # Panics
/// When `i >= TEXTURE_DIM`.
pub fn texture_feature_name(i: usize) -> String {
    assert!(i < TEXTURE_DIM, "texture statistic {i} of {TEXTURE_DIM}");
    let bin = |k: usize, width: f64| format!("[{:.2}, {:.2})", k as f64 * width, (k + 1) as f64 * width);
    if i < 2 * LEVELS {
        format!("band {} {}", i / 2 + 1, if i % 2 == 0 { "mean|·|" } else { "RMS" })
    } else if i < 2 * LEVELS + GRAD_BINS {
        let (k, width) = (i - 2 * LEVELS, GRAD_MAX / GRAD_BINS as f64);
        if k == GRAD_BINS - 1 {
            // The last gradient bin also holds everything above GRAD_MAX.
            format!("gradient [{:.2}, ∞)", k as f64 * width)
        } else {
            format!("gradient {}", bin(k, width))
        }
    } else {
        let (k, width) = (i - 2 * LEVELS - GRAD_BINS, 1.0 / INTENSITY_BINS as f64);
        if k == INTENSITY_BINS - 1 {
            format!("intensity [{:.2}, 1.00]", k as f64 * width)
        } else {
            format!("intensity {}", bin(k, width))
        }
    }
}

/// The texture statistic on which a set's mean lies furthest from a reference set's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextureGap {
    /// Its index in [`texture_features`].
    pub index: usize,
    /// [`texture_feature_name`] of it.
    pub statistic: String,
    /// (mean of the set − mean of the reference) / the reference's standard deviation (floored
    /// at [`TEXTURE_GAP_SD_FLOOR`]): how many of the reference's own deviations the set is off.
    pub z: f64,
    /// The set's mean of the statistic.
    pub mean: f64,
    /// The reference's mean.
    pub reference_mean: f64,
}

/// Floor of the reference's standard deviation in [`largest_texture_gap`], so that a statistic
/// constant over the reference (an empty histogram bin) does not divide by zero; the floor of
/// the generator's texture-matching loss (`mri_gan::TextureTarget`) is the same.
pub const TEXTURE_GAP_SD_FLOOR: f64 = 1e-2;

/// The statistic with the largest |z| between `rows` and `reference` (both [`texture_feature_rows`]
/// of some images, `TEXTURE_DIM` values a row): which texture statistic gives a generator's
/// draws away most plainly, in the real slices' own spread. `None` when either set has no row
/// or the reference a single one (no spread).
pub fn largest_texture_gap(rows: &[f32], reference: &[f32]) -> Option<TextureGap> {
    let (n, m) = (rows.len() / TEXTURE_DIM, reference.len() / TEXTURE_DIM);
    if n == 0 || m < 2 {
        return None;
    }
    let column_mean = |x: &[f32], k: usize, j: usize| x.chunks_exact(TEXTURE_DIM).map(|r| r[j] as f64).sum::<f64>() / k as f64;
    (0..TEXTURE_DIM)
        .map(|j| {
            let (mean, reference_mean) = (column_mean(rows, n, j), column_mean(reference, m, j));
            let var = reference.chunks_exact(TEXTURE_DIM).map(|r| (r[j] as f64 - reference_mean).powi(2)).sum::<f64>() / (m - 1) as f64;
            let z = (mean - reference_mean) / var.sqrt().max(TEXTURE_GAP_SD_FLOOR);
            TextureGap { index: j, statistic: texture_feature_name(j), z, mean, reference_mean }
        })
        .max_by(|a, b| a.z.abs().total_cmp(&b.z.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(side: usize) -> Vec<f32> {
        let c = side as f32 / 2.0;
        (0..side * side)
            .map(|i| {
                let (y, x) = ((i / side) as f32 + 0.5 - c, (i % side) as f32 + 0.5 - c);
                if (x * x + y * y).sqrt() < 0.4 * side as f32 {
                    0.6
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn noise_raises_the_fine_bands_and_blur_lowers_them() {
        let side = 32;
        let clean = disc(side);
        let noisy: Vec<f32> = clean.iter().enumerate().map(|(i, v)| (v + if (i + i / side) % 2 == 0 { 0.1 } else { -0.1 }).clamp(0.0, 1.0)).collect();
        let blurred = {
            let mut b = clean.clone();
            for y in 1..side - 1 {
                for x in 1..side - 1 {
                    b[y * side + x] = (0..9).map(|k| clean[(y + k / 3 - 1) * side + x + k % 3 - 1]).sum::<f32>() / 9.0;
                }
            }
            b
        };
        let (fc, fn_, fb) = (texture_features(&clean, side), texture_features(&noisy, side), texture_features(&blurred, side));
        assert_eq!(fc.len(), TEXTURE_DIM);
        assert!(fn_[0] > fc[0] + 1.0, "finest band: noisy {} vs clean {}", fn_[0], fc[0]);
        assert!(fb[0] < fc[0], "finest band: blurred {} vs clean {}", fb[0], fc[0]);
        let hist_sum: f64 = fc[8 + GRAD_BINS..].iter().sum();
        assert!((hist_sum - 1.0).abs() < 1e-9);
        let rows = texture_feature_rows(&[clean.clone(), noisy].concat(), side);
        assert_eq!(rows.len(), 2 * TEXTURE_DIM);
        assert_eq!(rows[..TEXTURE_DIM].iter().map(|&v| v as f64).collect::<Vec<_>>().len(), fc.len());
    }

    #[test]
    fn the_largest_texture_gap_names_the_statistic_that_moved() {
        let side = 32;
        let clean = disc(side);
        // Reference: the disc at a few brightness levels; set: the same discs with a ±0.1
        // checkerboard, which leaves no flat pixel: the share of gradients under 0.05 falls from
        // ~0.9 to 0, the largest move in the reference's spread.
        let reference: Vec<f32> = (0..6).flat_map(|k| clean.iter().map(move |v| v * (0.9 + 0.04 * k as f32))).collect();
        let noisy: Vec<f32> = (0..6)
            .flat_map(|k| {
                clean.iter().enumerate().map(move |(i, v)| (v * (0.9 + 0.04 * k as f32) + if (i + i / side) % 2 == 0 { 0.1 } else { -0.1 }).clamp(0.0, 1.0))
            })
            .collect();
        let gap = largest_texture_gap(&texture_feature_rows(&noisy, side), &texture_feature_rows(&reference, side)).unwrap();
        assert_eq!((gap.index, gap.statistic.as_str()), (8, "gradient [0.00, 0.05)"), "{gap:?}");
        assert!(gap.z < -10.0, "{gap:?}");
        assert!(gap.mean < gap.reference_mean);
        // A set against itself is off by nothing; too few reference rows give no answer.
        let rows = texture_feature_rows(&reference, side);
        assert!(largest_texture_gap(&rows, &rows).unwrap().z.abs() < 1e-9);
        assert!(largest_texture_gap(&rows, &rows[..TEXTURE_DIM]).is_none());
        assert_eq!(texture_feature_name(0), "band 1 mean|·|");
        assert_eq!(texture_feature_name(9), "gradient [0.05, 0.10)");
        assert_eq!(texture_feature_name(8 + GRAD_BINS - 1), "gradient [0.55, ∞)");
        assert_eq!(texture_feature_name(TEXTURE_DIM - 1), "intensity [0.94, 1.00]");
    }
}

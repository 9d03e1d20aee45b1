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
}

//! Decoding and the study's preprocessing: greyscale → head bounding box → centred square
//! filled with the image minimum → S×S → [0, 1].

use std::path::Path;

use image::{imageops, ImageBuffer, Luma};
use serde::{Deserialize, Serialize};

use crate::error::{PreprocessError, Result};

/// Bumped whenever the output of [`preprocess`] changes, so stale cache entries are not used.
pub const PREPROCESS_VERSION: u32 = 1;

/// Side of the head-cropped thumbnails used for near-duplicate grouping.
pub const THUMB_SIZE: usize = 32;

/// A greyscale image with values in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height` values in [0, 1], row by row.
    pub data: Vec<f32>,
}

impl GreyImage {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }
}

/// Settings of the study's preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Output side S: every slice becomes S×S. Default 128 (the study's).
    pub image_size: u32,
    /// Pixels added to the longer side of the head's bounding box to make the square, in the
    /// original image's pixels. Default 50 (the study's).
    pub margin_px: u32,
    /// Images whose width or height is below this are rejected. Default 16.
    pub min_side: u32,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig { image_size: 128, margin_px: 50, min_side: 16 }
    }
}

impl PreprocessConfig {
    /// The default settings at output side `image_size`.
    pub fn with_size(image_size: u32) -> Self {
        PreprocessConfig { image_size, ..Default::default() }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for an output side under 8 or over 4096, or a
    /// minimum side of 0.
    pub fn check(&self) -> Result<()> {
        if !(8..=4096).contains(&self.image_size) {
            return Err(PreprocessError::param("image_size", format!("must be in 8..=4096, got {}", self.image_size)));
        }
        if self.min_side == 0 {
            return Err(PreprocessError::param("min_side", "must be at least 1"));
        }
        Ok(())
    }
}

/// Where a preprocessed slice came from in its original image; enough to map annotations
/// (e.g. tumour outlines) through the same crop, square and resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Original width.
    pub width: u32,
    /// Original height.
    pub height: u32,
    /// Head bounding box in original pixels: `[x0, y0, x1, y1]`, `x1`/`y1` exclusive.
    pub bbox: [u32; 4],
    /// Side of the square the box was centred in, in original pixels.
    pub square_side: u32,
}

impl Geometry {
    /// Offset of the box inside the square and output pixels per original pixel. The offset
    /// uses integer division exactly as the preprocessing's copy into the square does.
    fn frame(&self, image_size: u32) -> (f64, f64, f64) {
        let [x0, y0, x1, y1] = self.bbox;
        let ox = f64::from((self.square_side - (x1 - x0)) / 2);
        let oy = f64::from((self.square_side - (y1 - y0)) / 2);
        (ox, oy, f64::from(image_size) / f64::from(self.square_side))
    }

    /// Maps an original-image point to output coordinates at side `image_size` (continuous:
    /// output pixel `i` covers `[i, i + 1)`).
    pub fn map_point(&self, x: f64, y: f64, image_size: u32) -> (f64, f64) {
        let (ox, oy, scale) = self.frame(image_size);
        ((x - f64::from(self.bbox[0]) + ox) * scale, (y - f64::from(self.bbox[1]) + oy) * scale)
    }

    /// The inverse of [`Geometry::map_point`]: output coordinates back to the original image.
    pub fn unmap_point(&self, u: f64, v: f64, image_size: u32) -> (f64, f64) {
        let (ox, oy, scale) = self.frame(image_size);
        (u / scale - ox + f64::from(self.bbox[0]), v / scale - oy + f64::from(self.bbox[1]))
    }
}

/// The name of a format detected from content, or `None` if it is not one we decode.
pub fn detect_format(bytes: &[u8]) -> Option<image::ImageFormat> {
    match image::guess_format(bytes) {
        Ok(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => Some(f),
        _ => None,
    }
}

/// Decodes PNG or JPEG bytes (format detected from the content, not the file name) to
/// greyscale in [0, 1]. 8-bit and 16-bit, grey, grey+alpha, RGB, RGBA and palette files work.
///
/// `path` only names the file in errors.
///
/// # Errors
/// [`PreprocessError::EmptyFile`], [`PreprocessError::NotAnImage`],
/// [`PreprocessError::Corrupt`] (including truncated JPEGs, which some decoders would
/// silently pad), [`PreprocessError::TooSmall`].
pub fn decode_grey(bytes: &[u8], path: &Path, min_side: u32) -> Result<GreyImage> {
    if bytes.is_empty() {
        return Err(PreprocessError::EmptyFile { path: path.to_path_buf() });
    }
    let format = detect_format(bytes).ok_or_else(|| PreprocessError::NotAnImage { path: path.to_path_buf() })?;
    let format_name = if format == image::ImageFormat::Png { "PNG" } else { "JPEG" };
    let corrupt = |reason: String| PreprocessError::Corrupt { path: path.to_path_buf(), format: format_name, reason };
    if format == image::ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(corrupt("no end-of-image marker (file truncated)".into()));
    }
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| corrupt(e.to_string()))?;
    let (w, h) = (img.width(), img.height());
    if w < min_side || h < min_side {
        return Err(PreprocessError::TooSmall { path: path.to_path_buf(), width: w, height: h, min: min_side });
    }
    let data: Vec<f32> = match &img {
        image::DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
        image::DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| f32::from(v) / 65535.0).collect(),
        // Colour (and palette, expanded by the decoder) → Rec. 601 luma, alpha ignored.
        other => other.to_luma32f().into_raw(),
    };
    Ok(GreyImage { width: w as usize, height: h as usize, data })
}

/// A complete JPEG ends with the EOI marker FF D9, possibly followed by a little padding.
/// The jpeg decoder fills a truncated scan with grey instead of failing, so check for it.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// The result of preprocessing one slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// S×S values in [0, 1], row-major.
    pub pixels: Vec<f32>,
    /// [`THUMB_SIZE`]² head-cropped thumbnail in [0, 1], for near-duplicate grouping. Unlike
    /// `pixels` it has no margin, so it does not depend on the image's resolution.
    pub thumb: Vec<f32>,
    /// How `pixels` relates to the original image.
    pub geometry: Geometry,
}

/// Finds the head's bounding box `[x0, y0, x1, y1]` (exclusive ends).
///
/// Works on a copy shrunk to at most 256 px a side: threshold a little above the background
/// level, erode once (cuts thin bridges to burnt-in text, rulers and frame lines), keep the
/// largest 8-connected component (the head; text, letterbox bars and specks are smaller or
/// dark), and take its box, grown back by the erosion. A uniform image gives the whole image.
pub fn head_bbox(img: &GreyImage) -> [u32; 4] {
    let f = img.width.max(img.height).div_ceil(256).max(1);
    let (sw, sh) = (img.width.div_ceil(f), img.height.div_ceil(f));
    let mut small = vec![0f32; sw * sh];
    for sy in 0..sh {
        for sx in 0..sw {
            let (mut acc, mut n) = (0f32, 0u32);
            for y in sy * f..((sy + 1) * f).min(img.height) {
                for x in sx * f..((sx + 1) * f).min(img.width) {
                    acc += img.at(x, y);
                    n += 1;
                }
            }
            small[sy * sw + sx] = acc / n as f32;
        }
    }
    let lo = percentile(&small, 0.01);
    let hi = percentile(&small, 0.99);
    let whole = [0, 0, img.width as u32, img.height as u32];
    if hi - lo < 1e-3 {
        return whole;
    }
    let t = lo + 0.1 * (hi - lo);
    let mask: Vec<bool> = small.iter().map(|&v| v > t).collect();
    // Erode with a 3×3 cross.
    let eroded: Vec<bool> = (0..sw * sh)
        .map(|i| {
            let (x, y) = (i % sw, i / sw);
            mask[i] && x > 0 && y > 0 && x + 1 < sw && y + 1 < sh && mask[i - 1] && mask[i + 1] && mask[i - sw] && mask[i + sw]
        })
        .collect();
    let mask = if eroded.iter().any(|&m| m) { eroded } else { mask };
    let Some([bx0, by0, bx1, by1]) = largest_component_bbox(&mask, sw, sh) else {
        return whole;
    };
    // Grow back by the erosion (1 small pixel) and map to original pixels.
    let x0 = (bx0.saturating_sub(1) * f).min(img.width - 1);
    let y0 = (by0.saturating_sub(1) * f).min(img.height - 1);
    let x1 = ((bx1 + 1) * f).min(img.width).max(x0 + 1);
    let y1 = ((by1 + 1) * f).min(img.height).max(y0 + 1);
    [x0 as u32, y0 as u32, x1 as u32, y1 as u32]
}

fn percentile(values: &[f32], q: f64) -> f32 {
    // 1024-bin histogram over [0, 1]: exact enough for thresholding, O(n).
    const BINS: usize = 1024;
    let mut hist = [0u32; BINS];
    for &v in values {
        hist[((v.clamp(0.0, 1.0) * (BINS - 1) as f32).round()) as usize] += 1;
    }
    let target = (q * values.len() as f64).ceil().max(1.0) as u64;
    let mut acc = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        acc += u64::from(c);
        if acc >= target {
            return i as f32 / (BINS - 1) as f32;
        }
    }
    1.0
}

/// Box `[x0, y0, x1, y1]` of the largest 8-connected true region, in mask coordinates, with
/// inclusive ends.
fn largest_component_bbox(mask: &[bool], w: usize, h: usize) -> Option<[usize; 4]> {
    let mut seen = vec![false; mask.len()];
    let mut best: Option<(usize, [usize; 4])> = None;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut n, mut bb) = (0usize, [usize::MAX, usize::MAX, 0, 0]);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            n += 1;
            bb = [bb[0].min(x), bb[1].min(y), bb[2].max(x), bb[3].max(y)];
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if best.is_none_or(|(bn, _)| n > bn) {
            best = Some((n, bb));
        }
    }
    best.map(|(_, bb)| bb)
}

/// Copies the box into a square of side `side` filled with `fill`, centred, and resizes it to
/// `out`×`out` (triangle filter, which widens with the shrink factor, so it antialiases).
fn square_and_resize(img: &GreyImage, bbox: [u32; 4], side: usize, fill: f32, out: usize) -> Vec<f32> {
    let [x0, y0, x1, y1] = bbox.map(|v| v as usize);
    let (bw, bh) = (x1 - x0, y1 - y0);
    let (ox, oy) = ((side - bw) / 2, (side - bh) / 2);
    let mut square = vec![fill; side * side];
    for y in 0..bh {
        let src = &img.data[(y0 + y) * img.width + x0..(y0 + y) * img.width + x1];
        square[(oy + y) * side + ox..(oy + y) * side + ox + bw].copy_from_slice(src);
    }
    let buf: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_raw(side as u32, side as u32, square).expect("buffer size matches");
    let resized = if side == out { buf } else { imageops::resize(&buf, out as u32, out as u32, imageops::FilterType::Triangle) };
    let mut v = resized.into_raw();
    min_max_normalise(&mut v);
    v
}

/// Scales values to [0, 1] by their own minimum and maximum; a constant image becomes 0.
pub fn min_max_normalise(v: &mut [f32]) {
    let (mn, mx) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let range = mx - mn;
    if range <= f32::EPSILON || !range.is_finite() {
        v.iter_mut().for_each(|x| *x = 0.0);
    } else {
        v.iter_mut().for_each(|x| *x = ((*x - mn) / range).clamp(0.0, 1.0));
    }
}

/// The study's preprocessing of one decoded slice, plus the grouping thumbnail.
///
/// Deterministic: the same image and settings give the same bits.
pub fn preprocess(img: &GreyImage, cfg: &PreprocessConfig) -> Preprocessed {
    let bbox = head_bbox(img);
    let (bw, bh) = ((bbox[2] - bbox[0]) as usize, (bbox[3] - bbox[1]) as usize);
    let fill = img.data.iter().copied().fold(f32::INFINITY, f32::min);
    let side = bw.max(bh) + cfg.margin_px as usize;
    let pixels = square_and_resize(img, bbox, side, fill, cfg.image_size as usize);
    // Thumbnail: the tight square around the head, so rescaled copies give the same thumbnail.
    let thumb = square_and_resize(img, bbox, bw.max(bh), fill, THUMB_SIZE);
    Preprocessed { pixels, thumb, geometry: Geometry { width: img.width as u32, height: img.height as u32, bbox, square_side: side as u32 } }
}

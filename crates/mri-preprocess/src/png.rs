//! Writing slices and tensors as 8-bit greyscale PNG, and grids of them for figures.

use std::path::Path;

use candle_core::{DType, Tensor};
use image::ImageEncoder;

use crate::error::{PreprocessError, Result};
use crate::fsutil::write_atomic;

/// Value of the border between grid tiles (mid grey, visible on black and white tiles).
const BORDER_VALUE: f32 = 0.5;

/// Encodes `width × height` values in [0, 1] (clamped) as an 8-bit greyscale PNG.
pub fn encode_png(pixels: &[f32], width: usize, height: usize) -> Result<Vec<u8>> {
    if pixels.len() != width * height {
        return Err(PreprocessError::param("pixels", format!("{} values for {width}×{height}", pixels.len())));
    }
    let bytes: Vec<u8> = pixels.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&bytes, width as u32, height as u32, image::ExtendedColorType::L8)
        .map_err(|e| PreprocessError::param("png", e.to_string()))?;
    Ok(out)
}

/// Writes values in [0, 1] as a greyscale PNG (atomically; creates the folder).
pub fn save_png(path: &Path, pixels: &[f32], width: usize, height: usize) -> Result<()> {
    write_atomic(path, &encode_png(pixels, width, height)?)
}

/// Values and shape (height, width) of a single-image tensor of shape (H, W), (1, H, W) or
/// (1, 1, H, W).
fn tensor_image(t: &Tensor) -> Result<(Vec<f32>, usize, usize)> {
    let dims = t.dims();
    let (h, w) = match dims {
        [h, w] | [1, h, w] | [1, 1, h, w] => (*h, *w),
        _ => return Err(PreprocessError::param("tensor", format!("expected (H,W), (1,H,W) or (1,1,H,W), got {dims:?}"))),
    };
    Ok((t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?, h, w))
}

/// Writes one image tensor (values in [0, 1]) as a PNG.
pub fn save_tensor_png(path: &Path, t: &Tensor) -> Result<()> {
    let (v, h, w) = tensor_image(t)?;
    save_png(path, &v, w, h)
}

/// Lays square `side × side` images out `cols` to a row with a `border`-pixel grey frame
/// around every tile; returns (pixels, width, height). Missing tiles of the last row stay grey.
pub fn grid(images: &[&[f32]], side: usize, cols: usize, border: usize) -> Result<(Vec<f32>, usize, usize)> {
    if cols == 0 || images.is_empty() {
        return Err(PreprocessError::param("grid", "needs at least one image and one column"));
    }
    if let Some(i) = images.iter().position(|im| im.len() != side * side) {
        return Err(PreprocessError::param("grid", format!("image {i} has {} values, expected {side}²", images[i].len())));
    }
    let rows = images.len().div_ceil(cols);
    let (w, h) = (cols * (side + border) + border, rows * (side + border) + border);
    let mut out = vec![BORDER_VALUE; w * h];
    for (k, im) in images.iter().enumerate() {
        let (ox, oy) = (border + (k % cols) * (side + border), border + (k / cols) * (side + border));
        for y in 0..side {
            out[(oy + y) * w + ox..(oy + y) * w + ox + side].copy_from_slice(&im[y * side..(y + 1) * side]);
        }
    }
    Ok((out, w, h))
}

/// Writes a grid of square images (see [`grid`]) with a 2-pixel border.
pub fn save_grid(path: &Path, images: &[&[f32]], side: usize, cols: usize) -> Result<()> {
    let (v, w, h) = grid(images, side, cols, 2)?;
    save_png(path, &v, w, h)
}

/// Writes a grid of the images in a (N, 1, S, S) tensor with values in [0, 1].
pub fn save_tensor_grid(path: &Path, t: &Tensor, cols: usize) -> Result<()> {
    let (n, s) = match t.dims() {
        [n, 1, h, w] if h == w => (*n, *h),
        d => return Err(PreprocessError::param("tensor", format!("expected (N,1,S,S), got {d:?}"))),
    };
    let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let images: Vec<&[f32]> = (0..n).map(|i| &v[i * s * s..(i + 1) * s * s]).collect();
    save_grid(path, &images, s, cols)
}

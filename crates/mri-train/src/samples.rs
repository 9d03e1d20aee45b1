//! Writing generated images and reconstruction grids as PNG, so a person can look at them.

use std::path::Path;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::{Result, TrainError};

fn png_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

/// Writes every image of a (N, 1, S, S) tensor with values in [0, 1] as
/// `dir/<class>/<class>-NNNNN.png`, numbered from `first_index`; returns the paths.
pub fn write_class_pngs(dir: &Path, class: &str, images: &Tensor, first_index: usize) -> Result<Vec<std::path::PathBuf>> {
    let (n, s) = match images.dims() {
        [n, 1, h, w] if h == w => (*n, *h),
        d => return Err(TrainError::InvalidParameter { name: "images", reason: format!("expected (N,1,S,S), got {d:?}") }),
    };
    let out_dir = dir.join(class);
    std::fs::create_dir_all(&out_dir).map_err(|e| TrainError::Io { path: out_dir.clone(), source: e })?;
    let v: Vec<f32> = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    // Encoded and written on rayon's pool: a synthetic-only set of 20 000 draws a class is
    // 40 000 files, each an atomic write (temporary file, fsync, rename; the temporary names are
    // unique per thread), and they took most of a reused generator's stage one at a time.
    (0..n)
        .into_par_iter()
        .map(|i| {
            let path = out_dir.join(format!("{class}-{:05}.png", first_index + i));
            mri_preprocess::save_png(&path, &v[i * s * s..(i + 1) * s * s], s, s).map_err(|e| png_err(&path, e))?;
            Ok(path)
        })
        .collect()
}

/// A grid PNG: `originals` (N, 1, S, S) on the odd rows and `reconstructions` below each, 8 per
/// row, so reconstruction quality can be read at a glance. With `reconstructions = None`, just
/// a grid of `originals` (e.g. samples from fixed noise).
pub fn save_recon_grid(path: &Path, originals: &Tensor, reconstructions: Option<&Tensor>) -> Result<()> {
    let cols = 8usize;
    let grid = match reconstructions {
        None => originals.clone(),
        Some(r) => {
            let n = originals.dim(0)?;
            let mut rows = Vec::new();
            for start in (0..n).step_by(cols) {
                let len = cols.min(n - start);
                let pad = |t: &Tensor| -> candle_core::Result<Tensor> {
                    let part = t.narrow(0, start, len)?;
                    if len == cols {
                        Ok(part)
                    } else {
                        let (_, c, h, w) = part.dims4()?;
                        Tensor::cat(&[part.clone(), Tensor::ones((cols - len, c, h, w), part.dtype(), part.device())?], 0)
                    }
                };
                rows.push(pad(originals)?);
                rows.push(pad(r)?);
            }
            Tensor::cat(&rows, 0)?
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.to_path_buf(), source: e })?;
    }
    mri_preprocess::save_tensor_grid(path, &grid.clamp(0f32, 1f32)?, cols).map_err(|e| png_err(path, e))
}

//! On-disk cache of preprocessed slices, so a second run does not decode again.
//!
//! Key: BLAKE3 hash of the file's bytes, output side S, margin and [`PREPROCESS_VERSION`]. One
//! small binary file per slice, written atomically; a damaged entry is treated as a miss and
//! rewritten. The default location is `$MRI_SYNTH_CACHE`, else `$XDG_CACHE_HOME/mri-synth`,
//! else `~/.cache/mri-synth`, else `.mri-synth-cache` in the working folder (data folders are
//! often read-only, so the cache never goes beside the data by default).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::image_ops::{Geometry, PreprocessConfig, Preprocessed, PREPROCESS_VERSION, THUMB_SIZE};

const MAGIC: &[u8; 4] = b"MRIS";

/// Where preprocessed slices are cached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The default location (see the module docs).
    #[default]
    Default,
    /// This folder.
    Dir(PathBuf),
    /// No cache: always decode.
    Disabled,
}

impl CacheMode {
    /// The folder this mode caches in, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            CacheMode::Default => Some(default_cache_dir()),
            CacheMode::Dir(d) => Some(d.clone()),
            CacheMode::Disabled => None,
        }
    }
}

/// The default cache folder (see the module docs).
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MRI_SYNTH_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("mri-synth");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("mri-synth");
    }
    PathBuf::from(".mri-synth-cache")
}

/// A cache folder for one preprocessing setting.
#[derive(Debug, Clone)]
pub struct SliceCache {
    dir: PathBuf,
    image_size: usize,
}

impl SliceCache {
    /// The cache under `root` for slices preprocessed with `cfg`.
    pub fn new(root: &Path, cfg: &PreprocessConfig) -> Self {
        let dir = root.join(format!("v{PREPROCESS_VERSION}-s{}-m{}", cfg.image_size, cfg.margin_px));
        SliceCache { dir, image_size: cfg.image_size as usize }
    }

    fn entry(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.bin"))
    }

    /// The cached slice for a content hash; `None` when absent or unreadable.
    pub fn get(&self, hash: &str) -> Option<Preprocessed> {
        let bytes = std::fs::read(self.entry(hash)).ok()?;
        decode_entry(&bytes, self.image_size)
    }

    /// Stores a slice under its content hash (atomically).
    pub fn put(&self, hash: &str, p: &Preprocessed) -> Result<()> {
        write_atomic(&self.entry(hash), &encode_entry(p))
    }
}

fn encode_entry(p: &Preprocessed) -> Vec<u8> {
    let g = &p.geometry;
    let mut out = Vec::with_capacity(48 + 4 * (p.pixels.len() + p.thumb.len()));
    out.extend_from_slice(MAGIC);
    for v in [PREPROCESS_VERSION, p.pixels.len() as u32, p.thumb.len() as u32, g.width, g.height].into_iter().chain(g.bbox).chain([g.square_side]) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in p.pixels.iter().chain(&p.thumb) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_entry(bytes: &[u8], image_size: usize) -> Option<Preprocessed> {
    const HEADER: usize = 4 + 4 * 10;
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let u = |i: usize| u32::from_le_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap());
    let (version, n_pix, n_thumb) = (u(0), u(1) as usize, u(2) as usize);
    if version != PREPROCESS_VERSION || n_pix != image_size * image_size || n_thumb != THUMB_SIZE * THUMB_SIZE {
        return None;
    }
    if bytes.len() != HEADER + 4 * (n_pix + n_thumb) {
        return None;
    }
    let floats: Vec<f32> = bytes[HEADER..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let geometry = Geometry { width: u(3), height: u(4), bbox: [u(5), u(6), u(7), u(8)], square_side: u(9) };
    Some(Preprocessed { pixels: floats[..n_pix].to_vec(), thumb: floats[n_pix..].to_vec(), geometry })
}

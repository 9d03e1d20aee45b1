//! A preprocessed, labelled data set in memory: from a folder (decoded in parallel, cached) or
//! from the built-in phantom generator.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::{CacheMode, SliceCache};
use crate::error::{PreprocessError, Result};
use crate::image_ops::{decode_grey, preprocess, Geometry, PreprocessConfig};
use crate::load::{list_labelled_entries, ClassMap, Label};

/// Where a data set's images came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A labelled folder on disk.
    Folder(PathBuf),
    /// The built-in phantom generator with this seed (no real patient data).
    Phantom {
        /// The generator's seed.
        seed: u64,
    },
}

impl DataSource {
    /// A short description for logs and reports; says "phantom" for phantom data.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Folder(p) => format!("folder {}", p.display()),
            DataSource::Phantom { seed } => format!("phantom (built-in synthetic slices, seed {seed})"),
        }
    }

    /// True for phantom data.
    pub fn is_phantom(&self) -> bool {
        matches!(self, DataSource::Phantom { .. })
    }
}

/// One preprocessed slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Path relative to the data root with `/` separators (`yes/y0.jpg`); for phantoms a
    /// virtual path such as `phantom/yes/00000.png`.
    pub rel_path: String,
    /// Its class.
    pub label: Label,
    /// S×S values in [0, 1].
    pub pixels: Vec<f32>,
    /// Head-cropped thumbnail for near-duplicate grouping (see [`crate::THUMB_SIZE`]).
    pub thumb: Vec<f32>,
    /// Geometry of the preprocessing; `None` for phantoms (generated at S×S).
    pub geometry: Option<Geometry>,
}

/// A file left out under `skip_invalid`, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Path relative to the data root.
    pub rel_path: String,
    /// The error message (names the file and the reason).
    pub reason: String,
}

/// How to load a folder.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Which folder names hold which class.
    pub classes: ClassMap,
    /// Preprocessing settings (output side, margin, minimum input side).
    pub preprocess: PreprocessConfig,
    /// Where to cache preprocessed slices.
    pub cache: CacheMode,
    /// Skip bad files (listing them in [`Dataset::skipped`]) instead of stopping at the first.
    pub skip_invalid: bool,
}

/// What a load did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Files found in the class folders.
    pub files: usize,
    /// Slices taken from the cache.
    pub cache_hits: usize,
    /// Slices decoded and preprocessed.
    pub decoded: usize,
    /// Cache entries that could not be written (the load still succeeds).
    pub cache_write_errors: usize,
    /// Wall time of the load in seconds.
    pub seconds: f64,
}

/// A preprocessed, labelled data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the images came from.
    pub source: DataSource,
    /// Output side S.
    pub image_size: u32,
    /// The slices, sorted by `rel_path`.
    pub items: Vec<Item>,
    /// Files left out under `skip_invalid`.
    pub skipped: Vec<SkippedFile>,
    /// What the load did.
    pub stats: LoadStats,
}

impl Dataset {
    /// Loads and preprocesses every labelled file under `root` (see [`crate::load`]), in parallel.
    ///
    /// # Errors
    /// Folder errors from [`crate::list_labelled_files`]; otherwise, unless `skip_invalid`, the first
    /// bad file in path order (empty, not an image, corrupt, too small, unreadable); with
    /// `skip_invalid`, [`PreprocessError::EmptyFolder`] if no file survives.
    pub fn load(root: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::load_with_progress(root, opts, &|_, _| {})
    }

    /// As [`Dataset::load`], calling `progress(done, total)` as files finish (from worker
    /// threads), e.g. to drive a progress bar.
    pub fn load_with_progress(root: &Path, opts: &LoadOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Self> {
        opts.preprocess.check()?;
        let start = Instant::now();
        let (files, unusable) = list_labelled_entries(root, &opts.classes)?;
        let mut skipped = Vec::new();
        for e in unusable {
            let PreprocessError::UnusableEntry { path, reason } = &e else { return Err(e) };
            if !opts.skip_invalid {
                return Err(e);
            }
            let rel_path = path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/");
            skipped.push(SkippedFile { rel_path, reason: reason.clone() });
        }
        let cache = opts.cache.dir().map(|d| SliceCache::new(&d, &opts.preprocess));
        let (hits, write_errors, done) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        let total = files.len();
        let results: Vec<Result<Item>> = files
            .par_iter()
            .map(|f| {
                let path = root.join(&f.rel_path);
                let bytes = std::fs::read(&path).map_err(|e| PreprocessError::io(&path, e))?;
                let hash = blake3::hash(&bytes).to_hex().to_string();
                let cached = cache.as_ref().and_then(|c| c.get(&hash));
                let p = match cached {
                    Some(p) => {
                        hits.fetch_add(1, Ordering::Relaxed);
                        p
                    }
                    None => {
                        let img = decode_grey(&bytes, &path, opts.preprocess.min_side)?;
                        let p = preprocess(&img, &opts.preprocess);
                        if let Some(c) = &cache {
                            if c.put(&hash, &p).is_err() {
                                write_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        p
                    }
                };
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                Ok(Item { rel_path: f.rel_path.clone(), label: f.label, pixels: p.pixels, thumb: p.thumb, geometry: Some(p.geometry) })
            })
            .collect();
        let mut items = Vec::with_capacity(total);
        for (f, r) in files.iter().zip(results) {
            match r {
                Ok(item) => items.push(item),
                Err(e) if opts.skip_invalid => skipped.push(SkippedFile { rel_path: f.rel_path.clone(), reason: e.to_string() }),
                Err(e) => return Err(e),
            }
        }
        if items.is_empty() {
            return Err(PreprocessError::EmptyFolder { path: root.to_path_buf() });
        }
        let hits = hits.into_inner();
        Ok(Dataset {
            source: DataSource::Folder(root.to_path_buf()),
            image_size: opts.preprocess.image_size,
            stats: LoadStats {
                files: total,
                cache_hits: hits,
                decoded: items.len() - hits,
                cache_write_errors: write_errors.into_inner(),
                seconds: start.elapsed().as_secs_f64(),
            },
            items,
            skipped,
        })
    }

    /// Number of slices.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no slices.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of slices of one class.
    pub fn count(&self, label: Label) -> usize {
        self.items.iter().filter(|i| i.label == label).count()
    }

    /// Indices of the slices of one class.
    pub fn indices_of(&self, label: Label) -> Vec<usize> {
        (0..self.items.len()).filter(|&i| self.items[i].label == label).collect()
    }
}

//! From `--data DIR` (or phantoms) to train / val / test image sets: load, group, split.
//! Shared by the examples so that they all use the same, tested protocol.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use mri_preprocess::{
    union_groupings, Annotations, CacheMode, DataSource, Dataset, GroupingParams, LoadOptions, PhantomConfig, PreprocessConfig, SplitManifest, SplitParams,
    SplitPart,
};
use mri_train::ImageSet;

/// Where the data comes from and how to prepare it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// A labelled folder (Br35H layout); `None` for built-in phantoms.
    pub data: Option<PathBuf>,
    /// Side of the preprocessed slices.
    pub image_size: u32,
    /// Seed of the split (and of the phantoms).
    pub seed: u64,
    /// Skip bad files instead of stopping.
    pub skip_invalid: bool,
    /// Phantom slices per class when `data` is `None`.
    pub phantoms_per_class: usize,
    /// Print progress and a summary line.
    pub verbose: bool,
}

impl DataSpec {
    /// Phantoms (200 per class) at `image_size` with `seed`.
    pub fn phantoms(image_size: u32, seed: u64) -> Self {
        DataSpec { data: None, image_size, seed, skip_invalid: false, phantoms_per_class: 200, verbose: false }
    }
}

/// A loaded data set with its groups and its split.
pub struct PreparedData {
    /// The preprocessed slices.
    pub dataset: Dataset,
    /// Group id per slice (ours, joined with the folder's `near_duplicate_groups.csv` when present).
    pub groups: Vec<String>,
    /// The seeded group-aware split.
    pub split: SplitManifest,
    /// The phantom settings when the slices are phantoms (their lesion masks are regenerated from it).
    pub phantom: Option<PhantomConfig>,
}

impl PreparedData {
    /// Loads (cached), groups and splits.
    ///
    /// # Errors
    /// Loading, grouping or split errors (they name the file and the reason).
    pub fn load(spec: &DataSpec) -> Result<Self, mri_preprocess::PreprocessError> {
        let phantom = spec.data.is_none().then(|| PhantomConfig {
            image_size: spec.image_size,
            per_class: spec.phantoms_per_class,
            seed: spec.seed,
            ..Default::default()
        });
        let dataset = match &spec.data {
            None => Dataset::phantom(phantom.as_ref().expect("phantom data"))?,
            Some(dir) => {
                let opts = LoadOptions {
                    preprocess: PreprocessConfig::with_size(spec.image_size),
                    cache: CacheMode::Default,
                    skip_invalid: spec.skip_invalid,
                    ..Default::default()
                };
                let bar = if spec.verbose { ProgressBar::new(0) } else { ProgressBar::hidden() };
                bar.set_style(ProgressStyle::with_template("preprocessing [{bar:40}] {pos}/{len} {elapsed}").unwrap().progress_chars("=> "));
                let ds = Dataset::load_with_progress(dir, &opts, &|done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })?;
                bar.finish_and_clear();
                for s in &ds.skipped {
                    eprintln!("skipped {}: {}", s.rel_path, s.reason);
                }
                ds
            }
        };
        let mut groups = dataset.near_duplicate_groups(&GroupingParams::default())?;
        if let Some(reference) = spec.data.as_deref().map(|d| d.join("near_duplicate_groups.csv")).filter(|p| p.exists()) {
            // Honour the shipped grouping too, so nothing it links can leak across parts.
            groups = union_groupings(&groups, &dataset.reference_groups(&reference)?)?;
        }
        let split = dataset.split(&groups, &SplitParams::with_seed(spec.seed))?;
        if spec.verbose {
            println!(
                "data: {}; {} slices at {px}×{px}, {} groups; train {} / val {} / test {}",
                dataset.source.describe(),
                dataset.len(),
                split.n_groups(),
                split.paths(SplitPart::Train).count(),
                split.paths(SplitPart::Val).count(),
                split.paths(SplitPart::Test).count(),
                px = spec.image_size
            );
        }
        Ok(PreparedData { dataset, groups, split, phantom })
    }

    /// Tumour masks per slice, in item order: phantoms' lesion masks, or for a folder the
    /// outlines in `annotations` (default `<data>/Br35H-Mask-RCNN/annotations_all.json`, the
    /// file Br35H ships) rasterised through each slice's preprocessing. `None` when a folder
    /// has no annotation file.
    ///
    /// # Errors
    /// An unreadable or malformed annotation file (named), or one recorded for other files.
    pub fn tumour_masks(&self, annotations: Option<&Path>) -> Result<Option<Vec<Option<Vec<bool>>>>, mri_preprocess::PreprocessError> {
        if let Some(cfg) = &self.phantom {
            return Ok(Some(Dataset::phantom_masks(cfg)?));
        }
        let default = match &self.dataset.source {
            DataSource::Folder(root) => Some(root.join("Br35H-Mask-RCNN").join("annotations_all.json")),
            DataSource::Phantom { .. } => None,
        };
        let Some(path) = annotations.map(Path::to_path_buf).or(default.filter(|p| p.exists())) else { return Ok(None) };
        let found = self.dataset.tumour_masks(&Annotations::from_via_json(&path)?)?;
        Ok(Some(found.masks))
    }

    /// The entries of `per_item` (one per slice, item order) for one part, in the order of
    /// [`PreparedData::image_set`].
    pub fn part_of<T: Clone>(&self, per_item: &[T], part: SplitPart) -> Vec<T> {
        self.dataset.indices_in(&self.split, part).into_iter().map(|i| per_item[i].clone()).collect()
    }

    /// The slices of one part as an [`ImageSet`] (tumour = 1).
    pub fn image_set(&self, part: SplitPart) -> ImageSet {
        let mut set = ImageSet::new(self.dataset.image_size as usize);
        for i in self.dataset.indices_in(&self.split, part) {
            let it = &self.dataset.items[i];
            set.push(&it.pixels, it.label.index()).expect("slices have the data set's size");
        }
        set
    }
}

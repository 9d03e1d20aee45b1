//! From `--data DIR` (or phantoms) to train / val / test image sets: load, group, split.
//! Shared by the examples so that they all use the same, tested protocol.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use mri_preprocess::{
    leak_check, reference_leaks, union_groupings, Annotations, CacheMode, DataSource, Dataset, GroupingParams, LoadOptions, PhantomConfig, PreprocessConfig,
    SplitManifest, SplitParams, SplitPart,
};
use mri_train::{Fingerprint, ImageSet, Preset};
use serde::{Deserialize, Serialize};

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
    /// Train / val / test fractions (counted in near-duplicate groups, per class).
    pub split: SplitFractions,
    /// One fold of a grouped K-fold cross-validation instead of the test fraction
    /// ([`mri_preprocess::Fold`]; train and val then divide the rest in their ratio).
    pub fold: Option<mri_preprocess::Fold>,
    /// Print progress and a summary line.
    pub verbose: bool,
}

impl DataSpec {
    /// Phantoms (200 per class) at `image_size` with `seed`, split 0.70 / 0.15 / 0.15.
    pub fn phantoms(image_size: u32, seed: u64) -> Self {
        DataSpec { data: None, image_size, seed, skip_invalid: false, phantoms_per_class: 200, split: SplitFractions::default(), fold: None, verbose: false }
    }
}

/// Train / val / test fractions of a split, e.g. `0.7,0.15,0.15` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Training share.
    pub train: f64,
    /// Validation share.
    pub val: f64,
    /// Test share.
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        let d = SplitParams::default();
        // Written out (not 1 − train − val) so that it prints as 0.15, not 0.15000000000000005.
        SplitFractions { train: d.train, val: d.val, test: 0.15 }
    }
}

impl SplitFractions {
    /// The split parameters with this seed.
    pub fn params(self, seed: u64) -> SplitParams {
        SplitParams { seed, train: self.train, val: self.val, fold: None }
    }
}

impl std::str::FromStr for SplitFractions {
    type Err = String;
    /// `train,val,test`, each in (0, 1) (val may be 0), summing to 1 (±0.001).
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<f64> = s.split(',').map(|p| p.trim().parse::<f64>().map_err(|e| format!("{p:?} is not a number ({e})"))).collect::<Result<_, _>>()?;
        let [train, val, test] = parts[..] else { return Err(format!("expected three fractions train,val,test, got {}", parts.len())) };
        if !(train > 0.0 && val >= 0.0 && test > 0.0) || ((train + val + test) - 1.0).abs() > 1e-3 {
            return Err(format!("need train > 0, val >= 0, test > 0 summing to 1; got {train},{val},{test}"));
        }
        Ok(SplitFractions { train, val, test })
    }
}

impl std::fmt::Display for SplitFractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.train, self.val, self.test)
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
    /// The split's fractions.
    pub fractions: SplitFractions,
    /// Each slice's group in the folder's shipped grouping (`near_duplicate_groups.csv`), when
    /// it has one (`None` inside: a slice the file does not list).
    pub reference_groups: Option<Vec<Option<String>>>,
}

/// What the leak check of a split found (see [`PreparedData::leak_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeakSummary {
    /// Similarity at or above which two slices count as near-duplicates.
    pub threshold: f32,
    /// Test slices checked.
    pub test_slices: usize,
    /// Test slices with a near-duplicate in train by our detector.
    pub test_with_train_duplicate: usize,
    /// Test slices whose shipped reference group has a member in train (`None`: no reference).
    pub reference_test_with_train_group: Option<usize>,
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
        let reference_groups = match spec.data.as_deref().map(|d| d.join("near_duplicate_groups.csv")).filter(|p| p.exists()) {
            Some(csv) => Some(dataset.reference_groups(&csv)?),
            None => None,
        };
        if let Some(reference) = &reference_groups {
            // Honour the shipped grouping too, so nothing it links can leak across parts.
            groups = union_groupings(&groups, reference)?;
        }
        let split = dataset.split(&groups, &SplitParams { fold: spec.fold, ..spec.split.params(spec.seed) })?;
        if spec.verbose {
            println!(
                "data: {}; {} slices at {px}×{px}, {} groups; train {} / val {} / test {}{}",
                dataset.source.describe(),
                dataset.len(),
                split.n_groups(),
                split.paths(SplitPart::Train).count(),
                split.paths(SplitPart::Val).count(),
                split.paths(SplitPart::Test).count(),
                spec.fold.map(|f| format!(" (fold {} of {})", f.index + 1, f.count)).unwrap_or_default(),
                px = spec.image_size
            );
        }
        Ok(PreparedData { dataset, groups, split, phantom, fractions: spec.split, reference_groups })
    }

    /// Checks the test part against the train part for near-duplicates (see
    /// [`mri_preprocess::leak`]): every test slice whose most similar training slice reaches
    /// the grouping threshold, and, when the folder ships `near_duplicate_groups.csv`, the test
    /// slices whose reference group has a member in train. The split keeps the groups it was
    /// made from together, so both counts are 0 unless the detector and the split disagree;
    /// a non-zero count is a leak to look at (the pairs are in the returned check).
    ///
    /// `None` for phantoms: they are independent draws, so nothing can leak, and healthy
    /// phantoms look too much alike at thumbnail scale for the detector's verdict to mean anything.
    ///
    /// # Errors
    /// Grouping errors.
    pub fn leak_check(&self) -> Result<Option<(LeakSummary, mri_preprocess::LeakCheck)>, mri_preprocess::PreprocessError> {
        if self.dataset.source.is_phantom() {
            return Ok(None);
        }
        let params = GroupingParams::default();
        let (test, train) = (self.dataset.indices_in(&self.split, SplitPart::Test), self.dataset.indices_in(&self.split, SplitPart::Train));
        let check = leak_check(&self.dataset, &test, &self.dataset, &train, &params)?;
        let reference_test_with_train_group = self.reference_groups.as_ref().map(|g| reference_leaks(g, &test, &train).len());
        let summary =
            LeakSummary { threshold: params.threshold, test_slices: test.len(), test_with_train_duplicate: check.pairs.len(), reference_test_with_train_group };
        Ok(Some((summary, check)))
    }

    /// What results computed from this data are computed from (see [`Fingerprint`]): the
    /// source, a BLAKE3 of every slice's path, label and pixels, the side, the split fractions
    /// and a BLAKE3 of the split manifest, the seed and the preset.
    pub fn fingerprint(&self, preset: Option<Preset>) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        for it in &self.dataset.items {
            h.update(it.rel_path.as_bytes());
            h.update(&[0, it.label.index() as u8]);
            let bytes: Vec<u8> = it.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
            h.update(&bytes);
        }
        Fingerprint {
            data_source: self.dataset.source.describe(),
            data_hash: h.finalize().to_hex().to_string(),
            image_size: self.dataset.image_size as usize,
            split_fractions: [self.fractions.train, self.fractions.val, self.fractions.test],
            split_hash: blake3::hash(self.split.to_json().as_bytes()).to_hex().to_string(),
            seed: self.split.seed,
            preset,
        }
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

//! One seeded, stratified, group-aware train / val / test split, and its `split.json` manifest.
//!
//! Groups (near-duplicate sets) are the unit: every slice of a group goes to the same split, so
//! no copy of a test slice is ever trained on. Stratified: each class's groups are shuffled and
//! cut separately by the fractions, counted in groups. The same seed and items always give a
//! byte-identical manifest (items sorted by path, a portable ChaCha RNG).

use std::collections::BTreeMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{PreprocessError, Result};
use crate::fsutil::write_atomic;
use crate::load::Label;

/// The three parts of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitPart {
    /// Training data.
    Train,
    /// Validation data: model selection and thresholds.
    Val,
    /// Test data: scored once.
    Test,
}

impl SplitPart {
    /// All parts in order.
    pub const ALL: [SplitPart; 3] = [SplitPart::Train, SplitPart::Val, SplitPart::Test];

    /// `"train"`, `"val"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitPart::Train => "train",
            SplitPart::Val => "val",
            SplitPart::Test => "test",
        }
    }
}

/// One fold of a K-fold grouped cross-validation: each class's shuffled groups are cut into
/// `count` near-equal chunks, chunk `index` is the test part, and the groups after it (wrapping
/// round) give validation its share `val / (train + val)` of the rest, training the others.
/// Over `index = 0..count` every group is tested exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Which fold, 0-based.
    pub index: usize,
    /// How many folds (K ≥ 2).
    pub count: usize,
}

/// Split settings; [`SplitParams::check`] validates them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitParams {
    /// Seed of the shuffle. Default 0.
    pub seed: u64,
    /// Share of each class's groups for training. Default 0.70.
    pub train: f64,
    /// Share for validation. Default 0.15; the test set gets the rest.
    pub val: f64,
    /// A cross-validation fold instead of the fractions' test share (`train` and `val` then
    /// only set how the rest is divided). Default none.
    #[serde(default)]
    pub fold: Option<Fold>,
}

impl Default for SplitParams {
    fn default() -> Self {
        SplitParams { seed: 0, train: 0.70, val: 0.15, fold: None }
    }
}

impl SplitParams {
    /// Default fractions with this seed.
    pub fn with_seed(seed: u64) -> Self {
        SplitParams { seed, ..Default::default() }
    }

    /// Checks the fractions.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] unless `train > 0`, `val ≥ 0` and `train + val < 1`.
    pub fn check(&self) -> Result<()> {
        if !(self.train > 0.0 && self.val >= 0.0 && self.train + self.val < 1.0) {
            return Err(PreprocessError::param(
                "split fractions",
                format!("need train > 0, val >= 0 and train + val < 1; got train {} val {}", self.train, self.val),
            ));
        }
        if let Some(f) = self.fold {
            if f.count < 2 || f.index >= f.count {
                return Err(PreprocessError::param(
                    "fold",
                    format!("need at least 2 folds and an index below their number; got fold {} of {}", f.index, f.count),
                ));
            }
        }
        Ok(())
    }
}

/// One row of `split.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitItem {
    /// Path relative to the data root, `/`-separated.
    pub path: String,
    /// Class.
    pub label: Label,
    /// Near-duplicate group id.
    pub group: String,
    /// Which part it is in.
    pub split: SplitPart,
}

/// The split manifest written as `split.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitManifest {
    /// The seed that made it.
    pub seed: u64,
    /// Output side S of the preprocessing it was made for.
    pub image_size: u32,
    /// Every item, sorted by path.
    pub items: Vec<SplitItem>,
}

/// How many of `n` groups go to (train, val, test): rounded shares, and at least one group in
/// each part whenever there are enough groups (so val and test are never empty by rounding).
fn part_sizes(n: usize, p: &SplitParams) -> [usize; 3] {
    let mut val = (p.val * n as f64).round() as usize;
    let mut test = n.saturating_sub((p.train * n as f64).round() as usize + val);
    if n >= 3 {
        val = val.max(usize::from(p.val > 0.0));
        test = test.max(1);
    }
    let train = n.saturating_sub(val + test);
    [train, val.min(n - train), n - train - val.min(n - train)]
}

/// The parts of one class's shuffled groups `gs` in fold `f` (see [`Fold`]).
fn fold_parts<'a>(gs: &[&'a str], f: Fold, p: &SplitParams) -> Vec<(&'a str, SplitPart)> {
    let n = gs.len();
    let (lo, hi) = (f.index * n / f.count, (f.index + 1) * n / f.count);
    // The rest, starting after the test chunk, so that each fold validates on other groups.
    let rest: Vec<&str> = gs[hi..].iter().chain(&gs[..lo]).copied().collect();
    let mut n_val = (p.val / (p.train + p.val) * rest.len() as f64).round() as usize;
    if p.val > 0.0 && rest.len() >= 2 {
        n_val = n_val.clamp(1, rest.len() - 1);
    }
    let mut out: Vec<(&str, SplitPart)> = gs[lo..hi].iter().map(|g| (*g, SplitPart::Test)).collect();
    out.extend(rest.iter().enumerate().map(|(i, g)| (*g, if i < n_val { SplitPart::Val } else { SplitPart::Train })));
    out
}

impl SplitManifest {
    /// Splits items `(path, label, group)` by groups (see the module docs).
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for bad fractions, a duplicate path, a group
    /// holding both classes (stratification would be ill-defined), or data with only one class
    /// (a tumour / no-tumour split needs both).
    pub fn make(items: &[(String, Label, String)], image_size: u32, params: &SplitParams) -> Result<Self> {
        params.check()?;
        for label in Label::ALL {
            if !items.iter().any(|(_, l, _)| *l == label) {
                let have = if items.is_empty() { "no slices at all".to_string() } else { format!("only {} slices", items[0].1.as_str()) };
                return Err(PreprocessError::param(
                    "data",
                    format!("the data holds {have}, no {} slices: a train / val / test split of a classifier needs both classes", label.as_str()),
                ));
            }
        }
        // group -> label, checking each group is one class.
        let mut label_of_group: BTreeMap<&str, Label> = BTreeMap::new();
        for (path, label, group) in items {
            if let Some(l) = label_of_group.insert(group, *label) {
                if l != *label {
                    return Err(PreprocessError::param("groups", format!("group {group} holds both classes (at {path})")));
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut part_of_group: BTreeMap<&str, SplitPart> = BTreeMap::new();
        for label in Label::ALL {
            // BTreeMap order makes the pre-shuffle order independent of input order.
            let mut gs: Vec<&str> = label_of_group.iter().filter(|(_, l)| **l == label).map(|(g, _)| *g).collect();
            gs.shuffle(&mut rng);
            if let Some(f) = params.fold {
                for (g, part) in fold_parts(&gs, f, params) {
                    part_of_group.insert(g, part);
                }
                continue;
            }
            let [tr, va, _] = part_sizes(gs.len(), params);
            for (i, g) in gs.into_iter().enumerate() {
                let part = if i < tr {
                    SplitPart::Train
                } else if i < tr + va {
                    SplitPart::Val
                } else {
                    SplitPart::Test
                };
                part_of_group.insert(g, part);
            }
        }
        let mut out: Vec<SplitItem> = items
            .iter()
            .map(|(path, label, group)| SplitItem { path: path.clone(), label: *label, group: group.clone(), split: part_of_group[group.as_str()] })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = out.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(PreprocessError::param("items", format!("path {} appears twice", w[0].path)));
        }
        Ok(SplitManifest { seed: params.seed, image_size, items: out })
    }

    /// Paths in one part.
    pub fn paths(&self, part: SplitPart) -> impl Iterator<Item = &str> {
        self.items.iter().filter(move |i| i.split == part).map(|i| i.path.as_str())
    }

    /// Number of items of a class in a part.
    pub fn count(&self, part: SplitPart, label: Label) -> usize {
        self.items.iter().filter(|i| i.split == part && i.label == label).count()
    }

    /// Number of distinct groups.
    pub fn n_groups(&self) -> usize {
        self.items.iter().map(|i| i.group.as_str()).collect::<std::collections::BTreeSet<_>>().len()
    }

    /// Groups that appear in more than one part (always empty for a manifest made by
    /// [`SplitManifest::make`]; useful to check one read from disk).
    pub fn groups_crossing_parts(&self) -> Vec<String> {
        let mut part_of: BTreeMap<&str, SplitPart> = BTreeMap::new();
        let mut bad = std::collections::BTreeSet::new();
        for i in &self.items {
            if *part_of.entry(&i.group).or_insert(i.split) != i.split {
                bad.insert(i.group.clone());
            }
        }
        bad.into_iter().collect()
    }

    /// The manifest as pretty JSON with a trailing newline (byte-stable).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serialises");
        s.push('\n');
        s
    }

    /// Writes `split.json` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads a manifest.
    ///
    /// # Errors
    /// [`PreprocessError::Io`] or [`PreprocessError::Parse`] naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PreprocessError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| PreprocessError::Parse { path: path.to_path_buf(), reason: e.to_string() })
    }
}

//! Leak checks: which slices of one set have a near-duplicate in another.
//!
//! A test slice whose copy (rescaled, re-cropped, contrast-changed, mirrored, slightly
//! rotated) sits in the training set makes every test figure optimistic. [`leak_check`]
//! compares each slice of the checked side (say the test part of a split, or an external test
//! folder) with every slice of the other side (the training part, or the training folder)
//! using the grouping descriptors and variants of [`crate::groups`], and lists each checked
//! slice whose most similar counterpart reaches the grouping threshold. It works inside one
//! data set (two parts of a split) and across data sets (two folders), so a user can check that
//! an external test set holds no copies of the training data — a known problem of the public
//! brain-MRI sets, which share images.
//!
//! [`reference_leaks`] answers the same question for a given grouping (for example the one a
//! data set ships): the checked slices whose group also has a member on the other side.

use std::collections::HashSet;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{PreprocessError, Result};
use crate::fsutil::write_atomic;
use crate::groups::{check_thumbs, CheckedGroupingParams, GroupingParams, VariantDescriptors, BLOCK};
use crate::image_ops::THUMB_SIZE;
use crate::load::Label;

/// The most similar slice of the other side for one checked slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearestMatch {
    /// Index of that slice in the other side's list.
    pub index: usize,
    /// Best correlation of the two descriptors over the variants tried (see
    /// [`GroupingParams`]); at or above the threshold they are near-duplicates.
    pub similarity: f32,
}

/// For each of `queries`, its most similar slice among `pool` (thumbnails of
/// [`THUMB_SIZE`]², with their classes). With `within_class` only slices of the same class are
/// compared, as in grouping; a query with nothing to compare against gets `None`.
///
/// # Errors
/// [`PreprocessError::InvalidParameter`] for mismatched lengths or thumbnail sizes; candle
/// errors from the matrix products.
pub fn nearest_matches(
    queries: &[&[f32]],
    query_labels: &[Label],
    pool: &[&[f32]],
    pool_labels: &[Label],
    params: &CheckedGroupingParams,
) -> Result<Vec<Option<NearestMatch>>> {
    if query_labels.len() != queries.len() || pool_labels.len() != pool.len() {
        return Err(PreprocessError::param("labels", "one label per thumbnail on each side"));
    }
    check_thumbs(queries, "queries")?;
    check_thumbs(pool, "pool")?;
    let d = THUMB_SIZE * THUMB_SIZE;
    let dev = Device::Cpu;
    let p = params.params();
    let buckets: Vec<Option<Label>> = if p.within_class { Label::ALL.iter().map(|&l| Some(l)).collect() } else { vec![None] };
    let mut out = vec![None; queries.len()];
    for bucket in buckets {
        let keep = |l: Label| bucket.is_none_or(|b| b == l);
        let q_idx: Vec<usize> = (0..queries.len()).filter(|&i| keep(query_labels[i])).collect();
        let p_idx: Vec<usize> = (0..pool.len()).filter(|&i| keep(pool_labels[i])).collect();
        if q_idx.is_empty() || p_idx.is_empty() {
            continue;
        }
        // The query's plain descriptor against every rigid variant of each pool slice covers
        // both directions (the variants are closed under inversion; see groups.rs).
        let q_desc = VariantDescriptors::new(q_idx.iter().map(|&i| queries[i]), params);
        let p_desc = VariantDescriptors::new(p_idx.iter().map(|&i| pool[i]), params);
        let variants = p_desc.variants;
        let cols = Tensor::from_slice(&p_desc.values, (p_idx.len() * variants, d), &dev)?.t()?;
        for start in (0..q_idx.len()).step_by(BLOCK) {
            let rows = BLOCK.min(q_idx.len() - start);
            let a = Tensor::from_vec(q_desc.bases(start..start + rows), (rows, d), &dev)?;
            let sims: Vec<f32> = a.matmul(&cols)?.flatten_all()?.to_vec1()?;
            let width = p_idx.len() * variants;
            for r in 0..rows {
                let row = &sims[r * width..(r + 1) * width];
                let (best, &s) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("pool is not empty");
                out[q_idx[start + r]] = Some(NearestMatch { index: p_idx[best / variants], similarity: s });
            }
        }
    }
    Ok(out)
}

/// A checked slice with a near-duplicate on the other side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakPair {
    /// The checked slice (path relative to its data root).
    pub file: String,
    /// Its class.
    pub label: Label,
    /// Its most similar slice on the other side.
    pub match_file: String,
    /// That slice's class.
    pub match_label: Label,
    /// Their similarity (correlation of the grouping descriptors, best variant).
    pub similarity: f32,
    /// Index of the checked slice in its data set.
    #[serde(skip)]
    pub index: usize,
    /// Index of the match in its data set.
    #[serde(skip)]
    pub match_index: usize,
}

/// The result of [`leak_check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakCheck {
    /// Similarity at or above which a pair counts (the grouping threshold).
    pub threshold: f32,
    /// Slices checked.
    pub checked: usize,
    /// Slices they were compared against.
    pub compared_against: usize,
    /// The checked slices with a near-duplicate on the other side, most similar first.
    pub pairs: Vec<LeakPair>,
    /// Similarity of the most similar pair below the threshold (how close the nearest
    /// non-duplicate came), if any.
    pub closest_below: Option<f32>,
}

/// Checks the slices `checked` of `checked_set` against the slices `against` of `other` (the
/// same data set for two parts of one split, or another one): see the module docs. Phantom
/// slices are independent draws and are compared like any others.
///
/// # Errors
/// Parameter errors from [`GroupingParams::check`], an index out of range, or candle errors.
pub fn leak_check(checked_set: &Dataset, checked: &[usize], other: &Dataset, against: &[usize], params: &GroupingParams) -> Result<LeakCheck> {
    let checked_params = params.check()?;
    for (set, idx, name) in [(checked_set, checked, "checked"), (other, against, "against")] {
        if let Some(&i) = idx.iter().find(|&&i| i >= set.items.len()) {
            return Err(PreprocessError::param(name, format!("index {i} out of range ({} slices)", set.items.len())));
        }
    }
    fn thumbs<'a>(set: &'a Dataset, idx: &[usize]) -> (Vec<&'a [f32]>, Vec<Label>) {
        idx.iter().map(|&i| (set.items[i].thumb.as_slice(), set.items[i].label)).unzip()
    }
    let (q, ql) = thumbs(checked_set, checked);
    let (p, pl) = thumbs(other, against);
    let matches = nearest_matches(&q, &ql, &p, &pl, &checked_params)?;
    let mut pairs = Vec::new();
    let mut closest_below: Option<f32> = None;
    for (k, m) in matches.iter().enumerate() {
        let Some(m) = m else { continue };
        if m.similarity >= params.threshold {
            let (a, b) = (&checked_set.items[checked[k]], &other.items[against[m.index]]);
            pairs.push(LeakPair {
                file: a.rel_path.clone(),
                label: a.label,
                match_file: b.rel_path.clone(),
                match_label: b.label,
                similarity: m.similarity,
                index: checked[k],
                match_index: against[m.index],
            });
        } else {
            closest_below = Some(closest_below.map_or(m.similarity, |c| c.max(m.similarity)));
        }
    }
    pairs.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then_with(|| a.file.cmp(&b.file)));
    Ok(LeakCheck { threshold: params.threshold, checked: checked.len(), compared_against: against.len(), pairs, closest_below })
}

impl LeakCheck {
    /// Writes the pairs as CSV (`file,label,match_file,match_label,similarity`), most similar
    /// first, atomically.
    ///
    /// # Errors
    /// [`PreprocessError::Io`] naming the file.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from("file,label,match_file,match_label,similarity\n");
        for p in &self.pairs {
            s.push_str(&format!("{},{},{},{},{:.4}\n", p.file, p.label, p.match_file, p.match_label, p.similarity));
        }
        write_atomic(path, s.as_bytes())
    }

    /// Writes a contact sheet of the first `max_pairs` pairs (the most similar), four pairs to
    /// a row, each as checked slice | its match, in the order of the CSV. `checked_set` and
    /// `other` must be the data sets given to [`leak_check`] and share one image size.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] when there is no pair or the image sizes differ;
    /// I/O errors naming the file.
    pub fn save_sheet(&self, path: &Path, checked_set: &Dataset, other: &Dataset, max_pairs: usize) -> Result<()> {
        if checked_set.image_size != other.image_size {
            return Err(PreprocessError::param("other", format!("image size {} against {}", other.image_size, checked_set.image_size)));
        }
        let tiles: Vec<&[f32]> = self
            .pairs
            .iter()
            .take(max_pairs)
            .flat_map(|p| [checked_set.items[p.index].pixels.as_slice(), other.items[p.match_index].pixels.as_slice()])
            .collect();
        if tiles.is_empty() {
            return Err(PreprocessError::param("pairs", "no pair to draw"));
        }
        crate::png::save_grid(path, &tiles, checked_set.image_size as usize, 8)
    }
}

/// The slices of `checked` whose group (in `groups`, one optional id per slice of one data
/// set) also has a member in `against`: the leaks a given grouping knows of. Slices without a
/// group are never counted.
pub fn reference_leaks(groups: &[Option<String>], checked: &[usize], against: &[usize]) -> Vec<usize> {
    let other: HashSet<&str> = against.iter().filter_map(|&i| groups.get(i)?.as_deref()).collect();
    checked.iter().copied().filter(|&i| groups.get(i).and_then(|g| g.as_deref()).is_some_and(|g| other.contains(g))).collect()
}

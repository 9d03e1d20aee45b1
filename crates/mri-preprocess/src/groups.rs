//! Near-duplicate groups: copies of one slice that were re-scaled, re-cropped, contrast-changed,
//! sharpened, slightly rotated or mirrored must land in the same split, or the test set leaks.
//!
//! Algorithm: each slice has a [`THUMB_SIZE`]² thumbnail of its tight head crop (so scale and
//! crop matter little). Each thumbnail is lightly blurred (σ `blur_sigma`, against sharpened
//! copies) and locally contrast-normalised — minus its Gaussian local mean, divided by its local
//! standard deviation (σ `lcn_sigma`) — so that contrast-stretched, saturated or gamma-changed
//! copies look alike; then centred and scaled to unit norm, so a dot product is Pearson's
//! correlation. Each thumbnail is compared with
//! rotated (±`max_rotation_deg` in `rotation_step_deg` steps) and, optionally, mirrored variants
//! of every other; two slices are linked when the best correlation reaches `threshold`, and
//! groups are the connected components of the links. The correlations are one matrix product
//! per block of rows (candle's GEMM), so 3000 slices take about a second.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{PreprocessError, Result};
use crate::image_ops::THUMB_SIZE;
use crate::load::Label;

/// Parameters of near-duplicate grouping; [`GroupingParams::check`] validates them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupingParams {
    /// Correlation at or above which two slices are near-duplicates. Default 0.85.
    pub threshold: f32,
    /// σ in thumbnail pixels of the blur applied first. Default 0.6; 0 disables it.
    pub blur_sigma: f32,
    /// σ of the local contrast normalisation window. Default 3; 0 disables it (plain
    /// correlation of the blurred thumbnails).
    pub lcn_sigma: f32,
    /// Largest rotation tried, in degrees. Default 10.
    pub max_rotation_deg: f32,
    /// Step between rotations tried, in degrees. Default 5.
    pub rotation_step_deg: f32,
    /// Also try the left–right mirror image. Default true.
    pub mirror: bool,
    /// Only link slices of the same class (a copy never changes its diagnosis). Default true.
    pub within_class: bool,
}

impl Default for GroupingParams {
    fn default() -> Self {
        GroupingParams { threshold: 0.85, blur_sigma: 0.6, lcn_sigma: 3.0, max_rotation_deg: 10.0, rotation_step_deg: 5.0, mirror: true, within_class: true }
    }
}

/// Validated [`GroupingParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedGroupingParams(GroupingParams);

impl GroupingParams {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for a threshold outside (0, 1], a negative or
    /// over-45° rotation, or a non-positive step with a non-zero rotation.
    pub fn check(&self) -> Result<CheckedGroupingParams> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(PreprocessError::param("threshold", format!("must be in (0, 1], got {}", self.threshold)));
        }
        for (name, v) in [("blur_sigma", self.blur_sigma), ("lcn_sigma", self.lcn_sigma)] {
            if !(0.0..=8.0).contains(&v) {
                return Err(PreprocessError::param(name, format!("must be in [0, 8], got {v}")));
            }
        }
        if !(0.0..=45.0).contains(&self.max_rotation_deg) {
            return Err(PreprocessError::param("max_rotation_deg", format!("must be in [0, 45], got {}", self.max_rotation_deg)));
        }
        if self.max_rotation_deg > 0.0 && self.rotation_step_deg <= 0.0 {
            return Err(PreprocessError::param("rotation_step_deg", format!("must be > 0, got {}", self.rotation_step_deg)));
        }
        Ok(CheckedGroupingParams(self.clone()))
    }
}

impl CheckedGroupingParams {
    /// The parameters.
    pub fn params(&self) -> &GroupingParams {
        &self.0
    }

    fn angles(&self) -> Vec<f32> {
        let p = &self.0;
        let mut a = vec![0.0];
        if p.max_rotation_deg > 0.0 {
            let mut r = p.rotation_step_deg;
            while r <= p.max_rotation_deg + 1e-4 {
                a.push(r);
                a.push(-r);
                r += p.rotation_step_deg;
            }
        }
        a
    }
}

/// Separable Gaussian blur of a square image, edges extended (clamped). Written as
/// row-wise multiply-adds so the compiler vectorises it (it dominates grouping time).
fn gaussian_blur(img: &[f32], side: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return img.to_vec();
    }
    let r = (3.0 * sigma).ceil() as usize;
    let k: Vec<f32> = (0..=2 * r).map(|i| (-((i as f32 - r as f32).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let ks: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / ks).collect();
    // Horizontal pass through an edge-padded copy of each row.
    let mut tmp = vec![0f32; side * side];
    let mut padded = vec![0f32; side + 2 * r];
    for y in 0..side {
        let row = &img[y * side..(y + 1) * side];
        padded[..r].fill(row[0]);
        padded[r..r + side].copy_from_slice(row);
        padded[r + side..].fill(row[side - 1]);
        let out = &mut tmp[y * side..(y + 1) * side];
        for (j, &kj) in k.iter().enumerate() {
            for (o, &p) in out.iter_mut().zip(&padded[j..j + side]) {
                *o += kj * p;
            }
        }
    }
    // Vertical pass: whole rows at a time, clamped at the edges.
    let mut out = vec![0f32; side * side];
    for y in 0..side {
        let dst = &mut out[y * side..(y + 1) * side];
        for (j, &kj) in k.iter().enumerate() {
            let sy = (y + j).saturating_sub(r).min(side - 1);
            for (o, &p) in dst.iter_mut().zip(&tmp[sy * side..(sy + 1) * side]) {
                *o += kj * p;
            }
        }
    }
    out
}

/// The grouping descriptor of a thumbnail: blur, local contrast normalisation, unit norm.
fn descriptor(thumb: &[f32], side: usize, p: &GroupingParams) -> Vec<f32> {
    let mut v = gaussian_blur(thumb, side, p.blur_sigma);
    if p.lcn_sigma > 0.0 {
        let mean = gaussian_blur(&v, side, p.lcn_sigma);
        let dev: Vec<f32> = v.iter().zip(&mean).map(|(a, m)| a - m).collect();
        let sq: Vec<f32> = dev.iter().map(|d| d * d).collect();
        let var = gaussian_blur(&sq, side, p.lcn_sigma);
        // The variance floor (std 0.1 of full scale) keeps flat, noisy background from being
        // blown up: without it, background noise dominates the descriptor.
        v = dev.iter().zip(&var).map(|(d, s)| d / (s + 1e-2).sqrt()).collect();
    }
    standardise(&mut v);
    v
}

/// Centres a vector and scales it to unit length (all zeros if constant).
fn standardise(v: &mut [f32]) {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Rotates a square thumbnail by `deg` about its centre (bilinear, outside = 0), optionally
/// mirrored left–right first.
fn rotate(thumb: &[f32], side: usize, deg: f32, mirror: bool) -> Vec<f32> {
    let (s, c) = deg.to_radians().sin_cos();
    let h = (side as f32 - 1.0) / 2.0;
    let mut out = vec![0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            let (dx, dy) = (x as f32 - h, y as f32 - h);
            // Inverse map: source point for this destination point.
            let mut sx = c * dx + s * dy + h;
            let sy = -s * dx + c * dy + h;
            if mirror {
                sx = 2.0 * h - sx;
            }
            if sx < 0.0 || sy < 0.0 || sx > side as f32 - 1.0 || sy > side as f32 - 1.0 {
                continue;
            }
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let p = |xx: usize, yy: usize| thumb[yy * side + xx];
            out[y * side + x] = (1.0 - fy) * ((1.0 - fx) * p(x0, y0) + fx * p(x1, y0)) + fy * ((1.0 - fx) * p(x0, y1) + fx * p(x1, y1));
        }
    }
    out
}

/// The grouping descriptors of a set of thumbnails under every rigid variant tried (each
/// rotation, and each mirrored rotation when `mirror` is on): `variants` consecutive
/// descriptors of `THUMB_SIZE²` values per slice, variant 0 being the slice itself.
pub(crate) struct VariantDescriptors {
    pub(crate) values: Vec<f32>,
    pub(crate) variants: usize,
}

impl VariantDescriptors {
    /// Computes the descriptors in parallel (rayon); thumbnail sizes must already be checked.
    pub(crate) fn new<'a>(thumbs: impl Iterator<Item = &'a [f32]>, params: &CheckedGroupingParams) -> Self {
        use rayon::prelude::*;
        let p = params.params();
        let angles = params.angles();
        let mirrors: &[bool] = if p.mirror { &[false, true] } else { &[false] };
        let thumbs: Vec<&[f32]> = thumbs.collect();
        let values = thumbs
            .par_iter()
            .flat_map_iter(|t| {
                let mut v = Vec::with_capacity(angles.len() * mirrors.len() * THUMB_SIZE * THUMB_SIZE);
                for &mirror in mirrors {
                    for &a in &angles {
                        v.extend(descriptor(&rotate(t, THUMB_SIZE, a, mirror), THUMB_SIZE, p));
                    }
                }
                v
            })
            .collect();
        VariantDescriptors { values, variants: angles.len() * mirrors.len() }
    }

    /// The untransformed descriptors (variant 0) of the slices in `range`, one after another.
    pub(crate) fn bases(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let d = THUMB_SIZE * THUMB_SIZE;
        range.flat_map(|i| self.values[i * self.variants * d..i * self.variants * d + d].iter().copied()).collect()
    }
}

/// Checks that every thumbnail has `THUMB_SIZE²` values.
pub(crate) fn check_thumbs(thumbs: &[&[f32]], name: &'static str) -> Result<()> {
    let d = THUMB_SIZE * THUMB_SIZE;
    match thumbs.iter().position(|t| t.len() != d) {
        Some(i) => Err(PreprocessError::param(name, format!("thumbnail {i} has {} values, expected {d}", thumbs[i].len()))),
        None => Ok(()),
    }
}

/// Near-duplicate groups of a set of slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// Group index of each slice, numbered 0.. in order of each group's first slice.
    pub group_of: Vec<usize>,
    /// Number of groups.
    pub n_groups: usize,
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Keep the smaller index as root: deterministic regardless of edge order.
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

/// Rows of the similarity matrix computed per matrix product (bounds memory to
/// `BLOCK × n × variants` floats).
pub(crate) const BLOCK: usize = 256;

/// Groups slices by thumbnail similarity (see the module docs).
///
/// `thumbs[i]` must be a [`THUMB_SIZE`]² thumbnail and `labels[i]` its class.
///
/// # Errors
/// [`PreprocessError::InvalidParameter`] for mismatched lengths or thumbnail sizes; a candle
/// error if the matrix product fails.
pub fn group_near_duplicates(thumbs: &[&[f32]], labels: &[Label], params: &CheckedGroupingParams) -> Result<Grouping> {
    let n = thumbs.len();
    if labels.len() != n {
        return Err(PreprocessError::param("labels", format!("{} labels for {n} thumbnails", labels.len())));
    }
    check_thumbs(thumbs, "thumbs")?;
    let d = THUMB_SIZE * THUMB_SIZE;
    let p = params.params();
    let mut uf = UnionFind((0..n).collect());
    let classes: Vec<Vec<usize>> =
        if p.within_class { Label::ALL.iter().map(|&l| (0..n).filter(|&i| labels[i] == l).collect()).collect() } else { vec![(0..n).collect()] };
    let dev = Device::Cpu;
    for members in classes.iter().filter(|m| m.len() > 1) {
        let m = members.len();
        let set = VariantDescriptors::new(members.iter().map(|&i| thumbs[i]), params);
        let variants = set.variants;
        let var = Tensor::from_slice(&set.values, (m * variants, d), &dev)?;
        // Rigid transforms are closed under inversion (mirror∘rotation included) and the
        // correlation of two images equals that of the same transform applied to both, so
        // comparing i with every variant of j ≥ i covers the pair both ways: only the upper
        // triangle is computed, halving the matrix products.
        for start in (0..m).step_by(BLOCK) {
            let rows = BLOCK.min(m - start);
            let a = Tensor::from_vec(set.bases(start..start + rows), (rows, d), &dev)?;
            let cols = var.narrow(0, start * variants, (m - start) * variants)?.t()?;
            let sims: Vec<f32> = a.matmul(&cols)?.flatten_all()?.to_vec1()?;
            let width = (m - start) * variants;
            for r in 0..rows {
                let row = &sims[r * width..(r + 1) * width];
                // Column block c is member start + c; only those after row start + r count.
                for (c, chunk) in row.chunks_exact(variants).enumerate().skip(r + 1) {
                    if chunk.iter().any(|&v| v >= p.threshold) {
                        uf.union(members[start + r], members[start + c]);
                    }
                }
            }
        }
    }
    let mut index_of_root = std::collections::HashMap::new();
    let mut group_of = Vec::with_capacity(n);
    for i in 0..n {
        let r = uf.find(i);
        let next = index_of_root.len();
        group_of.push(*index_of_root.entry(r).or_insert(next));
    }
    Ok(Grouping { n_groups: index_of_root.len(), group_of })
}

/// Agreement of two groupings of the same items, as pairwise precision and recall of
/// "same group": of the pairs `pred` puts together, the share `reference` also does, and vice
/// versa. Undefined ratios (no pairs) are 1.0: there is nothing to disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// Pairs together in both / pairs together in `pred`.
    pub precision: f64,
    /// Pairs together in both / pairs together in `reference`.
    pub recall: f64,
    /// Pairs together in `pred`.
    pub pred_pairs: u64,
    /// Pairs together in `reference`.
    pub reference_pairs: u64,
    /// Pairs together in both.
    pub common_pairs: u64,
}

/// Computes [`PairAgreement`] from two group labellings (any hashable ids), in O(n).
///
/// # Errors
/// [`PreprocessError::InvalidParameter`] if the lengths differ.
pub fn pairwise_agreement<A, B>(pred: &[A], reference: &[B]) -> Result<PairAgreement>
where
    A: std::hash::Hash + Eq,
    B: std::hash::Hash + Eq,
{
    use std::collections::HashMap;
    if pred.len() != reference.len() {
        return Err(PreprocessError::param("reference", format!("{} items against {}", reference.len(), pred.len())));
    }
    let pairs = |c: u64| c * c.saturating_sub(1) / 2;
    let mut a: HashMap<&A, u64> = HashMap::new();
    let mut b: HashMap<&B, u64> = HashMap::new();
    let mut ab: HashMap<(&A, &B), u64> = HashMap::new();
    for (x, y) in pred.iter().zip(reference) {
        *a.entry(x).or_default() += 1;
        *b.entry(y).or_default() += 1;
        *ab.entry((x, y)).or_default() += 1;
    }
    let pred_pairs: u64 = a.values().map(|&c| pairs(c)).sum();
    let reference_pairs: u64 = b.values().map(|&c| pairs(c)).sum();
    let common_pairs: u64 = ab.values().map(|&c| pairs(c)).sum();
    let r = |num: u64, den: u64| if den == 0 { 1.0 } else { num as f64 / den as f64 };
    Ok(PairAgreement { precision: r(common_pairs, pred_pairs), recall: r(common_pairs, reference_pairs), pred_pairs, reference_pairs, common_pairs })
}

/// Reads a group CSV with a header naming at least `file` and `group` columns (like
/// `near_duplicate_groups.csv` of Br35H, or the `groups.csv` this crate writes); returns
/// `(file, group)` pairs. Plain comma-separated values without quoting.
///
/// # Errors
/// [`PreprocessError::Io`] or [`PreprocessError::Parse`] naming the file and line.
pub fn read_group_csv(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| PreprocessError::io(path, e))?;
    let parse = |reason: String| PreprocessError::Parse { path: path.to_path_buf(), reason };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| parse("empty file".into()))?.split(',').map(str::trim).collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| parse(format!("no {name:?} column in header")));
    let (fc, gc) = (col("file")?, col("group")?);
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cells: Vec<&str> = l.split(',').map(str::trim).collect();
            match (cells.get(fc), cells.get(gc)) {
                (Some(f), Some(g)) => Ok((f.to_string(), g.to_string())),
                _ => Err(parse(format!("line {}: expected at least {} columns", i + 2, fc.max(gc) + 1))),
            }
        })
        .collect()
}

/// Joins two groupings of the same items: two items share a group in the result when a chain
/// of "same group in `ours`" or "same group in `reference`" links them. Use it to honour a
/// reference grouping (say the one shipped with a data set) on top of the computed one, so a
/// split respects both. Items without a reference group (`None`) keep only their own links.
/// Each result group is named by the `ours` id of its first item.
///
/// # Errors
/// [`PreprocessError::InvalidParameter`] if the lengths differ.
pub fn union_groupings(ours: &[String], reference: &[Option<String>]) -> Result<Vec<String>> {
    use std::collections::HashMap;
    if ours.len() != reference.len() {
        return Err(PreprocessError::param("reference", format!("{} items against {}", reference.len(), ours.len())));
    }
    let mut uf = UnionFind((0..ours.len()).collect());
    let mut first_ours: HashMap<&str, usize> = HashMap::new();
    let mut first_ref: HashMap<&str, usize> = HashMap::new();
    for i in 0..ours.len() {
        let j = *first_ours.entry(ours[i].as_str()).or_insert(i);
        uf.union(i, j);
        if let Some(r) = &reference[i] {
            let j = *first_ref.entry(r.as_str()).or_insert(i);
            uf.union(i, j);
        }
    }
    // Roots are the smallest index of each component (see UnionFind::union).
    Ok((0..ours.len()).map(|i| ours[uf.find(i)].clone()).collect())
}

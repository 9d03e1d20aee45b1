//! Near-duplicate groups: copies of one slice that were re-scaled, re-cropped, contrast-changed,
//! sharpened, slightly rotated or mirrored must land in the same split, or the test set leaks.
//!
//! Algorithm: each slice has a [`THUMB_SIZE`]² thumbnail of its tight head crop (so scale and
//! crop do not matter); thumbnails are centred and scaled to unit norm, so a dot product is
//! Pearson's correlation (blind to brightness and contrast). Each thumbnail is compared with
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
    /// Correlation at or above which two slices are near-duplicates. Default 0.93.
    pub threshold: f32,
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
        GroupingParams { threshold: 0.93, max_rotation_deg: 10.0, rotation_step_deg: 5.0, mirror: true, within_class: true }
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
            out[y * side + x] = (1.0 - fy) * ((1.0 - fx) * p(x0, y0) + fx * p(x1, y0))
                + fy * ((1.0 - fx) * p(x0, y1) + fx * p(x1, y1));
        }
    }
    out
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
const BLOCK: usize = 256;

/// Groups slices by thumbnail similarity (see the module docs).
///
/// `thumbs[i]` must be a [`THUMB_SIZE`]² thumbnail and `labels[i]` its class.
///
/// # Errors
/// [`PreprocessError::InvalidParameter`] for mismatched lengths or thumbnail sizes; a candle
/// error if the matrix product fails.
pub fn group_near_duplicates(
    thumbs: &[&[f32]],
    labels: &[Label],
    params: &CheckedGroupingParams,
) -> Result<Grouping> {
    let n = thumbs.len();
    if labels.len() != n {
        return Err(PreprocessError::param("labels", format!("{} labels for {n} thumbnails", labels.len())));
    }
    let d = THUMB_SIZE * THUMB_SIZE;
    if let Some(i) = thumbs.iter().position(|t| t.len() != d) {
        return Err(PreprocessError::param("thumbs", format!("thumbnail {i} has {} values, expected {d}", thumbs[i].len())));
    }
    let p = params.params();
    let angles = params.angles();
    let mirrors: &[bool] = if p.mirror { &[false, true] } else { &[false] };
    let variants = angles.len() * mirrors.len();

    let mut uf = UnionFind((0..n).collect());
    let classes: Vec<Vec<usize>> = if p.within_class {
        Label::ALL.iter().map(|&l| (0..n).filter(|&i| labels[i] == l).collect()).collect()
    } else {
        vec![(0..n).collect()]
    };
    let dev = Device::Cpu;
    for members in classes.iter().filter(|m| m.len() > 1) {
        let m = members.len();
        let base: Vec<f32> = members
            .iter()
            .flat_map(|&i| {
                let mut v = thumbs[i].to_vec();
                standardise(&mut v);
                v
            })
            .collect();
        let mut var = Vec::with_capacity(m * variants * d);
        for &i in members {
            for &mirror in mirrors {
                for &a in &angles {
                    let mut v = rotate(thumbs[i], THUMB_SIZE, a, mirror);
                    standardise(&mut v);
                    var.extend(v);
                }
            }
        }
        let var_t = Tensor::from_vec(var, (m * variants, d), &dev)?.t()?;
        let mut best = vec![f32::NEG_INFINITY; m * m];
        for start in (0..m).step_by(BLOCK) {
            let rows = BLOCK.min(m - start);
            let a = Tensor::from_slice(&base[start * d..(start + rows) * d], (rows, d), &dev)?;
            let sims: Vec<f32> = a.matmul(&var_t)?.flatten_all()?.to_vec1()?;
            for r in 0..rows {
                let row = &sims[r * m * variants..(r + 1) * m * variants];
                for (j, chunk) in row.chunks_exact(variants).enumerate() {
                    best[(start + r) * m + j] = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                }
            }
        }
        for a in 0..m {
            for b in a + 1..m {
                // Symmetrise: rotating a towards b or b towards a.
                if best[a * m + b].max(best[b * m + a]) >= p.threshold {
                    uf.union(members[a], members[b]);
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
    Ok(PairAgreement {
        precision: r(common_pairs, pred_pairs),
        recall: r(common_pairs, reference_pairs),
        pred_pairs,
        reference_pairs,
        common_pairs,
    })
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

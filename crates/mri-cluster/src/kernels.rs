//! Clustering kernels specialised for what the techniques need: k = 2 KMeans on 3-D points
//! (per-image), k = 2 KMeans on dense rows (global), and DBSCAN on pixel-grid points. linfa's
//! general implementations are the reference they are tested against (tests/cluster.rs) and
//! benchmarked beside (benches/cluster.rs).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Result of a k = 2 KMeans.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoMeans<const D: usize> {
    /// The two centroids.
    pub centroids: [[f32; D]; 2],
    /// Cluster (0 or 1) of every point.
    pub assignment: Vec<u8>,
    /// Sum of squared distances to the assigned centroid.
    pub inertia: f64,
}

fn d2<const D: usize>(a: &[f32; D], b: &[f32; D]) -> f32 {
    let mut s = 0f32;
    for k in 0..D {
        let d = a[k] - b[k];
        s += d * d;
    }
    s
}

/// k = 2 KMeans (k-means++ initialisation from `seed`, Lloyd iterations until the assignment
/// stops changing or `max_iter`), best of `n_init` runs by inertia. Needs at least one point.
pub fn kmeans2<const D: usize>(points: &[[f32; D]], n_init: usize, max_iter: usize, seed: u64) -> TwoMeans<D> {
    let n = points.len();
    assert!(n > 0, "kmeans2 needs at least one point");
    let mut best: Option<TwoMeans<D>> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..n_init.max(1) {
        // k-means++: first centre uniform, second with probability ∝ squared distance.
        let c0 = points[rng.gen_range(0..n)];
        let dist: Vec<f32> = points.iter().map(|p| d2(p, &c0)).collect();
        let total: f64 = dist.iter().map(|&d| d as f64).sum();
        let c1 = if total > 0.0 {
            let mut r = rng.gen_range(0.0..total);
            let mut pick = n - 1;
            for (i, &d) in dist.iter().enumerate() {
                r -= d as f64;
                if r <= 0.0 {
                    pick = i;
                    break;
                }
            }
            points[pick]
        } else {
            c0
        };
        let mut c = [c0, c1];
        let mut assignment = vec![0u8; n];
        for it in 0..max_iter.max(1) {
            let mut changed = false;
            let mut sum = [[0f64; D]; 2];
            let mut count = [0usize; 2];
            for (p, a) in points.iter().zip(assignment.iter_mut()) {
                let k = u8::from(d2(p, &c[1]) < d2(p, &c[0]));
                if *a != k || it == 0 {
                    changed |= *a != k;
                    *a = k;
                }
                count[k as usize] += 1;
                for j in 0..D {
                    sum[k as usize][j] += p[j] as f64;
                }
            }
            for k in 0..2 {
                if count[k] > 0 {
                    for j in 0..D {
                        c[k][j] = (sum[k][j] / count[k] as f64) as f32;
                    }
                }
            }
            if !changed && it > 0 {
                break;
            }
        }
        let inertia: f64 = points.iter().zip(&assignment).map(|(p, &a)| d2(p, &c[a as usize]) as f64).sum();
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(TwoMeans { centroids: c, assignment, inertia });
        }
    }
    best.expect("at least one run")
}

/// k = 2 KMeans over `n` dense rows of length `dim` (`rows.len() = n·dim`): k-means++ from
/// `seed`, Lloyd until stable or `max_iter`, best of `n_init`. Returns the two centroids
/// (each `dim` long), the assignment and the inertia. Rows are processed in parallel.
pub fn kmeans2_dense(rows: &[f32], dim: usize, n_init: usize, max_iter: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<u8>, f64) {
    let n = rows.len() / dim;
    assert!(n > 0 && rows.len() == n * dim, "kmeans2_dense needs whole rows");
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<(Vec<Vec<f32>>, Vec<u8>, f64)> = None;
    for _ in 0..n_init.max(1) {
        let c0 = row(rng.gen_range(0..n)).to_vec();
        let d0: Vec<f32> = (0..n).into_par_iter().map(|i| dist(row(i), &c0)).collect();
        let total: f64 = d0.iter().map(|&d| d as f64).sum();
        let mut pick = n - 1;
        if total > 0.0 {
            let mut r = rng.gen_range(0.0..total);
            for (i, &d) in d0.iter().enumerate() {
                r -= d as f64;
                if r <= 0.0 {
                    pick = i;
                    break;
                }
            }
        }
        let mut c = vec![c0, row(pick).to_vec()];
        let mut assignment = vec![u8::MAX; n];
        for _ in 0..max_iter.max(1) {
            let new: Vec<u8> = (0..n).into_par_iter().map(|i| u8::from(dist(row(i), &c[1]) < dist(row(i), &c[0]))).collect();
            let changed = new != assignment;
            assignment = new;
            for (k, ck) in c.iter_mut().enumerate() {
                let members: Vec<usize> = (0..n).filter(|&i| assignment[i] as usize == k).collect();
                if members.is_empty() {
                    continue;
                }
                let mut sum = vec![0f64; dim];
                for &i in &members {
                    for (s, &v) in sum.iter_mut().zip(row(i)) {
                        *s += v as f64;
                    }
                }
                *ck = sum.iter().map(|s| (s / members.len() as f64) as f32).collect();
            }
            if !changed {
                break;
            }
        }
        let inertia: f64 = (0..n).into_par_iter().map(|i| dist(row(i), &c[assignment[i] as usize]) as f64).sum();
        if best.as_ref().is_none_or(|b| inertia < b.2) {
            best = Some((c, assignment, inertia));
        }
    }
    best.expect("at least one run")
}

/// DBSCAN on points that sit on an integer pixel grid, with features
/// (x, y, error·`error_scale`) in pixel units. Two points are neighbours when their distance
/// is ≤ `eps`; a point is core when its neighbourhood (itself included, as in scikit-learn and
/// linfa) holds at least `min_points`. Because spatial distance bounds the full distance, each
/// neighbourhood query only visits the (2⌊eps⌋+1)² grid cells around a point.
///
/// `points` are (x, y, error); `side` is the grid side. Returns each point's cluster
/// (`None` = noise).
pub fn dbscan_grid(points: &[(u16, u16, f32)], side: usize, error_scale: f32, eps: f32, min_points: usize) -> Vec<Option<usize>> {
    let mut id = vec![u32::MAX; side * side];
    for (i, &(x, y, _)) in points.iter().enumerate() {
        id[y as usize * side + x as usize] = i as u32;
    }
    let r = eps.floor() as i32;
    let eps2 = eps * eps;
    let offsets: Vec<(i32, i32)> = (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dx, dy))).filter(|(dx, dy)| (dx * dx + dy * dy) as f32 <= eps2).collect();
    let neighbours = |i: usize, out: &mut Vec<usize>| {
        out.clear();
        let (x, y, e) = points[i];
        for &(dx, dy) in &offsets {
            let (nx, ny) = (x as i32 + dx, y as i32 + dy);
            if nx < 0 || ny < 0 || nx >= side as i32 || ny >= side as i32 {
                continue;
            }
            let j = id[ny as usize * side + nx as usize];
            if j == u32::MAX {
                continue;
            }
            let de = (points[j as usize].2 - e) * error_scale;
            if (dx * dx + dy * dy) as f32 + de * de <= eps2 {
                out.push(j as usize);
            }
        }
    };
    let mut label: Vec<Option<usize>> = vec![None; points.len()];
    let mut visited = vec![false; points.len()];
    let mut cluster = 0;
    let (mut nb, mut nb2) = (Vec::new(), Vec::new());
    for i in 0..points.len() {
        if visited[i] {
            continue;
        }
        visited[i] = true;
        neighbours(i, &mut nb);
        if nb.len() < min_points {
            continue;
        }
        label[i] = Some(cluster);
        let mut queue: Vec<usize> = nb.clone();
        while let Some(j) = queue.pop() {
            if label[j].is_none() {
                label[j] = Some(cluster);
            }
            if visited[j] {
                continue;
            }
            visited[j] = true;
            neighbours(j, &mut nb2);
            if nb2.len() >= min_points {
                queue.extend(nb2.iter().copied().filter(|&k| !visited[k] || label[k].is_none()));
            }
        }
        cluster += 1;
    }
    label
}

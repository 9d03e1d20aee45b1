//! The four techniques on hand-made maps (a bright blob vs flat noise), the interface, and
//! the kernels against linfa-clustering.

use linfa::prelude::*;
use mri_cluster::kernels::{dbscan_grid, kmeans2};
use mri_cluster::{ClusterError, DbscanParams, Detector, ErrorMapOptions, ErrorMaps, GiaemParams, GlobalKMeansParams, KMeansParams, Technique};
use mri_metrics::ThresholdCriterion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: usize = 32;

/// `n` maps of flat noise in [0, 0.3); tumour maps (even index) add a bright 7×7 blob in
/// [0.7, 1.0) at a random place. Returns maps and labels.
fn blob_maps(n: usize, seed: u64) -> (ErrorMaps, Vec<bool>) {
    blob_maps_near(n, seed, None)
}

/// As [`blob_maps`], with blobs within ±`spread` pixels of (12, 12) when `spread` is given.
fn blob_maps_near(n: usize, seed: u64, spread: Option<usize>) -> (ErrorMaps, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let mut errors = Vec::new();
    for &tumour in &labels {
        let (bx, by) = match spread {
            None => (rng.gen_range(4..SIDE - 11), rng.gen_range(4..SIDE - 11)),
            Some(s) => (rng.gen_range(12 - s..=12 + s), rng.gen_range(12 - s..=12 + s)),
        };
        for p in 0..SIDE * SIDE {
            let (x, y) = (p % SIDE, p / SIDE);
            let blob = tumour && (bx..bx + 7).contains(&x) && (by..by + 7).contains(&y);
            errors.push(if blob { rng.gen_range(0.7..1.0) } else { rng.gen_range(0.0..0.3) });
        }
    }
    (ErrorMaps::from_raw(SIDE, errors, None).unwrap(), labels)
}

#[test]
fn every_technique_separates_blobs_from_noise_on_new_maps() {
    // Blobs near one place: global KMeans compares whole maps pixel by pixel, so it can only
    // group tumours that overlap (the per-map techniques are also tested on blobs anywhere).
    let (val, val_labels) = blob_maps_near(20, 1, Some(2));
    let (test, test_labels) = blob_maps_near(20, 2, Some(2));
    for t in Technique::ALL {
        let d = t.fit_default(&val, &val_labels, ThresholdCriterion::F1).unwrap();
        assert_eq!(d.predict(&test).unwrap(), test_labels, "{t:?}");
        let scores = d.score(&test);
        let auroc = mri_metrics::auroc(&scores, &test_labels).unwrap();
        assert_eq!(auroc, 1.0, "{t:?}");
        // JSON round trip keeps the decisions.
        let back = Detector::from_json(&d.to_json()).unwrap();
        assert_eq!(back, d);
    }
}

#[test]
fn per_map_techniques_find_blobs_anywhere() {
    let (val, val_labels) = blob_maps(20, 11);
    let (test, test_labels) = blob_maps(20, 12);
    for t in [Technique::Giaem, Technique::Dbscan, Technique::Kmeans, Technique::Percentile] {
        let d = t.fit_default(&val, &val_labels, ThresholdCriterion::F1).unwrap();
        assert_eq!(d.predict(&test).unwrap(), test_labels, "{t:?}");
    }
}

#[test]
fn per_image_kmeans_picks_the_high_error_cluster_whatever_its_id() {
    let (maps, labels) = blob_maps(6, 3);
    let d = KMeansParams { coordinate_weights: vec![0.0], ..Default::default() }.fit(&maps, &labels).unwrap();
    for (i, &tumour) in labels.iter().enumerate() {
        let f = d.anomalous_fraction(&maps, i);
        if tumour {
            // The blob is 49 of 1024 pixels.
            assert!((f - 49.0 / 1024.0).abs() < 1e-9, "map {i}: {f}");
        } else {
            // Noise alone splits roughly in half; the blob maps must score far lower than that.
            assert!(f > 0.2, "map {i}: {f}");
        }
    }
    // Whichever seed numbers the clusters, the answer is the same.
    for seed in 0..5 {
        let e = mri_cluster::PerImageKMeans { seed, ..d.clone() };
        assert!((e.anomalous_fraction(&maps, 0) - 49.0 / 1024.0).abs() < 1e-9);
    }
}

#[test]
fn global_kmeans_names_the_tumour_cluster_from_labels_and_alpha_rule_works() {
    let (val, labels) = blob_maps(20, 4);
    for alpha_rule in [false, true] {
        let d = GlobalKMeansParams { alpha_rule, ..Default::default() }.fit(&val, &labels).unwrap();
        let s = d.score(&val);
        // Tumour maps sit nearer the tumour centroid.
        let mean = |want: bool| s.iter().zip(&labels).filter(|(_, &l)| l == want).map(|(v, _)| *v).sum::<f64>() / 10.0;
        assert!(mean(true) > mean(false), "alpha_rule {alpha_rule}");
        assert!(d.alpha > 0.0);
        if !alpha_rule {
            assert_eq!(d.alpha, 1.0);
        }
    }
}

#[test]
fn error_maps_normalise_and_restrict_to_the_head() {
    // 4×4: background 0 in the left column; head elsewhere.
    let side = 4;
    let orig: Vec<f32> = (0..16).map(|p| if p % 4 == 0 { 0.0 } else { 0.5 }).collect();
    let recon: Vec<f32> = (0..16).map(|p| if p % 4 == 0 { 0.9 } else { 0.5 + 0.01 * p as f32 }).collect();
    let m = ErrorMaps::from_reconstructions(&orig, &recon, side, &ErrorMapOptions::default()).unwrap();
    assert_eq!(m.region_size(0), 12);
    // Background carries no error after restriction; the head spans [0, 1].
    assert!(m.map(0).iter().zip(m.region(0)).all(|(&e, &r)| r || e == 0.0));
    let head: Vec<f32> = m.map(0).iter().zip(m.region(0)).filter(|(_, &r)| r).map(|(&e, _)| e).collect();
    assert_eq!(head.iter().cloned().fold(f32::NAN, f32::min), 0.0);
    assert_eq!(head.iter().cloned().fold(f32::NAN, f32::max), 1.0);
    let unrestricted =
        ErrorMaps::from_reconstructions(&orig, &recon, side, &ErrorMapOptions { brain_only: false, normalise: false, ..Default::default() }).unwrap();
    assert_eq!(unrestricted.region_size(0), 16);
    assert!((unrestricted.map(0)[0] - 0.9).abs() < 1e-6);
    assert!(matches!(ErrorMaps::from_reconstructions(&orig, &recon[..15], side, &ErrorMapOptions::default()), Err(ClusterError::InvalidInput(_))));
}

#[test]
fn parameters_are_checked() {
    assert!(matches!(GiaemParams { anomaly_thresholds: vec![], ..Default::default() }.check(), Err(ClusterError::InvalidParameter { .. })));
    assert!(matches!(GiaemParams { anomaly_thresholds: vec![1.5], ..Default::default() }.check(), Err(ClusterError::InvalidParameter { .. })));
    // The study's eps (0.005 in 1/254 units) is well below one pixel spacing.
    let e = DbscanParams { eps: 0.005 * 254.0 / 2.0, ..Default::default() }.check().unwrap_err();
    assert!(e.to_string().contains("pixel spacing"), "{e}");
    assert!(KMeansParams { n_init: 0, ..Default::default() }.check().is_err());
    let (maps, _) = blob_maps(4, 0);
    assert!(matches!(GiaemParams::default().fit(&maps, &[true; 4]), Err(ClusterError::InvalidInput(_))));
    let unfitted = Detector::Giaem(mri_cluster::Giaem { anomaly_threshold: 0.5, operating_point: None });
    assert!(matches!(unfitted.predict(&maps), Err(ClusterError::NotFitted)));
}

#[test]
fn kmeans_kernel_matches_linfa() {
    // Two well-separated 3-D blobs plus noise: the reference is linfa-clustering's KMeans
    // (k = 2, 10 runs); the centroids must agree (as a set) to 1e-4.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let pts: Vec<[f32; 3]> = (0..3000)
        .map(|i| {
            let c = if i % 3 == 0 { [0.8, 0.2, 0.7] } else { [0.1, 0.6, 0.3] };
            [c[0] + rng.gen_range(-0.1..0.1), c[1] + rng.gen_range(-0.1..0.1), c[2] + rng.gen_range(-0.1..0.1)]
        })
        .collect();
    let ours = kmeans2(&pts, 3, 100, 1);
    let arr = ndarray::Array2::from_shape_vec((pts.len(), 3), pts.iter().flatten().map(|&v| v as f64).collect()).unwrap();
    let ds = linfa::DatasetBase::from(arr);
    let model = linfa_clustering::KMeans::params_with_rng(2, ChaCha8Rng::seed_from_u64(3)).n_runs(10).tolerance(1e-8).fit(&ds).unwrap();
    let c = model.centroids();
    let theirs: Vec<[f64; 3]> = (0..2).map(|k| [c[[k, 0]], c[[k, 1]], c[[k, 2]]]).collect();
    let close = |a: &[f32; 3], b: &[f64; 3]| a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-4);
    let direct = close(&ours.centroids[0], &theirs[0]) && close(&ours.centroids[1], &theirs[1]);
    let swapped = close(&ours.centroids[0], &theirs[1]) && close(&ours.centroids[1], &theirs[0]);
    assert!(direct || swapped, "ours {:?} linfa {theirs:?}", ours.centroids);
}

#[test]
fn dbscan_kernel_matches_linfa() {
    // High-error pixels of blob maps, as (x, y, error·scale) points; linfa-clustering's Dbscan
    // on the same points with the same eps and min_points is the reference. Cluster ids may
    // differ, so compare the partitions: same noise set and same co-membership.
    let (maps, _) = blob_maps(4, 5);
    let scale = 10.0f32;
    for i in 0..4 {
        let pts: Vec<(u16, u16, f32)> =
            maps.map(i).iter().enumerate().filter(|(_, &e)| e >= 0.25).map(|(k, &e)| ((k % SIDE) as u16, (k / SIDE) as u16, e)).collect();
        // Radii between grid distances, so f32 / f64 rounding at the boundary cannot matter.
        for (eps, min_points) in [(1.5f32, 5usize), (2.5, 4), (1.2, 2)] {
            let ours = dbscan_grid(&pts, SIDE, scale, eps, min_points);
            let arr =
                ndarray::Array2::from_shape_vec((pts.len(), 3), pts.iter().flat_map(|&(x, y, e)| [x as f64, y as f64, (e * scale) as f64]).collect()).unwrap();
            let theirs = linfa_clustering::Dbscan::params(min_points).tolerance(eps as f64).transform(&arr).unwrap();
            for a in 0..pts.len() {
                assert_eq!(ours[a].is_none(), theirs[a].is_none(), "map {i} point {a} eps {eps} min {min_points}");
            }
            // Co-membership on a sample of pairs.
            for a in (0..pts.len()).step_by(7) {
                for b in (0..pts.len()).step_by(5) {
                    if let (Some(x), Some(y), Some(u), Some(v)) = (ours[a], ours[b], theirs[a], theirs[b]) {
                        assert_eq!(x == y, u == v, "map {i} pair ({a}, {b})");
                    }
                }
            }
        }
    }
}

#[test]
fn percentile_scores_are_region_quantiles_and_params_are_checked() {
    use mri_cluster::{Percentile, PercentileParams};
    // One 2×2 map, values 0.1..0.4, the last pixel outside the region.
    let maps = ErrorMaps::from_raw(2, vec![0.1, 0.2, 0.3, 0.4], Some(vec![true, true, true, false])).unwrap();
    let at = |q: f32| Percentile { quantile: q, operating_point: None }.score(&maps)[0];
    // Nearest rank over the three region values.
    assert_eq!((at(1.0), at(0.5), at(0.34), at(0.3)), (0.30000001192092896, 0.20000000298023224, 0.20000000298023224, 0.10000000149011612));
    for bad in [vec![], vec![0.0], vec![1.5]] {
        assert!(matches!(PercentileParams { quantiles: bad, ..Default::default() }.check(), Err(ClusterError::InvalidParameter { name: "quantiles", .. })));
    }
    // The default operating-point criterion is balanced accuracy.
    assert_eq!(PercentileParams::default().criterion, ThresholdCriterion::BalancedAccuracy);
    assert_eq!(GiaemParams::default().criterion, ThresholdCriterion::BalancedAccuracy);
}

#[test]
fn erosion_shrinks_the_head_region() {
    // A 7×7 head of ones in a 9×9 map: eroding by 2 leaves the central 3×3.
    let side = 9;
    let img: Vec<f32> = (0..side * side).map(|p| if (1..8).contains(&(p % side)) && (1..8).contains(&(p / side)) { 1.0 } else { 0.0 }).collect();
    let opts = ErrorMapOptions { normalise: false, erode_px: 2, ..Default::default() };
    let maps = ErrorMaps::from_reconstructions(&img, &vec![0.0; img.len()], side, &opts).unwrap();
    let inside: Vec<usize> = (0..side * side).filter(|&p| maps.region(0)[p]).collect();
    let expected: Vec<usize> = (0..side * side).filter(|&p| (3..6).contains(&(p % side)) && (3..6).contains(&(p / side))).collect();
    assert_eq!(inside, expected);
    // Without erosion the whole head.
    let maps = ErrorMaps::from_reconstructions(&img, &vec![0.0; img.len()], side, &ErrorMapOptions { normalise: false, ..Default::default() }).unwrap();
    assert_eq!(maps.region_size(0), 49);
}

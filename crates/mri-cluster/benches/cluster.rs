//! Criterion benches of the clustering kernels on 128×128 maps, beside linfa's general
//! implementations. Yardstick (docs/design.md, scikit-learn on the same 2-core machine): per-map
//! KMeans with one initialisation 8 ms (10 inits 0.10 s), per-map DBSCAN 53 ms, global KMeans
//! over 750 maps 0.35 s.
//!
//! `cargo bench -p mri-cluster -- 'kmeans_per_map|dbscan_per_map|global_kmeans'`

use criterion::{criterion_group, criterion_main, Criterion};
use mri_cluster::{Dbscan, DbscanParams, ErrorMaps, GlobalKMeansParams, KMeansParams, PerImageKMeans};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: usize = 128;

/// `n` maps: faint noise, and on odd maps a bright disc of radius 12.
fn maps(n: usize) -> (ErrorMaps, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut errors = Vec::with_capacity(n * SIDE * SIDE);
    let labels: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
    for &tumour in &labels {
        let (cx, cy) = (rng.gen_range(30..98) as f32, rng.gen_range(30..98) as f32);
        for p in 0..SIDE * SIDE {
            let (x, y) = ((p % SIDE) as f32, (p / SIDE) as f32);
            let inside = tumour && (x - cx).powi(2) + (y - cy).powi(2) < 144.0;
            errors.push(if inside { rng.gen_range(0.6..1.0) } else { rng.gen_range(0.0..0.35) });
        }
    }
    (ErrorMaps::from_raw(SIDE, errors, None).unwrap(), labels)
}

fn benches(c: &mut Criterion) {
    let (one, _) = maps(2);
    let km = PerImageKMeans { coordinate_weight: 1.0, n_init: 1, max_iter: KMeansParams::default().max_iter, seed: 0, polarity: 1.0, operating_point: None };
    c.bench_function("kmeans_per_map (128x128, k=2, 1 init)", |b| b.iter(|| km.anomalous_fraction(&one, 1)));
    let km10 = PerImageKMeans { n_init: 10, ..km.clone() };
    c.bench_function("kmeans_per_map (128x128, k=2, 10 inits)", |b| b.iter(|| km10.anomalous_fraction(&one, 1)));
    let p = DbscanParams::default();
    let db = Dbscan { high_error_threshold: 0.5, eps: p.eps, min_points: p.min_points, error_scale: p.error_scale, operating_point: None };
    c.bench_function("dbscan_per_map (128x128, default parameters)", |b| b.iter(|| db.largest_cluster(&one, 1)));
    // The study's DBSCAN input: every pixel of the map is a point.
    let db_all = Dbscan { high_error_threshold: 0.0, ..db.clone() };
    c.bench_function("dbscan_per_map (128x128, all 16384 pixels as points)", |b| b.iter(|| db_all.largest_cluster(&one, 1)));
    let (many, labels) = maps(750);
    let g = GlobalKMeansParams { anomaly_thresholds: vec![0.5], ..Default::default() };
    let mut group = c.benchmark_group("global_kmeans");
    group.sample_size(10);
    group.bench_function("750 maps 128x128, k=2, 10 inits (fit)", |b| b.iter(|| g.fit(&many, &labels).unwrap()));
    let g1 = GlobalKMeansParams { n_init: 1, ..g.clone() };
    group.bench_function("750 maps 128x128, k=2, 1 init (fit)", |b| b.iter(|| g1.fit(&many, &labels).unwrap()));
    group.finish();
}

criterion_group!(cluster, benches);
criterion_main!(cluster);

//! Phantom data, PNG writers and batching.

use candle_core::Device;
use mri_preprocess::png::grid;
use mri_preprocess::{decode_grey, save_grid, save_png, save_tensor_png, Dataset, GroupingParams, Label, PhantomConfig, Shuffler, SplitParams, SplitPart};

fn phantoms(size: u32, per_class: usize, seed: u64) -> Dataset {
    Dataset::phantom(&PhantomConfig { image_size: size, per_class, seed, ..Default::default() }).unwrap()
}

#[test]
fn phantoms_are_seeded_sized_and_labelled() {
    let a = phantoms(32, 6, 3);
    let b = phantoms(32, 6, 3);
    let c = phantoms(32, 6, 4);
    assert_eq!(a.items, b.items, "same seed, same slices");
    assert_ne!(a.items[0].pixels, c.items[0].pixels, "another seed, other slices");
    assert_eq!((a.count(Label::Tumour), a.count(Label::Healthy)), (6, 6));
    assert!(a.source.describe().contains("phantom"));
    for it in &a.items {
        assert_eq!(it.pixels.len(), 32 * 32);
        assert!(it.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        // A head in the middle, background at the corners: compare 8×8 region means (a single
        // centre pixel may fall in a dark ventricle).
        let mean = |x0: usize, y0: usize| (0..64).map(|k| it.pixels[(y0 + k / 8) * 32 + x0 + k % 8]).sum::<f32>() / 64.0;
        let (centre, corner) = (mean(12, 12), mean(0, 0));
        assert!(centre > 0.3 && corner < 0.1, "{}: centre {centre}, corner {corner}", it.rel_path);
    }
    // The first slices do not depend on how many are drawn.
    let more = phantoms(32, 9, 3);
    let first = |d: &Dataset| d.items.iter().find(|i| i.rel_path == "phantom/yes/00000.png").unwrap().pixels.clone();
    assert_eq!(first(&a), first(&more));
    // Other sizes work.
    assert_eq!(phantoms(17, 1, 0).items[0].pixels.len(), 17 * 17);
    assert!(Dataset::phantom(&PhantomConfig { image_size: 8, ..Default::default() }).is_err());
    assert!(Dataset::phantom(&PhantomConfig { per_class: 0, ..Default::default() }).is_err());
}

#[test]
fn tumour_phantoms_hold_lesions() {
    // Lesion cores are bright blobs inside the brain: the brightest pixel of the inner half
    // of the head is brighter, on average, in tumour slices than in healthy ones.
    let ds = phantoms(48, 30, 11);
    let inner_max = |p: &[f32]| {
        let mut m = 0f32;
        for y in 14..34 {
            for x in 14..34 {
                m = m.max(p[y * 48 + x]);
            }
        }
        m
    };
    let mean = |l: Label| {
        let v: Vec<f32> = ds.items.iter().filter(|i| i.label == l).map(|i| inner_max(&i.pixels)).collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    assert!(mean(Label::Tumour) > mean(Label::Healthy) + 0.05, "{} vs {}", mean(Label::Tumour), mean(Label::Healthy));
}

#[test]
fn phantom_groups_and_split() {
    let ds = phantoms(24, 10, 1);
    let groups = ds.near_duplicate_groups(&GroupingParams::default()).unwrap();
    assert_eq!(groups.iter().collect::<std::collections::HashSet<_>>().len(), 20, "independent draws: one group each");
    let split = ds.split(&groups, &SplitParams::with_seed(1)).unwrap();
    assert_eq!(split.items.len(), 20);
    assert_eq!(ds.indices_in(&split, SplitPart::Train).len(), 14);
}

#[test]
fn batches_and_shuffler() {
    let ds = phantoms(16, 5, 0);
    let idx: Vec<usize> = (0..ds.len()).collect();
    let sh = Shuffler::new(9);
    assert_eq!(sh.epoch_order(&idx, 2), sh.epoch_order(&idx, 2));
    assert_ne!(sh.epoch_order(&idx, 2), sh.epoch_order(&idx, 3));
    let batches = sh.batches(&idx, 0, 4);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut all: Vec<usize> = batches.concat();
    all.sort();
    assert_eq!(all, idx);
    let b = ds.batch(&batches[0], &Device::Cpu).unwrap();
    assert_eq!(b.images.dims(), &[4, 1, 16, 16]);
    let labels: Vec<u32> = b.labels.to_vec1().unwrap();
    let expected: Vec<u32> = batches[0].iter().map(|&i| ds.items[i].label.index()).collect();
    assert_eq!(labels, expected);
    let first: Vec<f32> = b.images.get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(first, ds.items[batches[0][0]].pixels);
    assert!(ds.batch(&[99], &Device::Cpu).is_err());
}

#[test]
fn png_and_grid_writers() {
    let dir = tempfile::tempdir().unwrap();
    let img: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
    let p = dir.path().join("sub/one.png");
    save_png(&p, &img, 4, 3).unwrap();
    let back = decode_grey(&std::fs::read(&p).unwrap(), &p, 1).unwrap();
    assert_eq!((back.width, back.height), (4, 3));
    for (a, b) in img.iter().zip(&back.data) {
        assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
    }
    // 5 tiles of 3×3, 2 columns, border 1 → 3 rows: 2·4+1 = 9 wide, 3·4+1 = 13 high.
    let tiles: Vec<Vec<f32>> = (0..5).map(|k| vec![k as f32 / 4.0; 9]).collect();
    let refs: Vec<&[f32]> = tiles.iter().map(Vec::as_slice).collect();
    let (g, w, h) = grid(&refs, 3, 2, 1).unwrap();
    assert_eq!((w, h), (9, 13));
    assert_eq!(g[0], 0.5, "border");
    assert_eq!(g[w + 1], 0.0, "first tile");
    assert_eq!(g[5 * w + 5], 0.75, "fourth tile (row 1, col 1)");
    save_grid(&dir.path().join("grid.png"), &refs, 3, 2).unwrap();
    let t = candle_core::Tensor::from_vec(img.clone(), (1, 3, 4), &Device::Cpu).unwrap();
    save_tensor_png(&dir.path().join("t.png"), &t).unwrap();
    assert!(grid(&refs, 4, 2, 1).is_err());
}

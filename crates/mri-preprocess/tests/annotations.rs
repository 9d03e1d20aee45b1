//! Annotation masks: VIA JSON parsing, and rasterisation through the preprocessing geometry
//! (a drawn "tumour" and its outline must land on the same output pixels).

mod common;

use common::{encode, write};
use image::{ImageBuffer, Luma};
use mri_preprocess::annotations::mask_area_fraction;
use mri_preprocess::phantom::{phantom_slice, phantom_slice_with_mask};
use mri_preprocess::{rasterise, Annotations, CacheMode, Dataset, Geometry, LoadOptions, PhantomConfig, PreprocessConfig, PreprocessError, Shape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// A 220×160 head (grey ellipse on black, off centre) with a white rectangle "tumour" at
/// x 120..150, y 60..95 and a white disc "tumour" centred (100, 110), radius 12.
fn annotated_head() -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_fn(220, 160, |x, y| {
        let (u, v) = ((x as f32 - 115.0) / 80.0, (y as f32 - 85.0) / 60.0);
        let in_rect = (120..150).contains(&x) && (60..95).contains(&y);
        let in_disc = (x as f32 + 0.5 - 100.0).powi(2) + (y as f32 + 0.5 - 110.0).powi(2) < 144.0;
        Luma([if in_rect || in_disc {
            255
        } else if u * u + v * v < 1.0 {
            110
        } else {
            0
        }])
    })
}

const VIA: &str = r#"{
  "t0.png1": {"filename": "t0.png", "size": null, "regions": [
    {"shape_attributes": {"name": "polygon", "all_points_x": [120, 150, 150, 120], "all_points_y": [60, 60, 95, 95]}, "region_attributes": {}},
    {"shape_attributes": {"name": "circle", "cx": 100, "cy": 110, "r": 12}, "region_attributes": {}}
  ]},
  "other.jpg5": {"filename": "other.jpg", "size": 5, "regions": {"0": {"shape_attributes": {"name": "ellipse", "cx": 5, "cy": 5, "rx": 2, "ry": 1, "theta": 0.5}}}}
}"#;

#[test]
fn masks_land_on_the_annotated_structures_after_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/t0.png", &encode(&annotated_head(), image::ImageFormat::Png));
    write(dir.path(), "no/n0.png", &encode(&annotated_head(), image::ImageFormat::Png));
    for side in [32u32, 64, 128] {
        let ds = Dataset::load(dir.path(), &LoadOptions { preprocess: PreprocessConfig::with_size(side), cache: CacheMode::Disabled, ..Default::default() })
            .unwrap();
        let ann = Annotations::from_via_str(VIA, Path::new("via.json")).unwrap();
        let found = ds.tumour_masks(&ann).unwrap();
        assert_eq!(found.unmatched, vec!["other.jpg".to_string()]);
        let i = ds.items.iter().position(|it| it.rel_path == "yes/t0.png").unwrap();
        assert!(found.masks[1 - i].is_none(), "healthy slices get no mask");
        let mask = found.masks[i].as_ref().unwrap();
        // The white structures are the brightest pixels of the preprocessed slice (white 1.0,
        // head ≈ 0.43: threshold half-way, i.e. at half coverage of a pixel).
        let bright: Vec<bool> = ds.items[i].pixels.iter().map(|&p| p > 0.72).collect();
        let s = side as i64;
        let iou = |dx: i64, dy: i64| {
            let (mut inter, mut union) = (0usize, 0usize);
            for y in 0..s {
                for x in 0..s {
                    let m = (0..s).contains(&(x - dx)) && (0..s).contains(&(y - dy)) && mask[((y - dy) * s + x - dx) as usize];
                    let b = bright[(y * s + x) as usize];
                    inter += usize::from(m && b);
                    union += usize::from(m || b);
                }
            }
            inter as f64 / union as f64
        };
        let aligned = iou(0, 0);
        // Lesions are 2–5 px across at 32 px, so edges weigh more there.
        assert!(aligned > if side == 32 { 0.65 } else { 0.85 }, "{side} px: IoU {aligned:.3}");
        // No shift by a pixel fits better: the geometry has no offset.
        for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
            assert!(iou(dx, dy) < aligned, "{side} px: shift ({dx}, {dy}) fits better than none");
        }
    }
}

#[test]
fn map_and_unmap_are_inverse_and_match_the_square_copy() {
    let g = Geometry { width: 300, height: 200, bbox: [31, 20, 250, 181], square_side: 269 };
    for (x, y) in [(31.0, 20.0), (100.5, 77.25), (249.0, 180.0)] {
        let (u, v) = g.map_point(x, y, 64);
        let (x2, y2) = g.unmap_point(u, v, 64);
        assert!((x - x2).abs() < 1e-9 && (y - y2).abs() < 1e-9);
    }
    // Box 219×161 in a 269 square: offsets (269−219)/2 = 25 and (269−161)/2 = 54 (integer, as the copy).
    assert_eq!(g.map_point(31.0, 20.0, 269), (25.0, 54.0));
}

#[test]
fn shapes_and_rasterising_by_hand() {
    let g = Geometry { width: 16, height: 16, bbox: [0, 0, 16, 16], square_side: 16 };
    // A rect covering pixels 4..8 × 2..6 at identity scale.
    let m = rasterise(&[Shape::Rect { x: 4.0, y: 2.0, width: 4.0, height: 4.0 }], &g, 16);
    let on: Vec<(usize, usize)> = (0..256).filter(|&i| m[i]).map(|i| (i % 16, i / 16)).collect();
    assert_eq!(on.len(), 16);
    assert!(on.iter().all(|&(x, y)| (4..8).contains(&x) && (2..6).contains(&y)));
    // Rotating an ellipse by 90° swaps its axes.
    let e = Shape::Ellipse { cx: 8.0, cy: 8.0, rx: 6.0, ry: 2.0, theta: std::f64::consts::FRAC_PI_2 };
    assert!(e.contains(8.0, 13.0) && !e.contains(13.0, 8.0));
}

#[test]
fn bad_annotation_files_name_the_file_and_the_reason() {
    let p = Path::new("ann.json");
    let e = Annotations::from_via_str("[1, 2]", p).unwrap_err().to_string();
    assert!(e.contains("ann.json") && e.contains("object"), "{e}");
    let e = Annotations::from_via_str(r#"{"k": {"filename": "a.jpg", "regions": [{"shape_attributes": {"name": "point", "cx": 1, "cy": 2}}]}}"#, p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported region shape \"point\""), "{e}");
    let e = Annotations::from_via_str(r#"{"k": {"filename": "a.jpg", "regions": [{"shape_attributes": {"name": "circle", "cx": 1, "cy": 2}}]}}"#, p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"r\""), "{e}");
    let e = Annotations::from_via_json(Path::new("/nonexistent/ann.json")).unwrap_err();
    assert!(matches!(e, PreprocessError::Io { .. }));
    // An annotation recorded for a file of another size is refused.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/t0.png", &encode(&annotated_head(), image::ImageFormat::Png));
    write(dir.path(), "no/n0.png", &encode(&annotated_head(), image::ImageFormat::Png));
    let ds = Dataset::load(dir.path(), &LoadOptions { preprocess: PreprocessConfig::with_size(32), cache: CacheMode::Disabled, ..Default::default() }).unwrap();
    let ann = Annotations::from_via_str(&VIA.replace("\"size\": null", "\"size\": 17"), p).unwrap();
    let e = ds.tumour_masks(&ann).unwrap_err().to_string();
    assert!(e.contains("t0.png is annotated for a 17-byte file"), "{e}");
}

#[test]
fn phantom_masks_follow_the_lesions() {
    let mut a = ChaCha8Rng::seed_from_u64(3);
    let mut b = ChaCha8Rng::seed_from_u64(3);
    let (img, mask) = phantom_slice_with_mask(&mut a, 32, true, 0.02);
    assert_eq!(img, phantom_slice(&mut b, 32, true, 0.02), "same draws, same pixels");
    assert!(mask.iter().any(|&m| m));
    let cfg = PhantomConfig { image_size: 32, per_class: 10, ..Default::default() };
    let ds = Dataset::phantom(&cfg).unwrap();
    let masks = Dataset::phantom_masks(&cfg).unwrap();
    assert_eq!(masks.len(), ds.items.len());
    for (item, m) in ds.items.iter().zip(&masks) {
        assert_eq!(m.is_some(), item.label.is_tumour(), "{}", item.rel_path);
    }
    let f = mask_area_fraction(&masks);
    assert!(f > 0.01 && f < 0.3, "lesion area fraction {f}");
}

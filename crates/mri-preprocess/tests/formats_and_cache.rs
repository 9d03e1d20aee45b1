//! Formats detected by content, folder conventions, the preprocessing geometry and the cache.

mod common;

use common::*;
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};
use mri_preprocess::image_ops::head_bbox;
use mri_preprocess::{decode_grey, CacheMode, ClassMap, Dataset, GreyImage, Label, LoadOptions, PreprocessConfig};

fn opts(cache: CacheMode, size: u32) -> LoadOptions {
    LoadOptions { cache, preprocess: PreprocessConfig::with_size(size), ..Default::default() }
}

#[test]
fn formats_are_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let base = head_luma(40, 36);
    let rgb = DynamicImage::ImageRgb8(ImageBuffer::from_fn(40, 36, |x, y| {
        let v = base.get_pixel(x, y)[0];
        Rgb([v, v, v.saturating_sub(10)])
    }));
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(40, 36, |x, y| {
        let v = base.get_pixel(x, y)[0];
        Rgba([v, v, v, 255])
    }));
    let grey_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(40, 36, |x, y| LumaA([base.get_pixel(x, y)[0], 255])));
    // PNGs named .jpg, like Br35H's y355 or no400.
    write(dir.path(), "yes/a.jpg", &encode_dyn(&rgba, image::ImageFormat::Png));
    write(dir.path(), "yes/b.jpg", &encode_dyn(&grey_alpha, image::ImageFormat::Png));
    write(dir.path(), "yes/c.jpg", &encode_dyn(&rgb, image::ImageFormat::Jpeg));
    write(dir.path(), "no/d.png", &encode(&base, image::ImageFormat::Jpeg));
    write(dir.path(), "no/e.jpg", &encode(&base, image::ImageFormat::Png));
    let ds = Dataset::load(dir.path(), &opts(CacheMode::Disabled, 24)).unwrap();
    assert_eq!(ds.len(), 5);
    for it in &ds.items {
        assert_eq!(it.pixels.len(), 24 * 24, "{}", it.rel_path);
        assert!(it.pixels.iter().all(|v| (0.0..=1.0).contains(v)), "{}", it.rel_path);
        let (mn, mx) = it.pixels.iter().fold((1f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((mn, mx), (0.0, 1.0), "{} is scaled to [0, 1]", it.rel_path);
    }
}

#[test]
fn sixteen_bit_grey_keeps_its_precision() {
    // Values 0..1000 of 65535: an 8-bit conversion would leave 4 grey levels.
    let img = ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(64, 64, |x, y| Luma([((x * 16 + y / 4) % 1000) as u16]));
    let bytes = encode_dyn(&DynamicImage::ImageLuma16(img), image::ImageFormat::Png);
    let g = decode_grey(&bytes, std::path::Path::new("x16.png"), 16).unwrap();
    let mut levels: Vec<u32> = g.data.iter().map(|v| (v * 65535.0).round() as u32).collect();
    levels.sort();
    levels.dedup();
    assert!(levels.len() > 500, "only {} levels", levels.len());
    assert_eq!(*levels.last().unwrap(), 999);
}

#[test]
fn folder_conventions() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "YES/y0.jpg", &head_png(40, 40));
    write(dir.path(), "No/n0.jpg", &head_png(40, 40));
    write(dir.path(), "pred/p0.jpg", b"unlabelled: ignored even though it is not an image");
    write(dir.path(), "other/x.jpg", b"ignored");
    write(dir.path(), "YES/.DS_Store", b"hidden: ignored");
    write(dir.path(), ".hidden/y.jpg", b"ignored");
    write(dir.path(), "YES/sub/deeper.jpg", b"subfolders of class folders are ignored");
    let ds = Dataset::load(dir.path(), &opts(CacheMode::Disabled, 16)).unwrap();
    let got: Vec<(&str, Label)> = ds.items.iter().map(|i| (i.rel_path.as_str(), i.label)).collect();
    assert_eq!(got, [("No/n0.jpg", Label::Healthy), ("YES/y0.jpg", Label::Tumour)]);
}

#[test]
fn class_map_maps_other_names() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tumor/a.png", &head_png(40, 40));
    write(dir.path(), "no_tumor/b.png", &head_png(40, 40));
    let mut o = opts(CacheMode::Disabled, 16);
    assert!(Dataset::load(dir.path(), &o).is_err());
    o.classes = ClassMap::parse("tumor=yes, no_tumor=no").unwrap();
    let ds = Dataset::load(dir.path(), &o).unwrap();
    assert_eq!((ds.count(Label::Tumour), ds.count(Label::Healthy)), (1, 1));
    assert!(ClassMap::parse("tumor=yes").is_err());
    assert!(ClassMap::parse("tumor=maybe,x=no").is_err());
}

#[test]
fn head_box_ignores_letterbox_bars_and_burnt_in_text() {
    // 200×120: letterbox bars (rows 0..10 and 110..120 black), a head ellipse centred at
    // (100, 60) with radii 40×45, and a bright text block at the top left, apart from the head.
    let (w, h) = (200usize, 120usize);
    let mut data = vec![0.02f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = ((x as f32 - 100.0) / 40.0, (y as f32 - 60.0) / 45.0);
            if u * u + v * v <= 1.0 {
                data[y * w + x] = if u * u + v * v > 0.8 { 0.9 } else { 0.5 };
            }
            if (4..30).contains(&x) && (12..20).contains(&y) {
                data[y * w + x] = 1.0;
            }
            if !(10..110).contains(&y) {
                data[y * w + x] = 0.0;
            }
        }
    }
    let [x0, y0, x1, y1] = head_bbox(&GreyImage { width: w, height: h, data });
    assert!((58..=62).contains(&x0) && (138..=142).contains(&x1), "x: {x0}..{x1}");
    assert!((14..=17).contains(&y0) && (104..=107).contains(&y1), "y: {y0}..{y1}");
}

#[test]
fn preprocessing_is_deterministic_and_cached() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    valid_folder(data.path());
    let o = opts(CacheMode::Dir(cache.path().to_path_buf()), 32);
    let cold = Dataset::load(data.path(), &o).unwrap();
    assert_eq!((cold.stats.decoded, cold.stats.cache_hits), (4, 0));
    let warm = Dataset::load(data.path(), &o).unwrap();
    assert_eq!((warm.stats.decoded, warm.stats.cache_hits), (0, 4));
    assert_eq!(cold.items, warm.items, "cache round trip is bit-exact");
    let uncached = Dataset::load(data.path(), &opts(CacheMode::Disabled, 32)).unwrap();
    assert_eq!(cold.items, uncached.items);

    // Another size is another key.
    let other = Dataset::load(data.path(), &opts(CacheMode::Dir(cache.path().to_path_buf()), 24)).unwrap();
    assert_eq!(other.stats.cache_hits, 0);

    // A damaged entry is a miss and gets rewritten.
    let entries: Vec<_> = walk(cache.path()).into_iter().filter(|p| p.to_string_lossy().contains("-s32-")).collect();
    assert_eq!(entries.len(), 4);
    std::fs::write(&entries[0], b"MRIS garbage").unwrap();
    let again = Dataset::load(data.path(), &o).unwrap();
    assert_eq!((again.stats.decoded, again.stats.cache_hits), (1, 3));
    assert_eq!(again.items, cold.items);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

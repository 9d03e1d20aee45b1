//! Tiny fixtures made in code: image files written into temporary data folders.
#![allow(dead_code)]

use std::path::Path;

use image::{ImageBuffer, Luma};

/// A 48×40 8-bit "head": a bright ellipse on black with a darker blob, as PNG bytes.
pub fn head_png(w: u32, h: u32) -> Vec<u8> {
    encode(&head_luma(w, h), image::ImageFormat::Png)
}

pub fn head_luma(w: u32, h: u32) -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        let (u, v) = ((x as f32 - w as f32 / 2.0) / (w as f32 * 0.35), (y as f32 - h as f32 / 2.0) / (h as f32 * 0.4));
        let r = u * u + v * v;
        Luma([if r < 0.2 {
            90
        } else if r < 1.0 {
            200
        } else {
            0
        }])
    })
}

pub fn encode(img: &ImageBuffer<Luma<u8>, Vec<u8>>, fmt: image::ImageFormat) -> Vec<u8> {
    encode_dyn(&image::DynamicImage::ImageLuma8(img.clone()), fmt)
}

pub fn encode_dyn(img: &image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).expect("encode");
    out.into_inner()
}

pub fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A valid folder with two slices per class.
pub fn valid_folder(root: &Path) {
    for i in 0..2 {
        write(root, &format!("yes/y{i}.jpg"), &head_png(48 + i, 40));
        write(root, &format!("no/no{i}.jpg"), &head_png(40, 48 + i));
    }
}

//! Tumour outlines in VGG Image Annotator (VIA 2) JSON — the format Br35H ships in
//! `Br35H-Mask-RCNN/annotations_*.json` — read and rasterised through the **same geometry as
//! the preprocessing** (head crop, centred square, resize), so a mask lines up pixel for pixel
//! with its preprocessed slice.
//!
//! VIA's JSON maps `filename + size` keys to `{filename, size, regions: [{shape_attributes}]}`;
//! `regions` is a list (VIA 2) or an object keyed by index (VIA 1). Shapes: `polygon`
//! (`all_points_x`, `all_points_y`), `ellipse` (`cx`, `cy`, `rx`, `ry`, `theta` in radians),
//! `circle` (`cx`, `cy`, `r`), `rect` (`x`, `y`, `width`, `height`), in original-image pixels.
//!
//! ```no_run
//! use mri_preprocess::{Annotations, Dataset, LoadOptions};
//! use std::path::Path;
//! let root = Path::new("../shared/data/br35h");
//! let ds = Dataset::load(root, &LoadOptions::default())?;
//! let ann = Annotations::from_via_json(&root.join("Br35H-Mask-RCNN/annotations_all.json"))?;
//! let found = ds.tumour_masks(&ann)?;
//! println!("{} slices have a mask", found.masks.iter().flatten().count());
//! # Ok::<(), mri_preprocess::PreprocessError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::{DataSource, Dataset};
use crate::error::{PreprocessError, Result};
use crate::image_ops::Geometry;

/// One annotated region, in original-image pixel coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Shape {
    /// A closed polygon (even–odd rule).
    Polygon {
        /// Vertex x coordinates.
        xs: Vec<f64>,
        /// Vertex y coordinates.
        ys: Vec<f64>,
    },
    /// An ellipse with semi-axes `rx`, `ry`, rotated by `theta` radians.
    Ellipse {
        /// Centre x.
        cx: f64,
        /// Centre y.
        cy: f64,
        /// Semi-axis along the rotated x direction.
        rx: f64,
        /// Semi-axis along the rotated y direction.
        ry: f64,
        /// Rotation in radians.
        theta: f64,
    },
    /// An axis-aligned rectangle.
    Rect {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
        /// Width.
        width: f64,
        /// Height.
        height: f64,
    },
}

impl Shape {
    /// Whether the point lies inside the shape.
    pub fn contains(&self, px: f64, py: f64) -> bool {
        match self {
            Shape::Polygon { xs, ys } => {
                // Even–odd ray casting: a few lines, exact for any simple or self-touching outline.
                let n = xs.len();
                let mut inside = false;
                let mut j = n - 1;
                for i in 0..n {
                    if (ys[i] > py) != (ys[j] > py) && px < (xs[j] - xs[i]) * (py - ys[i]) / (ys[j] - ys[i]) + xs[i] {
                        inside = !inside;
                    }
                    j = i;
                }
                inside
            }
            Shape::Ellipse { cx, cy, rx, ry, theta } => {
                let (s, c) = theta.sin_cos();
                let (dx, dy) = (px - cx, py - cy);
                let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                (u / rx).powi(2) + (v / ry).powi(2) <= 1.0
            }
            Shape::Rect { x, y, width, height } => px >= *x && px <= x + width && py >= *y && py <= y + height,
        }
    }

    /// Bounding box `[x0, y0, x1, y1]` in original pixels.
    pub fn bounds(&self) -> [f64; 4] {
        match self {
            Shape::Polygon { xs, ys } => {
                let f =
                    |v: &[f64], min: bool| v.iter().copied().fold(if min { f64::INFINITY } else { f64::NEG_INFINITY }, if min { f64::min } else { f64::max });
                [f(xs, true), f(ys, true), f(xs, false), f(ys, false)]
            }
            Shape::Ellipse { cx, cy, rx, ry, .. } => {
                let r = rx.max(*ry);
                [cx - r, cy - r, cx + r, cy + r]
            }
            Shape::Rect { x, y, width, height } => [*x, *y, x + width, y + height],
        }
    }
}

/// The regions annotated on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageAnnotation {
    /// The image's file name (no folder).
    pub filename: String,
    /// The file's size in bytes as recorded by VIA (to check it is the same file).
    pub size: Option<u64>,
    /// The regions.
    pub regions: Vec<Shape>,
}

/// A VIA annotation file, by image file name.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotations {
    /// Where it was read from.
    pub path: PathBuf,
    /// Annotations by file name.
    pub images: BTreeMap<String, ImageAnnotation>,
}

fn num(path: &Path, key: &str, attrs: &Value, field: &str) -> Result<f64> {
    attrs
        .get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| PreprocessError::Parse { path: path.to_path_buf(), reason: format!("{key}: shape has no numeric {field:?}") })
}

fn parse_shape(path: &Path, key: &str, attrs: &Value) -> Result<Shape> {
    let name = attrs.get("name").and_then(Value::as_str).unwrap_or("");
    let list = |field: &str| -> Result<Vec<f64>> {
        attrs
            .get(field)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| PreprocessError::Parse { path: path.to_path_buf(), reason: format!("{key}: polygon has no numeric list {field:?}") })
    };
    let g = |field: &str| num(path, key, attrs, field);
    match name {
        "polygon" | "polyline" => {
            let (xs, ys) = (list("all_points_x")?, list("all_points_y")?);
            if xs.len() != ys.len() || xs.len() < 3 {
                return Err(PreprocessError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("{key}: polygon needs at least 3 points and as many x as y ({} x, {} y)", xs.len(), ys.len()),
                });
            }
            Ok(Shape::Polygon { xs, ys })
        }
        "ellipse" => {
            Ok(Shape::Ellipse { cx: g("cx")?, cy: g("cy")?, rx: g("rx")?, ry: g("ry")?, theta: attrs.get("theta").and_then(Value::as_f64).unwrap_or(0.0) })
        }
        "circle" => {
            let r = g("r")?;
            Ok(Shape::Ellipse { cx: g("cx")?, cy: g("cy")?, rx: r, ry: r, theta: 0.0 })
        }
        "rect" => Ok(Shape::Rect { x: g("x")?, y: g("y")?, width: g("width")?, height: g("height")? }),
        other => Err(PreprocessError::Parse {
            path: path.to_path_buf(),
            reason: format!("{key}: unsupported region shape {other:?} (expected polygon, ellipse, circle or rect)"),
        }),
    }
}

impl Annotations {
    /// Reads a VIA 1 or VIA 2 JSON file.
    ///
    /// # Errors
    /// [`PreprocessError::Io`] if it cannot be read; [`PreprocessError::Parse`] naming the file,
    /// the entry and the reason for malformed JSON or shapes.
    pub fn from_via_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PreprocessError::io(path, e))?;
        Self::from_via_str(&text, path)
    }

    /// Parses VIA JSON text; `path` is only used in error messages.
    ///
    /// # Errors
    /// As [`Annotations::from_via_json`].
    pub fn from_via_str(text: &str, path: &Path) -> Result<Self> {
        let parse = |reason: String| PreprocessError::Parse { path: path.to_path_buf(), reason };
        let root: Value = serde_json::from_str(text).map_err(|e| parse(format!("not JSON: {e}")))?;
        // VIA project files nest the image metadata under "_via_img_metadata".
        let entries = root.get("_via_img_metadata").unwrap_or(&root).as_object().ok_or_else(|| parse("expected an object of image entries".into()))?;
        let mut images = BTreeMap::new();
        for (key, entry) in entries {
            let filename = entry.get("filename").and_then(Value::as_str).ok_or_else(|| parse(format!("{key}: no \"filename\"")))?.to_string();
            let size = entry.get("size").and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|t| t.parse().ok())));
            let regions: Vec<&Value> = match entry.get("regions") {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(Value::Object(o)) => o.values().collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(parse(format!("{key}: \"regions\" is neither a list nor an object"))),
            };
            let shapes = regions.into_iter().map(|r| parse_shape(path, key, r.get("shape_attributes").unwrap_or(&Value::Null))).collect::<Result<Vec<_>>>()?;
            if images.insert(filename.clone(), ImageAnnotation { filename: filename.clone(), size, regions: shapes }).is_some() {
                return Err(parse(format!("{filename} is annotated twice")));
            }
        }
        Ok(Annotations { path: path.to_path_buf(), images })
    }

    /// Number of annotated images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether no image is annotated.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Subsamples per output pixel side: a pixel is in the mask when at least half of its
/// 4×4 subsamples are inside a region, so small lesions keep their area at 64 px.
const SUBSAMPLES: usize = 4;

/// Rasterises regions given in original-image pixels onto the `image_size`² grid of the
/// preprocessed slice whose geometry is `geometry`. Row-major; `true` = inside a region.
pub fn rasterise(regions: &[Shape], geometry: &Geometry, image_size: u32) -> Vec<bool> {
    let s = image_size as usize;
    let mut mask = vec![false; s * s];
    for shape in regions {
        let [x0, y0, x1, y1] = shape.bounds();
        let (u0, v0) = geometry.map_point(x0, y0, image_size);
        let (u1, v1) = geometry.map_point(x1, y1, image_size);
        let clamp = |v: f64| (v.max(0.0) as usize).min(s);
        for py in clamp(v0.floor())..clamp(v1.ceil() + 1.0) {
            for px in clamp(u0.floor())..clamp(u1.ceil() + 1.0) {
                let mut hits = 0;
                for sy in 0..SUBSAMPLES {
                    for sx in 0..SUBSAMPLES {
                        let u = px as f64 + (sx as f64 + 0.5) / SUBSAMPLES as f64;
                        let v = py as f64 + (sy as f64 + 0.5) / SUBSAMPLES as f64;
                        let (x, y) = geometry.unmap_point(u, v, image_size);
                        hits += usize::from(shape.contains(x, y));
                    }
                }
                if 2 * hits >= SUBSAMPLES * SUBSAMPLES {
                    mask[py * s + px] = true;
                }
            }
        }
    }
    mask
}

/// What [`Dataset::tumour_masks`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundMasks {
    /// One entry per item of the data set: its mask (`image_size²`, row-major) when the
    /// annotations hold its file name, else `None`.
    pub masks: Vec<Option<Vec<bool>>>,
    /// Annotated file names with no tumour slice of that name in the data set.
    pub unmatched: Vec<String>,
}

impl Dataset {
    /// Masks for the tumour slices whose file name the annotations hold, rasterised through
    /// each slice's preprocessing geometry.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for phantom data sets (no original geometry; use
    /// [`Dataset::phantom_masks`]); [`PreprocessError::Parse`] naming the file when the size
    /// VIA recorded differs from the file on disk (the annotation is for another version of
    /// the image).
    pub fn tumour_masks(&self, annotations: &Annotations) -> Result<FoundMasks> {
        let root = match &self.source {
            DataSource::Folder(root) => root.clone(),
            DataSource::Phantom { .. } => {
                return Err(PreprocessError::param("annotations", "phantom slices have no original images to annotate; use Dataset::phantom_masks"))
            }
        };
        let mut used = std::collections::BTreeSet::new();
        let mut masks = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let name = item.rel_path.rsplit('/').next().unwrap_or(&item.rel_path);
            let (Some(ann), Some(geometry), true) = (annotations.images.get(name), item.geometry, item.label.is_tumour()) else {
                masks.push(None);
                continue;
            };
            if let Some(size) = ann.size {
                let path = root.join(&item.rel_path);
                let on_disk = std::fs::metadata(&path).map_err(|e| PreprocessError::io(&path, e))?.len();
                if on_disk != size {
                    return Err(PreprocessError::Parse {
                        path: annotations.path.clone(),
                        reason: format!("{name} is annotated for a {size}-byte file, but {} has {on_disk} bytes", path.display()),
                    });
                }
            }
            used.insert(name.to_string());
            masks.push(Some(rasterise(&ann.regions, &geometry, self.image_size)));
        }
        let unmatched = annotations.images.keys().filter(|k| !used.contains(*k)).cloned().collect();
        Ok(FoundMasks { masks, unmatched })
    }
}

/// Mean fraction of pixels inside the mask, over the slices that have one (0 when none do).
pub fn mask_area_fraction(masks: &[Option<Vec<bool>>]) -> f64 {
    let with: Vec<&Vec<bool>> = masks.iter().flatten().collect();
    if with.is_empty() {
        return 0.0;
    }
    with.iter().map(|m| m.iter().filter(|&&v| v).count() as f64 / m.len() as f64).sum::<f64>() / with.len() as f64
}

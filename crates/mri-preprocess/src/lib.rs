//! # mri-preprocess
//!
//! Everything between a folder of brain MRI slices and a batch of tensors:
//!
//! - [`load`]: find labelled files in the Br35H layout (`yes/`, `no/`, case-insensitive, other
//!   names mappable with [`ClassMap`]); `pred/`, hidden files and other folders are ignored.
//! - [`image_ops`]: decode PNG/JPEG by content (8/16-bit, grey, RGB(A), palette), then the
//!   study's preprocessing — head bounding box, centred square filled with the image minimum,
//!   S×S, [0, 1].
//! - [`Dataset::load`]: all of it in parallel (rayon) with an on-disk [`cache`]; bad files stop
//!   the load with an error naming the file, or are skipped and listed with `skip_invalid`.
//! - [`groups`]: near-duplicate groups (rescaled, re-cropped, contrast-changed, rotated or
//!   mirrored copies of one slice) and their pairwise agreement with a reference grouping.
//! - [`split`]: one seeded, stratified, group-aware train / val / test split → `split.json`.
//! - [`phantom`]: built-in synthetic brain slices, the default data of every example, with
//!   their lesion masks ([`Dataset::phantom_masks`]).
//! - [`annotations`]: tumour outlines in VGG Image Annotator JSON (Br35H's `Br35H-Mask-RCNN/`),
//!   rasterised through each slice's preprocessing geometry ([`Dataset::tumour_masks`]).
//! - [`png`] and [`batch`]: PNG and grid writers; (N, 1, S, S) tensors and a seeded shuffler.
//!
//! ```
//! use mri_preprocess::{Dataset, GroupingParams, Label, PhantomConfig, Shuffler, SplitParams, SplitPart};
//!
//! // 20 phantom slices per class at 32×32 (no download, no patient data).
//! let ds = Dataset::phantom(&PhantomConfig { image_size: 32, per_class: 20, ..Default::default() })?;
//! let groups = ds.near_duplicate_groups(&GroupingParams::default())?;
//! let split = ds.split(&groups, &SplitParams::with_seed(7))?;
//! assert!(split.groups_crossing_parts().is_empty());
//!
//! let train = ds.indices_in(&split, SplitPart::Train);
//! let batches = Shuffler::new(7).batches(&train, 0, 8);
//! let batch = ds.batch(&batches[0], &candle_core::Device::Cpu)?;
//! assert_eq!(batch.images.dims(), &[8, 1, 32, 32]);
//! assert_eq!(ds.count(Label::Tumour), 20);
//! # Ok::<(), mri_preprocess::PreprocessError>(())
//! ```
//!
//! ## Dependencies and why
//! `image` (PNG/JPEG decoding and resizing; only those two formats, to keep builds short),
//! `rayon` (parallel decoding), `blake3` (content hash for the cache key), `candle-core`
//! (tensors; its GEMM computes the grouping correlations), `rand` + `rand_chacha` (portable
//! seeded shuffles and phantoms), `serde` + `serde_json` (`split.json`), `thiserror`
//! (the error enum). Feature `candle-datasets` (off by default; it pulls an HTTP client and
//! parquet) adds `prepare::interop::to_candle_dataset`; features `cuda` / `metal`
//! forward to candle.
#![warn(missing_docs)]

pub mod annotations;
pub mod batch;
pub mod cache;
pub mod dataset;
pub mod error;
pub mod fsutil;
pub mod groups;
pub mod image_ops;
pub mod leak;
pub mod load;
pub mod phantom;
pub mod png;
pub mod prepare;
pub mod split;

pub use annotations::{rasterise, Annotations, FoundMasks, ImageAnnotation, Shape};
pub use batch::{images_to_tensor, Batch, Shuffler};
pub use cache::{default_cache_dir, CacheMode};
pub use dataset::{DataSource, Dataset, Item, LoadOptions, LoadStats, SkippedFile};
pub use error::{PreprocessError, Result};
pub use groups::{group_near_duplicates, pairwise_agreement, read_group_csv, union_groupings, CheckedGroupingParams, GroupingParams, PairAgreement};
pub use image_ops::{decode_grey, preprocess, Geometry, GreyImage, PreprocessConfig, THUMB_SIZE};
pub use leak::{leak_check, nearest_matches, reference_leaks, LeakCheck, LeakPair, NearestMatch};
pub use load::{list_labelled_entries, list_labelled_files, ClassMap, Label, LabelledFile};
pub use phantom::PhantomConfig;
pub use png::{save_grid, save_png, save_tensor_grid, save_tensor_png};
pub use split::{Fold, SplitItem, SplitManifest, SplitParams, SplitPart};

//! Gluing the steps together: near-duplicate group ids for a [`Dataset`], the split manifest,
//! and `groups.csv`.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::groups::{group_near_duplicates, GroupingParams};
use crate::split::{SplitManifest, SplitParams};

impl Dataset {
    /// A group id per slice, like `yes-0001`, numbered per class in path order.
    ///
    /// Folder data goes through [`group_near_duplicates`]. Phantom slices are independent
    /// draws by construction, so each is its own group (`yes-p00000`) and no grouping runs.
    ///
    /// # Errors
    /// Parameter errors from [`GroupingParams::check`]; candle errors.
    pub fn near_duplicate_groups(&self, params: &GroupingParams) -> Result<Vec<String>> {
        if self.source.is_phantom() {
            let mut next = [0usize; 2];
            return Ok(self
                .items
                .iter()
                .map(|it| {
                    let k = &mut next[it.label.index() as usize];
                    *k += 1;
                    format!("{}-p{:05}", it.label, *k - 1)
                })
                .collect());
        }
        let checked = params.check()?;
        let thumbs: Vec<&[f32]> = self.items.iter().map(|i| i.thumb.as_slice()).collect();
        let labels: Vec<_> = self.items.iter().map(|i| i.label).collect();
        let g = group_near_duplicates(&thumbs, &labels, &checked)?;
        // Renumber per class in order of first appearance (items are sorted by path).
        let mut ids: Vec<Option<String>> = vec![None; g.n_groups];
        let mut next = [0usize; 2];
        Ok(self
            .items
            .iter()
            .zip(&g.group_of)
            .map(|(it, &gi)| {
                ids[gi]
                    .get_or_insert_with(|| {
                        let k = &mut next[it.label.index() as usize];
                        *k += 1;
                        format!("{}-{:04}", it.label, *k)
                    })
                    .clone()
            })
            .collect())
    }

    /// The seeded, group-aware, stratified split of this data set.
    ///
    /// # Errors
    /// As [`SplitManifest::make`].
    pub fn split(&self, groups: &[String], params: &SplitParams) -> Result<SplitManifest> {
        let items: Vec<_> = self.items.iter().zip(groups).map(|(it, g)| (it.rel_path.clone(), it.label, g.clone())).collect();
        SplitManifest::make(&items, self.image_size, params)
    }

    /// Each slice's group in a reference grouping CSV (see [`read_group_csv`]), `None` for
    /// slices the CSV does not list. Pair it with [`union_groupings`] or [`pairwise_agreement`].
    ///
    /// # Errors
    /// As [`read_group_csv`].
    ///
    /// [`read_group_csv`]: crate::read_group_csv
    /// [`union_groupings`]: crate::union_groupings
    /// [`pairwise_agreement`]: crate::pairwise_agreement
    pub fn reference_groups(&self, csv: &Path) -> Result<Vec<Option<String>>> {
        let by_file: std::collections::HashMap<String, String> = crate::read_group_csv(csv)?.into_iter().collect();
        Ok(self.items.iter().map(|it| by_file.get(&it.rel_path).cloned()).collect())
    }

    /// Writes `groups.csv` (`file,label,group`, one row per slice in path order) atomically.
    pub fn write_groups_csv(&self, groups: &[String], path: &Path) -> Result<()> {
        let mut s = String::from("file,label,group\n");
        for (it, g) in self.items.iter().zip(groups) {
            s.push_str(&format!("{},{},{}\n", it.rel_path, it.label, g));
        }
        write_atomic(path, s.as_bytes())
    }

    /// Indices of the slices of one split part, in path order; slices missing from the
    /// manifest are left out.
    pub fn indices_in(&self, manifest: &SplitManifest, part: crate::SplitPart) -> Vec<usize> {
        let wanted: std::collections::HashSet<&str> = manifest.paths(part).collect();
        (0..self.items.len()).filter(|&i| wanted.contains(self.items[i].rel_path.as_str())).collect()
    }
}

/// Conversion to `candle_datasets::vision::Dataset` (feature `candle-datasets`).
#[cfg(feature = "candle-datasets")]
pub mod interop {
    use candle_core::Device;

    use crate::dataset::Dataset;
    use crate::error::Result;
    use crate::split::{SplitManifest, SplitPart};

    /// The train part as `train_*` and the test part as `test_*` tensors (images
    /// (N, 1, S, S) f32, labels (N,) u32 with tumour = 1, `labels: 2`). candle-datasets has
    /// no validation set, so the val part is left out.
    pub fn to_candle_dataset(ds: &Dataset, manifest: &SplitManifest, device: &Device) -> Result<candle_datasets::vision::Dataset> {
        let train = ds.batch(&ds.indices_in(manifest, SplitPart::Train), device)?;
        let test = ds.batch(&ds.indices_in(manifest, SplitPart::Test), device)?;
        Ok(candle_datasets::vision::Dataset {
            train_images: train.images,
            train_labels: train.labels,
            test_images: test.images,
            test_labels: test.labels,
            labels: 2,
        })
    }
}

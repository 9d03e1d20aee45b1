//! Batching slices into candle tensors, with a seeded shuffle.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{PreprocessError, Result};

/// A batch: images (N, 1, S, S) f32 in [0, 1] and labels (N,) u32 with tumour = 1.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, shape (N, 1, S, S).
    pub images: Tensor,
    /// Labels, shape (N,), `u32`: tumour 1, healthy 0.
    pub labels: Tensor,
}

/// Stacks equally sized square images into a (N, 1, S, S) tensor.
pub fn images_to_tensor(images: &[&[f32]], side: usize, device: &Device) -> Result<Tensor> {
    if let Some(i) = images.iter().position(|im| im.len() != side * side) {
        return Err(PreprocessError::param("images", format!("image {i} has {} values, expected {side}²", images[i].len())));
    }
    let mut flat = Vec::with_capacity(images.len() * side * side);
    images.iter().for_each(|im| flat.extend_from_slice(im));
    Ok(Tensor::from_vec(flat, (images.len(), 1, side, side), device)?)
}

impl Dataset {
    /// The slices at `indices` as one batch.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidParameter`] for an index out of range; candle errors.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.items.len()) {
            return Err(PreprocessError::param("indices", format!("index {i} out of range for {} slices", self.items.len())));
        }
        let images: Vec<&[f32]> = indices.iter().map(|&i| self.items[i].pixels.as_slice()).collect();
        let labels: Vec<u32> = indices.iter().map(|&i| self.items[i].label.index()).collect();
        Ok(Batch { images: images_to_tensor(&images, self.image_size as usize, device)?, labels: Tensor::from_vec(labels, indices.len(), device)? })
    }
}

/// A seeded shuffler: epoch `e` of seed `s` always gives the same order, independent of how
/// many epochs ran before (so a resumed run sees the same batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shuffler {
    seed: u64,
}

impl Shuffler {
    /// A shuffler with this seed.
    pub fn new(seed: u64) -> Self {
        Shuffler { seed }
    }

    /// `indices` in the order of epoch `epoch`.
    pub fn epoch_order(&self, indices: &[usize], epoch: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut order = indices.to_vec();
        order.shuffle(&mut rng);
        order
    }

    /// Epoch `epoch`'s order cut into batches of `batch_size` (the last may be smaller).
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batches(&self, indices: &[usize], epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        assert!(batch_size > 0, "batch_size must be at least 1");
        self.epoch_order(indices, epoch).chunks(batch_size).map(<[usize]>::to_vec).collect()
    }
}

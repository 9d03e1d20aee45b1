//! Images and labels in memory, batched into tensors with seeded augmentation.

use candle_core::{Device, Tensor};
use mri_preprocess::Shuffler;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Result, TrainError};

/// Square greyscale images (S×S, values in [0, 1]) with class labels (tumour = 1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageSet {
    /// Side S.
    pub side: usize,
    /// `len × S × S` values, image after image.
    pub pixels: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u32>,
}

impl ImageSet {
    /// An empty set of side `side`.
    pub fn new(side: usize) -> Self {
        ImageSet { side, pixels: Vec::new(), labels: Vec::new() }
    }

    /// Adds one image.
    ///
    /// # Errors
    /// [`TrainError::InvalidParameter`] if it is not S×S.
    pub fn push(&mut self, image: &[f32], label: u32) -> Result<()> {
        if image.len() != self.side * self.side {
            return Err(TrainError::InvalidParameter { name: "image", reason: format!("{} values, expected {}²", image.len(), self.side) });
        }
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.side * self.side;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Every item of a preprocessed data set (e.g. phantoms), labelled tumour = 1.
    pub fn from_dataset(ds: &mri_preprocess::Dataset) -> Result<ImageSet> {
        let side = ds.items.first().map(|it| (it.pixels.len() as f64).sqrt() as usize).unwrap_or(0);
        let mut set = ImageSet::new(side);
        for it in &ds.items {
            set.push(&it.pixels, it.label.index())?;
        }
        Ok(set)
    }

    /// The images of one class (label), in order: per-class generators and the healthy-only
    /// anomaly VAE train on these.
    pub fn of_class(&self, label: u32) -> ImageSet {
        let mut out = ImageSet::new(self.side);
        for i in (0..self.len()).filter(|&i| self.labels[i] == label) {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(label);
        }
        out
    }

    /// All images as one (N, 1, S, S) tensor (no labels), e.g. for sampling or scoring.
    pub fn images_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.pixels.clone(), (self.len(), 1, self.side, self.side), device)?)
    }

    /// This set followed by `other` (same side), e.g. real + synthetic.
    pub fn concat(&self, other: &ImageSet) -> Result<ImageSet> {
        if !other.is_empty() && !self.is_empty() && other.side != self.side {
            return Err(TrainError::InvalidParameter { name: "side", reason: format!("{} vs {}", self.side, other.side) });
        }
        let mut out = self.clone();
        out.side = if self.is_empty() { other.side } else { self.side };
        out.pixels.extend_from_slice(&other.pixels);
        out.labels.extend_from_slice(&other.labels);
        Ok(out)
    }

    /// The images at `idx` as a (N, 1, S, S) tensor and their labels as (N,) u32. With
    /// `flip_seed`, each image is mirrored left–right with probability ½ from that seed.
    pub fn batch(&self, idx: &[usize], flip_seed: Option<u64>, device: &Device) -> Result<(Tensor, Tensor)> {
        let s = self.side;
        let mut rng = flip_seed.map(ChaCha8Rng::seed_from_u64);
        let mut flat = Vec::with_capacity(idx.len() * s * s);
        for &i in idx {
            let img = self.image(i);
            if rng.as_mut().is_some_and(|r| r.gen_bool(0.5)) {
                for y in 0..s {
                    flat.extend(img[y * s..(y + 1) * s].iter().rev());
                }
            } else {
                flat.extend_from_slice(img);
            }
        }
        let labels: Vec<u32> = idx.iter().map(|&i| self.labels[i]).collect();
        Ok((Tensor::from_vec(flat, (idx.len(), 1, s, s), device)?, Tensor::from_vec(labels, idx.len(), device)?))
    }

    /// The images at `idx`, each augmented with parameters drawn from its own stream (`seed`
    /// and its position in the batch), as a (N, 1, S, S) tensor, and their labels. The same
    /// seed gives the same batch.
    ///
    /// # Errors
    /// Bad augmentation ranges; candle errors.
    pub fn batch_augmented(&self, idx: &[usize], aug: &crate::AugmentConfig, seed: u64, device: &Device) -> Result<(Tensor, Tensor)> {
        use rayon::prelude::*;
        aug.check()?;
        let s = self.side;
        let images: Vec<Vec<f32>> = idx
            .par_iter()
            .enumerate()
            .map(|(k, &i)| {
                let mut rng = ChaCha8Rng::seed_from_u64(crate::stream_seed(seed, &format!("augment/{k}")));
                aug.draw(&mut rng).apply(self.image(i), s)
            })
            .collect();
        let labels: Vec<u32> = idx.iter().map(|&i| self.labels[i]).collect();
        Ok((Tensor::from_vec(images.concat(), (idx.len(), 1, s, s), device)?, Tensor::from_vec(labels, idx.len(), device)?))
    }

    /// The batches of epoch `epoch` in the seeded order (the last may be smaller).
    pub fn epoch_batches(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let all: Vec<usize> = (0..self.len()).collect();
        Shuffler::new(seed).batches(&all, epoch, batch_size.max(1))
    }
}

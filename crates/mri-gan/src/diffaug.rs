//! DiffAugment: differentiable augmentation applied to real and generated images alike, in the
//! discriminator's and the generator's step, so that a discriminator trained on a few hundred
//! slices cannot memorise them (Zhao et al., "Differentiable Augmentation for Data-Efficient
//! GAN Training", NeurIPS 2020). The policy follows the reference
//! `DiffAugment_pytorch.py` of mit-han-lab/data-efficient-gans: brightness U(−½, ½) and
//! contrast U(½, 3/2) per image (in [−1, 1] units), translation by up to ⅛ of the side, cutout
//! of a square of half the side. Written here as candle tensor ops (so gradients flow to the
//! generator on every device), with every draw from a seeded ChaCha stream: a step augments
//! the same way on a resume.

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Strength of each DiffAugment transform (0 switches one off).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiffAugment {
    /// Brightness offset drawn in ±`brightness` (images in [−1, 1]; the reference: 0.5).
    pub brightness: f32,
    /// Contrast about each image's mean, factor drawn in 1 ± `contrast` (the reference: 0.5).
    pub contrast: f32,
    /// Shift in each axis by up to `translation` × side pixels, background filled in (the
    /// reference: 0.125).
    pub translation: f32,
    /// A square of side `cutout` × side at a random place set to 0 (the reference: 0.5).
    pub cutout: f32,
}

impl Default for DiffAugment {
    /// Off (the study's GAN).
    fn default() -> Self {
        DiffAugment { brightness: 0.0, contrast: 0.0, translation: 0.0, cutout: 0.0 }
    }
}

impl DiffAugment {
    /// The reference policy "color,translation,cutout" without saturation (greyscale slices).
    pub fn reference() -> Self {
        DiffAugment { brightness: 0.5, contrast: 0.5, translation: 0.125, cutout: 0.5 }
    }

    /// True when every transform is off.
    pub fn is_off(&self) -> bool {
        self.brightness == 0.0 && self.contrast == 0.0 && self.translation == 0.0 && self.cutout == 0.0
    }

    /// Checks the ranges.
    pub fn check(&self) -> Result<(), String> {
        let ok = |v: f32, max: f32| v.is_finite() && (0.0..=max).contains(&v);
        if !(ok(self.brightness, 2.0) && ok(self.contrast, 1.0) && ok(self.translation, 0.5) && ok(self.cutout, 1.0)) {
            return Err(format!(
                "DiffAugment strengths out of range: brightness {} (0..2), contrast {} (0..1), translation {} (0..0.5), cutout {} (0..1)",
                self.brightness, self.contrast, self.translation, self.cutout
            ));
        }
        Ok(())
    }

    /// Augments a batch `x` (N, C, S, S) in [−1, 1] (background −1), each image with its own
    /// draws from the stream `seed`. Differentiable in `x`.
    pub fn apply(&self, x: &Tensor, seed: u64) -> candle_core::Result<Tensor> {
        self.apply_grouped(x, seed, 1)
    }

    /// [`DiffAugment::apply`] with one draw for each group of `group` consecutive images
    /// (images i·group … i·group + group − 1 moved, cut and shaded alike; `group` 1 is
    /// `apply`, draw for draw). A packing discriminator ([`crate::GanConfig::d_pack`]) needs
    /// this: with a draw per image, two equal generated images in a pack differ after
    /// augmentation and the pack no longer shows the collapse it is there to show.
    pub fn apply_grouped(&self, x: &Tensor, seed: u64, group: usize) -> candle_core::Result<Tensor> {
        if self.is_off() {
            return Ok(x.clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (n, c, h, w) = x.dims4()?;
        let group = group.max(1);
        let groups = n.div_ceil(group);
        let dev = x.device();
        let per_image = |v: Vec<f32>| Tensor::from_vec(per_image_of_groups(&v, n, group), (n, 1, 1, 1), &candle_core::Device::Cpu)?.to_device(dev);
        let mut x = x.clone();
        if self.brightness > 0.0 {
            let b: Vec<f32> = (0..groups).map(|_| rng.gen_range(-self.brightness..=self.brightness)).collect();
            x = x.broadcast_add(&per_image(b)?)?;
        }
        if self.contrast > 0.0 {
            let f: Vec<f32> = (0..groups).map(|_| rng.gen_range(1.0 - self.contrast..=1.0 + self.contrast)).collect();
            let mean = x.mean_keepdim(3)?.mean_keepdim(2)?.mean_keepdim(1)?;
            x = x.broadcast_sub(&mean)?.broadcast_mul(&per_image(f)?)?.broadcast_add(&mean)?;
        }
        let shift = (h.min(w) as f32 * self.translation).round() as usize;
        if shift > 0 {
            // Each image moved by its own (dy, dx) in ±shift, the background (−1) coming in.
            let offsets: Vec<(isize, isize)> = (0..groups)
                .map(|_| {
                    let dy = rng.gen_range(0..=2 * shift);
                    let dx = rng.gen_range(0..=2 * shift);
                    (shift as isize - dy as isize, shift as isize - dx as isize)
                })
                .collect();
            x = mri_train::translate(&x, &per_image_of_groups(&offsets, n, group), -1.0)?;
        }
        let size = (h.min(w) as f32 * self.cutout).round() as usize;
        if size > 0 {
            let mut mask = vec![1f32; n * h * w];
            for m in mask.chunks_mut(h * w * group) {
                let (m, rest) = m.split_at_mut(h * w);
                // The square's centre anywhere in the image; it may hang over the edge.
                let cy = rng.gen_range(0..h + (1 - size % 2)) as isize - (size / 2) as isize;
                let cx = rng.gen_range(0..w + (1 - size % 2)) as isize - (size / 2) as isize;
                for yy in cy.max(0)..(cy + size as isize).min(h as isize) {
                    for xx in cx.max(0)..(cx + size as isize).min(w as isize) {
                        m[yy as usize * w + xx as usize] = 0.0;
                    }
                }
                for other in rest.chunks_mut(h * w) {
                    other.copy_from_slice(m);
                }
            }
            let mask = Tensor::from_vec(mask, (n, 1, h, w), &candle_core::Device::Cpu)?.to_device(dev)?.to_dtype(x.dtype())?;
            x = if c == 1 { x.mul(&mask)? } else { x.broadcast_mul(&mask)? };
        }
        if x.dtype() != DType::F32 && x.dtype() != DType::F64 {
            candle_core::bail!("DiffAugment expects float images, got {:?}", x.dtype());
        }
        Ok(x)
    }
}

/// One value per image of `n` from one value per group of `group` consecutive images.
fn per_image_of_groups<T: Copy>(per_group: &[T], n: usize, group: usize) -> Vec<T> {
    (0..n).map(|i| per_group[i / group]).collect()
}

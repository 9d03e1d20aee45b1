//! The DAE's config and presets.

use mri_train::{AdamConfig, Preset, Presets};
use serde::{Deserialize, Serialize};

use crate::{DaeError, Result};

/// How the coarse noise grid is upsampled to the image side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NoiseUpsampling {
    /// Bilinear: smooth blobs (Kascenas et al.).
    #[default]
    Bilinear,
    /// Nearest neighbour: square patches with sharp edges.
    Nearest,
    /// Each image of a batch draws one of the two (seeded, even odds): the network learns to
    /// remove both smooth and sharp-edged deviations.
    Mixed,
}

/// Configuration of the denoising autoencoder and of its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaeConfig {
    /// Input side S; must be divisible by 2^(levels − 1).
    pub image_size: usize,
    /// Channels of each UNet level, finest first (Kascenas et al.: 64, 128, 256, 512).
    pub channels: Vec<usize>,
    /// Side of the noise grid before it is upsampled to S (Kascenas et al.: 16 at 128 px).
    pub noise_res: usize,
    /// Standard deviation of the noise (images are in [0, 1]; Kascenas et al.: 0.2).
    pub noise_std: f32,
    /// Intensity above which a pixel belongs to the head: the noise stays inside it.
    pub head_threshold: f32,
    /// Use only the noise's magnitude (bright blobs): the network then learns to remove bright
    /// deviations only and leaves dark structures (ventricles, CSF) alone. Off (signed noise,
    /// Kascenas et al.'s) by default.
    #[serde(default)]
    pub bright_noise_only: bool,
    /// How the noise grid is brought to S: bilinear (smooth blobs, Kascenas et al.'s) or
    /// nearest (square patches with sharp edges, so the network also learns to remove
    /// sharp-edged deviations). Bilinear by default.
    #[serde(default)]
    pub noise_upsampling: NoiseUpsampling,
    /// Training epochs.
    pub epochs: usize,
    /// Train at least this many optimiser steps: the epochs grow to ⌈min_steps / batches per
    /// epoch⌉ on small sets (phantoms), so that a small set still gets a full training.
    #[serde(default)]
    pub min_steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimiser; the rate follows a cosine from `adam.lr` to 1 % of it over the epochs.
    pub adam: AdamConfig,
}

impl DaeConfig {
    /// Kascenas et al.'s layout at 128 px (GPU advised).
    pub fn paper() -> Self {
        DaeConfig {
            image_size: 128,
            channels: vec![64, 128, 256, 512],
            noise_res: 16,
            noise_std: 0.2,
            head_threshold: 0.05,
            bright_noise_only: false,
            noise_upsampling: NoiseUpsampling::Bilinear,
            epochs: 100,
            min_steps: 0,
            batch_size: 16,
            adam: AdamConfig { lr: 1e-4, weight_decay: 1e-5, ..AdamConfig::default() },
        }
    }

    /// Sized for a 2-core CPU at `image_size` (64 px intended): four narrow levels (halving
    /// the widths doubles the speed but loses ~0.05 AUROC on Br35H), smooth and sharp-edged
    /// noise (sharp patches take the phantoms' AUROC from ~0.7 to ~0.9 and leave Br35H's
    /// unchanged), 8 epochs but at least 1000 steps (16 epochs, ~4 minutes on Br35H, inside
    /// the main job's anomaly budget; 112 on the phantoms). 1000 steps against 500 raised the
    /// best validation balanced accuracy on both data sets (Br35H 0.836 → 0.851, phantoms
    /// 0.917 → 0.933, session 11; docs/anomaly.md).
    pub fn default_preset(image_size: usize) -> Self {
        DaeConfig {
            image_size,
            channels: vec![8, 16, 32, 64],
            noise_res: (image_size / 8).max(2),
            noise_std: 0.2,
            head_threshold: 0.05,
            bright_noise_only: false,
            noise_upsampling: NoiseUpsampling::Mixed,
            epochs: 8,
            min_steps: 1000,
            batch_size: 16,
            adam: AdamConfig { lr: 1e-3, weight_decay: 1e-5, ..AdamConfig::default() },
        }
    }

    /// Tiny, for tests (seconds on phantoms).
    pub fn quick(image_size: usize) -> Self {
        DaeConfig { channels: vec![8, 16], epochs: 3, min_steps: 0, batch_size: 8, ..Self::default_preset(image_size) }
    }

    /// Checks the config.
    ///
    /// # Errors
    /// [`DaeError::InvalidParameter`] naming the field.
    pub fn check(&self) -> Result<()> {
        let bad = |name: &'static str, reason: String| Err(DaeError::InvalidParameter { name, reason });
        if self.channels.is_empty() || self.channels.contains(&0) {
            return bad("channels", format!("needs one or more non-zero widths, got {:?}", self.channels));
        }
        let div = 1usize << (self.channels.len() - 1);
        if self.image_size == 0 || self.image_size % div != 0 {
            return bad("image_size", format!("{} is not a positive multiple of {div} ({} levels)", self.image_size, self.channels.len()));
        }
        if self.noise_res == 0 || self.noise_res > self.image_size {
            return bad("noise_res", format!("must be in 1..={}, got {}", self.image_size, self.noise_res));
        }
        if !(self.noise_std > 0.0 && self.noise_std.is_finite()) {
            return bad("noise_std", format!("must be positive, got {}", self.noise_std));
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        Ok(())
    }

    /// Epochs actually trained on `n_images` images: `epochs`, or more to reach `min_steps`.
    pub fn epochs_for(&self, n_images: usize) -> usize {
        mri_train::epochs_for(self.epochs, self.min_steps, self.batch_size, n_images)
    }

    /// Learning rate of epoch `epoch` (0-based) of `total` epochs: cosine from `adam.lr` to 1 %
    /// of it.
    pub fn lr_at(&self, epoch: usize, total: usize) -> f64 {
        let t = epoch as f64 / (total.max(2) - 1) as f64;
        self.adam.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
    }
}

mri_train::impl_presets!(DaeConfig);

impl DaeConfig {
    /// The config of a preset (see [`Presets::preset`]).
    pub fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        <Self as Presets>::preset(preset, image_size)
    }
}

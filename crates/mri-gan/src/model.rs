//! Generator, discriminator and their config.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use mri_train::{upsample2, AdamConfig, BatchNorm2d, Conv2d, Preset, Presets};
use serde::{Deserialize, Serialize};

use crate::{GanError, Result};

/// Configuration of the GAN (one per class in the study) and of its training.
///
/// Generator: Linear(latent → g_base·s0²) + ReLU with s0 = S / 2^(len(g_channels)+1), reshape,
/// then for each entry of `g_channels` [nearest upsample ×2 → conv 3×3 pad 1 → BN → ReLU],
/// then [upsample ×2 → conv 3×3 → 1 channel → tanh]: images in **[−1, 1]** (training data are
/// mapped there by 2x − 1; [`crate::sample`] maps back to [0, 1]).
/// Discriminator: for each entry of `d_channels` [conv 4×4 stride 2 pad 1 → LeakyReLU 0.2],
/// flatten → Linear → one **logit** (no sigmoid; the loss is the stable BCE on logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanConfig {
    /// Image side S; a multiple of 2^(len(g_channels)+1) and of 2^len(d_channels).
    pub image_size: usize,
    /// Latent dimension (the study: 100).
    pub latent: usize,
    /// Channels of the generator's first feature map (the study: 128).
    pub g_base: usize,
    /// Output widths of the generator's BN blocks (the study: 128, 64, 32).
    pub g_channels: Vec<usize>,
    /// Discriminator widths (the study: 64, 128, 256, 512).
    pub d_channels: Vec<usize>,
    /// Training epochs (the study: 500).
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Generator optimiser (the study: Adam lr 2e-4, betas (0.5, 0.999)).
    pub adam_g: AdamConfig,
    /// Discriminator optimiser (same).
    pub adam_d: AdamConfig,
}

impl GanConfig {
    /// The study's layout at 128 px.
    pub fn paper() -> Self {
        let adam = AdamConfig { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        GanConfig {
            image_size: 128,
            latent: 100,
            g_base: 128,
            g_channels: vec![128, 64, 32],
            d_channels: vec![64, 128, 256, 512],
            epochs: 500,
            batch_size: 64,
            adam_g: adam,
            adam_d: adam,
        }
    }

    /// A 2-core-CPU layout at `image_size` (64 px intended): the same depth, a quarter of the widths.
    pub fn default_preset(image_size: usize) -> Self {
        GanConfig { image_size, g_base: 64, g_channels: vec![64, 32, 16], d_channels: vec![16, 32, 64, 128], epochs: 20, batch_size: 32, ..Self::paper() }
    }

    /// A tiny layout for tests.
    pub fn quick(image_size: usize) -> Self {
        GanConfig { image_size, latent: 8, g_base: 8, g_channels: vec![8], d_channels: vec![4, 8], epochs: 3, batch_size: 8, ..Self::paper() }
    }

    /// The config of `preset` (one resolution path for every model: [`Presets::preset`]);
    /// `image_size` overrides the preset's side.
    pub fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        <Self as Presets>::preset(preset, image_size)
    }

    /// Side of the generator's first feature map.
    pub fn start_side(&self) -> usize {
        self.image_size >> (self.g_channels.len() + 1)
    }

    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        let g = 1usize << (self.g_channels.len() + 1);
        let d = 1usize << self.d_channels.len();
        if self.image_size == 0 || self.image_size % g != 0 || self.image_size % d != 0 || self.d_channels.is_empty() {
            return Err(GanError::Config(format!(
                "image_size {} must be a positive multiple of 2^{} (generator upsamplings) and 2^{} (discriminator strides)",
                self.image_size,
                self.g_channels.len() + 1,
                self.d_channels.len()
            )));
        }
        if self.latent == 0 || self.g_base == 0 || self.batch_size == 0 || self.g_channels.contains(&0) || self.d_channels.contains(&0) {
            return Err(GanError::Config("latent, widths and batch_size must be positive".into()));
        }
        self.adam_g.check()?;
        self.adam_d.check()?;
        Ok(())
    }

    /// Parameters of the generator and of the discriminator.
    pub fn param_counts(&self) -> (usize, usize) {
        let s0 = self.start_side();
        let mut g = self.latent * self.g_base * s0 * s0 + self.g_base * s0 * s0;
        let mut c_in = self.g_base;
        for &c in &self.g_channels {
            g += c_in * c * 9 + c + 2 * c;
            c_in = c;
        }
        g += c_in * 9 + 1;
        let mut d = 0;
        let mut c_in = 1;
        for &c in &self.d_channels {
            d += c_in * c * 16 + c;
            c_in = c;
        }
        let side = self.image_size >> self.d_channels.len();
        d += c_in * side * side + 1;
        (g, d)
    }
}

/// The generator. Weight names (under the trainer's `generator` prefix): `fc.*`,
/// `block{i}.conv.*`, `block{i}.bn.*`, `out.*`.
pub struct Generator {
    fc: Linear,
    blocks: Vec<(Conv2d, BatchNorm2d)>,
    out: Conv2d,
    base: usize,
    start: usize,
    latent: usize,
}

impl Generator {
    /// Builds the generator.
    pub fn new(cfg: &GanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let s0 = cfg.start_side();
        let fc = linear(cfg.latent, cfg.g_base * s0 * s0, vb.pp("fc"))?;
        let mut blocks = Vec::new();
        let mut c_in = cfg.g_base;
        for (i, &c) in cfg.g_channels.iter().enumerate() {
            let p = vb.pp(format!("block{i}"));
            blocks.push((Conv2d::new(c_in, c, 3, 1, 1, p.pp("conv"))?, BatchNorm2d::new(c, p.pp("bn"))?));
            c_in = c;
        }
        let out = Conv2d::new(c_in, 1, 3, 1, 1, vb.pp("out"))?;
        Ok(Generator { fc, blocks, out, base: cfg.g_base, start: s0, latent: cfg.latent })
    }

    /// Latent dimension.
    pub fn latent(&self) -> usize {
        self.latent
    }
}

fn up(x: &Tensor) -> candle_core::Result<Tensor> {
    upsample2(x)
}

impl ModuleT for Generator {
    /// Images (N, 1, S, S) in [−1, 1] from latents (N, latent).
    fn forward_t(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let mut x = self.fc.forward(z)?.relu()?.reshape((n, self.base, self.start, self.start))?;
        for (conv, bn) in &self.blocks {
            x = bn.forward_t(&conv.forward(&up(&x)?)?, train)?.relu()?;
        }
        self.out.forward(&up(&x)?)?.tanh()
    }
}

/// The discriminator. Weight names (under `discriminator`): `conv{i}.*`, `out.*`.
pub struct Discriminator {
    convs: Vec<Conv2d>,
    out: Linear,
}

impl Discriminator {
    /// Builds the discriminator.
    pub fn new(cfg: &GanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let mut convs = Vec::new();
        let mut c_in = 1;
        for (i, &c) in cfg.d_channels.iter().enumerate() {
            convs.push(Conv2d::new(c_in, c, 4, 2, 1, vb.pp(format!("conv{i}")))?);
            c_in = c;
        }
        let side = cfg.image_size >> cfg.d_channels.len();
        let out = linear(c_in * side * side, 1, vb.pp("out"))?;
        Ok(Discriminator { convs, out })
    }
}

impl Module for Discriminator {
    /// One logit per image (N, 1) for images (N, 1, S, S) in [−1, 1].
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = xs.clone();
        for conv in &self.convs {
            x = candle_nn::ops::leaky_relu(&conv.forward(&x)?, 0.2)?;
        }
        self.out.forward(&x.flatten_from(1)?)
    }
}

mri_train::impl_presets!(GanConfig);

//! The classifier and its config.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use mri_train::{max_pool2, AdamConfig, BatchNorm2d, Conv2d, Preset, Presets, SeededDropout, StepKey};
use serde::{Deserialize, Serialize};

use crate::{CnnError, Result};

/// Configuration of the CNN and of its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Input side S; must be divisible by 2^len(channels).
    pub image_size: usize,
    /// Output channels of each conv block (the study: 32, 64, 128).
    pub channels: Vec<usize>,
    /// Widths of the hidden linear layers (the study: 1024, 512, 128).
    pub hidden: Vec<usize>,
    /// Dropout probability before each hidden linear layer (the study: 0.5).
    pub dropout: f32,
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimiser (the study: Adam, lr 1e-3).
    pub adam: AdamConfig,
    /// ReduceLROnPlateau factor on the validation loss (the study: 0.1).
    pub plateau_factor: f64,
    /// ReduceLROnPlateau patience in epochs (the study: 5).
    pub plateau_patience: u32,
    /// Mirror training images left–right at random (seeded).
    pub augment_flip: bool,
}

impl CnnConfig {
    /// The study's layout at 128 px (time it against the PyTorch yardstick; GPU advised).
    pub fn paper() -> Self {
        CnnConfig {
            image_size: 128,
            channels: vec![32, 64, 128],
            hidden: vec![1024, 512, 128],
            dropout: 0.5,
            epochs: 50,
            batch_size: 32,
            adam: AdamConfig::default(),
            plateau_factor: 0.1,
            plateau_patience: 5,
            augment_flip: false,
        }
    }

    /// A 2-core-CPU layout at `image_size` (64 px intended): same depth, narrower.
    pub fn default_preset(image_size: usize) -> Self {
        CnnConfig { image_size, channels: vec![16, 32, 64], hidden: vec![256, 64], epochs: 15, augment_flip: true, ..Self::paper() }
    }

    /// A tiny layout for tests: seconds on phantoms.
    pub fn quick(image_size: usize) -> Self {
        CnnConfig { image_size, channels: vec![4, 8], hidden: vec![16], dropout: 0.1, epochs: 3, batch_size: 8, augment_flip: false, ..Self::paper() }
    }

    /// The config of `preset` (one resolution path for every model: [`Presets::preset`]);
    /// `image_size` overrides the preset's side.
    pub fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        <Self as Presets>::preset(preset, image_size)
    }

    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        let f = 1usize << self.channels.len();
        if self.channels.is_empty() || self.image_size == 0 || self.image_size % f != 0 {
            return Err(CnnError::Config(format!(
                "image_size {} must be a positive multiple of 2^{} (one max-pool per conv block)",
                self.image_size,
                self.channels.len()
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CnnError::Config(format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        if self.batch_size == 0 || self.channels.contains(&0) || self.hidden.contains(&0) {
            return Err(CnnError::Config("batch_size, channels and hidden widths must be positive".into()));
        }
        self.adam.check()?;
        Ok(())
    }

    /// Number of parameters (weights and biases; batch-norm affine included, running stats not).
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        let mut c_in = 1;
        for &c in &self.channels {
            n += c * c_in * 9 + c + 2 * c;
            c_in = c;
        }
        let side = self.image_size >> self.channels.len();
        let mut d = c_in * side * side;
        for &h in &self.hidden {
            n += d * h + h;
            d = h;
        }
        n + d * 2 + 2
    }
}

/// The CNN classifier.
pub struct Cnn {
    blocks: Vec<(Conv2d, BatchNorm2d)>,
    fcs: Vec<(SeededDropout, Linear)>,
    out: Linear,
    step: StepKey,
}

impl Cnn {
    /// Builds the network; weights come from `vb` (seeded, or loaded from a checkpoint).
    /// Dropout masks are drawn from stream `dropout_seed`, keyed by [`Cnn::step_key`].
    pub fn new(cfg: &CnnConfig, vb: VarBuilder, dropout_seed: u64) -> Result<Self> {
        cfg.check()?;
        let step = StepKey::new();
        let mut blocks = Vec::new();
        let mut c_in = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let p = vb.pp(format!("conv{i}"));
            blocks.push((Conv2d::new(c_in, c, 3, 1, 1, p.pp("conv"))?, BatchNorm2d::new(c, p.pp("bn"))?));
            c_in = c;
        }
        let side = cfg.image_size >> cfg.channels.len();
        let mut d = c_in * side * side;
        let mut fcs = Vec::new();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            let drop = SeededDropout::new(cfg.dropout, dropout_seed, &format!("fc{i}.dropout"), step.clone());
            fcs.push((drop, linear(d, h, vb.pp(format!("fc{i}")))?));
            d = h;
        }
        let out = linear(d, 2, vb.pp("out"))?;
        Ok(Cnn { blocks, fcs, out, step })
    }

    /// The step key its dropout layers read: a trainer sets it before each forward pass.
    pub fn step_key(&self) -> &StepKey {
        &self.step
    }

    /// Features before the output layer (N, last hidden width): the penultimate activations,
    /// used as a feature extractor for Fréchet distance and nearest-neighbour privacy checks.
    pub fn features(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = xs.clone();
        for (conv, bn) in &self.blocks {
            x = bn.forward_t(&conv.forward(&x)?, train)?.relu()?;
            x = max_pool2(&x)?;
        }
        x = x.flatten_from(1)?;
        for (drop, fc) in &self.fcs {
            x = fc.forward(&drop.forward_t(&x, train)?)?.relu()?;
        }
        Ok(x)
    }
}

impl ModuleT for Cnn {
    /// Logits (N, 2) for images (N, 1, S, S); index 1 is tumour.
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.out.forward(&self.features(xs, train)?)
    }
}

impl Presets for CnnConfig {
    fn quick(image_size: usize) -> Self {
        CnnConfig::quick(image_size)
    }
    fn default_preset(image_size: usize) -> Self {
        CnnConfig::default_preset(image_size)
    }
    fn paper() -> Self {
        CnnConfig::paper()
    }
    fn set_image_size(&mut self, image_size: usize) {
        self.image_size = image_size;
    }
}

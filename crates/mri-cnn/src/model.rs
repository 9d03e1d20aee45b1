//! The classifier and its config.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use mri_train::{linear, max_pool2, AdamConfig, AugmentConfig, BatchNorm2d, Conv2d, Linear, Preset, Presets, SeededDropout, StepKey};
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
    /// Mirror training images left–right at random (seeded). Ignored when `augment` is set.
    pub augment_flip: bool,
    /// The layout: the study's plain conv stack with a fully connected head, or a compact
    /// residual network with global average pooling.
    #[serde(default)]
    pub arch: CnnArch,
    /// Seeded on-the-fly augmentation of training images (none = only `augment_flip`).
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Label smoothing ε of the cross-entropy (0 = none).
    #[serde(default)]
    pub label_smoothing: f32,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Test-time augmentation: predictions average the softmax of each slice and of its
    /// left–right mirror image (a brain is roughly symmetric and training saw both). Applies to
    /// [`crate::predict_proba`], not to training or validation loss.
    #[serde(default)]
    pub test_time_flip: bool,
    /// Train at least this many optimiser steps: the epochs grow to ⌈min_steps / batches per
    /// epoch⌉ when the set is small (0 = exactly `epochs`). Missing in older configs: 0.
    #[serde(default)]
    pub min_steps: usize,
}

/// The classifier's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnnArch {
    /// The study's: per width, conv 3×3 → BN → ReLU → max-pool 2; flatten; hidden linear layers
    /// with dropout; linear → 2.
    #[default]
    Plain,
    /// A stem conv 3×3 stride 2 → BN → ReLU, then per width a residual block (two conv 3×3 +
    /// BN, a 1×1 projection when the shape changes; stride 2 from the second width on), global
    /// average pooling, dropout, the hidden layers, linear → 2 (He et al. 2016, small-data size).
    Residual,
}

/// How the learning rate moves over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LrSchedule {
    /// ReduceLROnPlateau on the validation loss (`plateau_factor`, `plateau_patience`).
    #[default]
    Plateau,
    /// Linear warm-up over `warmup_epochs`, then cosine decay to 1 % of the rate at the last epoch.
    Cosine {
        /// Warm-up epochs.
        warmup_epochs: usize,
    },
}

impl LrSchedule {
    /// The rate of epoch `epoch` (0-based) of `epochs` for a scheduled (non-plateau) schedule.
    pub fn lr_at(&self, base: f64, epoch: usize, epochs: usize) -> Option<f64> {
        match *self {
            LrSchedule::Plateau => None,
            LrSchedule::Cosine { warmup_epochs } => Some(if epoch < warmup_epochs {
                base * (epoch + 1) as f64 / (warmup_epochs + 1) as f64
            } else {
                let span = epochs.saturating_sub(warmup_epochs).max(1) as f64;
                let t = (epoch - warmup_epochs) as f64 / span;
                base * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
            }),
        }
    }
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
            arch: CnnArch::Plain,
            augment: AugmentConfig::default(),
            label_smoothing: 0.0,
            schedule: LrSchedule::Plateau,
            test_time_flip: false,
            min_steps: 0,
        }
    }

    /// The compact residual network with global average pooling, strong augmentation, label
    /// smoothing, weight decay, a cosine schedule with warm-up and test-time flips: small-data
    /// practice, sized for a 2-core CPU at `image_size` (64 px intended), 30 epochs.
    pub fn residual(image_size: usize) -> Self {
        CnnConfig {
            image_size,
            channels: vec![16, 32, 64],
            hidden: vec![],
            dropout: 0.2,
            epochs: 30,
            batch_size: 32,
            adam: AdamConfig { lr: 2e-3, weight_decay: 1e-4, ..AdamConfig::default() },
            augment_flip: true,
            arch: CnnArch::Residual,
            augment: AugmentConfig::standard(),
            label_smoothing: 0.1,
            schedule: LrSchedule::Cosine { warmup_epochs: 2 },
            test_time_flip: true,
            ..Self::paper()
        }
    }

    /// The `default` preset: the residual recipe ([`CnnConfig::residual`]) cut to 20 epochs, so
    /// that one training on Br35H at 64 px fits the main job's 4-minute share on a 2-core CPU
    /// (docs/models.md has the 20- and 30-epoch figures over three seeds), and at least 540
    /// optimiser steps: 20 epochs are ~1300 steps on Br35H but 180 on the 280 training
    /// phantoms, where the CNN was still learning (validation accuracy 0.91 after 20 epochs,
    /// 0.97 after 60 = 540 steps, three seeds; docs/models.md, session 13). No label
    /// smoothing: of the session-13 ablation's rows (each ingredient off, three seeds) it had
    /// the best mean validation accuracy on Br35H (0.942 against the recipe's 0.935).
    pub fn default_preset(image_size: usize) -> Self {
        CnnConfig { epochs: 20, min_steps: 540, label_smoothing: 0.0, ..Self::residual(image_size) }
    }

    /// The study's layout scaled down for a 2-core CPU at `image_size` (64 px intended): same
    /// depth, narrower, flips only, 15 epochs.
    pub fn plain(image_size: usize) -> Self {
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

    /// Epochs actually trained on `n_images` images: `epochs`, or more to reach `min_steps`.
    pub fn epochs_for(&self, n_images: usize) -> usize {
        mri_train::epochs_for(self.epochs, self.min_steps, self.batch_size, n_images)
    }

    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        let f = 1usize << self.channels.len();
        if self.channels.is_empty() || self.image_size == 0 || self.image_size % f != 0 {
            return Err(CnnError::Config(format!(
                "image_size {} must be a positive multiple of 2^{} (one halving per conv block or residual stage)",
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
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(CnnError::Config(format!("label_smoothing must be in [0, 1), got {}", self.label_smoothing)));
        }
        self.augment.check()?;
        self.adam.check()?;
        Ok(())
    }

    /// Number of parameters (weights and biases; batch-norm affine included, running stats not).
    pub fn param_count(&self) -> usize {
        // conv k×k with bias + batch norm's affine pair.
        let conv_bn = |c_in: usize, c_out: usize, k: usize| c_out * c_in * k * k + c_out + 2 * c_out;
        let mut n = 0;
        let mut c_in = 1;
        let mut d = match self.arch {
            CnnArch::Plain => {
                for &c in &self.channels {
                    n += conv_bn(c_in, c, 3);
                    c_in = c;
                }
                let side = self.image_size >> self.channels.len();
                c_in * side * side
            }
            CnnArch::Residual => {
                n += conv_bn(1, self.channels[0], 3);
                c_in = self.channels[0];
                for (i, &c) in self.channels.iter().enumerate() {
                    n += conv_bn(c_in, c, 3) + conv_bn(c, c, 3);
                    if c_in != c || i > 0 {
                        n += conv_bn(c_in, c, 1);
                    }
                    c_in = c;
                }
                c_in
            }
        };
        for &h in &self.hidden {
            n += d * h + h;
            d = h;
        }
        n + d * 2 + 2
    }
}

/// A residual block: conv 3×3 (stride s) → BN → ReLU → conv 3×3 → BN, plus the input (through
/// a 1×1 conv stride s + BN when the shape changes), → ReLU.
#[derive(Clone)]
struct ResidualBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl ResidualBlock {
    fn new(c_in: usize, c_out: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let shortcut = if c_in != c_out || stride != 1 {
            Some((Conv2d::new(c_in, c_out, 1, stride, 0, vb.pp("shortcut.conv"))?, BatchNorm2d::new(c_out, vb.pp("shortcut.bn"))?))
        } else {
            None
        };
        Ok(ResidualBlock {
            conv1: Conv2d::new(c_in, c_out, 3, stride, 1, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(c_out, vb.pp("bn1"))?,
            conv2: Conv2d::new(c_out, c_out, 3, 1, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(c_out, vb.pp("bn2"))?,
            shortcut,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward_bn_t(x, &self.bn1, true, train)?;
        let h = self.conv2.forward_bn_t(&h, &self.bn2, false, train)?;
        let skip = match &self.shortcut {
            Some((conv, bn)) => conv.forward_bn_t(x, bn, false, train)?,
            None => x.clone(),
        };
        // The sum and its ReLU in one pass (session 32).
        mri_train::add_relu(&h, &skip)
    }
}

#[derive(Clone)]
enum Body {
    Plain(Vec<(Conv2d, BatchNorm2d)>),
    Residual { stem: (Conv2d, BatchNorm2d), blocks: Vec<ResidualBlock>, dropout: SeededDropout },
}

/// The CNN classifier. A clone shares its weights (tensors are reference-counted).
#[derive(Clone)]
pub struct Cnn {
    body: Body,
    fcs: Vec<(SeededDropout, Linear)>,
    out: Linear,
    step: StepKey,
    test_time_flip: bool,
}

impl Cnn {
    /// Builds the network; weights come from `vb` (seeded, or loaded from a checkpoint).
    /// Dropout masks are drawn from stream `dropout_seed`, keyed by [`Cnn::step_key`].
    pub fn new(cfg: &CnnConfig, vb: VarBuilder, dropout_seed: u64) -> Result<Self> {
        cfg.check()?;
        let step = StepKey::new();
        let (body, mut d) = match cfg.arch {
            CnnArch::Plain => {
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for (i, &c) in cfg.channels.iter().enumerate() {
                    let p = vb.pp(format!("conv{i}"));
                    blocks.push((Conv2d::new(c_in, c, 3, 1, 1, p.pp("conv"))?, BatchNorm2d::new(c, p.pp("bn"))?));
                    c_in = c;
                }
                let side = cfg.image_size >> cfg.channels.len();
                (Body::Plain(blocks), c_in * side * side)
            }
            CnnArch::Residual => {
                let c0 = cfg.channels[0];
                let stem = (Conv2d::new(1, c0, 3, 2, 1, vb.pp("stem.conv"))?, BatchNorm2d::new(c0, vb.pp("stem.bn"))?);
                let mut blocks = Vec::new();
                let mut c_in = c0;
                for (i, &c) in cfg.channels.iter().enumerate() {
                    blocks.push(ResidualBlock::new(c_in, c, if i == 0 { 1 } else { 2 }, vb.pp(format!("block{i}")))?);
                    c_in = c;
                }
                let dropout = SeededDropout::new(cfg.dropout, dropout_seed, "pool.dropout", step.clone());
                (Body::Residual { stem, blocks, dropout }, c_in)
            }
        };
        let mut fcs = Vec::new();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            let drop = SeededDropout::new(cfg.dropout, dropout_seed, &format!("fc{i}.dropout"), step.clone());
            fcs.push((drop, linear(d, h, vb.pp(format!("fc{i}")))?));
            d = h;
        }
        let out = linear(d, 2, vb.pp("out"))?;
        Ok(Cnn { body, fcs, out, step, test_time_flip: cfg.test_time_flip })
    }

    /// The same network (shared weights) with test-time flips switched on or off.
    pub fn with_test_time_flip(&self, on: bool) -> Cnn {
        Cnn { test_time_flip: on, ..self.clone() }
    }

    /// Tumour probabilities (N) of images (N, 1, S, S) in eval mode, averaged with those of the
    /// mirrored images when the config asks for test-time flips.
    pub fn proba(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let p = |x: &Tensor| -> candle_core::Result<Tensor> {
            candle_nn::ops::softmax(&self.forward_t(x, false)?, candle_core::D::Minus1)?.narrow(1, 1, 1)?.flatten_all()
        };
        if self.test_time_flip {
            (p(xs)? + p(&xs.flip(&[3])?)?)? * 0.5
        } else {
            p(xs)
        }
    }

    /// The step key its dropout layers read: a trainer sets it before each forward pass.
    pub fn step_key(&self) -> &StepKey {
        &self.step
    }

    /// Features before the output layer: the penultimate activations (the last hidden layer,
    /// or the pooled maps of a residual network without hidden layers), used as a feature
    /// extractor for Fréchet distance and nearest-neighbour privacy checks.
    pub fn features(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = match &self.body {
            Body::Plain(blocks) => {
                let mut x = xs.clone();
                for (conv, bn) in blocks {
                    x = conv.forward_bn_t(&x, bn, true, train)?;
                    x = max_pool2(&x)?;
                }
                x.flatten_from(1)?
            }
            Body::Residual { stem, blocks, dropout } => {
                let mut x = stem.0.forward_bn_t(xs, &stem.1, true, train)?;
                for b in blocks {
                    x = b.forward_t(&x, train)?;
                }
                // Global average pooling over the spatial axes.
                dropout.forward_t(&x.mean((2, 3))?, train)?
            }
        };
        for (drop, fc) in &self.fcs {
            x = mri_train::relu(&fc.forward(&drop.forward_t(&x, train)?)?)?;
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

mri_train::impl_presets!(CnnConfig);

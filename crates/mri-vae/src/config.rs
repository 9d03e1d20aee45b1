//! Configs and presets of the two VAEs.

use mri_train::AdamConfig;

use crate::latent::LatentSampler;
use mri_train::{Preset, Presets};
use serde::{Deserialize, Serialize};

use crate::{Result, VaeError};

/// The training loss of a VAE (per image, averaged over the batch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VaeLoss {
    /// The study's: binary cross-entropy summed over pixels + KL divergence summed over the
    /// latent dimensions (computed from logits in the stable softplus form).
    BceKl,
    /// Squared error summed over pixels + β · KL (β-VAE).
    MseKl {
        /// Weight of the KL term.
        beta: f64,
    },
}

/// How the generative VAE's code is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LatentLayout {
    /// A flat vector: the encoder's last map is flattened into linear layers to μ and log σ²,
    /// and the decoder starts with a linear layer (the study's).
    #[default]
    Flat,
    /// A map of `channels` × b × b at the bottleneck side b: 1×1 convs to μ and log σ², a 3×3
    /// conv back into the decoder. Where something is in the slice stays where it is in the
    /// code, so a small lesion does not have to be coded as a position by a linear layer
    /// (which a flat code of a few hundred training slices averages away). `latent` must be
    /// `channels · b²`.
    Spatial {
        /// Code channels per bottleneck position.
        channels: usize,
    },
}

/// Which training images a generative VAE is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassModels {
    /// One VAE per class, each on its own class's slices (the study).
    #[default]
    PerClass,
    /// One VAE on the slices of every class; each class samples from a code sampler fitted to
    /// its own slices' codes (the model itself is not told the class). Head, skull and
    /// ventricles are the same in both classes, so one model learns them from twice the
    /// slices in half the two models' steps; what makes a class is where its codes lie.
    Shared,
    /// One class-conditional VAE (CVAE, Sohn et al., NeurIPS 2015) on the slices of both
    /// classes (labels 0 and 1): the class enters the encoder as one constant input plane per
    /// class beside the image, and the decoder the same way beside the code, so the decoder is
    /// told what to draw; each class samples from a code sampler fitted to its own slices' codes.
    Conditional,
}

impl ClassModels {
    /// Classes the model itself is given (0 unless conditional).
    pub fn model_classes(self) -> usize {
        match self {
            ClassModels::Conditional => 2,
            ClassModels::PerClass | ClassModels::Shared => 0,
        }
    }

    /// One model for every class (shared or conditional).
    pub fn one_model(self) -> bool {
        self != ClassModels::PerClass
    }
}

/// Configuration of the generative VAE (one per class in the study) and of its training.
///
/// Encoder: for each entry of `channels`, conv 3×3 stride 2 pad 1 → BatchNorm → LeakyReLU 0.2;
/// flatten → Linear to μ and to log σ². Decoder (mirror): Linear(latent → last·b·b) + ReLU with
/// b = S / 2^len(channels), then len(channels) × [nearest upsample ×2 → conv 3×3 pad 1 → BN →
/// ReLU] through the channels in reverse, the last block to 1 channel without BN, then sigmoid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Image side S; a positive multiple of 2^len(channels).
    pub image_size: usize,
    /// Encoder widths (the study: 64, 128, 256, 512, 512, 1024).
    pub channels: Vec<usize>,
    /// Latent dimension (the study: 512).
    pub latent: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimiser (the study: AdamW lr 2e-4, betas (0.5, 0.999), weight decay 1e-5).
    pub adam: AdamConfig,
    /// Loss (the study: summed BCE + KL).
    pub loss: VaeLoss,
    /// Train at least this many optimiser steps: the epochs grow to ⌈min_steps / batches per
    /// epoch⌉ when the set is small (0 = exactly `epochs`). Missing in older configs: 0.
    #[serde(default)]
    pub min_steps: usize,
    /// The KL weight ramps linearly from 0 to its value over this many steps (KL warm-up,
    /// Bowman et al. 2016), so that the decoder learns to use the latent code before the prior
    /// pulls the posteriors together (0 = off). Validation always uses the full weight.
    #[serde(default)]
    pub kl_warmup_steps: usize,
    /// Where samples draw their codes (the study: the prior). Missing in older configs: prior.
    #[serde(default)]
    pub sampler: LatentSampler,
    /// Shrinkage s ∈ (0, 1] of the fitted code Gaussian's covariance towards isotropic
    /// ([`crate::LatentGaussian::fit`]); `None`: d / (n + d), which is 0.48 for 128-value codes of
    /// 140 images and 0.79 for 512: mostly isotropic noise, off the codes' manifold. Sampling
    /// only (a trained model's weights do not depend on it). Missing in older configs: `None`.
    #[serde(default)]
    pub latent_shrinkage: Option<f64>,
    /// The second stage of [`LatentSampler::TwoStage`] (sampling only). Missing in older
    /// configs: the default.
    #[serde(default)]
    pub second_stage: crate::SecondStageConfig,
    /// The code prior of [`crate::LatentSampler::Autoregressive`] (sampling only). Missing in
    /// older configs: the default.
    #[serde(default)]
    pub pixel_cnn: crate::PixelCnnConfig,
    /// Flat code vector (the study) or a spatial code map. Missing in older configs: flat.
    #[serde(default)]
    pub latent_layout: LatentLayout,
    /// Extra conv 3×3 → BN → ReLU layers after each decoder block but the last (the study:
    /// 0, one conv per resolution). Missing in older configs: 0.
    #[serde(default)]
    pub decoder_extra_convs: usize,
    /// One model per class (the study) or one shared by the classes ([`ClassModels`]); read by
    /// the code that trains a VAE per class (the root crate's `train_generators`). Missing in
    /// older configs: per class.
    #[serde(default)]
    pub class_models: ClassModels,
}

impl VaeConfig {
    /// The study's layout at 128 px.
    pub fn paper() -> Self {
        VaeConfig {
            image_size: 128,
            channels: vec![64, 128, 256, 512, 512, 1024],
            latent: 512,
            epochs: 100,
            batch_size: 32,
            adam: AdamConfig { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 1e-5 },
            loss: VaeLoss::BceKl,
            min_steps: 0,
            kl_warmup_steps: 0,
            sampler: LatentSampler::Prior,
            latent_shrinkage: None,
            second_stage: crate::SecondStageConfig::default(),
            pixel_cnn: crate::PixelCnnConfig::default(),
            latent_layout: LatentLayout::Flat,
            decoder_extra_convs: 0,
            class_models: ClassModels::PerClass,
        }
    }

    /// A 2-core-CPU layout at `image_size` (64 px intended): three blocks of 32, 64, 128
    /// channels and a **spatial code** of 2 channels on the S/8 × S/8 bottleneck (128 values at
    /// 64 px), two convs a decoder scale; trained to converge: Gaussian likelihood (summed
    /// squared error) with β = 0.01 (sharper than BCE + KL on phantoms), Adam lr 1e-3 with
    /// betas (0.9, 0.999) and no weight decay, at least 600 steps, the KL weight warmed up over
    /// the first 200; samples from a Gaussian fitted to the training codes (a small β leaves the
    /// codes far from N(0, I)). The spatial code replaced a flat 128-vector (four blocks of
    /// 16–128) in session 13: on phantoms the CNN trained on its samples alone scored 0.92 /
    /// 0.78 on validation against 0.83 / 0.48 (two seeds; docs/models.md).
    pub fn default_preset(image_size: usize) -> Self {
        VaeConfig {
            image_size,
            channels: vec![32, 64, 128],
            latent: 2 * (image_size / 8).pow(2),
            latent_layout: LatentLayout::Spatial { channels: 2 },
            decoder_extra_convs: 1,
            epochs: 20,
            adam: AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            loss: VaeLoss::MseKl { beta: 0.01 },
            min_steps: 600,
            kl_warmup_steps: 200,
            sampler: LatentSampler::FittedGaussian,
            ..Self::paper()
        }
    }

    /// A tiny layout for tests (sampling from the fitted code Gaussian, as the default does).
    pub fn quick(image_size: usize) -> Self {
        VaeConfig { image_size, channels: vec![4, 8], latent: 8, epochs: 3, batch_size: 8, sampler: LatentSampler::FittedGaussian, ..Self::paper() }
    }

    /// The config of `preset` (one resolution path for every model: [`Presets::preset`]);
    /// `image_size` overrides the preset's side.
    pub fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        <Self as Presets>::preset(preset, image_size)
    }

    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        check_common(self.image_size, &self.channels, self.latent, self.batch_size, &self.loss)?;
        if let LatentLayout::Spatial { channels } = self.latent_layout {
            let b = self.bottleneck_side();
            if channels == 0 || self.latent != channels * b * b {
                return Err(VaeError::Config(format!(
                    "a spatial code of {channels} channel(s) at the bottleneck side {b} has {} values: set latent to that (it is {}), and channels ≥ 1",
                    channels * b * b,
                    self.latent
                )));
            }
        }
        self.second_stage.check()?;
        self.pixel_cnn.check()?;
        if self.sampler == crate::LatentSampler::Autoregressive && self.latent_layout == LatentLayout::Flat {
            return Err(VaeError::Config("sampler \"autoregressive\" draws a spatial code: set latent_layout to spatial".into()));
        }
        crate::latent::check_shrinkage(self.latent_shrinkage)?;
        self.adam.check()?;
        Ok(())
    }

    /// Epochs actually trained on `n_images` images: `epochs`, or more to reach `min_steps`.
    pub fn epochs_for(&self, n_images: usize) -> usize {
        mri_train::epochs_for(self.epochs, self.min_steps, self.batch_size, n_images)
    }

    /// Side of the innermost feature map.
    pub fn bottleneck_side(&self) -> usize {
        self.image_size >> self.channels.len()
    }

    /// Number of parameters (BatchNorm affine included, running statistics not).
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        let classes = self.class_models.model_classes();
        let mut c_in = 1 + classes;
        for &c in &self.channels {
            n += c * c_in * 9 + c + 2 * c;
            c_in = c;
        }
        let flat = c_in * self.bottleneck_side().pow(2);
        n += match self.latent_layout {
            LatentLayout::Flat => 2 * (flat * self.latent + self.latent) + (self.latent + classes) * flat + flat,
            // Two 1×1 convs to the code, a 3×3 conv back.
            LatentLayout::Spatial { channels } => 2 * (c_in * channels + channels) + (channels + classes) * c_in * 9 + c_in,
        };
        let mut outs: Vec<usize> = self.channels.iter().rev().skip(1).copied().collect();
        outs.push(1);
        let mut c_in = *self.channels.last().unwrap_or(&1);
        for (j, &c) in outs.iter().enumerate() {
            n += c * c_in * 9 + c + if j + 1 < outs.len() { 2 * c + self.decoder_extra_convs * (c * c * 9 + 3 * c) } else { 0 };
            c_in = c;
        }
        n
    }
}

/// Layout of the anomaly VAE's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyDecoder {
    /// Transposed convs 4×4 stride 2 pad 1 mirroring the encoder (cheap; the default).
    Mirrored,
    /// The study's: transposed convs with stride 1 and kernel side+1, each doubling the side
    /// (kernels 33 and 65 at 128 px; ~2.9 GMAC per image).
    Study,
}

/// Configuration of the anomaly-detection VAE (trained on healthy slices only).
///
/// Encoder: for each entry of `channels`, conv 4×4 stride 2 pad 1 → ReLU; flatten → Linear to
/// μ and log σ². Decoder: Linear(latent → last·(S/2^n)²) + ReLU, then transposed convs back
/// through the channels in reverse to 1 channel (ReLU between them), then sigmoid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyVaeConfig {
    /// Image side S; a positive multiple of 2^len(channels).
    pub image_size: usize,
    /// Encoder widths (the study: 32, 64).
    pub channels: Vec<usize>,
    /// Latent dimension (the study: 64).
    pub latent: usize,
    /// Decoder layout.
    pub decoder: AnomalyDecoder,
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimiser (Adam lr 1e-3).
    pub adam: AdamConfig,
    /// Loss (the study: summed BCE + KL; the default preset: Gaussian, small β).
    pub loss: VaeLoss,
    /// Train at least this many optimiser steps: the epochs grow to ⌈min_steps / batches per
    /// epoch⌉ when the set is small (0 = exactly `epochs`). Missing in older configs: 0.
    #[serde(default)]
    pub min_steps: usize,
    /// The KL weight ramps linearly from 0 to its value over this many steps (KL warm-up,
    /// Bowman et al. 2016), so that the decoder learns to use the latent code before the prior
    /// pulls the posteriors together (0 = off). Validation always uses the full weight.
    #[serde(default)]
    pub kl_warmup_steps: usize,
}

impl AnomalyVaeConfig {
    /// The study's layout at 128 px, with its large-kernel decoder.
    pub fn paper() -> Self {
        AnomalyVaeConfig {
            image_size: 128,
            channels: vec![32, 64],
            latent: 64,
            decoder: AnomalyDecoder::Study,
            epochs: 50,
            batch_size: 32,
            adam: AdamConfig::default(),
            loss: VaeLoss::BceKl,
            min_steps: 0,
            kl_warmup_steps: 0,
        }
    }

    /// The study's encoder with the mirrored decoder, at `image_size` (64 px intended), 8
    /// epochs: the main job trains five of these (real, and synthetic and mixed per generator,
    /// each at the real set's cost) beside a denoising autoencoder within its 12-minute anomaly
    /// budget on Br35H. Gaussian likelihood (summed squared error + 0.01·KL, the KL weight
    /// warmed up over 200 steps) instead of the study's BCE + KL: on Br35H at the same 8 epochs
    /// the healthy slices' PSNR went 17.1 → 19.3 dB and the best validation row 0.723 → 0.741
    /// (its test AUROC 0.61 → 0.90); the study's loss left every row near chance (session 11,
    /// docs/anomaly.md).
    pub fn default_preset(image_size: usize) -> Self {
        AnomalyVaeConfig {
            image_size,
            decoder: AnomalyDecoder::Mirrored,
            epochs: 8,
            loss: VaeLoss::MseKl { beta: 0.01 },
            kl_warmup_steps: 200,
            ..Self::paper()
        }
    }

    /// A tiny layout for tests.
    pub fn quick(image_size: usize) -> Self {
        AnomalyVaeConfig { image_size, channels: vec![4, 8], latent: 8, decoder: AnomalyDecoder::Mirrored, epochs: 3, batch_size: 8, ..Self::paper() }
    }

    /// The config of `preset` (one resolution path for every model: [`Presets::preset`]);
    /// `image_size` overrides the preset's side.
    pub fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        <Self as Presets>::preset(preset, image_size)
    }

    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        check_common(self.image_size, &self.channels, self.latent, self.batch_size, &self.loss)?;
        self.adam.check()?;
        Ok(())
    }

    /// Side of the innermost feature map.
    pub fn bottleneck_side(&self) -> usize {
        self.image_size >> self.channels.len()
    }

    /// Kernel sizes of the decoder's transposed convs, first to last.
    pub fn decoder_kernels(&self) -> Vec<usize> {
        let n = self.channels.len();
        match self.decoder {
            AnomalyDecoder::Mirrored => vec![4; n],
            AnomalyDecoder::Study => (0..n).map(|j| (self.bottleneck_side() << j) + 1).collect(),
        }
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        let mut c_in = 1;
        for &c in &self.channels {
            n += c * c_in * 16 + c;
            c_in = c;
        }
        let flat = c_in * self.bottleneck_side().pow(2);
        n += 2 * (flat * self.latent + self.latent) + self.latent * flat + flat;
        let mut outs: Vec<usize> = self.channels.iter().rev().skip(1).copied().collect();
        outs.push(1);
        for (&c, k) in outs.iter().zip(self.decoder_kernels()) {
            n += c_in * c * k * k + c;
            c_in = c;
        }
        n
    }
}

fn check_common(image_size: usize, channels: &[usize], latent: usize, batch_size: usize, loss: &VaeLoss) -> Result<()> {
    let f = 1usize << channels.len();
    if channels.is_empty() || image_size == 0 || image_size % f != 0 {
        return Err(VaeError::Config(format!("image_size {image_size} must be a positive multiple of 2^{} (one stride-2 conv per block)", channels.len())));
    }
    if latent == 0 || batch_size == 0 || channels.contains(&0) {
        return Err(VaeError::Config("latent, batch_size and channels must be positive".into()));
    }
    if let VaeLoss::MseKl { beta } = loss {
        if !(beta.is_finite() && *beta >= 0.0) {
            return Err(VaeError::Config(format!("beta must be finite and >= 0, got {beta}")));
        }
    }
    Ok(())
}

mri_train::impl_presets!(VaeConfig, AnomalyVaeConfig);

//! Generator, discriminator and their config.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use mri_train::{linear, AdamConfig, BatchNorm2d, Conv2d, Linear, Preset, Presets};
use serde::{Deserialize, Serialize};

use crate::diffaug::DiffAugment;
use crate::spectral::SnWeight;
use crate::{GanError, Result};

/// The adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GanLoss {
    /// The study's: binary cross-entropy on D's logits, the generator's in the non-saturating
    /// form BCE(D(G(z)), 1).
    #[default]
    Bce,
    /// Hinge loss (Lim & Ye 2017; SN-GAN, BigGAN): D minimises mean(relu(1 − D(x))) +
    /// mean(relu(1 + D(G(z)))), G minimises −mean(D(G(z))).
    Hinge,
}

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
    /// Adversarial loss (the study: BCE). Missing in configs written before it existed: BCE.
    #[serde(default)]
    pub loss: GanLoss,
    /// DiffAugment of real and fake images in both steps (the study: off).
    #[serde(default)]
    pub diff_augment: DiffAugment,
    /// Spectral normalisation of every discriminator weight (the study: off).
    #[serde(default)]
    pub spectral_norm: bool,
    /// Decay of an exponential moving average of the generator's weights, which is then the
    /// generator that samples (0 = off, the study). The effective decay ramps up as
    /// min(decay, (1 + t) / (10 + t)) over steps t so that early weights fade quickly.
    #[serde(default)]
    pub ema_decay: f64,
    /// Train at least this many optimiser steps: the epochs grow to ⌈min_steps / batches per
    /// epoch⌉ when a class has few images (0 = exactly `epochs`). A GAN needs steps, not epochs:
    /// 140 phantom slices give 5 batches an epoch, Br35H's ~1000 of a class 33.
    #[serde(default)]
    pub min_steps: usize,
    /// Initialise every weight from N(0, 0.02) and biases at 0, as DCGAN does (Radford et al.
    /// 2016), instead of candle-nn's Kaiming-uniform: with the latter, the generator starts
    /// out saturating its tanh in pixel-sized stripes that the discriminator never trains
    /// away (the study's and our first runs). Missing in older configs: false.
    #[serde(default)]
    pub dcgan_init: bool,
    /// Downsample in the discriminator by conv 3×3 stride 1 → LeakyReLU → 2×2 average pool
    /// instead of a strided 4×4 conv. A strided conv's input gradient repeats with period 2
    /// (Odena et al., "Deconvolution and checkerboard artifacts", 2016) and the generator
    /// learns that pattern; the pooled gradient is smooth. About 2.3× the discriminator's
    /// FLOPs. Missing in older configs: false.
    #[serde(default)]
    pub d_avg_pool: bool,
    /// Which discriminator convs see their input blurred first ([`DiscriminatorBlur`]).
    /// Missing in older configs: off.
    #[serde(default)]
    pub d_blur: DiscriminatorBlur,
    /// Minibatch standard deviation in the discriminator (Karras et al., "Progressive growing
    /// of GANs", 2018): before the final linear layer, the discriminator's last feature map
    /// gains one channel holding the standard deviation of every feature across a group of
    /// this many images of the batch, averaged over features and pixels. A generator that
    /// draws the same head for every noise gives a smaller deviation than real batches do, and
    /// the discriminator can see it — the lever against the low diversity of longer GAN runs
    /// (MS-SSIM between samples 0.73 against the real 0.39 on Br35H). 0 = off (the study).
    /// Groups are the largest divisor of the batch size that is ≤ this. Missing in older
    /// configs: 0.
    #[serde(default)]
    pub d_minibatch_std: usize,
    /// PacGAN packing (Lin et al., "PacGAN: The power of two samples in generative adversarial
    /// networks", NeurIPS 2018; <https://github.com/fjxmlzn/PacGAN>): the discriminator judges
    /// packs of this many images of one kind, stacked as input channels, one logit a pack. A
    /// generator that draws one image for every noise makes packs of equal images, which real
    /// packs never are, so the discriminator can punish the collapse a per-image discriminator
    /// cannot see (the per-class phantom GANs collapse within 1000–3000 steps without it,
    /// docs/models.md session 19). A batch's last images that do not fill a pack are left out
    /// of the discriminator, and a batch smaller than a pack (an epoch's last) is skipped. In a
    /// class-conditional GAN (`classes` > 0) each pack holds one class: a batch is regrouped by
    /// class, each class's remainder left out, and the projection term reads the pack's label.
    /// 0 or 1 = off (the study). Missing in older configs: 0.
    #[serde(default)]
    pub d_pack: usize,
    /// Class-conditional GAN over this many classes (0 = one unconditional GAN per class, the
    /// study). The generator adds a learned class embedding (N(0, 1), `latent` wide) to its
    /// input: fc sees [z, e_y]. The discriminator is a projection discriminator (Miyato &
    /// Koyama, "cGANs with projection discriminator", ICLR 2018): logit = w·φ(x) + b +
    /// ⟨E_y, φ(x)⟩ with φ(x) its flattened last features and E a (classes × features)
    /// embedding that starts at zero (not spectrally normalised: see [`Discriminator::new`]). One model
    /// learns both classes, so what differs between its tumour and healthy slices is what the
    /// classes differ in, not two generators' separate artefacts — and each optimiser step
    /// trains both. Missing in older configs: 0.
    #[serde(default)]
    pub classes: usize,
    /// Weight λ of the mode-seeking term added to the generator's loss (Mao et al., MSGAN,
    /// CVPR 2019): λ / (mean|G(z₁) − G(z₂)| / mean|z₁ − z₂| + 1e-5) over the pairs (i, i + n/2)
    /// of the generator step's batch. The phantom GAN collapses to one image per class
    /// without it (per-pixel spread 0.016 across noises); 0 = off (the study). Missing in
    /// older configs: 0.
    #[serde(default)]
    pub mode_seeking: f64,
    /// Weight λ of an auxiliary classifier in a class-conditional GAN (AC-GAN: Odena, Olah &
    /// Shlens, "Conditional image synthesis with auxiliary classifier GANs", ICML 2017): a
    /// linear head on the discriminator's last features predicts the class; the discriminator
    /// adds λ·CE(class | real slice) to its loss and the generator λ·CE(its class | fake
    /// slice). The head learns from **real slices only** (the original also trains it on
    /// fakes), so it can tell the classes apart by what real slices show — the lesion — and not
    /// by the generator's own artefacts; the generator is then paid for drawing what makes a
    /// real slice a tumour slice. The projection discriminator alone drew no lesions on
    /// phantoms (synthetic-only CNN at chance, docs/models.md session 20). Needs `classes` > 0;
    /// 0 = off (the study). Missing in older configs: 0.
    #[serde(default)]
    pub aux_classifier: f64,
    /// The generator step reuses the discriminator step's fakes — the same noise, labels and
    /// generator forward — instead of drawing new ones: one generator forward a step fewer. The
    /// D step trains on them detached; the G step then scores them with the updated
    /// discriminator and backpropagates through the kept graph, as PyTorch's DCGAN tutorial does
    /// (`output = netD(fake)` after `optimizerD.step()`). The generator's batch norm then sees
    /// one batch a step, not two. Not with `mode_seeking`, whose pairs need the G step's own
    /// noise. false = a fresh batch for each step (the study). Missing in older configs: false.
    #[serde(default)]
    pub reuse_fake: bool,
    /// Weight λ of texture-statistics matching in the generator's loss
    /// ([`crate::TextureTarget::loss`]): the gap between the un-augmented fakes' Laplacian band
    /// energies, gradient-magnitude and intensity histograms and those of the real training
    /// slices of their class, in real standard deviations (first and second moments). Session
    /// 26's two-sample test told 92–95 % of the Br35H GAN's draws from real slices on exactly
    /// these statistics. 0 = off (the study). Missing in older configs: 0.
    #[serde(default)]
    pub texture_match: f64,
    /// Weight λ of the LeCam regulariser in the discriminator's loss (Tseng et al.,
    /// "Regularizing generative adversarial networks under limited data", CVPR 2021;
    /// google/lecam-gan): λ·(mean relu(D(x) − α_fake)² + mean relu(α_real − D(G(z)))²), with
    /// α_real, α_fake moving averages (decay [`crate::LECAM_DECAY`]) of D's mean logits on
    /// real and fake images ([`crate::LeCamAnchors`], saved with the checkpoint). It keeps a
    /// discriminator that has memorised a small training set from pushing its real and fake
    /// logits apart without bound; first-order only (no gradient penalty: candle has no
    /// second-order gradients). The phantom GAN's hinge loss sits near 0 for hundreds of steps
    /// (D(x) 0.86 against D(G(z)) 0.18, session 30). The reference uses 0.3 with hinge on
    /// CIFAR. 0 = off (the study). Missing in older configs: 0.
    #[serde(default)]
    pub lecam: f64,
}

/// Anti-aliased downsampling in the discriminator: the input of a (strided) conv is blurred by
/// the binomial filter [1 2 1]ᵀ[1 2 1] / 16 first, as StyleGAN2's discriminator does (Karras et
/// al. 2020; Zhang, "Making convolutional networks shift-invariant again", 2019). The input
/// gradient that reaches the generator passes through the same blur, which removes the period-2
/// pattern of a strided conv's gradient, for a depthwise 3×3 per layer (the Br35H GAN stage:
/// 635 s blurred against 623 s strided, two sittings). The filter zeroes the highest frequency, so a discriminator that blurs the image
/// itself cannot see pixel-level texture: [`DiscriminatorBlur::InnerLayers`] keeps the first
/// conv on the raw image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DiscriminatorBlur {
    /// No blur (the study's).
    #[default]
    Off,
    /// Before every conv, the image included.
    EveryLayer,
    /// Before every conv but the first (which sees the image as it is).
    InnerLayers,
}

impl DiscriminatorBlur {
    /// Whether conv `layer` (0 = the one on the image) blurs its input.
    pub fn blurs(self, layer: usize) -> bool {
        match self {
            DiscriminatorBlur::Off => false,
            DiscriminatorBlur::EveryLayer => true,
            DiscriminatorBlur::InnerLayers => layer > 0,
        }
    }
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
            loss: GanLoss::Bce,
            diff_augment: DiffAugment::default(),
            spectral_norm: false,
            ema_decay: 0.0,
            min_steps: 0,
            dcgan_init: false,
            d_avg_pool: false,
            d_blur: DiscriminatorBlur::Off,
            d_minibatch_std: 0,
            d_pack: 0,
            classes: 0,
            mode_seeking: 0.0,
            aux_classifier: 0.0,
            reuse_fake: false,
            texture_match: 0.0,
            lecam: 0.0,
        }
    }

    /// A 2-core-CPU layout at `image_size` (64 px intended): the study's generator (widths 128,
    /// 128, 64, 32; since session 24, before half of them) and a discriminator of the same
    /// depth at a quarter of the study's widths; hinge loss, spectral norm in D, an EMA
    /// generator, DCGAN initialisation, and against mode collapse a **packing discriminator** (`d_pack` 2, PacGAN) with two-time-scale
    /// Adam (D lr 4e-4, G lr 1e-4, betas (0, 0.99); Heusel et al. 2017), at least 3000 steps.
    /// DiffAugment is off: the phantom GANs of session 19 collapsed to one image per class
    /// within 1000–3000 steps with every per-image-augmented variant and drew varied heads with
    /// packs and no augmentation (per-pixel spread across noises 0.11 against 0.02–0.03; the
    /// synthetic-only CNN's real validation accuracy tied with grouped DiffAugment, 0.77, at a
    /// lower validation loss, 0.50 against 0.55; docs/models.md).
    pub fn default_preset(image_size: usize) -> Self {
        let ttur = |lr: f64| AdamConfig { lr, beta1: 0.0, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 };
        GanConfig {
            image_size,
            // The study's generator widths: the half-width generator of sessions 13–23 drew
            // grainy phantom heads without lesions (synthetic-only CNN 63.3 %, real validation
            // 0.62); this one 90.0 % (0.85) at 1.4× the cost a step (docs/models.md, session 24).
            d_channels: vec![16, 32, 64, 128],
            epochs: 20,
            batch_size: 32,
            adam_g: ttur(1e-4),
            adam_d: ttur(4e-4),
            loss: GanLoss::Hinge,
            diff_augment: DiffAugment::default(),
            spectral_norm: true,
            ema_decay: 0.999,
            min_steps: 3000,
            dcgan_init: true,
            d_pack: 2,
            ..Self::paper()
        }
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
        self.diff_augment.check().map_err(GanError::Config)?;
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(GanError::Config(format!("ema_decay must be in [0, 1), got {}", self.ema_decay)));
        }
        if !(self.mode_seeking >= 0.0 && self.mode_seeking.is_finite()) {
            return Err(GanError::Config(format!("mode_seeking must be a finite λ ≥ 0, got {}", self.mode_seeking)));
        }
        if self.d_pack > 1 && self.classes > 0 && self.mode_seeking > 0.0 {
            // Mode seeking repeats the first half's labels in the second half of the G step's
            // batch, which would mix classes inside a pack.
            return Err(GanError::Config("d_pack with classes (a packing conditional GAN) does not combine with mode_seeking".into()));
        }
        if self.d_pack > self.batch_size {
            return Err(GanError::Config(format!("d_pack {} exceeds the batch size {}: no pack would fill", self.d_pack, self.batch_size)));
        }
        if !(self.aux_classifier >= 0.0 && self.aux_classifier.is_finite()) {
            return Err(GanError::Config(format!("aux_classifier must be a finite λ ≥ 0, got {}", self.aux_classifier)));
        }
        if self.aux_classifier > 0.0 && self.classes == 0 {
            return Err(GanError::Config("aux_classifier needs a class-conditional GAN (classes ≥ 2)".into()));
        }
        if self.reuse_fake && self.mode_seeking > 0.0 {
            return Err(GanError::Config("reuse_fake does not combine with mode_seeking (its noise pairs are drawn for the generator step)".into()));
        }
        if !(self.texture_match >= 0.0 && self.texture_match.is_finite()) {
            return Err(GanError::Config(format!("texture_match must be a finite λ ≥ 0, got {}", self.texture_match)));
        }
        if !(self.lecam >= 0.0 && self.lecam.is_finite()) {
            return Err(GanError::Config(format!("lecam must be a finite λ ≥ 0, got {}", self.lecam)));
        }
        if self.classes == 1 {
            return Err(GanError::Config("classes must be 0 (unconditional) or at least 2".into()));
        }
        Ok(())
    }

    /// Epochs actually trained on `n_images` images: `epochs`, or more to reach `min_steps`.
    pub fn epochs_for(&self, n_images: usize) -> usize {
        mri_train::epochs_for(self.epochs, self.min_steps, self.batch_size, n_images)
    }

    /// Images per discriminator input (1 without packing).
    pub fn pack(&self) -> usize {
        self.d_pack.max(1)
    }

    /// Parameters of the generator and of the discriminator.
    pub fn param_counts(&self) -> (usize, usize) {
        let s0 = self.start_side();
        let conditional = usize::from(self.classes > 0);
        let mut g = (1 + conditional) * self.latent * self.g_base * s0 * s0 + self.g_base * s0 * s0 + self.classes * self.latent;
        let mut c_in = self.g_base;
        for &c in &self.g_channels {
            g += c_in * c * 9 + c + 2 * c;
            c_in = c;
        }
        g += c_in * 9 + 1;
        let mut d = 0;
        let mut c_in = self.pack();
        for &c in &self.d_channels {
            d += c_in * c * if self.d_avg_pool { 9 } else { 16 } + c;
            c_in = c;
        }
        let side = self.image_size >> self.d_channels.len();
        let features = (c_in + usize::from(self.d_minibatch_std > 0)) * side * side;
        d += features + 1 + self.classes * features;
        if self.aux_classifier > 0.0 {
            d += self.classes * (features + 1);
        }
        (g, d)
    }
}

/// DCGAN's initialisation: N(0, 0.02) weights.
const DCGAN_INIT: candle_nn::Init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };

/// A conv layer initialised as `cfg` says (candle-nn's default or DCGAN's).
fn gan_conv(cfg: &GanConfig, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, vb: VarBuilder) -> candle_core::Result<Conv2d> {
    if cfg.dcgan_init {
        Conv2d::with_init(c_in, c_out, k, stride, pad, DCGAN_INIT, vb)
    } else {
        Conv2d::new(c_in, c_out, k, stride, pad, vb)
    }
}

/// A linear layer initialised as `cfg` says.
fn gan_linear(cfg: &GanConfig, d_in: usize, d_out: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    if cfg.dcgan_init {
        let w = vb.get_with_hints((d_out, d_in), "weight", DCGAN_INIT)?;
        let b = vb.get_with_hints(d_out, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Linear::new(w, Some(b)))
    } else {
        linear(d_in, d_out, vb)
    }
}

/// The generator. Weight names (under the trainer's `generator` prefix): `fc.*`,
/// `block{i}.conv.*`, `block{i}.bn.*`, `out.*`.
#[derive(Debug, Clone)]
pub struct Generator {
    fc: Linear,
    class_embed: Option<Tensor>,
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
        let conditional = cfg.classes > 0;
        let fc = gan_linear(cfg, cfg.latent * (1 + usize::from(conditional)), cfg.g_base * s0 * s0, vb.pp("fc"))?;
        let class_embed = if conditional {
            Some(vb.get_with_hints((cfg.classes, cfg.latent), "class_embed", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 })?)
        } else {
            None
        };
        let mut blocks = Vec::new();
        let mut c_in = cfg.g_base;
        for (i, &c) in cfg.g_channels.iter().enumerate() {
            let p = vb.pp(format!("block{i}"));
            blocks.push((gan_conv(cfg, c_in, c, 3, 1, 1, p.pp("conv"))?, BatchNorm2d::new(c, p.pp("bn"))?));
            c_in = c;
        }
        let out = gan_conv(cfg, c_in, 1, 3, 1, 1, vb.pp("out"))?;
        Ok(Generator { fc, class_embed, blocks, out, base: cfg.g_base, start: s0, latent: cfg.latent })
    }

    /// Latent dimension.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Number of classes of a class-conditional generator (0 = unconditional).
    pub fn classes(&self) -> usize {
        self.class_embed.as_ref().map_or(0, |e| e.dims()[0])
    }

    /// Images (N, 1, S, S) in [−1, 1] from latents (N, latent) and, for a class-conditional
    /// generator, class labels (N,) of dtype u32 (`None` for an unconditional one).
    ///
    /// # Errors
    /// Labels missing for a conditional generator or given to an unconditional one.
    pub fn forward_class(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let input = match (&self.class_embed, labels) {
            (Some(e), Some(y)) => Tensor::cat(&[z, &e.index_select(y, 0)?], 1)?,
            (None, None) => z.clone(),
            (Some(_), None) => candle_core::bail!("a class-conditional generator needs class labels"),
            (None, Some(_)) => candle_core::bail!("an unconditional generator takes no class labels"),
        };
        let mut x = mri_train::relu(&self.fc.forward(&input)?)?.reshape((n, self.base, self.start, self.start))?;
        // Upsample + conv as phase convs on the smaller map (mri_train::upconv: the same
        // function, 16 multiply-adds where 36 were).
        for (conv, bn) in &self.blocks {
            x = conv.forward_upsampled_bn_t(&x, bn, true, train)?;
        }
        self.out.forward_upsampled(&x)?.tanh()
    }
}

impl ModuleT for Generator {
    /// Images (N, 1, S, S) in [−1, 1] from latents (N, latent) of an unconditional generator
    /// ([`Generator::forward_class`] for a conditional one).
    fn forward_t(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_class(z, None, train)
    }
}

/// The discriminator. Weight names (under `discriminator`): `conv{i}.*`, `out.*`; with spectral
/// normalisation also `conv{i}.sn_u`, `out.sn_u` (power-iteration vectors, not trained); a
/// class-conditional one also `proj.weight`.
pub struct Discriminator {
    convs: Vec<(SnWeight, Tensor)>,
    out: (SnWeight, Tensor),
    proj: Option<Tensor>,
    aux: Option<Linear>,
    avg_pool: bool,
    blur: DiscriminatorBlur,
    minibatch_std: usize,
    pack: usize,
}

impl Discriminator {
    /// Builds the discriminator.
    pub fn new(cfg: &GanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let mut convs = Vec::new();
        let mut c_in = cfg.pack();
        for (i, &c) in cfg.d_channels.iter().enumerate() {
            let p = vb.pp(format!("conv{i}"));
            let conv = if cfg.d_avg_pool { gan_conv(cfg, c_in, c, 3, 1, 1, p.clone())? } else { gan_conv(cfg, c_in, c, 4, 2, 1, p.clone())? };
            convs.push((SnWeight::new(conv.weight().clone(), cfg.spectral_norm, &p)?, conv.bias().clone()));
            c_in = c;
        }
        let side = cfg.image_size >> cfg.d_channels.len();
        let p = vb.pp("out");
        let features = (c_in + usize::from(cfg.d_minibatch_std > 0)) * side * side;
        let out: Linear = gan_linear(cfg, features, 1, p.clone())?;
        let out = (SnWeight::new(out.weight().clone(), cfg.spectral_norm, &p)?, out.bias().expect("linear has a bias").clone());
        // The class embedding starts at zero and is not spectrally normalised: the
        // discriminator starts out unconditional and the class term grows only as far as the
        // data need it. A normalised, randomly initialised embedding (σ = 1 from the first
        // step) collapsed the conditional generator to one image per class within a few hundred
        // steps, on phantoms and on Br35H alike.
        let proj = if cfg.classes > 0 { Some(vb.pp("proj").get_with_hints((cfg.classes, features), "weight", candle_nn::Init::Const(0.0))?) } else { None };
        let aux = if cfg.aux_classifier > 0.0 { Some(gan_linear(cfg, features, cfg.classes, vb.pp("aux"))?) } else { None };
        Ok(Discriminator { convs, out, proj, aux, avg_pool: cfg.d_avg_pool, blur: cfg.d_blur, minibatch_std: cfg.d_minibatch_std, pack: cfg.pack() })
    }

    /// One logit per image (N, 1) for images (N, 1, S, S) in [−1, 1] of an unconditional
    /// discriminator. With `update_sn`, each spectrally normalised weight first takes one
    /// power-iteration step (once per D step).
    pub fn forward_sn(&self, xs: &Tensor, update_sn: bool) -> candle_core::Result<Tensor> {
        self.forward_class(xs, None, update_sn)
    }

    /// Images per logit ([`GanConfig::d_pack`], 1 without packing).
    pub fn pack(&self) -> usize {
        self.pack
    }

    /// `xs` (N, 1, S, S) as ⌊N / pack⌋ packs (N / pack, pack, S, S): images i·pack … i·pack +
    /// pack − 1 stacked as channels; the remainder left out.
    fn packed(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        if self.pack == 1 {
            return Ok(xs.clone());
        }
        let (n, c, h, w) = xs.dims4()?;
        let packs = n / self.pack;
        if packs == 0 {
            candle_core::bail!("a discriminator packing {} images got a batch of {n}", self.pack);
        }
        xs.narrow(0, 0, packs * self.pack)?.reshape((packs, self.pack * c, h, w))
    }

    /// One logit per image (N, 1) — per pack of [`Discriminator::pack`] images (⌊N / pack⌋, 1)
    /// with packing — for images (N, 1, S, S) in [−1, 1] and, for a
    /// class-conditional discriminator, their class labels (N,) u32 (the projection term
    /// ⟨E_y, φ(x)⟩ is added; with packing, y is the label of each pack's first image: the
    /// caller keeps one class a pack, as [`crate::pack_order`] does). `update_sn` as in [`Discriminator::forward_sn`].
    ///
    /// # Errors
    /// Labels missing for a conditional discriminator or given to an unconditional one.
    pub fn forward_class(&self, xs: &Tensor, labels: Option<&Tensor>, update_sn: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_with_classes(xs, labels, update_sn)?.0)
    }

    /// As [`Discriminator::forward_class`], plus the auxiliary classifier's class logits
    /// (⌊N / pack⌋, classes) when the config has one ([`GanConfig::aux_classifier`]).
    pub fn forward_with_classes(&self, xs: &Tensor, labels: Option<&Tensor>, update_sn: bool) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        match (&self.proj, labels) {
            (Some(_), None) => candle_core::bail!("a class-conditional discriminator needs class labels"),
            (None, Some(_)) => candle_core::bail!("an unconditional discriminator takes no class labels"),
            _ => {}
        }
        let mut x = self.packed(xs)?;
        for (layer, (w, b)) in self.convs.iter().enumerate() {
            let stride = if self.avg_pool { 1 } else { 2 };
            if self.blur.blurs(layer) {
                x = binomial_blur3(&x)?;
            }
            x = mri_train::leaky_relu(&mri_train::fastconv::conv2d(&x, &w.weight(update_sn)?, Some(b), stride, 1)?, 0.2)?;
            if self.avg_pool {
                x = x.avg_pool2d(2)?;
            }
        }
        if self.minibatch_std > 0 {
            x = minibatch_std(&x, self.minibatch_std)?;
        }
        let (w, b) = &self.out;
        let features = x.flatten_from(1)?;
        let logit = features.matmul(&w.weight(update_sn)?.t()?)?.broadcast_add(b)?;
        let classes = self.aux.as_ref().map(|aux| aux.forward(&features)).transpose()?;
        let logit = match (&self.proj, labels) {
            (Some(e), Some(y)) => {
                // One label a pack: its first image's (the images of a pack share a class,
                // see `pack_order`).
                let y = self.pack_labels(y, features.dim(0)?)?;
                (logit + (e.index_select(&y, 0)? * &features)?.sum_keepdim(1)?)?
            }
            _ => logit,
        };
        Ok((logit, classes))
    }

    /// The label of each of `packs` packs from per-image labels `y` (N,): its first image's.
    pub fn pack_labels(&self, y: &Tensor, packs: usize) -> candle_core::Result<Tensor> {
        if self.pack > 1 {
            y.narrow(0, 0, packs * self.pack)?.reshape((packs, self.pack))?.narrow(1, 0, 1)?.flatten_all()
        } else {
            Ok(y.clone())
        }
    }
}

/// `x` (N, C, H, W) with one more channel: the standard deviation of each feature across a
/// group of G images, averaged over the C·H·W features, the same value on every pixel of
/// every image of the group. G is the largest divisor of N that is ≤ `group`; image i belongs
/// to group i mod N/G. After StyleGAN2-ADA's `MinibatchStdLayer` (NVlabs/stylegan2-ada-pytorch,
/// training/networks.py) with one statistic channel. Plain tensor ops: every device, autograd.
pub fn minibatch_std(x: &Tensor, group: usize) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let g = (1..=group.min(n)).rev().find(|g| n % g == 0).unwrap_or(1);
    let groups = n / g;
    let y = x.reshape((g, groups, c * h * w))?;
    let centred = y.broadcast_sub(&y.mean_keepdim(0)?)?;
    let sd = (centred.sqr()?.mean(0)? + 1e-8)?.sqrt()?; // (groups, C·H·W)
    let stat = sd.mean_keepdim(1)?.reshape((1, groups, 1))?; // (1, groups, 1)
    let plane = stat.broadcast_as((g, groups, h * w))?.contiguous()?.reshape((n, 1, h, w))?;
    Tensor::cat(&[x, &plane], 1)
}

/// Each channel of `x` (N, C, H, W) blurred by [1 2 1]ᵀ[1 2 1] / 16 with zero padding (same
/// size), separably: three shifted views summed per axis. Plain tensor ops, so it runs on every
/// device and autograd carries the (equally blurred) gradient back.
pub fn binomial_blur3(x: &Tensor) -> candle_core::Result<Tensor> {
    let axis = |x: &Tensor, dim: usize| -> candle_core::Result<Tensor> {
        let len = x.dim(dim)?;
        let p = x.pad_with_zeros(dim, 1, 1)?;
        let centre = (p.narrow(dim, 1, len)? * 2.0)?;
        ((p.narrow(dim, 0, len)? + centre)? + p.narrow(dim, 2, len)?)? * 0.25
    };
    axis(&axis(x, 3)?, 2)
}

impl Module for Discriminator {
    /// One logit per image (N, 1) for images (N, 1, S, S) in [−1, 1] (power iterations not advanced).
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_sn(xs, false)
    }
}

mri_train::impl_presets!(GanConfig);

//! The two VAE networks.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use mri_train::{linear, BatchNorm2d, Conv2d, ConvTranspose2d, Linear};

use crate::config::{AnomalyVaeConfig, LatentLayout, VaeConfig};
use crate::Result;

/// What the trainer, sampler and scorer need from a VAE.
pub trait VaeModel {
    /// μ and log σ², each (N, latent), for images (N, 1, S, S) in [0, 1].
    fn encode(&self, xs: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)>;
    /// Decoder logits (N, 1, S, S) for latents (N, latent); the image is their sigmoid.
    fn decode_logits(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Latent dimension.
    fn latent(&self) -> usize;
    /// Classes the model is conditioned on (0: none; see [`GenerativeVae::of_class`]).
    fn classes(&self) -> usize {
        0
    }
    /// [`VaeModel::encode`] told each image's class (`labels`, u32 (N)) when the model is
    /// class-conditional; others ignore the labels.
    fn encode_labelled(&self, xs: &Tensor, labels: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let _ = labels;
        self.encode(xs, train)
    }
    /// [`VaeModel::decode_logits`] told each code's class, as [`VaeModel::encode_labelled`].
    fn decode_logits_labelled(&self, z: &Tensor, labels: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let _ = labels;
        self.decode_logits(z, train)
    }
    /// Decoded images in [0, 1].
    fn decode(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&self.decode_logits(z, train)?)
    }
    /// Deterministic reconstruction (decode μ), in [0, 1], eval mode.
    fn reconstruct(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (mu, _) = self.encode(xs, false)?;
        self.decode(&mu, false)
    }
    /// [`VaeModel::decode`] told each code's class ([`VaeModel::decode_logits_labelled`]).
    fn decode_labelled(&self, z: &Tensor, labels: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&self.decode_logits_labelled(z, labels, train)?)
    }
    /// [`VaeModel::reconstruct`] told each image's class ([`VaeModel::encode_labelled`]).
    fn reconstruct_labelled(&self, xs: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
        let (mu, _) = self.encode_labelled(xs, labels, false)?;
        self.decode_labelled(&mu, labels, false)
    }
}

/// The layers between the encoder's last map and the decoder's first (see [`LatentLayout`]).
#[derive(Debug, Clone)]
enum Bottleneck {
    Flat { mu: Linear, logvar: Linear, dec_in: Linear },
    Spatial { mu: Conv2d, logvar: Conv2d, dec_in: Conv2d, channels: usize },
}

/// One decoder scale: nearest upsample → conv → BN → ReLU (no BN or ReLU on the last), then
/// the extra conv 3×3 → BN → ReLU layers of `decoder_extra_convs` (none on the last).
#[derive(Debug, Clone)]
struct DecoderBlock {
    conv: Conv2d,
    bn: Option<BatchNorm2d>,
    extra: Vec<(Conv2d, BatchNorm2d)>,
}

/// The generative VAE. Weight names: `enc{i}.conv.*`, `enc{i}.bn.*`, `mu.*`, `logvar.*`,
/// `dec_in.*` (linear layers for a flat code, convs for a spatial one), `dec{j}.conv.*`,
/// `dec{j}.bn.*` (no BN on the last decoder block), `dec{j}.extra{k}.{conv,bn}.*`.
/// Cloning shares the weights (candle tensors are reference-counted).
#[derive(Debug, Clone)]
pub struct GenerativeVae {
    enc: Vec<(Conv2d, BatchNorm2d)>,
    bottleneck_layers: Bottleneck,
    dec: Vec<DecoderBlock>,
    top_channels: usize,
    bottleneck: usize,
    latent: usize,
    /// Classes of a class-conditional VAE ([`crate::ClassModels::Conditional`]), else 0.
    classes: usize,
    /// The class the unlabelled calls (`encode`, `decode_logits`) condition on.
    drawn_class: Option<u32>,
}

/// One constant plane per class, 1 for the image's class and 0 for the others: (N, classes, side, side).
fn class_planes(labels: &Tensor, classes: usize, side: usize) -> candle_core::Result<Tensor> {
    let labels: Vec<u32> = labels.to_vec1()?;
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        candle_core::bail!("label {bad} of a VAE conditioned on {classes} classes");
    }
    let plane = side * side;
    let mut v = vec![0f32; labels.len() * classes * plane];
    for (i, &l) in labels.iter().enumerate() {
        let at = (i * classes + l as usize) * plane;
        v[at..at + plane].fill(1.0);
    }
    Tensor::from_vec(v, (labels.len(), classes, side, side), &candle_core::Device::Cpu)
}

impl GenerativeVae {
    /// Builds the network; weights come from `vb`.
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let classes = cfg.class_models.model_classes();
        let mut enc = Vec::new();
        let mut c_in = 1 + classes;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let p = vb.pp(format!("enc{i}"));
            enc.push((Conv2d::new(c_in, c, 3, 2, 1, p.pp("conv"))?, BatchNorm2d::new(c, p.pp("bn"))?));
            c_in = c;
        }
        let b = cfg.bottleneck_side();
        let flat = c_in * b * b;
        let bottleneck_layers = match cfg.latent_layout {
            LatentLayout::Flat => Bottleneck::Flat {
                mu: linear(flat, cfg.latent, vb.pp("mu"))?,
                logvar: linear(flat, cfg.latent, vb.pp("logvar"))?,
                dec_in: linear(cfg.latent + classes, flat, vb.pp("dec_in"))?,
            },
            LatentLayout::Spatial { channels } => Bottleneck::Spatial {
                mu: Conv2d::new(c_in, channels, 1, 1, 0, vb.pp("mu"))?,
                logvar: Conv2d::new(c_in, channels, 1, 1, 0, vb.pp("logvar"))?,
                dec_in: Conv2d::new(channels + classes, c_in, 3, 1, 1, vb.pp("dec_in"))?,
                channels,
            },
        };
        let mut outs: Vec<usize> = cfg.channels.iter().rev().skip(1).copied().collect();
        outs.push(1);
        let mut dec = Vec::new();
        let n = outs.len();
        for (j, &c) in outs.iter().enumerate() {
            let p = vb.pp(format!("dec{j}"));
            let conv = Conv2d::new(c_in, c, 3, 1, 1, p.pp("conv"))?;
            let inner = j + 1 < n;
            let bn = if inner { Some(BatchNorm2d::new(c, p.pp("bn"))?) } else { None };
            let mut extra = Vec::new();
            for k in 0..if inner { cfg.decoder_extra_convs } else { 0 } {
                let q = p.pp(format!("extra{k}"));
                extra.push((Conv2d::new(c, c, 3, 1, 1, q.pp("conv"))?, BatchNorm2d::new(c, q.pp("bn"))?));
            }
            dec.push(DecoderBlock { conv, bn, extra });
            c_in = c;
        }
        Ok(GenerativeVae {
            enc,
            bottleneck_layers,
            dec,
            top_channels: *cfg.channels.last().unwrap(),
            bottleneck: b,
            latent: cfg.latent,
            classes,
            drawn_class: None,
        })
    }

    /// The same model (weights shared) conditioned on class `label` in its unlabelled calls
    /// ([`VaeModel::encode`], [`VaeModel::decode_logits`], so sampling and code fitting): how a
    /// class-conditional VAE draws one class. A model without classes is returned as it is.
    pub fn of_class(&self, label: u32) -> Self {
        GenerativeVae { drawn_class: (self.classes > 0).then_some(label), ..self.clone() }
    }

    /// The labels an unlabelled call of a class-conditional model uses: `n` times its class.
    fn drawn_labels(&self, n: usize) -> candle_core::Result<Tensor> {
        match self.drawn_class {
            Some(c) => Tensor::from_vec(vec![c; n], n, &candle_core::Device::Cpu),
            None => candle_core::bail!("a class-conditional VAE draws one class at a time: choose it with GenerativeVae::of_class"),
        }
    }

    fn encode_impl(&self, xs: &Tensor, labels: Option<&Tensor>, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let mut x = match labels {
            Some(l) => Tensor::cat(&[xs, &class_planes(l, self.classes, xs.dim(2)?)?.to_device(xs.device())?], 1)?,
            None => xs.clone(),
        };
        for (conv, bn) in &self.enc {
            x = mri_train::leaky_relu(&conv.forward_bn_t(&x, bn, false, train)?, 0.2)?;
        }
        match &self.bottleneck_layers {
            Bottleneck::Flat { mu, logvar, .. } => {
                let x = x.flatten_from(1)?;
                Ok((mu.forward(&x)?, logvar.forward(&x)?))
            }
            // The code map flattened channel-major, so the trait's (N, latent) holds for both.
            Bottleneck::Spatial { mu, logvar, .. } => Ok((mu.forward(&x)?.flatten_from(1)?, logvar.forward(&x)?.flatten_from(1)?)),
        }
    }

    fn decode_impl(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let (b, top) = (self.bottleneck, self.top_channels);
        let planes =
            |side: usize| -> candle_core::Result<Option<Tensor>> { labels.map(|l| class_planes(l, self.classes, side)?.to_device(z.device())).transpose() };
        let mut x = match &self.bottleneck_layers {
            Bottleneck::Flat { dec_in, .. } => {
                let z = match planes(1)? {
                    Some(p) => Tensor::cat(&[z, &p.flatten_from(1)?], 1)?,
                    None => z.clone(),
                };
                mri_train::relu(&dec_in.forward(&z)?)?.reshape((n, top, b, b))?
            }
            Bottleneck::Spatial { dec_in, channels, .. } => {
                let code = z.reshape((n, *channels, b, b))?;
                let code = match planes(b)? {
                    Some(p) => Tensor::cat(&[&code, &p], 1)?,
                    None => code,
                };
                mri_train::relu(&dec_in.forward(&code)?)?
            }
        };
        for block in &self.dec {
            x = match &block.bn {
                Some(bn) => block.conv.forward_upsampled_bn_t(&x, bn, true, train)?,
                None => block.conv.forward_upsampled(&x)?,
            };
            for (conv, bn) in &block.extra {
                x = conv.forward_bn_t(&x, bn, true, train)?;
            }
        }
        Ok(x)
    }
}

impl VaeModel for GenerativeVae {
    fn encode(&self, xs: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        if self.classes == 0 {
            return self.encode_impl(xs, None, train);
        }
        self.encode_impl(xs, Some(&self.drawn_labels(xs.dim(0)?)?), train)
    }

    fn decode_logits(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if self.classes == 0 {
            return self.decode_impl(z, None, train);
        }
        self.decode_impl(z, Some(&self.drawn_labels(z.dim(0)?)?), train)
    }

    fn latent(&self) -> usize {
        self.latent
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn encode_labelled(&self, xs: &Tensor, labels: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        self.encode_impl(xs, (self.classes > 0).then_some(labels), train)
    }

    fn decode_logits_labelled(&self, z: &Tensor, labels: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.decode_impl(z, (self.classes > 0).then_some(labels), train)
    }
}

impl ModuleT for GenerativeVae {
    /// Reconstruction through μ (no sampling noise), in [0, 1].
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (mu, _) = self.encode(xs, train)?;
        self.decode(&mu, train)
    }
}

/// The anomaly VAE. Weight names: `enc{i}.*`, `mu.*`, `logvar.*`, `dec_in.*`, `dec{j}.*`.
pub struct AnomalyVae {
    enc: Vec<Conv2d>,
    mu: Linear,
    logvar: Linear,
    dec_in: Linear,
    dec: Vec<ConvTranspose2d>,
    top_channels: usize,
    bottleneck: usize,
    latent: usize,
}

impl AnomalyVae {
    /// Builds the network; weights come from `vb`.
    pub fn new(cfg: &AnomalyVaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let mut enc = Vec::new();
        let mut c_in = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            enc.push(Conv2d::new(c_in, c, 4, 2, 1, vb.pp(format!("enc{i}")))?);
            c_in = c;
        }
        let b = cfg.bottleneck_side();
        let flat = c_in * b * b;
        let mu = linear(flat, cfg.latent, vb.pp("mu"))?;
        let logvar = linear(flat, cfg.latent, vb.pp("logvar"))?;
        let dec_in = linear(cfg.latent, flat, vb.pp("dec_in"))?;
        let mut outs: Vec<usize> = cfg.channels.iter().rev().skip(1).copied().collect();
        outs.push(1);
        let mut dec = Vec::new();
        for (j, (&c, k)) in outs.iter().zip(cfg.decoder_kernels()).enumerate() {
            let (stride, pad) = match cfg.decoder {
                crate::AnomalyDecoder::Mirrored => (2, 1),
                crate::AnomalyDecoder::Study => (1, 0),
            };
            dec.push(ConvTranspose2d::new(c_in, c, k, stride, pad, vb.pp(format!("dec{j}")))?);
            c_in = c;
        }
        Ok(AnomalyVae { enc, mu, logvar, dec_in, dec, top_channels: *cfg.channels.last().unwrap(), bottleneck: b, latent: cfg.latent })
    }
}

impl VaeModel for AnomalyVae {
    fn encode(&self, xs: &Tensor, _train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let mut x = xs.clone();
        for conv in &self.enc {
            x = mri_train::relu(&conv.forward(&x)?)?;
        }
        let x = x.flatten_from(1)?;
        Ok((self.mu.forward(&x)?, self.logvar.forward(&x)?))
    }

    fn decode_logits(&self, z: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let mut x = mri_train::relu(&self.dec_in.forward(z)?)?.reshape((n, self.top_channels, self.bottleneck, self.bottleneck))?;
        let last = self.dec.len() - 1;
        for (j, conv) in self.dec.iter().enumerate() {
            x = conv.forward(&x)?;
            if j < last {
                x = mri_train::relu(&x)?;
            }
        }
        Ok(x)
    }

    fn latent(&self) -> usize {
        self.latent
    }
}

impl ModuleT for AnomalyVae {
    /// Reconstruction through μ, in [0, 1].
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (mu, _) = self.encode(xs, train)?;
        self.decode(&mu, train)
    }
}

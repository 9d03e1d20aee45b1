//! An autoregressive prior over a spatial code: a small PixelCNN fitted to the training
//! images' code maps μ (C × b × b), sampled position by position in raster order.
//!
//! Why: a Gaussian over codes ([`crate::LatentGaussian`]) draws a linear blend of the training
//! codes, so a small lesion that sits in a different place on every training slice averages
//! away (docs/models.md, sessions 13–14: the 16×16 code carries the phantom lesions in its
//! reconstructions, its Gaussian samples do not). An autoregressive model draws each code
//! position given the positions above and to the left of it, so it can start a lesion anywhere
//! and finish it where it started.
//!
//! The network is a PixelCNN (van den Oord et al., "Pixel Recurrent Neural Networks", ICML
//! 2016) with the two stacks of the gated PixelCNN ("Conditional Image Generation with
//! PixelCNN Decoders", NeurIPS 2016; without the gates), so that it has no blind spot: a
//! vertical stack of k×k convolutions masked to the rows up to their centre row, whose
//! features, shifted down by one row, feed a horizontal stack of convolutions masked to the
//! centre row left of (first layer) or up to (later layers) the centre. A position then sees
//! every earlier position within reach, the upper right included. A 1×1 convolution turns the
//! horizontal stack into a mixture of `mixtures` Gaussians per code channel (the continuous
//! counterpart of PixelCNN++'s logistic mixture, Salimans et al. 2017). The channels of one
//! position are drawn independently given the earlier positions. Codes are standardised per
//! channel before fitting.
//!
//! Trained with minibatches of codes and Adam, seeded; the masked weights are stored in the
//! VAE's `.latent.json`, so sampling needs no training state.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mri_train::{fastconv, seeded_var_builder, stream_seed, Adam, AdamConfig, Conv2d};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, VaeError};

/// How the code prior is built, trained and sampled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelCnnConfig {
    /// Feature channels of every hidden layer.
    pub hidden: usize,
    /// Masked convolutions (the first of type A, the rest residual of type B); ≥ 1.
    pub layers: usize,
    /// Kernel side of the masked convolutions (odd, ≥ 3).
    pub kernel: usize,
    /// Gaussians in each position's mixture, per code channel.
    pub mixtures: usize,
    /// Adam steps.
    pub steps: usize,
    /// Codes per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Scale of every mixture component's standard deviation when sampling (1 = the fitted
    /// model; below 1 draws nearer each component's mean).
    pub temperature: f64,
}

impl Default for PixelCnnConfig {
    /// 32 channels, 6 layers of 5×5, 5 Gaussians a channel, 1000 steps of 32 codes at lr 1e-3,
    /// temperature 1: a receptive field of 12 rows up, about 20–60 s of one core for a class's
    /// codes at 64 px (docs/models.md, session 19).
    fn default() -> Self {
        PixelCnnConfig { hidden: 32, layers: 6, kernel: 5, mixtures: 5, steps: 1000, batch_size: 32, lr: 1e-3, temperature: 1.0 }
    }
}

impl PixelCnnConfig {
    /// Checks the config.
    pub fn check(&self) -> Result<()> {
        if self.hidden == 0 || self.layers == 0 || self.mixtures == 0 || self.steps == 0 || self.batch_size == 0 {
            return Err(VaeError::Config(format!("pixel_cnn: hidden, layers, mixtures, steps and batch_size must be positive, got {self:?}")));
        }
        if self.kernel < 3 || self.kernel % 2 == 0 {
            return Err(VaeError::Config(format!("pixel_cnn: kernel must be odd and at least 3, got {}", self.kernel)));
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !(positive(self.lr) && positive(self.temperature)) {
            return Err(VaeError::Config(format!("pixel_cnn: lr and temperature must be positive, got {} and {}", self.lr, self.temperature)));
        }
        Ok(())
    }
}

/// One convolution's weights (already masked), row-major (out, inp, k, k), and bias (out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvWeights {
    /// Output channels.
    pub out: usize,
    /// Input channels.
    pub inp: usize,
    /// Kernel side.
    pub k: usize,
    /// Weight values.
    pub weight: Vec<f32>,
    /// Bias values.
    pub bias: Vec<f32>,
}

impl ConvWeights {
    fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        Ok((Tensor::from_slice(&self.weight, (self.out, self.inp, self.k, self.k), device)?, Tensor::from_slice(&self.bias, self.out, device)?))
    }
}

/// A fitted PixelCNN prior over codes of `channels` × `side` × `side` (flattened channel-major,
/// as the VAE's spatial code is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodePixelCnn {
    /// Code channels per position.
    pub channels: usize,
    /// Side of the code map.
    pub side: usize,
    /// How it was built and trained.
    pub pixel_cnn: PixelCnnConfig,
    /// Per-channel mean of the training codes.
    pub channel_mean: Vec<f32>,
    /// Per-channel standard deviation of the training codes.
    pub channel_scale: Vec<f32>,
    /// The masked convolutions, then the 1×1 output convolution.
    pub convs: Vec<ConvWeights>,
    /// Mean negative log-likelihood per code value (nats, standardised units) of the last
    /// training step's batch.
    pub final_nll: f64,
}

/// Which part of a k×k kernel a stack's convolution uses.
#[derive(Clone, Copy)]
enum Mask {
    /// The rows up to and including the centre row, every column (vertical stack).
    Vertical,
    /// The centre row left of the centre (horizontal stack, first layer).
    HorizontalStrict,
    /// The centre row up to and including the centre (horizontal stack, later layers).
    Horizontal,
}

fn mask(k: usize, kind: Mask) -> Vec<f32> {
    let c = k / 2;
    let mut m = vec![0f32; k * k];
    for dy in 0..k {
        for dx in 0..k {
            let on = match kind {
                Mask::Vertical => dy <= c,
                Mask::HorizontalStrict => dy == c && dx < c,
                Mask::Horizontal => dy == c && dx <= c,
            };
            if on {
                m[dy * k + dx] = 1.0;
            }
        }
    }
    m
}

/// `codes` (whole codes, channel-major planes of `plane` values) with each channel's `mean`
/// subtracted and divided by its `scale`, as the network sees them.
fn standardise(codes: &[f64], mean: &[f64], scale: &[f64], plane: usize) -> Vec<f32> {
    let channels = mean.len();
    codes.iter().enumerate().map(|(i, v)| ((v - mean[(i / plane) % channels]) / scale[(i / plane) % channels]) as f32).collect()
}

/// Shifts a map down by one row (zeros on top): the vertical stack's features at row r then
/// hold rows < r only.
fn shift_down(x: &Tensor) -> candle_core::Result<Tensor> {
    let h = x.dim(2)?;
    x.pad_with_zeros(2, 1, 0)?.narrow(2, 0, h)
}

/// The network on (masked weight, bias) pairs, stored per layer l as [vertical_l, horizontal_l,
/// link_l] (link: 1×1 from the shifted vertical stack into the horizontal one), then the 1×1
/// output: logits, means and log standard deviations of the mixtures, each (N, C, K, H, W).
fn forward(convs: &[(Tensor, Tensor)], x: &Tensor, channels: usize, mixtures: usize) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (last, layers) = convs.split_last().expect("at least one layer and the output conv");
    let conv = |(w, b): &(Tensor, Tensor), x: &Tensor| -> candle_core::Result<Tensor> { fastconv::conv2d(x, w, Some(b), 1, w.dim(2)? / 2) };
    let (mut v, mut h) = (x.clone(), x.clone());
    for (l, layer) in layers.chunks(3).enumerate() {
        let v_new = conv(&layer[0], &v)?.relu()?;
        let h_in = (conv(&layer[1], &h)? + conv(&layer[2], &shift_down(&v_new)?)?)?.relu()?;
        // Residual from the second layer on (the first changes the width).
        h = if l == 0 { h_in } else { (h + h_in)? };
        v = v_new;
    }
    let out = conv(last, &h)?;
    let (n, _, hh, ww) = out.dims4()?;
    let out = out.reshape((n, 3, channels, mixtures, hh, ww))?;
    let part = |i: usize| out.narrow(1, i, 1)?.squeeze(1);
    Ok((part(0)?, part(1)?, part(2)?.clamp(-7f32, 5f32)?))
}

/// Mean negative log-likelihood per value of `x` (N, C, H, W) under the mixtures.
fn nll(logits: &Tensor, means: &Tensor, log_sd: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let x = x.unsqueeze(2)?;
    let z = x.broadcast_sub(means)?.mul(&log_sd.neg()?.exp()?)?;
    let log_normal = ((z.sqr()? * -0.5)? - log_sd)?.affine(1.0, -0.5 * (2.0 * std::f64::consts::PI).ln())?;
    let log_weight = candle_nn::ops::log_softmax(logits, 2)?;
    (log_weight + log_normal)?.log_sum_exp(2)?.mean_all()?.neg()
}

impl CodePixelCnn {
    /// Fits the prior to `codes` (n × channels·side², row-major, channel-major within a code),
    /// seeded.
    ///
    /// # Errors
    /// Fewer than two codes, a length that is not n whole codes, a bad config, candle errors.
    pub fn fit(codes: &[f64], channels: usize, side: usize, config: PixelCnnConfig, seed: u64, device: &Device) -> Result<Self> {
        config.check()?;
        let dim = channels * side * side;
        let n = codes.len() / dim.max(1);
        if dim == 0 || n < 2 || codes.len() != n * dim {
            return Err(VaeError::Data(format!("{} values are not at least 2 codes of {channels} × {side} × {side}", codes.len())));
        }
        let plane = side * side;
        let mut channel_mean = vec![0f64; channels];
        let mut channel_var = vec![0f64; channels];
        for code in codes.chunks(dim) {
            for (c, values) in code.chunks(plane).enumerate() {
                channel_mean[c] += values.iter().sum::<f64>() / (n * plane) as f64;
            }
        }
        for code in codes.chunks(dim) {
            for (c, values) in code.chunks(plane).enumerate() {
                channel_var[c] += values.iter().map(|v| (v - channel_mean[c]).powi(2)).sum::<f64>() / (n * plane) as f64;
            }
        }
        let channel_scale: Vec<f64> = channel_var.iter().map(|v| v.sqrt().max(1e-6)).collect();
        let all = Tensor::from_vec(standardise(codes, &channel_mean, &channel_scale, plane), (n, channels, side, side), device)?;

        let vm = VarMap::new();
        let vb = seeded_var_builder(&vm, seed, DType::F32, device);
        let k = config.kernel;
        // Per layer: vertical k×k, horizontal k×k (masked to one row), link 1×1.
        let mut convs: Vec<(Conv2d, Option<Tensor>)> = Vec::new();
        for l in 0..config.layers {
            let c_in = if l == 0 { channels } else { config.hidden };
            let p = vb.pp(format!("layer{l}"));
            let horizontal = if l == 0 { Mask::HorizontalStrict } else { Mask::Horizontal };
            convs.push((
                Conv2d::new(c_in, config.hidden, k, 1, k / 2, p.pp("vertical"))?,
                Some(Tensor::from_vec(mask(k, Mask::Vertical), (1, 1, k, k), device)?),
            ));
            convs
                .push((Conv2d::new(c_in, config.hidden, k, 1, k / 2, p.pp("horizontal"))?, Some(Tensor::from_vec(mask(k, horizontal), (1, 1, k, k), device)?)));
            convs.push((Conv2d::new(config.hidden, config.hidden, 1, 1, 0, p.pp("link"))?, None));
        }
        convs.push((Conv2d::new(config.hidden, 3 * channels * config.mixtures, 1, 1, 0, vb.pp("out"))?, None));
        let adam = AdamConfig { lr: config.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = Adam::from_varmap(&vm, adam, |_| true)?;
        let masked = || -> candle_core::Result<Vec<(Tensor, Tensor)>> {
            convs.iter().map(|(c, m)| Ok((if let Some(m) = m { c.weight().broadcast_mul(m)? } else { c.weight().clone() }, c.bias().clone()))).collect()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, "pixel-cnn/batches"));
        let mut order: Vec<u32> = Vec::new();
        let mut final_nll = f64::NAN;
        for step in 0..config.steps {
            if order.len() < config.batch_size.min(n) {
                let mut fresh: Vec<u32> = (0..n as u32).collect();
                fresh.shuffle(&mut rng);
                order.extend(fresh);
            }
            let take: Vec<u32> = order.drain(..config.batch_size.min(n)).collect();
            let x = all.index_select(&Tensor::from_vec(take, config.batch_size.min(n), device)?, 0)?;
            let (logits, means, log_sd) = forward(&masked()?, &x, channels, config.mixtures)?;
            let loss = nll(&logits, &means, &log_sd, &x)?;
            opt.backward_step(&loss)?;
            if step + 1 == config.steps {
                final_nll = f64::from(loss.to_scalar::<f32>()?);
            }
        }
        if !final_nll.is_finite() {
            return Err(VaeError::Data(format!("the code prior diverged (negative log-likelihood {final_nll})")));
        }
        let convs = masked()?
            .into_iter()
            .map(|(w, b)| -> Result<ConvWeights> {
                let (o, i, kk, _) = w.dims4()?;
                Ok(ConvWeights { out: o, inp: i, k: kk, weight: w.flatten_all()?.to_vec1()?, bias: b.to_vec1()? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CodePixelCnn {
            channels,
            side,
            pixel_cnn: config,
            channel_mean: channel_mean.iter().map(|&m| m as f32).collect(),
            channel_scale: channel_scale.iter().map(|&s| s as f32).collect(),
            convs,
            final_nll,
        })
    }

    /// Dimension of the codes it draws (channels · side²).
    pub fn dim(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// `n` codes drawn position by position (raster order) from the seeded stream `samples`:
    /// (n, channels · side²). Row r of the network's output depends on rows ≤ r of its input
    /// only, so each row's positions run the network on the rows drawn so far.
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let convs = self.convs.iter().map(|c| c.tensors(device)).collect::<Result<Vec<_>>>()?;
        let (c_n, s, k_n) = (self.channels, self.side, self.pixel_cnn.mixtures);
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, "samples"));
        // Standardised codes drawn so far, (n, C, s, s) row-major.
        let mut x = vec![0f32; n * c_n * s * s];
        let tau = self.pixel_cnn.temperature as f32;
        for row in 0..s {
            for col in 0..s {
                let seen = Tensor::from_slice(&x, (n, c_n, s, s), device)?.narrow(2, 0, row + 1)?;
                let (logits, means, log_sd) = forward(&convs, &seen, c_n, k_n)?;
                let at = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.narrow(3, row, 1)?.narrow(4, col, 1)?.flatten_all()?.to_vec1::<f32>() };
                let (logits, means, log_sd) = (at(&logits)?, at(&means)?, at(&log_sd)?);
                for i in 0..n {
                    for c in 0..c_n {
                        let o = (i * c_n + c) * k_n;
                        let l = &logits[o..o + k_n];
                        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let weights: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
                        let mut u = rng.gen::<f32>() * weights.iter().sum::<f32>();
                        let mut pick = k_n - 1;
                        for (j, w) in weights.iter().enumerate() {
                            if u < *w {
                                pick = j;
                                break;
                            }
                            u -= w;
                        }
                        let eps = mri_train::init::normal(&mut rng) as f32;
                        x[((i * c_n + c) * s + row) * s + col] = means[o + pick] + tau * log_sd[o + pick].exp() * eps;
                    }
                }
            }
        }
        let plane = s * s;
        for (i, v) in x.iter_mut().enumerate() {
            let c = (i / plane) % c_n;
            *v = *v * self.channel_scale[c] + self.channel_mean[c];
        }
        Ok(Tensor::from_vec(x, (n, self.dim()), device)?)
    }
}

/// The code map's mean NLL under a fitted prior (for tests and reports): `codes` (n × dim).
///
/// # Errors
/// A length that is not n whole codes, candle errors.
pub fn code_nll(prior: &CodePixelCnn, codes: &[f64], device: &Device) -> Result<f64> {
    let (c_n, s) = (prior.channels, prior.side);
    let dim = prior.dim();
    if codes.is_empty() || codes.len() % dim != 0 {
        return Err(VaeError::Data(format!("{} values are not whole codes of {dim}", codes.len())));
    }
    let n = codes.len() / dim;
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let standard = standardise(codes, &widen(&prior.channel_mean), &widen(&prior.channel_scale), s * s);
    let x = Tensor::from_vec(standard, (n, c_n, s, s), device)?;
    let convs = prior.convs.iter().map(|c| c.tensors(device)).collect::<Result<Vec<_>>>()?;
    let (logits, means, log_sd) = forward(&convs, &x, c_n, prior.pixel_cnn.mixtures)?;
    Ok(f64::from(nll(&logits, &means, &log_sd, &x)?.to_scalar::<f32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_see_only_earlier_positions() {
        assert_eq!(mask(3, Mask::Vertical), vec![1., 1., 1., 1., 1., 1., 0., 0., 0.]);
        assert_eq!(mask(3, Mask::HorizontalStrict), vec![0., 0., 0., 1., 0., 0., 0., 0., 0.]);
        assert_eq!(mask(3, Mask::Horizontal), vec![0., 0., 0., 1., 1., 0., 0., 0., 0.]);
    }

    #[test]
    fn the_output_at_a_position_ignores_that_position_and_later_ones() {
        // Untrained network: change the input at (2, 3) and after; outputs at positions up to
        // and including (2, 3) must not move, some later one must.
        let dev = Device::Cpu;
        let cfg = PixelCnnConfig { hidden: 8, layers: 3, kernel: 3, mixtures: 2, steps: 1, batch_size: 4, lr: 1e-3, temperature: 1.0 };
        let codes: Vec<f64> = (0..4 * 2 * 36).map(|i| ((i * 37 % 11) as f64) / 5.0).collect();
        let prior = CodePixelCnn::fit(&codes, 2, 6, cfg, 0, &dev).unwrap();
        let convs: Vec<_> = prior.convs.iter().map(|c| c.tensors(&dev).unwrap()).collect();
        let base: Vec<f32> = (0..2 * 36).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut changed = base.clone();
        for c in 0..2 {
            for pos in (2 * 6 + 3)..36 {
                changed[c * 36 + pos] += 1.5;
            }
        }
        let run =
            |v: &[f32]| forward(&convs, &Tensor::from_slice(v, (1, 2, 6, 6), &dev).unwrap(), 2, 2).unwrap().1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (run(&base), run(&changed));
        // means: (1, C=2, K=2, 6, 6)
        let mut later_moved = false;
        for plane in 0..4 {
            for pos in 0..36 {
                let d = (a[plane * 36 + pos] - b[plane * 36 + pos]).abs();
                if pos <= 2 * 6 + 3 {
                    assert!(d < 1e-6, "position {pos} saw the changed input ({d})");
                } else if d > 1e-4 {
                    later_moved = true;
                }
            }
        }
        assert!(later_moved);
        // No blind spot: the output at (3, 1) sees the input at (2, 4), up and to the right,
        // through the vertical stack (three layers of 3×3 reach three columns right).
        let mut upper_right = base.clone();
        upper_right[2 * 6 + 4] += 1.5;
        let c = run(&upper_right);
        assert!((0..4).any(|plane| (a[plane * 36 + 3 * 6 + 1] - c[plane * 36 + 3 * 6 + 1]).abs() > 1e-5), "(3, 1) is blind to (2, 4)");
    }
}

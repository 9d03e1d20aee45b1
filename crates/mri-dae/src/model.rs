//! The UNet.

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;
use mri_train::{max_pool2, BatchNorm2d, Conv2d};

use crate::config::DaeConfig;
use crate::Result;

/// Conv 3×3 → BatchNorm → ReLU.
#[derive(Debug, Clone)]
struct ConvBnRelu {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBnRelu {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(ConvBnRelu { conv: Conv2d::new(c_in, c_out, 3, 1, 1, vb.pp("conv"))?, bn: BatchNorm2d::new(c_out, vb.pp("bn"))? })
    }

    /// This layer on the ×2 nearest upsampling of `x` ([`Conv2d::forward_upsampled`]).
    fn forward_upsampled_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.conv.forward_upsampled_bn_t(x, &self.bn, true, train)
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.conv.forward_bn_t(x, &self.bn, true, train)
    }
}

/// Two [`ConvBnRelu`]s: one UNet level.
#[derive(Debug, Clone)]
struct Level {
    a: ConvBnRelu,
    b: ConvBnRelu,
}

impl Level {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Level { a: ConvBnRelu::new(c_in, c_out, vb.pp("a"))?, b: ConvBnRelu::new(c_out, c_out, vb.pp("b"))? })
    }
}

impl ModuleT for Level {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.b.forward_t(&self.a.forward_t(x, train)?, train)
    }
}

/// The denoising UNet: see the crate docs. Weight names: `down{i}.{a,b}.{conv,bn}.*`,
/// `up{i}.conv.*` (the conv after each upsampling), `up{i}.{a,b}.*`, `out.*`.
#[derive(Debug, Clone)]
pub struct DenoisingAe {
    down: Vec<Level>,
    up_convs: Vec<ConvBnRelu>,
    up: Vec<Level>,
    /// The 1×1 output conv, zero-initialised so that the untrained network is the identity
    /// (its first steps refine a copy instead of undoing a random correction).
    out_weight: Tensor,
    out_bias: Tensor,
}

impl DenoisingAe {
    /// Builds the network of `cfg` (checked first).
    ///
    /// # Errors
    /// Config errors; candle errors from the variable builder.
    pub fn new(cfg: &DaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let ch = &cfg.channels;
        let mut down = Vec::new();
        let mut c_prev = 1;
        for (i, &c) in ch.iter().enumerate() {
            down.push(Level::new(c_prev, c, vb.pp(format!("down{i}")))?);
            c_prev = c;
        }
        // Up path from the coarsest level: upsample, conv to the finer width, concatenate the
        // skip, one level.
        let (mut up_convs, mut up) = (Vec::new(), Vec::new());
        for i in (0..ch.len() - 1).rev() {
            up_convs.push(ConvBnRelu::new(ch[i + 1], ch[i], vb.pp(format!("up{i}")).pp("up"))?);
            up.push(Level::new(2 * ch[i], ch[i], vb.pp(format!("up{i}")))?);
        }
        let out_weight = vb.pp("out").get_with_hints((1, ch[0], 1, 1), "weight", candle_nn::Init::Const(0.))?;
        let out_bias = vb.pp("out").get_with_hints(1, "bias", candle_nn::Init::Const(0.))?;
        Ok(DenoisingAe { down, up_convs, up, out_weight, out_bias })
    }
}

impl ModuleT for DenoisingAe {
    /// The denoised image: the input plus the predicted correction, (N, 1, S, S).
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut skips = Vec::new();
        let mut h = x.clone();
        for (i, level) in self.down.iter().enumerate() {
            if i > 0 {
                h = max_pool2(&h)?;
            }
            h = level.forward_t(&h, train)?;
            skips.push(h.clone());
        }
        skips.pop();
        for (conv, level) in self.up_convs.iter().zip(&self.up) {
            let skip = skips.pop().expect("one skip per up level");
            h = conv.forward_upsampled_t(&h, train)?;
            h = level.forward_t(&Tensor::cat(&[&h, &skip], 1)?, train)?;
        }
        x + mri_train::fastconv::conv2d(&h, &self.out_weight, Some(&self.out_bias), 1, 0)?
    }
}

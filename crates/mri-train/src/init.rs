//! Seeded initialisation: a `VarBuilder` backend that draws new variables from our own RNG.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seed for one named stream: FNV-1a of the name mixed with the run seed, so every variable
/// (or dropout layer) has its own stream whatever the order in which they are created.
pub fn stream_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct SeededBackend {
    varmap: VarMap,
    seed: u64,
}

/// One standard normal draw from `rng` (Box–Muller with one of the pair: the draw every seeded
/// stream of this crate makes, so callers that mix normals with other draws stay reproducible).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; u1 > 0 so the log is finite.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The values candle's `Init::var` would draw, from our seeded stream instead.
fn init_values(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = shape.elem_count();
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| (mean + stdev * normal(rng)) as f32).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.gen_range(lo..up) as f32).collect(),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.gen_range(-bound..bound) as f32).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| (std * normal(rng)) as f32).collect(),
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().unwrap();
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape())
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(self.seed, name));
        let values = init_values(h, &s, &mut rng);
        let t = Tensor::from_vec(values, s, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        match self.varmap.data().lock().unwrap().get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap().contains_key(name)
    }
}

/// A `VarBuilder` that stores variables in `varmap` (so they can be trained and saved) and
/// draws each new one from a ChaCha stream seeded by `seed` and the variable's name.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededBackend { varmap: varmap.clone(), seed }), dtype, device.clone())
}

/// Standard-normal values of `shape` from the stream (`seed`, `name`), as an f32 tensor on
/// `device`: latent noise and reparameterisation noise that a seed reproduces on every device.
pub fn seeded_normal(seed: u64, name: &str, shape: impl Into<Shape>, device: &Device) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, name));
    let v: Vec<f32> = (0..shape.elem_count()).map(|_| normal(&mut rng) as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_device(device)
}

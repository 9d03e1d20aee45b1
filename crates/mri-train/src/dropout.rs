//! Dropout whose masks come from a seeded stream keyed by training step and layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::init::stream_seed;

/// The current training step, shared between a trainer (which sets it before each forward
/// pass) and the dropout layers of its model (which key their masks on it).
#[derive(Debug, Clone, Default)]
pub struct StepKey(Arc<AtomicU64>);

impl StepKey {
    /// A key at step 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the step.
    pub fn set(&self, step: u64) {
        self.0.store(step, Ordering::Relaxed);
    }
    /// The step.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Inverted dropout with reproducible masks: the mask for (seed, layer name, step) is always
/// the same, so training is reproducible and a resumed run matches an uninterrupted one.
#[derive(Debug, Clone)]
pub struct SeededDropout {
    p: f32,
    seed: u64,
    step: StepKey,
}

impl SeededDropout {
    /// Dropout with drop probability `p` for the layer called `name`.
    pub fn new(p: f32, seed: u64, name: &str, step: StepKey) -> Self {
        SeededDropout { p, seed: stream_seed(seed, name), step }
    }

    /// Drops (train) or passes through (eval).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ self.step.get().wrapping_mul(0xD1B5_4A32_D192_ED03));
        let scale = 1.0 / (1.0 - self.p);
        let mask: Vec<f32> = (0..n).map(|_| if rng.gen::<f32>() < self.p { 0.0 } else { scale }).collect();
        let mask = Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?.to_device(x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

//! Adam / AdamW with explicit hyper-parameters and a state that checkpoints can save.
//!
//! On the CPU the update runs fused and in place (issue 16, lever 4): three passes over each
//! parameter (first moment, second moment, weight), no allocation, where the same update as
//! candle tensor ops is about twelve passes, each into a fresh, zero-filled buffer (and every
//! buffer over glibc's 32 MB threshold page-faulted in again). On other devices and dtypes, or
//! after [`Adam::set_fused`]`(false)`, the tensor-op path runs; the two agree to float rounding
//! (tests/train.rs).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{bail, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var};

use crate::fastconv::{contiguous_f32, contiguous_f32_mut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Adam hyper-parameters. With `weight_decay = 0` this is Adam; otherwise AdamW (decoupled
/// decay, Loshchilov & Hutter), as in PyTorch's `AdamW`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay β1.
    pub beta1: f64,
    /// Second-moment decay β2.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (0 for plain Adam).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's `Adam` defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl AdamConfig {
    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(TrainError::InvalidParameter { name, reason });
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be > 0, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("betas", format!("must be in [0, 1), got ({}, {})", self.beta1, self.beta2));
        }
        if self.eps.is_nan() || self.eps <= 0.0 || self.weight_decay < 0.0 {
            return bad("eps/weight_decay", format!("need eps > 0 and weight_decay >= 0, got {} and {}", self.eps, self.weight_decay));
        }
        Ok(())
    }
}

struct Slot {
    name: String,
    var: Var,
    /// First and second moments, each with a storage of its own (the fused path writes them in
    /// place).
    m: Tensor,
    v: Tensor,
}

/// Elements a rayon task takes in the fused update: big enough that scheduling is noise,
/// small enough that a 2-core machine splits every tensor worth splitting.
const CHUNK: usize = 1 << 15;

/// In place: m ← β·m + (1 − β)·g, or with `square` v ← β·v + (1 − β)·g².
struct MomentUpdate {
    beta: f32,
    square: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "mri-adam-moment"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (m, g) = (contiguous_f32_mut(s1, l1, "fused Adam")?, contiguous_f32(s2, l2, "fused Adam")?);
        if m.len() != g.len() {
            bail!("fused Adam: moment of {} elements, gradient of {}", m.len(), g.len());
        }
        let (b, a) = (self.beta, 1.0 - self.beta);
        let square = self.square;
        let run = |m: &mut [f32], g: &[f32]| {
            if square {
                m.iter_mut().zip(g).for_each(|(m, &g)| *m = b * *m + a * (g * g));
            } else {
                m.iter_mut().zip(g).for_each(|(m, &g)| *m = b * *m + a * g);
            }
        };
        if m.len() > 2 * CHUNK {
            m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| run(m, g));
        } else {
            run(m, g);
        }
        Ok(())
    }
}

/// In place: w ← w·decay − lr · (m / bc1) / (√(v / bc2) + ε).
struct WeightUpdate {
    lr: f32,
    decay: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    eps: f32,
}

impl InplaceOp3 for WeightUpdate {
    fn name(&self) -> &'static str {
        "mri-adam-weight"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<()> {
        let (w, m, v) = (contiguous_f32_mut(s1, l1, "fused Adam")?, contiguous_f32(s2, l2, "fused Adam")?, contiguous_f32(s3, l3, "fused Adam")?);
        if w.len() != m.len() || w.len() != v.len() {
            bail!("fused Adam: weight of {} elements, moments of {} and {}", w.len(), m.len(), v.len());
        }
        let WeightUpdate { lr, decay, inv_bc1, inv_bc2, eps } = *self;
        let run = |w: &mut [f32], m: &[f32], v: &[f32]| {
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                *w = *w * decay - lr * ((m * inv_bc1) / ((v * inv_bc2).sqrt() + eps));
            }
        };
        if w.len() > 2 * CHUNK {
            w.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK)).zip(v.par_chunks(CHUNK)).for_each(|((w, m), v)| run(w, m, v));
        } else {
            run(w, m, v);
        }
        Ok(())
    }
}

/// Adam over named variables (names give stable keys to the saved state).
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    step: u64,
    fused: bool,
}

impl Adam {
    /// An optimiser for these variables (sorted by name for a stable order).
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        cfg.check()?;
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let (m, v) = (var.as_tensor().zeros_like()?, var.as_tensor().zeros_like()?);
                Ok(Slot { name, m, v, var })
            })
            .collect::<Result<_>>()?;
        Ok(Adam { cfg, slots, step: 0, fused: true })
    }

    /// Whether the update may run fused and in place where it can (CPU, f32; the default), or
    /// always as candle tensor ops (the path other devices take): for tests and comparisons.
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// Every trainable variable of a `VarMap` whose name passes `keep` (e.g. to leave out
    /// batch-norm running statistics, which are not trained by gradient).
    pub fn from_varmap(vm: &candle_nn::VarMap, cfg: AdamConfig, keep: impl Fn(&str) -> bool) -> Result<Self> {
        let vars = vm.data().lock().unwrap().iter().filter(|(n, _)| keep(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
        Self::new(vars, cfg)
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// One update from the gradients of a `loss.backward()`. Variables without a gradient
    /// are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            let w = s.var.as_tensor();
            if self.fused && w.device().is_cpu() && w.dtype() == DType::F32 && g.dtype() == DType::F32 && w.is_contiguous() {
                let g = if g.is_contiguous() { g.detach() } else { g.contiguous()?.detach() };
                s.m.inplace_op2(&g, &MomentUpdate { beta: c.beta1 as f32, square: false })?;
                s.v.inplace_op2(&g, &MomentUpdate { beta: c.beta2 as f32, square: true })?;
                let decay = if c.weight_decay > 0.0 { 1.0 - c.lr * c.weight_decay } else { 1.0 };
                let update = WeightUpdate { lr: c.lr as f32, decay: decay as f32, inv_bc1: (1.0 / bc1) as f32, inv_bc2: (1.0 / bc2) as f32, eps: c.eps as f32 };
                w.inplace_op3(&s.m, &s.v, &update)?;
                continue;
            }
            // Detach: a gradient can still carry its backprop graph, and the moments would
            // then chain every step's graph to the previous one (memory grew ~100 MB a step).
            let g = g.detach();
            s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?.detach();
            s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?.detach();
            let m_hat = (&s.m / bc1)?;
            let v_hat = (&s.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let w = s.var.as_tensor();
            let decayed = if c.weight_decay > 0.0 { (w * (1.0 - c.lr * c.weight_decay))? } else { w.clone() };
            s.var.set(&(decayed - (update * c.lr)?)?)?;
        }
        Ok(())
    }

    /// `loss.backward()` then [`Adam::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The moments as named tensors (`m.<var>`, `v.<var>`), for a checkpoint: copies, since
    /// the fused update writes the live moments in place.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.copy()?);
            out.insert(format!("v.{}", s.name), s.v.copy()?);
        }
        Ok(out)
    }

    /// Restores moments and step count saved by [`Adam::state`].
    ///
    /// # Errors
    /// [`TrainError::CheckpointMismatch`] when a moment is missing or has another shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64, path: &std::path::Path) -> Result<()> {
        for s in &mut self.slots {
            for (key, slot) in [(format!("m.{}", s.name), &mut s.m), (format!("v.{}", s.name), &mut s.v)] {
                let t = state
                    .get(&key)
                    .ok_or_else(|| TrainError::CheckpointMismatch { path: path.to_path_buf(), reason: format!("optimiser state has no {key}") })?;
                if t.shape() != slot.shape() {
                    return Err(TrainError::CheckpointMismatch {
                        path: path.to_path_buf(),
                        reason: format!("{key} has shape {:?}, expected {:?}", t.shape(), slot.shape()),
                    });
                }
                // A storage of its own: the fused update writes it in place.
                *slot = t.to_device(slot.device())?.copy()?;
            }
        }
        self.step = step;
        Ok(())
    }
}

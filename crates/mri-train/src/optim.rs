//! Adam / AdamW with explicit hyper-parameters and a state that checkpoints can save.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
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
    m: Tensor,
    v: Tensor,
}

/// Adam over named variables (names give stable keys to the saved state).
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    step: u64,
}

impl Adam {
    /// An optimiser for these variables (sorted by name for a stable order).
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        cfg.check()?;
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let z = var.as_tensor().zeros_like()?;
                Ok(Slot { name, m: z.clone(), v: z, var })
            })
            .collect::<Result<_>>()?;
        Ok(Adam { cfg, slots, step: 0 })
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

    /// The moments as named tensors (`m.<var>`, `v.<var>`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
        }
        out
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
                *slot = t.to_device(slot.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

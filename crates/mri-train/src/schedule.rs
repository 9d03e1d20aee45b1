//! Learning-rate schedules. Both are plain data (serde) so a checkpoint can resume them.

use serde::{Deserialize, Serialize};

/// PyTorch's `ReduceLROnPlateau(mode="min")`: multiply the rate by `factor` when the monitored
/// loss has not improved for more than `patience` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceOnPlateau {
    /// Multiplier on a plateau (the study: 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated (the study: 5).
    pub patience: u32,
    /// Lower bound of the rate.
    pub min_lr: f64,
    /// Best loss so far (+∞ before the first step; JSON has no infinity, so it is stored as `null`).
    #[serde(with = "infinity_as_null")]
    pub best: f64,
    /// Epochs since the best.
    pub bad_epochs: u32,
}

impl ReduceOnPlateau {
    /// A fresh schedule.
    pub fn new(factor: f64, patience: u32, min_lr: f64) -> Self {
        ReduceOnPlateau { factor, patience, min_lr, best: f64::INFINITY, bad_epochs: 0 }
    }

    /// Records an epoch's loss; returns the new rate given the current one.
    pub fn step(&mut self, loss: f64, lr: f64) -> f64 {
        // PyTorch's default threshold: relative 1e-4.
        if loss < self.best * (1.0 - 1e-4) {
            self.best = loss;
            self.bad_epochs = 0;
            lr
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs > self.patience {
                self.bad_epochs = 0;
                (lr * self.factor).max(self.min_lr)
            } else {
                lr
            }
        }
    }
}

/// Multiply the rate by `gamma` every `every` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepDecay {
    /// Period in epochs.
    pub every: u32,
    /// Multiplier.
    pub gamma: f64,
}

impl StepDecay {
    /// The rate for `epoch` (0-based) from the initial rate.
    pub fn lr_at(&self, base_lr: f64, epoch: u32) -> f64 {
        base_lr * self.gamma.powi((epoch / self.every.max(1)) as i32)
    }
}

/// Serde for an `f64` that may be +∞: JSON `null` stands for +∞ (serde_json writes non-finite
/// floats as `null` and cannot read them back as numbers).
mod infinity_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

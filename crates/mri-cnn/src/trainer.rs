//! Training with validation model selection, resumable from checkpoints; prediction.

use std::time::Instant;

use candle_core::{DType, Device, ModuleT, D};
use candle_nn::VarMap;
use mri_train::{run_epochs, seeded_var_builder, stream_seed, Adam, Checkpoint, EpochProgress, EpochTask, ImageSet, ModelKind, ReduceOnPlateau};
use serde::{Deserialize, Serialize};

use crate::ensemble::TumourClassifier;
use crate::model::{Cnn, CnnConfig, LrSchedule};
use crate::{CnnError, Result};

/// How to run a training (shared by every model crate).
pub use mri_train::RunOptions as TrainOptions;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy at probability 0.5.
    pub val_accuracy: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained model with its variables and history.
pub struct TrainOutput {
    /// The model, holding the weights of the best validation epoch.
    pub model: Cnn,
    /// Its variables (save them with [`mri_train::Checkpoint`]).
    pub varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights were kept, counting from 1.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// True when `stop_after` ended the run early.
    pub stopped_early: bool,
}

/// Mean cross-entropy and accuracy (threshold ½) of a model on a set, in eval mode.
pub fn evaluate_loss(model: &Cnn, set: &ImageSet, batch_size: usize, device: &Device) -> Result<(f64, f64)> {
    if set.is_empty() {
        return Err(CnnError::Data("cannot evaluate on an empty set".into()));
    }
    let (mut loss, mut correct) = (0f64, 0usize);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = set.batch(chunk, None, device)?;
        let logits = model.forward_t(&x, false)?;
        loss += candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        let truth: Vec<u32> = y.to_vec1()?;
        correct += pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
    }
    Ok((loss / set.len() as f64, correct as f64 / set.len() as f64))
}

/// Tumour probabilities (softmax of the logits, index 1) for every image of a set, averaged
/// with those of the mirror images when the model's config has `test_time_flip` (and over the
/// members of an ensemble).
pub fn predict_proba<M: TumourClassifier + ?Sized>(model: &M, set: &ImageSet, batch_size: usize, device: &Device) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = set.batch(chunk, None, device)?;
        out.extend(model.proba(&x)?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Cross-entropy with label smoothing ε: (1 − ε)·CE(logits, y) + ε·mean over classes of
/// −log softmax (Szegedy et al. 2016); ε = 0 is the plain cross-entropy.
pub fn smoothed_cross_entropy(logits: &candle_core::Tensor, y: &candle_core::Tensor, eps: f32) -> candle_core::Result<candle_core::Tensor> {
    let ce = candle_nn::loss::cross_entropy(logits, y)?;
    if eps == 0.0 {
        return Ok(ce);
    }
    let uniform = candle_nn::ops::log_softmax(logits, D::Minus1)?.mean(D::Minus1)?.mean_all()?.neg()?;
    (ce * f64::from(1.0 - eps))? + (uniform * f64::from(eps))?
}

/// Checks that a set can train or select a two-class model: not empty, the config's side,
/// and both classes present (a one-class training set would "learn" to answer one class).
fn check_set(what: &str, set: &ImageSet, side: usize) -> Result<()> {
    if set.is_empty() {
        return Err(CnnError::Data(format!("the {what} set is empty")));
    }
    if set.side != side {
        return Err(CnnError::Data(format!("{what} images are {0}×{0}, the config expects {side}", set.side)));
    }
    let tumour = set.labels.iter().filter(|&&l| l == 1).count();
    if tumour == 0 || tumour == set.len() {
        let only = if tumour == 0 { "healthy (no)" } else { "tumour (yes)" };
        return Err(CnnError::Data(format!("the {what} set holds only {only} slices; a classifier needs both classes")));
    }
    Ok(())
}

/// The CNN as a task of the shared epoch loop.
struct CnnTask<'a> {
    cfg: &'a CnnConfig,
    model: Cnn,
    vm: VarMap,
    adam: Adam,
    plateau: ReduceOnPlateau,
    train: &'a ImageSet,
    val: &'a ImageSet,
    seed: u64,
    device: &'a Device,
}

impl EpochTask for CnnTask<'_> {
    type Record = EpochRecord;
    type State = ReduceOnPlateau;
    type Error = CnnError;

    fn kind(&self) -> ModelKind {
        ModelKind::Cnn
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).expect("config serialises")
    }
    fn read_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        mri_train::reread_config::<CnnConfig>(stored)
    }
    fn epochs(&self) -> usize {
        self.cfg.epochs_for(self.train.len())
    }
    fn batches(&self, _epoch: usize) -> usize {
        self.train.len().div_ceil(self.cfg.batch_size)
    }
    fn varmaps(&self) -> Vec<&VarMap> {
        vec![&self.vm]
    }
    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        vec![("", &self.adam)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("", &mut self.adam)]
    }
    fn state(&self) -> ReduceOnPlateau {
        self.plateau.clone()
    }
    fn set_state(&mut self, state: ReduceOnPlateau) {
        self.plateau = state;
    }
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<EpochRecord> {
        let t0 = Instant::now();
        if let Some(lr) = self.cfg.schedule.lr_at(self.cfg.adam.lr, epoch, self.epochs()) {
            self.adam.set_lr(lr);
        }
        let lr = self.adam.lr();
        let mut loss_sum = 0f64;
        for (b, idx) in self.train.epoch_batches(self.seed, epoch as u64, self.cfg.batch_size).iter().enumerate() {
            self.model.step_key().set(self.adam.steps());
            let (x, y) = if self.cfg.augment.is_identity() {
                let flip = self.cfg.augment_flip.then(|| stream_seed(self.seed, &format!("flip/{epoch}/{b}")));
                self.train.batch(idx, flip, self.device)?
            } else {
                self.train.batch_augmented(idx, &self.cfg.augment, stream_seed(self.seed, &format!("augment/{epoch}/{b}")), self.device)?
            };
            let loss = smoothed_cross_entropy(&self.model.forward_t(&x, true)?, &y, self.cfg.label_smoothing)?;
            self.adam.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            loss_sum += l * idx.len() as f64;
            bar.batch(l);
        }
        let (val_loss, val_accuracy) = evaluate_loss(&self.model, self.val, self.cfg.batch_size, self.device)?;
        Ok(EpochRecord { epoch: epoch + 1, train_loss: loss_sum / self.train.len() as f64, val_loss, val_accuracy, lr, seconds: t0.elapsed().as_secs_f64() })
    }
    fn selection_loss(&self, r: &EpochRecord) -> Option<f64> {
        Some(r.val_loss)
    }
    fn summary(&self, r: &EpochRecord) -> String {
        format!("train {:.4} val {:.4} acc {:.3} lr {:.1e}", r.train_loss, r.val_loss, r.val_accuracy, r.lr)
    }
    fn end_epoch(&mut self, r: &EpochRecord) -> Result<()> {
        if self.cfg.schedule == LrSchedule::Plateau {
            let lr = self.plateau.step(r.val_loss, self.adam.lr());
            self.adam.set_lr(lr);
        }
        Ok(())
    }
}

/// Trains a CNN on `train`, selecting the epoch with the lowest loss on `val`, through the
/// shared epoch loop ([`mri_train::run_epochs`]).
///
/// Deterministic for a seed on the CPU. With a checkpoint folder, each epoch ends by saving
/// `NAME-last` (weights, Adam state, schedule, history) and, when validation improves, `NAME`;
/// calling again with the same folder resumes after the last completed epoch (only when model,
/// config but for `epochs`, seed and fingerprint match), and the result equals an
/// uninterrupted run. Asking a finished run for more epochs continues it.
///
/// # Errors
/// Config or data errors (an empty or one-class set, `epochs == 0`); a checkpoint of another
/// run ([`mri_train::TrainError::CheckpointMismatch`]); candle errors.
pub fn train(cfg: &CnnConfig, train: &ImageSet, val: &ImageSet, device: &Device, opts: &TrainOptions) -> Result<TrainOutput> {
    cfg.check()?;
    check_set("training", train, cfg.image_size)?;
    check_set("validation", val, cfg.image_size)?;
    let vm = VarMap::new();
    let model = Cnn::new(cfg, seeded_var_builder(&vm, opts.seed, DType::F32, device), opts.seed)?;
    let adam = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_"))?;
    let plateau = ReduceOnPlateau::new(cfg.plateau_factor, cfg.plateau_patience, 1e-7);
    let mut task = CnnTask { cfg, model, vm, adam, plateau, train, val, seed: opts.seed, device };
    let out = run_epochs(&mut task, opts)?;
    Ok(TrainOutput {
        model: task.model,
        varmap: task.vm,
        history: out.history,
        best_epoch: out.best_epoch.unwrap_or(0),
        best_val_loss: out.best_loss.unwrap_or(f64::INFINITY),
        stopped_early: out.stopped_early,
    })
}

/// Loads a CNN from a checkpoint written by [`train`] (its config is read from the sidecar),
/// for prediction or as a feature extractor. An ensemble's checkpoint is refused: load it
/// with [`crate::load_classifier`].
///
/// # Errors
/// [`mri_train::TrainError::CheckpointMismatch`] when the checkpoint holds another model kind
/// or an ensemble; corrupt or missing files.
pub fn load_cnn(ckpt: &Checkpoint, device: &Device) -> Result<(CnnConfig, Cnn)> {
    crate::ensemble::load_single(ckpt, device)
}

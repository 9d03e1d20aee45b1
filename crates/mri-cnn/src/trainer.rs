//! Training with validation model selection, resumable from checkpoints; prediction.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor, D};
use candle_nn::VarMap;
use mri_train::{restore, seeded_var_builder, snapshot, stream_seed, Adam, Checkpoint, EpochProgress, ImageSet, ReduceOnPlateau};
use serde::{Deserialize, Serialize};

use crate::model::{Cnn, CnnConfig};
use crate::{CnnError, Result};

/// How to run a training (shared by every model crate).
pub use mri_train::RunOptions as TrainOptions;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch index (0-based).
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    plateau: ReduceOnPlateau,
    best_val_loss: f64,
    best_epoch: usize,
}

/// A trained model with its variables and history.
pub struct TrainOutput {
    /// The model, holding the weights of the best validation epoch.
    pub model: Cnn,
    /// Its variables (save them with [`mri_train::Checkpoint`]).
    pub varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights were kept.
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

/// Tumour probabilities (softmax of the logits, index 1) for every image of a set.
pub fn predict_proba(model: &Cnn, set: &ImageSet, batch_size: usize, device: &Device) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = set.batch(chunk, None, device)?;
        let p = candle_nn::ops::softmax(&model.forward_t(&x, false)?, D::Minus1)?;
        out.extend(p.narrow(1, 1, 1)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Trains a CNN on `train`, selecting the epoch with the lowest loss on `val`.
///
/// Deterministic for a seed on the CPU. With a checkpoint folder, each epoch ends by saving
/// `NAME-last` (weights, Adam state, schedule, history) and, when validation improves, `NAME`;
/// calling again with the same folder resumes after the last completed epoch, and the result
/// equals an uninterrupted run.
///
/// # Errors
/// Config or data errors; a checkpoint of another config ([`mri_train::TrainError::CheckpointMismatch`]);
/// candle errors.
pub fn train(cfg: &CnnConfig, train: &ImageSet, val: &ImageSet, device: &Device, opts: &TrainOptions) -> Result<TrainOutput> {
    cfg.check()?;
    for (what, set) in [("training", train), ("validation", val)] {
        if set.is_empty() {
            return Err(CnnError::Data(format!("the {what} set is empty")));
        }
        if set.side != cfg.image_size {
            return Err(CnnError::Data(format!("{what} images are {0}×{0}, the config expects {1}", set.side, cfg.image_size)));
        }
    }
    let vm = VarMap::new();
    let model = Cnn::new(cfg, seeded_var_builder(&vm, opts.seed, DType::F32, device), opts.seed)?;
    let mut adam = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_"))?;
    let config_json = serde_json::to_value(cfg).expect("config serialises");
    let ckpt_last = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &format!("{}-last", opts.name)));
    let ckpt_best = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &opts.name));

    let mut state = ResumeState { plateau: ReduceOnPlateau::new(cfg.plateau_factor, cfg.plateau_patience, 1e-7), best_val_loss: f64::INFINITY, best_epoch: 0 };
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut best: Option<HashMap<String, Tensor>> = None;
    let mut start_epoch = 0;
    if let Some(last) = &ckpt_last {
        if let Some(r) = mri_train::resume::<EpochRecord, ResumeState>(last, ckpt_best.as_ref(), "cnn", &config_json, &vm, &mut adam)? {
            (history, state, start_epoch, best) = (r.history, r.state, r.epoch, r.best);
            if !opts.quiet {
                eprintln!("resuming {} from epoch {start_epoch} ({})", opts.name, last.sidecar.display());
            }
        }
    }

    let mut stopped_early = false;
    for epoch in start_epoch..cfg.epochs {
        if opts.stop_after.is_some_and(|n| epoch - start_epoch >= n) {
            stopped_early = true;
            break;
        }
        let t0 = Instant::now();
        let lr = adam.lr();
        let batches = train.epoch_batches(opts.seed, epoch as u64, cfg.batch_size);
        let bar = EpochProgress::new(&opts.name, epoch, cfg.epochs, batches.len(), opts.quiet);
        let mut loss_sum = 0f64;
        for (b, idx) in batches.iter().enumerate() {
            model.step_key().set(adam.steps());
            let flip = cfg.augment_flip.then(|| stream_seed(opts.seed, &format!("flip/{epoch}/{b}")));
            let (x, y) = train.batch(idx, flip, device)?;
            let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true)?, &y)?;
            adam.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            loss_sum += l * idx.len() as f64;
            bar.batch(l);
        }
        let (val_loss, val_accuracy) = evaluate_loss(&model, val, cfg.batch_size, device)?;
        let rec = EpochRecord { epoch, train_loss: loss_sum / train.len() as f64, val_loss, val_accuracy, lr, seconds: t0.elapsed().as_secs_f64() };
        bar.finish(&format!("train {:.4} val {:.4} acc {:.3} lr {lr:.1e}", rec.train_loss, val_loss, val_accuracy));
        history.push(rec);
        adam.set_lr(state.plateau.step(val_loss, lr));
        if val_loss < state.best_val_loss {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            best = Some(snapshot(&vm)?);
        }
        if let (Some(last), Some(best_ck)) = (&ckpt_last, &ckpt_best) {
            let side = mri_train::epoch_sidecar("cnn", opts, &config_json, epoch + 1, &adam, &history, &state);
            if state.best_epoch == epoch {
                best_ck.save(&vm, None, &side)?;
            }
            last.save(&vm, Some(&adam), &side)?;
        }
    }
    if let Some(b) = &best {
        restore(&vm, b)?;
    }
    Ok(TrainOutput { model, varmap: vm, history, best_epoch: state.best_epoch, best_val_loss: state.best_val_loss, stopped_early })
}

/// Loads a CNN from a checkpoint written by [`train`] (its config is read from the sidecar),
/// for prediction.
///
/// # Errors
/// [`mri_train::TrainError::CheckpointMismatch`] when the checkpoint holds another model kind;
/// corrupt or missing files.
pub fn load_cnn(ckpt: &Checkpoint, device: &Device) -> Result<(CnnConfig, Cnn)> {
    let side = ckpt.read_sidecar()?;
    if side.model != "cnn" {
        return Err(mri_train::TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {:?}, not a CNN", side.model) }.into());
    }
    let cfg: CnnConfig = serde_json::from_value(side.config.clone())
        .map_err(|e| mri_train::TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: e.to_string() })?;
    let vm = VarMap::new();
    let model = Cnn::new(&cfg, seeded_var_builder(&vm, side.seed, DType::F32, device), side.seed)?;
    ckpt.load_weights(&vm)?;
    Ok((cfg, model))
}

//! The one epoch loop every model trains through: resume, stop-after, the best epoch by the
//! task's validation criterion, `NAME` (best) and `NAME-last` (resume point) checkpoints, the
//! sidecar, a progress bar, and progress grids. A model plugs in one epoch of training as an
//! [`EpochTask`]; the CNN, both VAEs and the GAN (two networks, two optimisers) do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Adam, Checkpoint, EpochProgress, Fingerprint, ModelKind, Preset, Sidecar, TrainError};

/// How to run a training (the same for every model).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Seed of initialisation, dropout, noise, shuffling and augmentation.
    pub seed: u64,
    /// No progress bars or log lines.
    pub quiet: bool,
    /// Where to write checkpoints (`NAME` = best or final, `NAME-last` = latest epoch);
    /// `None` keeps everything in memory. An existing `NAME-last` checkpoint is resumed when it
    /// was made from the same model, config (but for its epochs), seed and data.
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint name, e.g. `cnn-real` or `generative-vae-yes`.
    pub name: String,
    /// Preset recorded in the sidecar (`None`: a config built by hand).
    pub preset: Option<Preset>,
    /// What the run is computed from; recorded in every sidecar and checked on resume.
    pub fingerprint: Option<Fingerprint>,
    /// Stop after this many epochs *in this call* (simulates a crash in tests; resume later).
    pub stop_after: Option<usize>,
    /// Where generators and VAEs write their progress grids (`NAME-…-epochNNN.png`); `None` for none.
    pub figures_dir: Option<PathBuf>,
    /// Write a progress grid every this many epochs (and after the last); 0 = never.
    pub figure_every: usize,
}

impl RunOptions {
    /// Quiet, in memory, no figures, with this seed.
    pub fn quiet(seed: u64) -> Self {
        RunOptions {
            seed,
            quiet: true,
            checkpoint_dir: None,
            name: "model".into(),
            preset: None,
            fingerprint: None,
            stop_after: None,
            figures_dir: None,
            figure_every: 0,
        }
    }

    /// Whether epoch `epoch` (0-based) of `epochs` should write a progress grid.
    pub fn figure_due(&self, epoch: usize, epochs: usize) -> bool {
        self.figures_dir.is_some() && self.figure_every > 0 && ((epoch + 1) % self.figure_every == 0 || epoch + 1 == epochs)
    }
}

/// Config fields that do not change the weights trained so far: how long to train (a run that
/// asks for more epochs continues a finished one instead of being refused) and how the finished
/// model predicts (`test_time_flip`) or samples (a generative VAE's `sampler`,
/// `latent_shrinkage`, `second_stage` and `pixel_cnn`). The architecture and every other setting must match.
pub const CONTINUABLE_FIELDS: &[&str] = &["epochs", "min_steps", "test_time_flip", "sampler", "latent_shrinkage", "second_stage", "pixel_cnn"];

/// Epochs to train on `n_images` images in batches of `batch_size`: `epochs`, or more so that
/// they give at least `min_steps` optimiser steps (a config's step budget on small sets).
pub fn epochs_for(epochs: usize, min_steps: usize, batch_size: usize, n_images: usize) -> usize {
    let per_epoch = n_images.div_ceil(batch_size.max(1)).max(1);
    epochs.max(min_steps.div_ceil(per_epoch))
}

/// One model's training, as the shared loop ([`run_epochs`]) sees it.
pub trait EpochTask: Send {
    /// What one epoch reports (serialised into the sidecar's history).
    type Record: Serialize + DeserializeOwned + Clone + Send;
    /// The task's own state that a resume needs (a schedule, …); `()` when none.
    type State: Serialize + DeserializeOwned;
    /// The model crate's error type.
    type Error: From<TrainError> + From<candle_core::Error> + Send;

    /// The model kind written to checkpoints.
    fn kind(&self) -> ModelKind;
    /// The full config (its serde form).
    fn config_json(&self) -> serde_json::Value;
    /// A checkpoint's stored config as this version reads it: fields added to the config type
    /// since the checkpoint was written take their serde defaults, so that an older run still
    /// resumes (use [`reread_config`]). Default: as stored.
    fn read_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        stored.clone()
    }
    /// Epochs to train in all.
    fn epochs(&self) -> usize;
    /// Batches in epoch `epoch` (0-based), for the progress bar.
    fn batches(&self, epoch: usize) -> usize;
    /// Every variable map (their names must not collide).
    fn varmaps(&self) -> Vec<&VarMap>;
    /// Every optimiser with its label (`""` for a single one).
    fn optimizers(&self) -> Vec<(&'static str, &Adam)>;
    /// The same, mutable (to restore them).
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)>;
    /// The task's state, to save.
    fn state(&self) -> Self::State;
    /// Restores the task's state from a resume point.
    fn set_state(&mut self, state: Self::State);
    /// Trains epoch `epoch` (0-based); calls `bar.batch(loss)` after each batch.
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<Self::Record, Self::Error>;
    /// The validation criterion of an epoch, lower is better; `None` keeps the last epoch (a GAN).
    fn selection_loss(&self, record: &Self::Record) -> Option<f64>;
    /// One line about an epoch, for the progress bar.
    fn summary(&self, record: &Self::Record) -> String;
    /// After an epoch's record is kept (e.g. a plateau schedule's step).
    fn end_epoch(&mut self, _record: &Self::Record) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Writes progress grids for epoch `epoch` (0-based) into `dir`, file names starting with `name`.
    fn write_figures(&self, _dir: &Path, _name: &str, _epoch: usize) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What [`run_epochs`] did.
#[derive(Debug, Clone)]
pub struct LoopOutput<R> {
    /// One record per epoch, resumed ones included.
    pub history: Vec<R>,
    /// The kept epoch, counting from 1 (the last for tasks without a criterion); `None` before any epoch.
    pub best_epoch: Option<usize>,
    /// Its validation criterion.
    pub best_loss: Option<f64>,
    /// True when `stop_after` ended the run early.
    pub stopped_early: bool,
}

#[derive(Serialize, Deserialize)]
struct LoopState<S> {
    best_loss: Option<f64>,
    best_epoch: Option<usize>,
    task: S,
}

fn mismatch(path: &Path, reason: String) -> TrainError {
    TrainError::CheckpointMismatch { path: path.to_path_buf(), reason }
}

/// `stored` read as a `C` and written back: the fields `C` has gained since `stored` was
/// written appear with their serde defaults (`stored` unchanged if it does not read as a `C`).
pub fn reread_config<C: Serialize + DeserializeOwned>(stored: &serde_json::Value) -> serde_json::Value {
    serde_json::from_value::<C>(stored.clone()).ok().and_then(|c| serde_json::to_value(c).ok()).unwrap_or_else(|| stored.clone())
}

/// Checks that a resume point belongs to this run: model kind, config (but for
/// [`CONTINUABLE_FIELDS`]), seed and fingerprint.
///
/// # Errors
/// [`TrainError::CheckpointMismatch`] naming what differs and what to do.
pub fn check_resumable(ck: &Checkpoint, side: &Sidecar, kind: ModelKind, config: &serde_json::Value, opts: &RunOptions) -> crate::Result<()> {
    let advice = "use another output folder, or start over with --fresh";
    ck.check(side, kind, config, CONTINUABLE_FIELDS).map_err(|e| match e {
        TrainError::CheckpointMismatch { path, reason } => mismatch(&path, format!("{reason}; {advice}")),
        e => e,
    })?;
    if side.seed != opts.seed {
        return Err(mismatch(&ck.sidecar, format!("it was trained with seed {} but this run has seed {}; {advice}", side.seed, opts.seed)));
    }
    match (&side.fingerprint, &opts.fingerprint) {
        (Some(there), Some(here)) => {
            if let Some(d) = there.difference(here) {
                return Err(mismatch(&ck.sidecar, format!("it was trained on other inputs: {d}; {advice}")));
            }
        }
        (None, Some(_)) => return Err(mismatch(&ck.sidecar, format!("it records no data fingerprint, so its inputs are unknown; {advice}"))),
        _ => {}
    }
    Ok(())
}

fn snapshots(vms: &[&VarMap]) -> crate::Result<Vec<HashMap<String, Tensor>>> {
    vms.iter().map(|vm| crate::snapshot(vm)).collect()
}

fn restore_all(vms: &[&VarMap], snaps: &[HashMap<String, Tensor>]) -> crate::Result<()> {
    vms.iter().zip(snaps).try_for_each(|(vm, s)| crate::restore(vm, s))
}

/// Trains `task` for its epochs: resumes from `NAME-last` in `opts.checkpoint_dir` when it is
/// there (checked with [`check_resumable`]), trains the remaining epochs, keeps the epoch with
/// the lowest [`EpochTask::selection_loss`] (or the last), saves `NAME-last` after every epoch
/// and `NAME` whenever the kept epoch changes, and ends with the kept epoch's weights in the
/// task's variables. Deterministic for a seed on the CPU when the task is: a run stopped with
/// `stop_after` and resumed equals an uninterrupted run, bit for bit.
///
/// # Errors
/// `epochs == 0`; a resume point of another run or a damaged one; the task's own errors.
pub fn run_epochs<T: EpochTask>(task: &mut T, opts: &RunOptions) -> Result<LoopOutput<T::Record>, T::Error> {
    let epochs = task.epochs();
    if epochs == 0 {
        return Err(TrainError::InvalidParameter { name: "epochs", reason: "must be at least 1 (0 would report an untrained model)".into() }.into());
    }
    let kind = task.kind();
    let config = task.config_json();
    let ckpt_last = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &format!("{}-last", opts.name)));
    let ckpt_best = opts.checkpoint_dir.as_ref().map(|d| Checkpoint::at(d, &opts.name));
    let mut history: Vec<T::Record> = Vec::new();
    let (mut best_loss, mut best_epoch): (Option<f64>, Option<usize>) = (None, None);
    let mut best: Option<Vec<HashMap<String, Tensor>>> = None;
    let mut start = 0;
    if let (Some(last), Some(best_ck)) = (&ckpt_last, &ckpt_best) {
        last.sweep()?;
        best_ck.sweep()?;
        if last.exists() {
            let mut side = last.read_sidecar()?;
            side.config = task.read_config(&side.config);
            check_resumable(last, &side, kind, &config, opts)?;
            if side.epoch > epochs {
                return Err(mismatch(
                    &last.sidecar,
                    format!(
                        "it has trained {} epochs, more than the {epochs} asked; ask for {} or more, use another output folder, or --fresh",
                        side.epoch, side.epoch
                    ),
                )
                .into());
            }
            for vm in task.varmaps() {
                last.load_weights_with(&side, vm)?;
            }
            for (label, o) in task.optimizers_mut() {
                last.load_optim_labelled(&side, o, label)?;
            }
            let bad = |e: serde_json::Error| TrainError::CorruptCheckpoint { path: last.sidecar.clone(), reason: e.to_string() };
            history = serde_json::from_value(side.metrics.clone()).map_err(bad)?;
            let st: LoopState<T::State> = serde_json::from_value(side.extra.clone()).map_err(bad)?;
            task.set_state(st.task);
            (best_loss, best_epoch, start) = (st.best_loss, st.best_epoch, side.epoch);
            if best_loss.is_some() {
                // The kept epoch's weights come from `NAME`; the task's variables stay at the latest.
                // `NAME` is saved before `NAME-last`, so a kill between the two leaves `NAME` one
                // epoch ahead; the deterministic re-run of that epoch improves again and replaces it.
                let best_side = best_ck.read_sidecar()?;
                let vms = task.varmaps();
                let current = snapshots(&vms)?;
                for vm in &vms {
                    best_ck.load_weights_with(&best_side, vm)?;
                }
                best = Some(snapshots(&vms)?);
                restore_all(&vms, &current)?;
            }
            if !opts.quiet {
                eprintln!("resuming {} after epoch {start} of {epochs} ({})", opts.name, last.sidecar.display());
            }
        }
    }

    let mut stopped_early = false;
    for epoch in start..epochs {
        if opts.stop_after.is_some_and(|n| epoch - start >= n) {
            stopped_early = true;
            break;
        }
        let bar = EpochProgress::new(&opts.name, epoch, epochs, task.batches(epoch), opts.quiet);
        let rec = crate::in_pool(|| task.run_epoch(epoch, &bar))?;
        bar.finish(&task.summary(&rec));
        let improved = match task.selection_loss(&rec) {
            None => true,
            // NaN never improves.
            Some(l) => !l.is_nan() && best_loss.is_none_or(|b| l < b),
        };
        if improved {
            best_loss = task.selection_loss(&rec);
            best_epoch = Some(epoch + 1);
            if best_loss.is_some() {
                best = Some(snapshots(&task.varmaps())?);
            }
        }
        task.end_epoch(&rec)?;
        history.push(rec);
        if opts.figure_due(epoch, epochs) {
            task.write_figures(opts.figures_dir.as_deref().expect("figure_due checks it"), &opts.name, epoch)?;
        }
        if let (Some(last), Some(best_ck)) = (&ckpt_last, &ckpt_best) {
            let mut side = Sidecar::new(kind, opts.preset, config.clone(), epoch + 1, opts.seed);
            side.fingerprint = opts.fingerprint.clone();
            side.metrics = serde_json::to_value(&history).expect("history serialises");
            side.extra = serde_json::to_value(LoopState { best_loss, best_epoch, task: task.state() }).expect("state serialises");
            let vms = task.varmaps();
            if improved {
                best_ck.save_parts(&vms, &[], &side)?;
            }
            last.save_parts(&vms, &task.optimizers(), &side)?;
        }
    }
    if let Some(b) = &best {
        restore_all(&task.varmaps(), b)?;
    }
    Ok(LoopOutput { history, best_epoch, best_loss, stopped_early })
}

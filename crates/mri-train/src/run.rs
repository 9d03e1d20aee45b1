//! How a training run is carried out, shared by every model's trainer.

use std::path::PathBuf;

/// How to run a training (the same for every model).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Seed of initialisation, dropout, noise, shuffling and augmentation.
    pub seed: u64,
    /// No progress bars or log lines.
    pub quiet: bool,
    /// Where to write checkpoints (`NAME.*` = best or final, `NAME-last.*` = latest epoch);
    /// `None` keeps everything in memory. An existing `NAME-last` checkpoint is resumed.
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint name, e.g. `cnn-real` or `vae-yes`.
    pub name: String,
    /// Preset name recorded in the sidecar.
    pub preset: String,
    /// Stop after this many epochs *in this call* (simulates a crash in tests; resume later).
    pub stop_after: Option<usize>,
    /// Where generators and VAEs write their progress grids (`NAME-epochNNN.png`); `None` for none.
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
            preset: "custom".into(),
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

/// Where a resumed training stands: what [`resume`] read back from `NAME-last`.
pub struct Resumed<H, S> {
    /// Per-epoch records so far.
    pub history: Vec<H>,
    /// The trainer's own state (schedule, best epoch, …).
    pub state: S,
    /// Epochs completed.
    pub epoch: usize,
    /// The weights of the best checkpoint `NAME`, if there is one.
    pub best: Option<std::collections::HashMap<String, candle_core::Tensor>>,
}

fn corrupt(path: &std::path::Path, e: impl std::fmt::Display) -> crate::TrainError {
    crate::TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: e.to_string() }
}

/// Resumes a training from its `last` checkpoint: checks model kind and config, loads the
/// weights into `vm`, the optimiser's moments and learning rate into `adam`, and reads back the
/// history and trainer state; with `best`, also reads the best weights (leaving `vm` at the
/// latest ones). `None` when there is nothing to resume.
///
/// # Errors
/// [`crate::TrainError::CheckpointMismatch`] for another model or config; corrupt files.
pub fn resume<H: serde::de::DeserializeOwned, S: serde::de::DeserializeOwned>(
    last: &crate::Checkpoint,
    best: Option<&crate::Checkpoint>,
    kind: &str,
    config: &serde_json::Value,
    vm: &candle_nn::VarMap,
    adam: &mut crate::Adam,
) -> crate::Result<Option<Resumed<H, S>>> {
    if !last.exists() {
        return Ok(None);
    }
    let side = last.read_sidecar()?;
    last.check(&side, kind, config)?;
    last.load_weights(vm)?;
    last.load_optim(adam, side.step)?;
    adam.set_lr(side.lr);
    let history = serde_json::from_value(side.metrics.clone()).map_err(|e| corrupt(&last.sidecar, e))?;
    let state = serde_json::from_value(side.extra.clone()).map_err(|e| corrupt(&last.sidecar, e))?;
    let best = match best.filter(|b| b.exists()) {
        Some(b) => {
            let current = crate::snapshot(vm)?;
            b.load_weights(vm)?;
            let w = crate::snapshot(vm)?;
            crate::restore(vm, &current)?;
            Some(w)
        }
        None => None,
    };
    Ok(Some(Resumed { history, state, epoch: side.epoch, best }))
}

/// The sidecar of a checkpoint written after `epochs_done` epochs.
pub fn epoch_sidecar(
    kind: &str,
    opts: &RunOptions,
    config: &serde_json::Value,
    epochs_done: usize,
    adam: &crate::Adam,
    history: &impl serde::Serialize,
    state: &impl serde::Serialize,
) -> crate::Sidecar {
    crate::Sidecar {
        model: kind.into(),
        preset: opts.preset.clone(),
        config: config.clone(),
        epoch: epochs_done,
        step: adam.steps(),
        seed: opts.seed,
        lr: adam.lr(),
        metrics: serde_json::to_value(history).expect("history serialises"),
        extra: serde_json::to_value(state).expect("state serialises"),
        crate_version: env!("CARGO_PKG_VERSION").into(),
    }
}

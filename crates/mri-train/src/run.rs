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

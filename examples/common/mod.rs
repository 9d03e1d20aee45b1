//! What the training examples share: the common command-line arguments and the data path
//! (load → group → split → the output folder bound to this run → `split.json`). Not an example
//! itself (cargo only builds `examples/*.rs` and `examples/*/main.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use mri_synth::data::{DataSpec, PreparedData, SplitFractions};
use mri_synth::preprocess::Fold;
use mri_synth::rundir::prepare_out;
use mri_synth::train::{DeviceChoice, Fingerprint, Preset, RunOptions};

/// Arguments every training example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model preset: quick (tests), default (2-core CPU, 64 px) or paper (the study's layout, 128 px).
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    pub preset: Preset,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Training epochs: exactly this many (overrides the preset's epochs and its minimum of
    /// optimiser steps on small sets). More epochs than a finished run continue it.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of the split, initialisation, dropout, noise, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train, validation and test fractions of the group-aware split.
    #[arg(long, default_value_t = SplitFractions::default())]
    pub split: SplitFractions,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Skip unreadable images instead of stopping at the first (each is listed with its reason).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Remove what an earlier run wrote into --out and start over (an output folder holds one
    /// run: other data, split, seed, preset or image size there is refused without this).
    #[arg(long)]
    pub fresh: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The step budget the generator examples (`train_vae`, `train_gan`, `generate`) take.
#[derive(clap::Args, Debug, Clone)]
pub struct StepsArg {
    /// Optimiser steps of each class's generator (overrides the preset's minimum; without
    /// --epochs, exactly the epochs these steps need).
    #[arg(long)]
    pub steps: Option<usize>,
}

impl RunArgs {
    /// The candle device.
    pub fn device(&self) -> Result<Device> {
        Ok(self.device.parse::<DeviceChoice>()?.device()?)
    }

    /// Loads the data at `image_size`, makes the split, binds `out` to this run (refusing a
    /// folder made by another run unless `--fresh`) and writes `split.json` there.
    pub fn prepare(&self, image_size: usize, out: &Path) -> Result<(PreparedData, Fingerprint)> {
        self.prepare_fold(image_size, out, None)
    }

    /// As [`RunArgs::prepare`], with one fold of a grouped cross-validation as the split.
    pub fn prepare_fold(&self, image_size: usize, out: &Path, fold: Option<Fold>) -> Result<(PreparedData, Fingerprint)> {
        let prepared = PreparedData::load(&DataSpec {
            data: self.data.clone(),
            image_size: image_size as u32,
            seed: self.seed,
            skip_invalid: self.skip_invalid,
            phantoms_per_class: 200,
            split: self.split,
            fold,
            verbose: true,
        })?;
        let fingerprint = prepared.fingerprint(Some(self.preset));
        prepare_out(out, &fingerprint, self.fresh)?;
        prepared.split.write(&out.join("split.json"))?;
        Ok((prepared, fingerprint))
    }

    /// Training options of a model called `name` whose checkpoints go to `out/checkpoints`
    /// and progress grids to `out/figures`.
    pub fn run_options(&self, name: &str, out: &Path, fingerprint: &Fingerprint, figure_every: usize) -> RunOptions {
        RunOptions {
            seed: self.seed,
            quiet: self.quiet,
            checkpoint_dir: Some(out.join("checkpoints")),
            name: name.into(),
            preset: Some(self.preset),
            fingerprint: Some(fingerprint.clone()),
            stop_after: None,
            figures_dir: Some(out.join("figures")),
            figure_every,
        }
    }
}

//! What the training examples share: the common command-line arguments and the data path
//! (load → group → split → `split.json`). Not an example itself (cargo only builds
//! `examples/*.rs` and `examples/*/main.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::train::DeviceChoice;

/// Arguments every training example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model preset: quick (tests), default (2-core CPU, 64 px) or paper (the study's layout, 128 px).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    pub preset: String,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Training epochs (overrides the preset's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of the split, initialisation, dropout, noise, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// The candle device.
    pub fn device(&self) -> Result<Device> {
        Ok(self.device.parse::<DeviceChoice>()?.device()?)
    }

    /// Loads the data at `image_size`, makes the split, creates `out` and writes `split.json` there.
    pub fn prepare(&self, image_size: usize, out: &Path) -> Result<PreparedData> {
        let prepared = PreparedData::load(&DataSpec {
            data: self.data.clone(),
            image_size: image_size as u32,
            seed: self.seed,
            skip_invalid: self.skip_invalid,
            phantoms_per_class: 200,
            verbose: true,
        })?;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        prepared.split.write(&out.join("split.json"))?;
        Ok(prepared)
    }
}

//! Training and inference images/s of one model on random data, as one JSON line.
//!
//! ```text
//! cargo run --release --example throughput -- --model cnn --preset paper --batch 64 --image-size 128 --warmup 3 --steps 7
//! ```
//! A training step is forward + backward + optimiser step (GAN: D on real + D on detached fake +
//! G step, counted as `batch` images); inference is an eval-mode forward (GAN: generator
//! sampling). The median over the timed steps is reported. PyTorch's figures on the 2-core
//! machine are in docs/performance.md.

use anyhow::Result;
use clap::Parser;
use mri_synth::throughput::{measure, ThroughputSpec};
use mri_synth::train::{ConfigOverride, DeviceChoice, ModelKind, Preset};
use mri_train::fastconv::{set_conv_algorithm, ConvAlgorithm};

#[derive(Parser, Debug)]
#[command(about = "Time training and inference of one model; print one JSON line")]
struct Args {
    /// The model to time.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Model preset: quick, default or paper (the study's layouts).
    #[arg(long, value_enum, default_value_t = Preset::Paper)]
    preset: Preset,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    image_size: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (median reported).
    #[arg(long, default_value_t = 7)]
    steps: usize,
    /// Change the model's preset config, `path=value` (repeatable), e.g. `--set reuse_fake=true`
    /// for the GAN: times a variant against the preset.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<ConfigOverride>,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The CPU convs' algorithm: `auto` (shifted views for stride-1 convs) or `im2col` (every
    /// conv as im2col + GEMM, the yardstick): times one against the other.
    #[arg(long, value_enum, default_value_t = ConvAlgorithm::Auto)]
    conv: ConvAlgorithm,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    set_conv_algorithm(a.conv);
    let device = a.device.parse::<DeviceChoice>()?.device()?;
    let spec =
        ThroughputSpec { model: a.model, preset: a.preset, batch: a.batch, image_size: a.image_size, warmup: a.warmup, steps: a.steps, overrides: a.set };
    println!("{}", serde_json::to_string(&measure(&spec, &device)?)?);
    Ok(())
}

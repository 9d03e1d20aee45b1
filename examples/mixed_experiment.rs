//! The project's main job: the real / synthetic / mixed study, tested on real data.
//!
//! ```text
//! cargo run --release --example mixed_experiment                                  # phantoms
//! cargo run --release --example mixed_experiment -- --data ../shared/data/br35h   # Br35H, 64 px
//! ```
//! Writes `split.json`, `report.json`, `report.md`, `figures/`, `checkpoints/`, `detectors/`
//! and `synthetic/<generator>/<class>/` into `--out`. Re-running with the same `--out` skips
//! complete stages and resumes interrupted trainings.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use mri_synth::experiment::{run_experiment, ExperimentSpec};
use mri_synth::generators::GeneratorKind;
use mri_synth::train::DeviceChoice;

#[derive(Parser, Debug)]
#[command(about = "Train on real, synthetic and mixed data; test on real data; write report.json / report.md")]
struct Args {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "runs/mixed_experiment")]
    out: PathBuf,
    /// Preset of every model: quick (seconds), default (2-core CPU, 64 px) or paper (the study's, 128 px; GPU advised).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    preset: String,
    /// Image side in pixels (overrides the presets').
    #[arg(long)]
    image_size: Option<usize>,
    /// Seed of the split, every initialisation, noise, shuffle and sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Generators to compare, comma-separated.
    #[arg(long, default_value = "vae,gan", value_delimiter = ',')]
    generators: Vec<String>,
    /// Synthetic images per class (default: as many as real training images of the class).
    #[arg(long)]
    synthetic_per_class: Option<usize>,
    /// Phantom slices per class when --data is not given.
    #[arg(long, default_value_t = 200)]
    phantoms_per_class: usize,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let device = a.device.parse::<DeviceChoice>()?.device()?;
    let generators = a.generators.iter().map(|g| g.parse::<GeneratorKind>()).collect::<Result<Vec<_>, _>>()?;
    let spec = ExperimentSpec {
        data: a.data,
        out: a.out,
        preset: a.preset,
        image_size: a.image_size,
        seed: a.seed,
        generators,
        synthetic_per_class: a.synthetic_per_class,
        skip_invalid: a.skip_invalid,
        phantoms_per_class: a.phantoms_per_class,
        quiet: a.quiet,
    };
    let report = run_experiment(&spec, &device)?;
    println!(
        "\n{}",
        std::fs::read_to_string(spec.out.join("report.md"))?
            .lines()
            .skip_while(|l| !l.starts_with("| Model"))
            .take_while(|l| l.starts_with('|'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("\nwrote {} ({:.1} s)", spec.out.join("report.md").display(), report.timings_s["total"]);
    Ok(())
}

//! Train the tumour / no-tumour CNN on the real train split, select on val, score on test.
//!
//! ```text
//! cargo run --release --example train_cnn                                   # phantoms
//! cargo run --release --example train_cnn -- --data ../shared/data/br35h --image-size 64
//! ```
//! Writes `checkpoints/cnn-real.{safetensors,json}` (best val loss) and `cnn-real-last.*`
//! (resume point), `split.json`, `history.json` and `test_metrics.json` into `--out`. Re-running
//! with the same `--out` resumes an interrupted training.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::cnn::{predict_proba, train, CnnConfig, TrainOptions};
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::eval::TestMetrics;
use mri_synth::preprocess::SplitPart;
use mri_synth::train::DeviceChoice;

#[derive(Parser, Debug)]
#[command(about = "Train the CNN classifier on real training data; report test metrics")]
struct Args {
    /// Data folder with yes/ and no/ (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (checkpoints, split, metrics).
    #[arg(long, default_value = "runs/train_cnn")]
    out: PathBuf,
    /// Model preset: quick (tests), default (2-core CPU, 64 px) or paper (the study's layout, 128 px).
    #[arg(long, default_value = "default", value_parser = ["quick", "default", "paper"])]
    preset: String,
    /// Image side in pixels (overrides the preset's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Training epochs (overrides the preset's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of the split, initialisation, dropout, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, metal or auto (GPUs need the cargo feature of the same name).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = args.device.parse::<DeviceChoice>()?.device()?;
    let mut cfg = CnnConfig::preset(&args.preset, args.image_size)?;
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    let t0 = std::time::Instant::now();
    let prepared = PreparedData::load(&DataSpec {
        data: args.data.clone(),
        image_size: cfg.image_size as u32,
        seed: args.seed,
        skip_invalid: args.skip_invalid,
        phantoms_per_class: 200,
        verbose: true,
    })?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    prepared.split.write(&args.out.join("split.json"))?;
    let (tr, va, te) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    println!("CNN preset {} ({} parameters), {} epochs, batch {}", args.preset, cfg.param_count(), cfg.epochs, cfg.batch_size);
    let opts = TrainOptions {
        seed: args.seed,
        quiet: args.quiet,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        name: "cnn-real".into(),
        preset: args.preset.clone(),
        stop_after: None,
        figures_dir: None,
        figure_every: 0,
    };
    let out = train(&cfg, &tr, &va, &device, &opts)?;
    let probs = predict_proba(&out.model, &te, cfg.batch_size, &device)?;
    let m = TestMetrics::from_scores(&probs, &te.labels, 0.5)?;
    println!(
        "best epoch {} (val loss {:.4}); test on {} held-out slices ({}): {m}",
        out.best_epoch + 1,
        out.best_val_loss,
        te.len(),
        prepared.dataset.source.describe()
    );
    std::fs::write(args.out.join("history.json"), serde_json::to_string_pretty(&out.history)?)?;
    std::fs::write(args.out.join("test_metrics.json"), serde_json::to_string_pretty(&m)?)?;
    println!("wrote {} in {:.1} s", args.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

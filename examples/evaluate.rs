//! Apply a trained model to new labelled data: a CNN checkpoint, or an anomaly-VAE checkpoint
//! with a fitted technique (`--detector`, the JSON `vae_anomaly` / `mixed_experiment` write).
//!
//! ```text
//! cargo run --release --example evaluate -- --checkpoint runs/mixed_experiment/checkpoints/cnn-real.json --data ../shared/data/br35h
//! cargo run --release --example evaluate -- --checkpoint runs/vae_anomaly/checkpoints/anomaly-vae-real.json \
//!     --detector runs/vae_anomaly/detectors/vae-giaem.json --data ../shared/data/br35h --json giaem.json
//! ```
//! Every labelled image in `--data` is scored (the whole folder, no split), preprocessed as in
//! training (the image size is read from the checkpoint's sidecar); the `test` metrics object
//! is printed and, with `--json`, written.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use mri_synth::cluster::{DetectorFile, ErrorMaps};
use mri_synth::eval::TestMetrics;
use mri_synth::preprocess::{Dataset, LoadOptions, PreprocessConfig};
use mri_synth::train::{Checkpoint, DeviceChoice, ImageSet, ModelKind};
use mri_synth::vae::{load_vae, reconstruct_set, AnomalyVaeConfig};

#[derive(Parser, Debug)]
#[command(about = "Score every labelled image of a folder with a saved CNN or anomaly VAE + technique")]
struct Args {
    /// A checkpoint file (`X.safetensors` or `X.json`) of a CNN or an anomaly VAE.
    #[arg(long)]
    checkpoint: PathBuf,
    /// With an anomaly VAE: the fitted technique (detector JSON).
    #[arg(long)]
    detector: Option<PathBuf>,
    /// Folder with yes/ and no/.
    #[arg(long)]
    data: PathBuf,
    /// Also write the metrics here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip unreadable images instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// cpu, cuda, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let device = a.device.parse::<DeviceChoice>()?.device()?;
    let ck = Checkpoint::from_file(&a.checkpoint);
    let side = ck.read_sidecar().with_context(|| format!("reading the manifest of {}", a.checkpoint.display()))?;
    let image_size =
        side.config.get("image_size").and_then(|v| v.as_u64()).with_context(|| format!("{}: the config has no image_size", ck.sidecar.display()))? as usize;
    let opts = LoadOptions { preprocess: PreprocessConfig::with_size(image_size as u32), skip_invalid: a.skip_invalid, ..Default::default() };
    let ds = Dataset::load(&a.data, &opts)?;
    for s in &ds.skipped {
        eprintln!("skipped {}: {}", s.rel_path, s.reason);
    }
    if !ds.skipped.is_empty() {
        eprintln!("{} file(s) skipped (--skip-invalid); {} scored", ds.skipped.len(), ds.items.len());
    }
    let mut set = ImageSet::new(image_size);
    for it in &ds.items {
        set.push(&it.pixels, it.label.index())?;
    }
    let m = match side.model {
        ModelKind::Cnn => {
            let (_, model) = mri_synth::cnn::load_cnn(&ck, &device)?;
            let p = mri_synth::cnn::predict_proba(&model, &set, 64, &device)?;
            TestMetrics::from_scores(&p, &set.labels, 0.5)?
        }
        ModelKind::AnomalyVae => {
            let Some(det_path) = &a.detector else { bail!("an anomaly-VAE checkpoint needs --detector FILE (a fitted technique's JSON)") };
            let file = DetectorFile::read(det_path)?;
            let (_, model, _) = load_vae::<AnomalyVaeConfig>(&ck, &device)?;
            let recon = reconstruct_set(&model, &set, 64, &device)?;
            // The maps are made as the detector's were fitted (head only or whole image, …).
            let maps = ErrorMaps::from_reconstructions(&set.pixels, &recon.pixels, image_size, &file.error_maps)?;
            let t = file.detector.operating_point().with_context(|| format!("{}: the detector has no operating point", det_path.display()))?.threshold;
            TestMetrics::from_scores_f64(&file.detector.score(&maps), &set.labels, t)?
        }
        other => bail!("{}: holds a {other} model; evaluate takes a cnn or an anomaly-vae checkpoint", ck.sidecar.display()),
    };
    println!("{} labelled slices in {}: {m}", set.len(), a.data.display());
    let json = serde_json::to_string_pretty(&m)?;
    println!("{json}");
    if let Some(p) = &a.json {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

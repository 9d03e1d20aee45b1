//! Paired comparison of `train_cnn` runs on the same test slices: one row of an ablation table.
//!
//! ```text
//! cargo run --release --example compare_runs -- \
//!     --baseline runs/base_s0,runs/base_s1,runs/base_s2 --variant runs/nols_s0,runs/nols_s1,runs/nols_s2
//! ```
//! Each folder holds the `test_scores.json` that `train_cnn` writes; the i-th baseline and the
//! i-th variant must share data, split and seed. Prints, per split and for the mean over
//! splits, accuracy and AUROC of both and the difference (variant − baseline) with its 95 %
//! interval from a bootstrap over near-duplicate groups; `--json` writes the same.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::compare::{compare_runs, PairedStat, TestScores};
use mri_synth::report::BOOTSTRAP_REPLICATES;

#[derive(Parser, Debug)]
#[command(about = "Paired differences between train_cnn runs on the same test slices, with group-bootstrap intervals")]
struct Args {
    /// The baseline's run folders, comma-separated (one per split / seed).
    #[arg(long, value_delimiter = ',', required = true)]
    baseline: Vec<PathBuf>,
    /// The variant's run folders, in the same split order.
    #[arg(long, value_delimiter = ',', required = true)]
    variant: Vec<PathBuf>,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the comparison here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn read_all(dirs: &[PathBuf]) -> Result<Vec<TestScores>> {
    dirs.iter().map(|d| TestScores::read(&d.join("test_scores.json")).with_context(|| format!("run folder {}", d.display()))).collect()
}

fn show(s: &PairedStat) -> String {
    let ci = s.ci.map(|i| format!(" [{:+.1}, {:+.1}]", 100.0 * i.low, 100.0 * i.high)).unwrap_or_default();
    format!("{:.1} → {:.1} ({:+.1}{ci})", 100.0 * s.baseline, 100.0 * s.variant, 100.0 * s.difference)
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let a = Args::parse();
    let (b, v) = (read_all(&a.baseline)?, read_all(&a.variant)?);
    let c = compare_runs(&b, &v, BOOTSTRAP_REPLICATES, a.seed)?;
    println!("| split | slices (groups) | accuracy % baseline → variant (Δ [95 % CI]) | AUROC ×100 |");
    println!("|---|---|---|---|");
    for (i, s) in c.splits.iter().enumerate() {
        println!(
            "| {} | {} ({}) | {} | {} |",
            a.variant[i].display(),
            s.slices,
            s.groups,
            show(&s.accuracy),
            s.auroc.as_ref().map(show).unwrap_or_else(|| "—".into())
        );
    }
    println!("| **mean of {}** | | **{}** | **{}** |", c.splits.len(), show(&c.mean_accuracy), c.mean_auroc.as_ref().map(show).unwrap_or_else(|| "—".into()));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&c)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

//! Train the tumour / no-tumour CNN on the real train split, select on val, score on test.
//!
//! ```text
//! cargo run --release --example train_cnn                                   # phantoms
//! cargo run --release --example train_cnn -- --data ../shared/data/br35h --image-size 64
//! ```
//! Writes `checkpoints/cnn-real.{safetensors,json}` (best val loss) and `cnn-real-last.*`
//! (resume point) — with `--members K`, `cnn-real-m{i}*` per member and `cnn-real` the
//! ensemble — `split.json`, `history.json`, `test_metrics.json` and `test_scores.json` (per
//! slice, for `compare_runs`) into `--out`. Re-running
//! with the same `--out` resumes an interrupted training, and with more `--epochs` continues a
//! finished one; other data, split, seed, preset or size there is refused (use `--fresh`).

mod common;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mri_synth::cnn::{predict_proba, train_ensemble, CnnConfig, CnnEnsemble, TrainOptions};
use mri_synth::compare::TestScores;
use mri_synth::eval::{FoldSummary, TestMetrics};
use mri_synth::preprocess::{Fold, SplitPart};
use mri_synth::report::BOOTSTRAP_REPLICATES;
use mri_synth::shortcut::geometry_baseline_of;
use mri_synth::train::{apply_overrides, ConfigOverride};

/// `--arch` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ArchArg {
    /// The study's layout scaled down (`CnnConfig::plain`).
    Plain,
    /// The residual recipe (`CnnConfig::residual`).
    Residual,
}

#[derive(Parser, Debug)]
#[command(about = "Train the CNN classifier on real training data; report test metrics")]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Layout: the preset's (default), or `plain` (the study's conv stack scaled down, flips,
    /// 15 epochs) or `residual` (residual network + global average pooling, strong augmentation,
    /// label smoothing, cosine schedule, test-time flips, 30 epochs; the `default` preset is this
    /// at 20 epochs) at the preset's image size. `--epochs` applies after this.
    #[arg(long, value_enum)]
    arch: Option<ArchArg>,
    /// Train this many CNNs from different seeds on the same split and predict the mean of
    /// their probabilities (an ensemble, saved as one checkpoint `cnn-real`; members as
    /// `cnn-real-m{i}`). Validation and test are printed for the first k members, k = 1…K:
    /// choose K on validation.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Change a field of the CNN's config, `path=value`, after the preset, `--arch` and
    /// `--epochs` (repeatable; e.g. `--set label_smoothing=0`, `--set test_time_flip=false`).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<ConfigOverride>,
    /// Grouped K-fold cross-validation: K runs (`--out/fold{i}`), each testing one K-th of
    /// every class's near-duplicate groups and validating on part of the rest; prints and
    /// writes (`folds.json`) the mean ± sd over folds.
    #[arg(long)]
    folds: Option<usize>,
    /// Output folder (checkpoints, split, metrics).
    #[arg(long, default_value = "runs/train_cnn")]
    out: PathBuf,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let args = Args::parse();
    let device = args.run.device()?;
    let mut cfg = CnnConfig::preset(args.run.preset, args.run.image_size);
    match args.arch {
        Some(ArchArg::Residual) => cfg = CnnConfig::residual(cfg.image_size),
        Some(ArchArg::Plain) => cfg = CnnConfig::plain(cfg.image_size),
        None => {}
    }
    if let Some(e) = args.run.epochs {
        // Exactly `e` epochs: the preset's step minimum (for small sets) no longer applies.
        (cfg.epochs, cfg.min_steps) = (e, 0);
    }
    let cfg = apply_overrides(&cfg, &args.set)?;
    let Some(k) = args.folds else {
        run_one(&args, &cfg, &args.out, None, &device)?;
        return Ok(());
    };
    // Grouped K-fold cross-validation: every group of the data is tested once.
    let mut folds = Vec::with_capacity(k);
    for index in 0..k {
        println!("fold {} of {k}:", index + 1);
        folds.push(run_one(&args, &cfg, &args.out.join(format!("fold{index}")), Some(Fold { index, count: k }), &device)?);
    }
    let summary = FoldSummary::of(&folds)?;
    println!("{k}-fold cross-validation, test: {summary}");
    let path = args.out.join("folds.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Trains (or resumes) and scores one run in `out`, on the preset split or on `fold`.
fn run_one(args: &Args, cfg: &CnnConfig, out_dir: &std::path::Path, fold: Option<Fold>, device: &candle_core::Device) -> Result<TestMetrics> {
    let t0 = std::time::Instant::now();
    let (prepared, fingerprint) = args.run.prepare_fold(cfg.image_size, out_dir, fold)?;
    let (tr, va, te) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    println!("CNN preset {} ({} parameters), {} epochs, batch {}", args.run.preset, cfg.param_count(), cfg.epochs_for(tr.len()), cfg.batch_size);
    let opts: TrainOptions = args.run.run_options("cnn-real", out_dir, &fingerprint, 0);
    let ens = train_ensemble(cfg, args.members, &tr, &va, device, &opts)?;
    let out = &ens.members[0];
    // Validation with and without test-time flips, and of member 0 against the ensemble: the
    // evidence for choosing those settings (the test split is scored once, with the ones asked).
    let mut val_lines = Vec::new();
    for flip in [false, true] {
        let model = out.model.with_test_time_flip(flip);
        let vm = TestMetrics::from_scores(&predict_proba(&model, &va, cfg.batch_size, device)?, &va.labels, 0.5)?;
        val_lines.push(format!("{}: accuracy {:.4} AUROC {:.4}", if flip { "with flips" } else { "without" }, vm.accuracy, vm.auroc.unwrap_or(f64::NAN)));
    }
    println!("validation (member 0), test-time flips {}", val_lines.join("; "));
    if args.members > 1 {
        // The first k members for every k: validation is what a choice of k may read; the
        // test line of each k is for the ablation table, not for choosing.
        for k in 1..=args.members {
            let sub = CnnEnsemble::new(ens.ensemble.members()[..k].to_vec())?;
            let score = |set: &mri_synth::train::ImageSet| -> Result<TestMetrics> {
                Ok(TestMetrics::from_scores(&predict_proba(&sub, set, cfg.batch_size, device)?, &set.labels, 0.5)?)
            };
            let (v, t) = (score(&va)?, score(&te)?);
            println!(
                "first {k} member(s): validation accuracy {:.4} AUROC {:.4}; test accuracy {:.4} AUROC {:.4}",
                v.accuracy,
                v.auroc.unwrap_or(f64::NAN),
                t.accuracy,
                t.auroc.unwrap_or(f64::NAN)
            );
        }
    }
    let probs = predict_proba(&ens.ensemble, &te, cfg.batch_size, device)?;
    let m = TestMetrics::from_scores(&probs, &te.labels, 0.5)?;
    let epochs: Vec<String> = ens.members.iter().map(|o| format!("{} (val loss {:.4})", o.best_epoch, o.best_val_loss)).collect();
    println!(
        "best epoch {}; test-time flips {}; {} member(s); test on {} held-out slices ({}): {m}",
        epochs.join(", "),
        if cfg.test_time_flip { "on" } else { "off" },
        args.members,
        te.len(),
        prepared.dataset.source.describe()
    );
    // The shortcut check on the same split: what the original files' geometry alone predicts.
    if let Some(g) = geometry_baseline_of(&prepared)? {
        println!("geometry-only baseline (k-NN on file size, aspect ratio, letterbox; k = {} on validation): test {}", g.k, g.test);
        // Does the CNN know more than the geometry? Its accuracy where geometry fails.
        let (mut n, mut right) = (0, 0);
        for ((&p, &s), &y) in probs.iter().zip(&g.test_scores).zip(&te.labels) {
            if (s >= 0.5) != (y == 1) {
                n += 1;
                right += usize::from((p >= 0.5) == (y == 1));
            }
        }
        println!("on the {n} test slices the geometry baseline gets wrong, the CNN is right on {right}");
    }
    let write = |name: &str, json: String| std::fs::write(out_dir.join(name), json).with_context(|| format!("writing {}", out_dir.join(name).display()));
    let histories: Vec<_> = ens.members.iter().map(|o| &o.history).collect();
    write("history.json", if args.members == 1 { serde_json::to_string_pretty(&out.history)? } else { serde_json::to_string_pretty(&histories)? })?;
    write("test_metrics.json", serde_json::to_string_pretty(&m)?)?;
    // Per-slice scores for paired comparisons between runs (`compare_runs`: ablation rows).
    let scores = TestScores {
        scores: probs.iter().map(|&p| f64::from(p)).collect(),
        labels: te.labels.clone(),
        groups: prepared.part_of(&prepared.groups, SplitPart::Test),
        threshold: 0.5,
        split_hash: fingerprint.split_hash.clone(),
    };
    scores.write(&out_dir.join("test_scores.json"))?;
    println!("test {}", scores.intervals(BOOTSTRAP_REPLICATES, args.run.seed)?);
    println!("wrote {} in {:.1} s", out_dir.display(), t0.elapsed().as_secs_f64());
    Ok(m)
}

//! Leak check: test slices with a near-duplicate on the training side.
//!
//! ```text
//! # parts of one data set: a split.json, or (without --split) the split made from our own
//! # near-duplicate groups alone, the way a data set without a shipped grouping is split
//! cargo run --release --example leak_check -- --data ../shared/data/br35h [--split runs/x/split.json]
//! # two data sets: does an external test folder hold copies of the training folder?
//! cargo run --release --example leak_check -- --train DIR_A --test DIR_B
//! ```
//! Writes into `--out` (default `runs/leak_check`): `leaks_test.csv` (and `leaks_val.csv` for a
//! split) with `file,label,match_file,match_label,similarity`, most similar first;
//! `leaks_test.png`, a contact sheet of the worst pairs (checked slice | its training match, four
//! pairs to a row, in CSV order); `leak_check.json`. With a reference grouping
//! (`DATA/near_duplicate_groups.csv` or `--reference-groups`) it also counts the test slices
//! whose reference group has a member in train.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use mri_synth::preprocess::{
    leak_check, reference_leaks, CacheMode, ClassMap, Dataset, GroupingParams, LeakCheck, LoadOptions, PhantomConfig, PreprocessConfig, SplitManifest,
    SplitParams, SplitPart,
};

#[derive(Parser, Debug)]
#[command(about = "List test slices that have a near-duplicate in the training data")]
struct Args {
    /// One data folder (yes/ and no/ subfolders): check its split's test and val parts against
    /// its train part. Omit --data, --train and --test for the built-in phantoms.
    #[arg(long, conflicts_with_all = ["train", "test"])]
    data: Option<PathBuf>,
    /// split.json to check (default: split the data by our own near-duplicate groups alone).
    #[arg(long, requires = "data")]
    split: Option<PathBuf>,
    /// Seed of the split made when --split is not given.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training folder (with --test): check every slice of --test against every slice of it.
    #[arg(long, requires = "test")]
    train: Option<PathBuf>,
    /// Test folder checked against --train.
    #[arg(long, requires = "train")]
    test: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "runs/leak_check")]
    out: PathBuf,
    /// Side of the slices drawn in the contact sheet (the check itself uses head-cropped
    /// thumbnails and does not depend on it).
    #[arg(long, default_value_t = 64)]
    image_size: u32,
    /// Similarity at or above which two slices are near-duplicates.
    #[arg(long, default_value_t = GroupingParams::default().threshold)]
    threshold: f32,
    /// Compare slices of different classes too (a copy filed under the other class is a label
    /// error worth seeing; similar-looking slices of different patients make more false hits).
    #[arg(long)]
    across_classes: bool,
    /// Pairs drawn in the contact sheet.
    #[arg(long, default_value_t = 32)]
    worst: usize,
    /// Reference grouping CSV (file,group) for --data; defaults to DATA/near_duplicate_groups.csv.
    #[arg(long, requires = "data")]
    reference_groups: Option<PathBuf>,
    /// Map other folder names to the classes, e.g. "tumor=yes,no_tumor=no".
    #[arg(long)]
    classes: Option<String>,
    /// Skip unreadable files instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
}

fn load(dir: &Path, args: &Args) -> Result<Dataset> {
    let opts = LoadOptions {
        classes: match &args.classes {
            Some(spec) => ClassMap::parse(spec)?,
            None => ClassMap::default(),
        },
        preprocess: PreprocessConfig::with_size(args.image_size),
        cache: CacheMode::Default,
        skip_invalid: args.skip_invalid,
    };
    let ds = Dataset::load(dir, &opts).with_context(|| format!("loading {}", dir.display()))?;
    for s in &ds.skipped {
        println!("skipped {}: {}", s.rel_path, s.reason);
    }
    Ok(ds)
}

/// Prints, writes the CSV and the sheet of one check; returns its JSON.
fn report(name: &str, check: &LeakCheck, checked: &Dataset, other: &Dataset, args: &Args) -> Result<serde_json::Value> {
    println!(
        "{name}: {} of {} slices have a near-duplicate among {} (similarity ≥ {}){}",
        check.pairs.len(),
        check.checked,
        check.compared_against,
        check.threshold,
        check.closest_below.map(|c| format!("; closest below the threshold {c:.3}")).unwrap_or_default()
    );
    for p in check.pairs.iter().take(5) {
        println!("  {} ~ {} ({:.3})", p.file, p.match_file, p.similarity);
    }
    check.write_csv(&args.out.join(format!("leaks_{name}.csv")))?;
    if !check.pairs.is_empty() {
        check.save_sheet(&args.out.join(format!("leaks_{name}.png")), checked, other, args.worst)?;
    }
    Ok(serde_json::to_value(check)?)
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let args = Args::parse();
    let start = Instant::now();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let params = GroupingParams { threshold: args.threshold, within_class: !args.across_classes, ..Default::default() };
    params.check()?;
    let mut summary = serde_json::Map::new();
    if let (Some(train_dir), Some(test_dir)) = (&args.train, &args.test) {
        let (train, test) = (load(train_dir, &args)?, load(test_dir, &args)?);
        println!("train: {} ({} slices); test: {} ({} slices)", train_dir.display(), train.len(), test_dir.display(), test.len());
        let t0 = Instant::now();
        let check = leak_check(&test, &(0..test.len()).collect::<Vec<_>>(), &train, &(0..train.len()).collect::<Vec<_>>(), &params)?;
        println!("compared in {:.2} s", t0.elapsed().as_secs_f64());
        summary.insert("train".into(), train_dir.display().to_string().into());
        summary.insert("test_folder".into(), test_dir.display().to_string().into());
        summary.insert("test".into(), report("test", &check, &test, &train, &args)?);
    } else {
        let ds = match &args.data {
            Some(dir) => load(dir, &args)?,
            None => {
                println!("data: phantom (built-in synthetic slices; pass --data DIR for a real folder)");
                Dataset::phantom(&PhantomConfig { image_size: args.image_size, per_class: 200, seed: args.seed, ..Default::default() })?
            }
        };
        let split = match &args.split {
            Some(path) => {
                let s = SplitManifest::read(path)?;
                let known: std::collections::HashSet<&str> = ds.items.iter().map(|i| i.rel_path.as_str()).collect();
                if let Some(missing) = s.items.iter().find(|i| !known.contains(i.path.as_str())) {
                    bail!("{}: lists {}, which is not in the data folder", path.display(), missing.path);
                }
                println!("split: {}", path.display());
                s
            }
            None => {
                let t0 = Instant::now();
                let groups = ds.near_duplicate_groups(&GroupingParams { within_class: true, ..params.clone() })?;
                println!("split: our own near-duplicate groups alone, seed {} ({} groups in {:.2} s)", args.seed, count(&groups), t0.elapsed().as_secs_f64());
                let s = ds.split(&groups, &SplitParams::with_seed(args.seed))?;
                s.write(&args.out.join("split.json"))?;
                s
            }
        };
        let train = ds.indices_in(&split, SplitPart::Train);
        let t0 = Instant::now();
        for part in [SplitPart::Test, SplitPart::Val] {
            let check = leak_check(&ds, &ds.indices_in(&split, part), &ds, &train, &params)?;
            summary.insert(part.as_str().into(), report(part.as_str(), &check, &ds, &ds, &args)?);
        }
        println!("compared in {:.2} s", t0.elapsed().as_secs_f64());
        let reference = args.reference_groups.clone().or_else(|| args.data.as_ref().map(|d| d.join("near_duplicate_groups.csv")).filter(|p| p.exists()));
        if let Some(path) = reference {
            let groups = ds.reference_groups(&path)?;
            let mut by_part = serde_json::Map::new();
            for part in [SplitPart::Test, SplitPart::Val] {
                let checked = ds.indices_in(&split, part);
                let leaks = reference_leaks(&groups, &checked, &train);
                println!("{}: {} of {} slices share a group of {} with a train slice", part.as_str(), leaks.len(), checked.len(), path.display());
                by_part.insert(
                    part.as_str().into(),
                    serde_json::json!({"slices": checked.len(), "with_reference_group_in_train": leaks.len(),
                    "files": leaks.iter().map(|&i| ds.items[i].rel_path.clone()).collect::<Vec<_>>()}),
                );
            }
            summary.insert("reference".into(), serde_json::json!({"grouping": path.display().to_string(), "parts": by_part}));
        }
    }
    mri_synth::preprocess::fsutil::write_atomic(&args.out.join("leak_check.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("wrote leak_check.json, leaks_*.csv and contact sheets to {} in {:.2} s", args.out.display(), start.elapsed().as_secs_f64());
    Ok(())
}

fn count(groups: &[String]) -> usize {
    groups.iter().collect::<std::collections::HashSet<_>>().len()
}

//! Preprocess a labelled folder (or the built-in phantoms): cached, parallel decoding and
//! preprocessing, near-duplicate groups, one seeded group-aware split.
//!
//! ```text
//! cargo run --release --example preprocess -- --data ../shared/data/br35h --out runs/preprocess
//! ```
//! Writes `split.json`, `groups.csv`, `samples_yes.png`, `samples_no.png` (and `skipped.csv`
//! with `--skip-invalid` when files were skipped) into `--out`; prints counts, groups, times,
//! and — when the folder has `near_duplicate_groups.csv` or `--reference-groups` is given — the
//! pairwise agreement of our groups with that reference.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mri_synth::preprocess::{
    pairwise_agreement, save_grid, union_groupings, CacheMode, ClassMap, Dataset, GroupingParams, Label, LoadOptions, PhantomConfig, PreprocessConfig,
    SplitParams, SplitPart,
};

#[derive(Parser, Debug)]
#[command(about = "Preprocess brain MRI slices, group near-duplicates and write a group-aware split")]
struct Args {
    /// Data folder with yes/ and no/ subfolders (Br35H layout). Omit for built-in phantom data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder for split.json, groups.csv and sample grids.
    #[arg(long, default_value = "runs/preprocess")]
    out: PathBuf,
    /// Side of the preprocessed square slices, in pixels.
    #[arg(long, default_value_t = 128)]
    image_size: u32,
    /// Seed of the split (and of the phantoms).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip unreadable or invalid files (listed in skipped.csv) instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// Map other folder names to the classes, e.g. "tumor=yes,no_tumor=no".
    #[arg(long)]
    classes: Option<String>,
    /// Cache folder for preprocessed slices (default: $MRI_SYNTH_CACHE or ~/.cache/mri-synth).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the cache.
    #[arg(long)]
    no_cache: bool,
    /// Reference grouping CSV (columns file,group) to measure agreement against; defaults to
    /// DATA/near_duplicate_groups.csv when that exists.
    #[arg(long)]
    reference_groups: Option<PathBuf>,
    /// Correlation threshold of near-duplicate grouping.
    #[arg(long, default_value_t = GroupingParams::default().threshold)]
    group_threshold: f32,
    /// Which groups the split keeps together: "union" (ours joined with the reference grouping,
    /// when there is one: the safest against leaks) or "ours" (only the computed groups).
    #[arg(long, default_value = "union", value_parser = ["union", "ours"])]
    split_groups: String,
    /// Phantom slices per class (phantom data only).
    #[arg(long, default_value_t = 200)]
    phantoms_per_class: usize,
}

fn main() -> Result<()> {
    mri_train::configure_runtime();
    let args = Args::parse();
    let start = Instant::now();
    let ds = match &args.data {
        None => {
            println!("data: phantom (built-in synthetic slices; pass --data DIR for a real folder)");
            Dataset::phantom(&PhantomConfig { image_size: args.image_size, per_class: args.phantoms_per_class, seed: args.seed, ..Default::default() })?
        }
        Some(dir) => {
            let opts = LoadOptions {
                classes: match &args.classes {
                    Some(spec) => ClassMap::parse(spec)?,
                    None => ClassMap::default(),
                },
                preprocess: PreprocessConfig::with_size(args.image_size),
                cache: match (&args.cache_dir, args.no_cache) {
                    (_, true) => CacheMode::Disabled,
                    (Some(d), _) => CacheMode::Dir(d.clone()),
                    (None, _) => CacheMode::Default,
                },
                skip_invalid: args.skip_invalid,
            };
            let bar =
                ProgressBar::new(0).with_style(ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} files {elapsed}").unwrap().progress_chars("=> "));
            bar.set_prefix("preprocessing");
            let ds = Dataset::load_with_progress(dir, &opts, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .with_context(|| format!("loading {}", dir.display()))?;
            bar.finish_and_clear();
            println!("data: {}", ds.source.describe());
            for s in &ds.skipped {
                println!("skipped {}: {}", s.rel_path, s.reason);
            }
            ds
        }
    };
    let t_load = start.elapsed().as_secs_f64();
    println!(
        "loaded {} slices ({} yes, {} no) at {px}×{px} in {t_load:.2} s: {} decoded, {} from cache{}",
        ds.len(),
        ds.count(Label::Tumour),
        ds.count(Label::Healthy),
        ds.stats.decoded,
        ds.stats.cache_hits,
        if ds.stats.cache_write_errors > 0 { format!(", {} cache writes failed", ds.stats.cache_write_errors) } else { String::new() },
        px = ds.image_size,
    );

    let t0 = Instant::now();
    let params = GroupingParams { threshold: args.group_threshold, ..Default::default() };
    let mut groups = ds.near_duplicate_groups(&params)?;
    let t_group = t0.elapsed().as_secs_f64();
    let n_ours = groups.iter().collect::<std::collections::HashSet<_>>().len();
    println!("{n_ours} near-duplicate groups (grouping {t_group:.2} s)");

    let reference = args.reference_groups.clone().or_else(|| args.data.as_ref().map(|d| d.join("near_duplicate_groups.csv")).filter(|p| p.exists()));
    if let Some(path) = reference {
        let reference_of = ds.reference_groups(&path)?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for (g, r) in groups.iter().zip(&reference_of) {
            if let Some(r) = r {
                ours.push(g.as_str());
                theirs.push(r.as_str());
            }
        }
        let a = pairwise_agreement(&ours, &theirs)?;
        println!(
            "agreement with {} over {} files: pairwise precision {:.3}, recall {:.3} ({} of our {} pairs, of its {} pairs)",
            path.display(),
            ours.len(),
            a.precision,
            a.recall,
            a.common_pairs,
            a.pred_pairs,
            a.reference_pairs
        );
        if args.split_groups == "union" {
            groups = union_groupings(&groups, &reference_of)?;
            println!(
                "split keeps together the union of both groupings: {} groups (--split-groups ours to use ours alone)",
                groups.iter().collect::<std::collections::HashSet<_>>().len()
            );
        }
    }
    let split = ds.split(&groups, &SplitParams::with_seed(args.seed))?;

    for part in SplitPart::ALL {
        println!("{:<5} yes {:>5}  no {:>5}", part.as_str(), split.count(part, Label::Tumour), split.count(part, Label::Healthy));
    }
    let crossing = split.groups_crossing_parts();
    anyhow::ensure!(crossing.is_empty(), "groups crossing splits: {crossing:?}");

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    split.write(&args.out.join("split.json"))?;
    ds.write_groups_csv(&groups, &args.out.join("groups.csv"))?;
    let s = ds.image_size as usize;
    for label in Label::ALL {
        let imgs: Vec<&[f32]> = ds.indices_of(label).into_iter().take(64).map(|i| ds.items[i].pixels.as_slice()).collect();
        save_grid(&args.out.join(format!("samples_{label}.png")), &imgs, s, 8)?;
    }
    if !ds.skipped.is_empty() {
        let mut csv = String::from("file,reason\n");
        for sk in &ds.skipped {
            csv.push_str(&format!("{},\"{}\"\n", sk.rel_path, sk.reason.replace('"', "'")));
        }
        mri_synth::preprocess::fsutil::write_atomic(&args.out.join("skipped.csv"), csv.as_bytes())?;
    }
    println!(
        "wrote split.json, groups.csv, samples_yes.png, samples_no.png to {}; total {:.2} s (load {t_load:.2} s, grouping {t_group:.2} s)",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

//! The real / synthetic / mixed study (DESIGN.md "Data flow"), as library code so that an
//! integration test can run it: one group-aware split; per-class generators trained on
//! **train** only; the CNN trained on real, synthetic and mixed data, selected on **real
//! val**, scored on **real test**; the anomaly VAE trained on healthy real, synthetic and mixed
//! slices, every technique's operating point chosen on **real val**, scored on **real test**;
//! `report.json`, `report.md` and figures.
//!
//! Every stage stores its result in `stages/<name>.json`; a re-run with the same `--out`
//! skips the stages already complete, and the trainings resume from their checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use mri_cluster::ErrorMapOptions;
use mri_cnn::{predict_proba, CnnConfig, TrainOptions};
use mri_metrics::{RocCurve, ThresholdCriterion};
use mri_preprocess::SplitPart;
use mri_train::{Checkpoint, ImageSet, RunOptions};
use mri_vae::AnomalyVaeConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::anomaly::{evaluate_techniques, save_anomaly_figure};
use crate::data::{DataSpec, PreparedData};
use crate::eval::TestMetrics;
use crate::generators::{train_generators, write_synthetic, GeneratorKind, GeneratorSpec, CLASSES};
use crate::plots::{line_plot, roc_plot};
use crate::quality::{generation_row, intensity_baseline, localization_row, GenerationRow, LocalizationRow, MaskedSet, RealClass, SyntheticClass};
use crate::SynthError;

/// What to run.
#[derive(Debug, Clone)]
pub struct ExperimentSpec {
    /// Data folder (Br35H layout); `None` = built-in phantoms.
    pub data: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Preset of every model (`quick`, `default`, `paper`).
    pub preset: String,
    /// Image side (overrides the presets').
    pub image_size: Option<usize>,
    /// Seed of everything.
    pub seed: u64,
    /// Generators to compare.
    pub generators: Vec<GeneratorKind>,
    /// Synthetic images per class (default: as many as real training images of that class).
    pub synthetic_per_class: Option<usize>,
    /// Skip unreadable images.
    pub skip_invalid: bool,
    /// Phantoms per class when `data` is `None`.
    pub phantoms_per_class: usize,
    /// No progress bars.
    pub quiet: bool,
}

impl ExperimentSpec {
    /// Phantoms, this preset, both generators, output in `out`.
    pub fn phantoms(preset: &str, out: &Path) -> Self {
        ExperimentSpec {
            data: None,
            out: out.to_path_buf(),
            preset: preset.into(),
            image_size: None,
            seed: 0,
            generators: vec![GeneratorKind::Vae, GeneratorKind::Gan],
            synthetic_per_class: None,
            skip_invalid: false,
            phantoms_per_class: if preset == "quick" { 40 } else { 200 },
            quiet: true,
        }
    }
}

/// Counts per class of one split part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassCounts {
    /// Tumour slices.
    pub yes: usize,
    /// Healthy slices.
    pub no: usize,
}

/// The data section of the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    /// Where the slices came from.
    pub source: String,
    /// Image side.
    pub image_size: usize,
    /// Counts per split part.
    pub counts: BTreeMap<String, ClassCounts>,
    /// Near-duplicate groups the split kept together.
    pub groups: usize,
}

/// One classifier × training data × generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRow {
    /// `cnn`, `vae-giaem`, `vae-dbscan`, `vae-kmeans`, `vae-global-kmeans`.
    pub model: String,
    /// `real`, `synthetic` or `mixed`.
    pub train_data: String,
    /// `vae`, `gan`, or null for real rows.
    pub generator: Option<String>,
    /// Metrics on the real test split.
    pub test: TestMetrics,
    /// How decisions are made (chosen on real validation data).
    pub operating_point: serde_json::Value,
    /// Test scores (for ROC curves; not written to report.json).
    #[serde(skip_serializing, default)]
    pub test_scores: Vec<f64>,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The data.
    pub dataset: DatasetInfo,
    /// One row per model × train data × generator.
    pub classification: Vec<ResultRow>,
    /// Fidelity, diversity and privacy per generator × class (see [`crate::quality`]).
    #[serde(default)]
    pub generation: Vec<GenerationRow>,
    /// Pixel-level tumour localisation of each anomaly VAE's error maps (when masks exist).
    #[serde(default)]
    pub localization: Vec<LocalizationRow>,
    /// The same scores with the slice's intensity as the map (no model): the reference.
    #[serde(default)]
    pub localization_baseline: Option<LocalizationRow>,
    /// Seconds per stage (as measured when the stage ran).
    pub timings_s: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct Stage<T> {
    seconds: f64,
    value: T,
}

struct Runner<'a> {
    spec: &'a ExperimentSpec,
    timings: BTreeMap<String, f64>,
}

impl Runner<'_> {
    /// Runs `f` unless `stages/<name>.json` holds its result; records the time.
    fn stage<T: Serialize + DeserializeOwned>(&mut self, name: &str, f: impl FnOnce() -> Result<T, SynthError>) -> Result<T, SynthError> {
        let path = self.spec.out.join("stages").join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(st) = serde_json::from_str::<Stage<T>>(&text) {
                println!("stage {name}: complete from an earlier run ({:.1} s then)", st.seconds);
                self.timings.insert(name.into(), st.seconds);
                return Ok(st.value);
            }
        }
        let t0 = Instant::now();
        let value = f()?;
        let seconds = t0.elapsed().as_secs_f64();
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(|e| SynthError::Io { path: dir.to_path_buf(), source: e })?;
        let text = serde_json::to_string(&Stage { seconds, value: &value }).expect("serialises");
        mri_preprocess::fsutil::write_atomic(&path, text.as_bytes())?;
        self.timings.insert(name.into(), seconds);
        Ok(value)
    }
}

#[derive(Serialize, Deserialize)]
struct CnnStage {
    test: TestMetrics,
    scores: Vec<f64>,
    best_epoch: usize,
    history: serde_json::Value,
}

fn cnn_stage(
    cfg: &CnnConfig,
    name: &str,
    train: &ImageSet,
    val: &ImageSet,
    test: &ImageSet,
    spec: &ExperimentSpec,
    device: &Device,
) -> Result<CnnStage, SynthError> {
    let opts = TrainOptions {
        seed: spec.seed,
        quiet: spec.quiet,
        checkpoint_dir: Some(spec.out.join("checkpoints")),
        name: name.into(),
        preset: spec.preset.clone(),
        ..TrainOptions::quiet(spec.seed)
    };
    let out = mri_cnn::train(cfg, train, val, device, &opts)?;
    let probs = predict_proba(&out.model, test, 64, device)?;
    let scores: Vec<f64> = probs.iter().map(|&p| f64::from(p)).collect();
    let test_m = TestMetrics::from_scores_f64(&scores, &test.labels, 0.5)?;
    println!("  {name}: best val epoch {} — test {test_m}", out.best_epoch + 1);
    Ok(CnnStage { test: test_m, scores, best_epoch: out.best_epoch, history: serde_json::to_value(&out.history).expect("serialises") })
}

#[derive(Serialize, Deserialize)]
struct AnomalyStage {
    rows: Vec<(String, TestMetrics, serde_json::Value, Vec<f64>)>,
}

#[allow(clippy::too_many_arguments)]
fn anomaly_stage(
    cfg: &AnomalyVaeConfig,
    name: &str,
    healthy: &ImageSet,
    val: &ImageSet,
    test: &ImageSet,
    spec: &ExperimentSpec,
    device: &Device,
) -> Result<AnomalyStage, SynthError> {
    let opts = RunOptions {
        seed: spec.seed,
        quiet: spec.quiet,
        checkpoint_dir: Some(spec.out.join("checkpoints")),
        name: name.into(),
        preset: spec.preset.clone(),
        stop_after: None,
        figures_dir: Some(spec.out.join("figures")),
        figure_every: 0,
    };
    // Model selection on healthy *real* validation slices.
    let model = mri_vae::train_vae(cfg, healthy, &val.of_class(0), device, &opts)?.model;
    let (results, recon, maps) = evaluate_techniques(&model, val, test, &ErrorMapOptions::default(), ThresholdCriterion::F1, device)?;
    let mut rows = Vec::new();
    for r in results {
        save_anomaly_figure(&spec.out.join("figures").join(format!("anomaly-{name}-{}.png", r.model)), test, &recon, &maps, &r.detector, 3)?;
        let det_dir = spec.out.join("detectors");
        std::fs::create_dir_all(&det_dir).map_err(|e| SynthError::Io { path: det_dir.clone(), source: e })?;
        std::fs::write(det_dir.join(format!("{name}-{}.json", r.model)), r.detector.to_json())
            .map_err(|e| SynthError::Io { path: det_dir.clone(), source: e })?;
        println!("  {name} {}: test {}", r.model, r.test);
        let scores = r.detector.score(&maps);
        rows.push((r.model, r.test, serde_json::to_value(&r.detector).expect("serialises"), scores));
    }
    Ok(AnomalyStage { rows })
}

/// The study's accuracies (percent) for a model × train data, where it reported one.
pub fn study_accuracy(model: &str, train_data: &str) -> Option<f64> {
    match (model, train_data) {
        ("cnn", "real") => Some(96.67),
        ("cnn", "synthetic") => Some(58.16),
        ("cnn", "mixed") => Some(49.97),
        ("vae-giaem", "real") => Some(60.44),
        ("vae-giaem", "synthetic") => Some(80.08),
        ("vae-giaem", "mixed") => Some(81.24),
        ("vae-global-kmeans", "real") => Some(82.93),
        ("vae-global-kmeans", "synthetic") => Some(79.39),
        ("vae-global-kmeans", "mixed") => Some(78.80),
        _ => None,
    }
}

/// Runs the whole study and writes `report.json`, `report.md` and the figures into `spec.out`.
pub fn run_experiment(spec: &ExperimentSpec, device: &Device) -> Result<Report, SynthError> {
    let t_all = Instant::now();
    let cnn_cfg = CnnConfig::preset(&spec.preset, spec.image_size)?;
    let side = cnn_cfg.image_size;
    let anomaly_cfg = AnomalyVaeConfig::preset(&spec.preset, Some(side))?;
    std::fs::create_dir_all(&spec.out).map_err(|e| SynthError::Io { path: spec.out.clone(), source: e })?;
    let mut runner = Runner { spec, timings: BTreeMap::new() };

    // Data and split (always recomputed from the cache: fast, and it checks the split file).
    let t0 = Instant::now();
    let prepared = PreparedData::load(&DataSpec {
        data: spec.data.clone(),
        image_size: side as u32,
        seed: spec.seed,
        skip_invalid: spec.skip_invalid,
        phantoms_per_class: spec.phantoms_per_class,
        verbose: !spec.quiet,
    })?;
    prepared.split.write(&spec.out.join("split.json"))?;
    let (train, val, test) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    runner.timings.insert("data".into(), t0.elapsed().as_secs_f64());
    let counts = |s: &ImageSet| ClassCounts { yes: s.of_class(1).len(), no: s.of_class(0).len() };
    let dataset = DatasetInfo {
        source: prepared.dataset.source.describe(),
        image_size: side,
        counts: [("train", counts(&train)), ("val", counts(&val)), ("test", counts(&test))].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        groups: prepared.groups.iter().collect::<std::collections::BTreeSet<_>>().len(),
    };
    println!(
        "stage data: {} — train {}/{}, val {}/{}, test {}/{} (yes/no)",
        dataset.source,
        dataset.counts["train"].yes,
        dataset.counts["train"].no,
        dataset.counts["val"].yes,
        dataset.counts["val"].no,
        dataset.counts["test"].yes,
        dataset.counts["test"].no
    );

    // Generators per class, trained on train only, and their synthetic sets.
    let mut synthetic: BTreeMap<String, ImageSet> = BTreeMap::new();
    let mut gen_histories: Vec<(String, serde_json::Value)> = Vec::new();
    for &kind in &spec.generators {
        let gspec = GeneratorSpec {
            kind,
            preset: spec.preset.clone(),
            image_size: side,
            epochs: None,
            seed: spec.seed,
            out: spec.out.clone(),
            figure_every: 5,
            quiet: spec.quiet,
        };
        let t0 = Instant::now();
        let trained = train_generators(&gspec, &train, &val, device)?;
        let t_train = t0.elapsed().as_secs_f64();
        let mut set = ImageSet::new(side);
        let dir = spec.out.join("synthetic").join(kind.name());
        for ((class, gen, report), (label, _)) in trained.iter().zip(CLASSES) {
            let n = spec.synthetic_per_class.unwrap_or_else(|| train.of_class(label).len());
            // Synthetic labels come from the generator's class, never from folder order.
            set = set.concat(&write_synthetic(gen, class, label, n, spec.seed ^ (0x5EED + u64::from(label)), &dir, device)?)?;
            gen_histories.push((format!("{}-{class}", kind.name()), report.history.clone()));
        }
        runner.timings.insert(format!("generator-{}", kind.name()), t_train);
        println!("stage generator-{}: {} synthetic slices in {} ({:.1} s)", kind.name(), set.len(), dir.display(), t0.elapsed().as_secs_f64());
        synthetic.insert(kind.name().into(), set);
    }

    let mut rows: Vec<ResultRow> = Vec::new();
    let mut cnn_histories: Vec<(String, serde_json::Value)> = Vec::new();
    let mut push_cnn = |rows: &mut Vec<ResultRow>, st: CnnStage, train_data: &str, generator: Option<&str>, name: &str| {
        cnn_histories.push((name.to_string(), st.history.clone()));
        rows.push(ResultRow {
            model: "cnn".into(),
            train_data: train_data.into(),
            generator: generator.map(String::from),
            test: st.test,
            operating_point: serde_json::json!({"threshold": 0.5, "rule": "tumour when softmax probability >= 0.5", "selected_epoch": st.best_epoch + 1, "selected_on": "real val loss"}),
            test_scores: st.scores,
        });
    };
    println!("stage cnn-real:");
    let st = runner.stage("cnn-real", || cnn_stage(&cnn_cfg, "cnn-real", &train, &val, &test, spec, device))?;
    push_cnn(&mut rows, st, "real", None, "cnn-real");
    for (g, syn) in &synthetic {
        for (what, set) in [("synthetic", syn.clone()), ("mixed", train.concat(syn)?)] {
            let name = format!("cnn-{what}-{g}");
            println!("stage {name}:");
            let st = runner.stage(&name, || cnn_stage(&cnn_cfg, &name, &set, &val, &test, spec, device))?;
            push_cnn(&mut rows, st, what, Some(g), &name);
        }
    }

    // Fidelity, diversity and privacy of each synthetic set, on features of the real-data CNN.
    let ckpt_dir = spec.out.join("checkpoints");
    let (_, cnn_real) = mri_cnn::load_cnn(&Checkpoint::at(&ckpt_dir, "cnn-real"), device)?;
    let mut generation = Vec::new();
    for (g, syn) in &synthetic {
        let name = format!("generation-{g}");
        println!("stage {name}:");
        let rows_g = runner.stage(&name, || {
            let mut out = Vec::new();
            for (label, class) in CLASSES {
                let (tr, va, te) = (train.of_class(label), val.of_class(label), test.of_class(label));
                let held = va.concat(&te)?;
                let row = generation_row(
                    &cnn_real,
                    &SyntheticClass { generator: g, class, images: &syn.of_class(label) },
                    &RealClass { train: &tr, val: &va, heldout: &held, test: &te },
                    spec.seed,
                    &spec.out.join("figures"),
                    device,
                )?;
                println!(
                    "  {g} {class}: FD {:.2} (floor {:.2}), MMD² {:.4}, MS-SSIM {:.3} (real {:.3}), memorised {:.1} %, DCR median {:.4} (held-out {:.4})",
                    row.fd_cnn,
                    row.fd_floor,
                    row.mmd,
                    row.ms_ssim,
                    row.ms_ssim_real,
                    100.0 * row.memorized_fraction,
                    row.dcr_median,
                    row.dcr_heldout_median
                );
                out.push(row);
            }
            Ok(out)
        })?;
        generation.extend(rows_g);
    }

    // Tumour masks for localisation: phantom lesions, or the data folder's annotations.
    let masks = prepared.tumour_masks(None)?;
    let masked = masks
        .as_ref()
        .map(|m| (MaskedSet::select(&val, &prepared.part_of(m, SplitPart::Val)), MaskedSet::select(&test, &prepared.part_of(m, SplitPart::Test))));
    let masked = match masked {
        Some((v, t)) if !v.images.is_empty() && !t.images.is_empty() => Some((v, t)),
        _ => {
            println!("no annotated tumour slices in both val and test: anomaly localisation is skipped");
            None
        }
    };
    let localization_baseline = match &masked {
        Some((mv, mt)) => Some(runner.stage("localization-intensity-baseline", || {
            let row = intensity_baseline(mv, mt, &spec.out.join("figures").join("localization-intensity-baseline.png"))?;
            println!(
                "  intensity baseline: pixel AUROC {:.3}, best Dice {:.3}, Dice at the val threshold {:.3}",
                row.pixel_auroc, row.dice, row.dice_val_threshold
            );
            Ok(row)
        })?),
        None => None,
    };
    let mut localization = Vec::new();
    let mut localize = |runner: &mut Runner, name: &str, train_data: &str, generator: Option<&str>| -> Result<(), SynthError> {
        let Some((mv, mt)) = &masked else { return Ok(()) };
        let stage = format!("localization-{name}");
        let row = runner.stage(&stage, || {
            let (_, model, _) = mri_vae::load_vae::<AnomalyVaeConfig>(&Checkpoint::at(&ckpt_dir, name), device)?;
            let row = localization_row(&model, train_data, generator, mv, mt, &spec.out.join("figures").join(format!("localization-{name}.png")), device)?;
            println!(
                "  {stage}: pixel AUROC {:.3}, best Dice {:.3}, Dice at the val threshold {:.3} ({} slices)",
                row.pixel_auroc, row.dice, row.dice_val_threshold, row.n_images
            );
            Ok(row)
        })?;
        localization.push(row);
        Ok(())
    };

    let push_anomaly = |rows: &mut Vec<ResultRow>, st: AnomalyStage, train_data: &str, generator: Option<&str>| {
        for (model, test_m, det, scores) in st.rows {
            rows.push(ResultRow {
                model,
                train_data: train_data.into(),
                generator: generator.map(String::from),
                test: test_m,
                operating_point: det,
                test_scores: scores,
            });
        }
    };
    println!("stage anomaly-vae-real:");
    let st = runner.stage("anomaly-vae-real", || anomaly_stage(&anomaly_cfg, "anomaly-vae-real", &train.of_class(0), &val, &test, spec, device))?;
    push_anomaly(&mut rows, st, "real", None);
    localize(&mut runner, "anomaly-vae-real", "real", None)?;
    for (g, syn) in &synthetic {
        for (what, set) in [("synthetic", syn.of_class(0)), ("mixed", train.of_class(0).concat(&syn.of_class(0))?)] {
            let name = format!("anomaly-vae-{what}-{g}");
            println!("stage {name}:");
            let st = runner.stage(&name, || anomaly_stage(&anomaly_cfg, &name, &set, &val, &test, spec, device))?;
            push_anomaly(&mut rows, st, what, Some(g));
            localize(&mut runner, &name, what, Some(g))?;
        }
    }

    runner.timings.insert("total".into(), t_all.elapsed().as_secs_f64());
    let report = Report { dataset, classification: rows, generation, localization, localization_baseline, timings_s: runner.timings };
    write_report(spec, &report, &test.labels, &gen_histories, &cnn_histories)?;
    Ok(report)
}

fn series(history: &serde_json::Value, key: &str) -> Vec<(f64, f64)> {
    history.as_array().map(|a| a.iter().enumerate().filter_map(|(i, r)| r.get(key)?.as_f64().map(|v| (i as f64 + 1.0, v))).collect()).unwrap_or_default()
}

fn write_report(
    spec: &ExperimentSpec,
    report: &Report,
    test_labels: &[u32],
    gen_histories: &[(String, serde_json::Value)],
    cnn_histories: &[(String, serde_json::Value)],
) -> Result<(), SynthError> {
    let out = &spec.out;
    let fig = out.join("figures");
    // Loss curves.
    let mut cnn_series = Vec::new();
    for (name, h) in cnn_histories {
        cnn_series.push((format!("{name} train"), series(h, "train_loss")));
        cnn_series.push((format!("{name} val"), series(h, "val_loss")));
    }
    line_plot(&fig.join("loss-cnn.svg"), "CNN: training and real-validation loss", "epoch", "cross-entropy", &cnn_series, false)?;
    let mut gen_series = Vec::new();
    for (name, h) in gen_histories {
        if name.starts_with("gan") {
            gen_series.push((format!("{name} D"), series(h, "d_loss")));
            gen_series.push((format!("{name} G"), series(h, "g_loss")));
        }
    }
    if !gen_series.is_empty() {
        line_plot(&fig.join("loss-gan.svg"), "GAN: discriminator and generator loss", "epoch", "BCE", &gen_series, false)?;
    }
    let vae_series: Vec<_> = gen_histories.iter().filter(|(n, _)| n.starts_with("vae")).map(|(n, h)| (format!("{n} val"), series(h, "val_loss"))).collect();
    if !vae_series.is_empty() {
        line_plot(&fig.join("loss-vae.svg"), "Generative VAE: validation loss per image", "epoch", "BCE + KL", &vae_series, false)?;
    }
    // ROC curves.
    let truth: Vec<bool> = test_labels.iter().map(|&l| l == 1).collect();
    let roc_of = |r: &ResultRow| -> Vec<(f64, f64)> {
        if r.test_scores.len() != truth.len() {
            return Vec::new();
        }
        RocCurve::new(&r.test_scores, &truth).map(|c| c.points.iter().map(|p| (p.fpr, p.tpr)).collect()).unwrap_or_default()
    };
    let label = |r: &ResultRow| format!("{} {}{}", r.model, r.train_data, r.generator.as_ref().map(|g| format!(" ({g})")).unwrap_or_default());
    let cnn: Vec<_> = report.classification.iter().filter(|r| r.model == "cnn").map(|r| (label(r), roc_of(r))).collect();
    roc_plot(&fig.join("roc-cnn.svg"), "CNN on the real test split", &cnn)?;
    for td in ["real", "synthetic", "mixed"] {
        let v: Vec<_> = report.classification.iter().filter(|r| r.model != "cnn" && r.train_data == td).map(|r| (label(r), roc_of(r))).collect();
        if !v.is_empty() {
            roc_plot(&fig.join(format!("roc-anomaly-{td}.svg")), &format!("Anomaly VAE trained on {td} healthy slices"), &v)?;
        }
    }
    // report.json and report.md.
    let json = serde_json::to_string_pretty(report).expect("serialises");
    mri_preprocess::fsutil::write_atomic(&out.join("report.json"), json.as_bytes())?;
    let mut md = String::new();
    md.push_str("# mri-synth: real / synthetic / mixed\n\n");
    md.push_str(&format!("Data: {} at {s}×{s} px — ", report.dataset.source, s = report.dataset.image_size));
    let c = &report.dataset.counts;
    md.push_str(&format!(
        "train {}/{}, val {}/{}, test {}/{} (tumour/healthy), {} near-duplicate groups kept within one part. Preset `{}`, seed {}.\n\n",
        c["train"].yes, c["train"].no, c["val"].yes, c["val"].no, c["test"].yes, c["test"].no, report.dataset.groups, spec.preset, spec.seed
    ));
    md.push_str("Every model is selected, and every operating point chosen, on the **real validation** split; all metrics are on the **real test** split. Synthetic images never enter validation or test.\n\n");
    md.push_str("| Model | Train data | Generator | Accuracy | Precision | Recall | F1 | AUROC | Study's accuracy |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.classification {
        let m = &r.test;
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.3} | {} |\n",
            r.model,
            r.train_data,
            r.generator.as_deref().unwrap_or("—"),
            100.0 * m.accuracy,
            100.0 * m.precision,
            100.0 * m.recall,
            100.0 * m.f1,
            m.auroc,
            study_accuracy(&r.model, &r.train_data).map(|a| format!("{a:.2} %")).unwrap_or_else(|| "—".into())
        ));
    }
    md.push_str("\nThe study's numbers come from an unseeded random split with near-duplicates across it, thresholds picked on the evaluation data (a separate best per metric) and, for mixed data, labels merged by folder order; its 49.97 % mixed CNN is chance level.\n\n");
    if !report.generation.is_empty() {
        md.push_str("## Synthetic data: fidelity, diversity, privacy\n\nFD and MMD² on the penultimate features of the CNN trained on real data: real **test** slices of the class against as many synthetic slices as the class has real **validation** slices; the floor compares the same test slices with those validation slices (two held-out halves, disjoint groups, equal sizes). FD (all) uses every synthetic slice. FD pixels: the same on 8×8 area-averaged thumbnails (gross appearance, which a tumour classifier's features ignore). MS-SSIM: mean over random pairs within a set (higher = less diverse). DCR: RMS pixel distance to the nearest real training image; memorised = closer than the 1st percentile of held-out (val + test) real slices.\n\n| Generator | Class | n | FD | FD floor | FD (all) | FD pixels | FD pixels floor | MMD² | MMD² floor | MS-SSIM | MS-SSIM real | Memorised | DCR median | Held-out DCR median | Memorised (features) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for g in &report.generation {
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.4} | {:.3} | {:.3} | {:.1} % | {:.4} | {:.4} | {:.1} % |\n",
                g.generator,
                g.class,
                g.n,
                g.fd_cnn,
                g.fd_floor,
                g.fd_cnn_all,
                g.fd_pixels,
                g.fd_pixels_floor,
                g.mmd,
                g.mmd_floor,
                g.ms_ssim,
                g.ms_ssim_real,
                100.0 * g.memorized_fraction,
                g.dcr_median,
                g.dcr_heldout_median,
                100.0 * g.memorized_fraction_features
            ));
        }
        md.push_str("\nMost-copied pairs (synthetic | nearest training image, closest first): `figures/copies-<generator>-<class>.png`.\n\n");
    }
    if !report.localization.is_empty() {
        md.push_str("## Anomaly localisation\n\nError maps of each anomaly VAE against the tumour masks of the annotated test slices, head pixels pooled. Best Dice chooses its threshold on test (an upper bound); the last column uses the threshold best on the annotated validation slices. The `none` row scores the slice's own intensity (no model): the reference an error map has to beat.\n\n| Train data | Generator | Slices | Pixel AUROC | Best Dice | Dice (val threshold) |\n|---|---|---|---|---|---|\n");
        for l in report.localization.iter().chain(&report.localization_baseline) {
            md.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} |\n",
                l.train_data,
                l.generator.as_deref().unwrap_or("—"),
                l.n_images,
                l.pixel_auroc,
                l.dice,
                l.dice_val_threshold
            ));
        }
        md.push_str("\nOverlays (original | error map | mask green, errors above the val threshold red, both yellow): `figures/localization-<model>.png`.\n\n");
    }
    md.push_str("## Figures\n\n");
    for g in &spec.generators {
        for (_, class) in CLASSES {
            md.push_str(&format!("- `synthetic/{}/{class}-grid.png`: {} samples, class {class}\n", g.name(), g.name()));
        }
    }
    md.push_str("- `figures/loss-cnn.svg`, `figures/loss-vae.svg`, `figures/loss-gan.svg`: loss curves\n- `figures/roc-cnn.svg`, `figures/roc-anomaly-*.svg`: ROC curves on real test\n- `figures/anomaly-*.png`: original | reconstruction | error map | decision, tumour rows first\n\n## Time (s)\n\n| stage | seconds |\n|---|---|\n");
    for (k, v) in &report.timings_s {
        md.push_str(&format!("| {k} | {v:.1} |\n"));
    }
    mri_preprocess::fsutil::write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

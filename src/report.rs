//! The report of the study: typed rows (`report.json`) and their Markdown and figures
//! (`report.md`, loss and ROC curves).

use std::collections::BTreeMap;

use mri_cluster::Technique;
use mri_metrics::{subset_metrics, GroupBootstrap, Interval, RocCurve};
use mri_train::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::eval::TestMetrics;
use crate::experiment::ExperimentSpec;
use crate::generators::{GeneratorKind, CLASSES};
use crate::plots::{line_plot, roc_plot};
use crate::quality::{GenerationRow, LocalizationRow};
use crate::SynthError;

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
    /// The leak check of the split: test slices with a near-duplicate in train.
    #[serde(default)]
    pub leak_check: Option<crate::data::LeakSummary>,
}

/// The classifiers of the report: the CNN and each anomaly technique on the anomaly VAE's
/// error maps. One spelling each (serde, `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classifier {
    /// The supervised CNN.
    Cnn,
    /// GIAEM on the anomaly VAE's error maps.
    VaeGiaem,
    /// DBSCAN on the anomaly VAE's error maps.
    VaeDbscan,
    /// Per-image KMeans on the anomaly VAE's error maps.
    VaeKmeans,
    /// Global KMeans on the anomaly VAE's error maps.
    VaeGlobalKmeans,
    /// A high quantile of the anomaly VAE's error map (the plain residual score).
    VaePercentile,
    /// GIAEM on the denoising autoencoder's residual maps.
    DaeGiaem,
    /// DBSCAN on the denoising autoencoder's residual maps.
    DaeDbscan,
    /// Per-image KMeans on the denoising autoencoder's residual maps.
    DaeKmeans,
    /// Global KMeans on the denoising autoencoder's residual maps.
    DaeGlobalKmeans,
    /// A high quantile of the denoising autoencoder's residual map.
    DaePercentile,
    /// No model: a high quantile of the slice's own in-head intensity (Meissen et al. 2021),
    /// the baseline every learned detector is read against.
    IntensityBaseline,
    /// No image: k nearest neighbours on the original files' geometry (size, aspect ratio,
    /// letterbox), the shortcut check every classifier is read against ([`crate::shortcut`]).
    GeometryBaseline,
}

impl Classifier {
    /// The one spelling: `cnn`, `vae-giaem`, `vae-dbscan`, `vae-kmeans`, `vae-global-kmeans`,
    /// `vae-percentile`, `intensity-baseline`, `geometry-baseline`, `dae-giaem`, `dae-dbscan`, `dae-kmeans`,
    /// `dae-global-kmeans`, `dae-percentile`.
    pub fn name(self) -> &'static str {
        match self {
            Classifier::Cnn => "cnn",
            Classifier::VaeGiaem => Technique::Giaem.model_name(),
            Classifier::VaeDbscan => Technique::Dbscan.model_name(),
            Classifier::VaeKmeans => Technique::Kmeans.model_name(),
            Classifier::VaeGlobalKmeans => Technique::GlobalKmeans.model_name(),
            Classifier::VaePercentile => Technique::Percentile.model_name(),
            Classifier::IntensityBaseline => "intensity-baseline",
            Classifier::GeometryBaseline => "geometry-baseline",
            Classifier::DaeGiaem => "dae-giaem",
            Classifier::DaeDbscan => "dae-dbscan",
            Classifier::DaeKmeans => "dae-kmeans",
            Classifier::DaeGlobalKmeans => "dae-global-kmeans",
            Classifier::DaePercentile => "dae-percentile",
        }
    }

    /// The row of an anomaly technique on the denoising autoencoder's residuals.
    pub fn of_dae_technique(t: Technique) -> Self {
        match t {
            Technique::Giaem => Classifier::DaeGiaem,
            Technique::Dbscan => Classifier::DaeDbscan,
            Technique::Kmeans => Classifier::DaeKmeans,
            Technique::GlobalKmeans => Classifier::DaeGlobalKmeans,
            Technique::Percentile => Classifier::DaePercentile,
        }
    }

    /// The row of an anomaly technique on the anomaly VAE's error maps.
    pub fn of_technique(t: Technique) -> Self {
        match t {
            Technique::Giaem => Classifier::VaeGiaem,
            Technique::Dbscan => Classifier::VaeDbscan,
            Technique::Kmeans => Classifier::VaeKmeans,
            Technique::GlobalKmeans => Classifier::VaeGlobalKmeans,
            Technique::Percentile => Classifier::VaePercentile,
        }
    }
}

impl std::fmt::Display for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a model was trained on (it is always tested on real slices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainData {
    /// Real training slices.
    Real,
    /// Synthetic slices only.
    Synthetic,
    /// Real and synthetic slices together.
    Mixed,
}

impl TrainData {
    /// All three, in report order.
    pub const ALL: [TrainData; 3] = [TrainData::Real, TrainData::Synthetic, TrainData::Mixed];

    /// `real`, `synthetic` or `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            TrainData::Real => "real",
            TrainData::Synthetic => "synthetic",
            TrainData::Mixed => "mixed",
        }
    }
}

impl std::fmt::Display for TrainData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One classifier × training data × generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRow {
    /// The classifier.
    pub model: Classifier,
    /// What it was trained on.
    pub train_data: TrainData,
    /// The generator of its synthetic slices; `None` for real rows.
    pub generator: Option<GeneratorKind>,
    /// Metrics on the real test split.
    pub test: TestMetrics,
    /// Score at or above which a slice is called tumour (chosen on real validation data, 0.5
    /// for the CNN's probability).
    #[serde(default)]
    pub threshold: f64,
    /// How decisions are made (chosen on real validation data).
    pub operating_point: serde_json::Value,
    /// 95 % intervals of the test metrics, resampling near-duplicate groups of the test split.
    #[serde(default)]
    pub ci95: Option<Intervals>,
    /// For synthetic and mixed rows: the difference to the same model trained on real data, on
    /// the same test slices (paired), with its interval.
    #[serde(default)]
    pub vs_real: Option<PairedDifference>,
    /// Test scores (for ROC curves; not written to report.json).
    #[serde(skip_serializing, default)]
    pub test_scores: Vec<f64>,
}

/// 95 % group-bootstrap intervals of a row's test metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// Accuracy.
    pub accuracy: Option<Interval>,
    /// F1.
    pub f1: Option<Interval>,
    /// AUROC.
    pub auroc: Option<Interval>,
    /// Independent groups resampled.
    pub groups: usize,
}

impl Intervals {
    /// The intervals of `scores` against `truth` at `threshold` over `boot`'s replicates: what
    /// every report row carries, and what `train_cnn` prints for its test split.
    pub fn of(boot: &GroupBootstrap, scores: &[f64], truth: &[bool], threshold: f64) -> Self {
        let at = |idx: &[usize]| subset_metrics(scores, truth, threshold, idx).ok();
        Intervals {
            accuracy: boot.interval(|idx| Some(at(idx)?.accuracy)),
            f1: boot.interval(|idx| Some(at(idx)?.f1)),
            auroc: boot.interval(|idx| at(idx)?.auroc),
            groups: boot.n_groups(),
        }
    }
}

impl std::fmt::Display for Intervals {
    /// Accuracy and AUROC, the two figures the docs quote.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |i: Option<Interval>| i.map(|i| format!("[{:.3}, {:.3}]", i.low, i.high)).unwrap_or_else(|| "undefined".into());
        write!(f, "accuracy {}, AUROC {} (95 % intervals over {} near-duplicate groups)", show(self.accuracy), show(self.auroc), self.groups)
    }
}

/// A row minus the real-trained row of the same model, on the same test slices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Accuracy difference (this − real).
    pub accuracy: f64,
    /// Its 95 % interval (paired group bootstrap).
    pub accuracy_ci: Option<Interval>,
    /// AUROC difference (this − real), when both are defined.
    pub auroc: Option<f64>,
    /// Its 95 % interval.
    pub auroc_ci: Option<Interval>,
}

/// Bootstrap replicates of the report's intervals.
pub const BOOTSTRAP_REPLICATES: usize = 1000;

/// Fills every row's `ci95` and, for synthetic and mixed rows, `vs_real`, by a percentile
/// bootstrap over the test split's near-duplicate groups (`test_groups`, one id per test slice,
/// in row score order).
///
/// # Errors
/// Rows whose scores do not match the labels.
pub fn add_intervals(rows: &mut [ResultRow], test_labels: &[u32], test_groups: &[String], seed: u64) -> Result<(), SynthError> {
    let truth: Vec<bool> = test_labels.iter().map(|&l| l == 1).collect();
    let mut boot = GroupBootstrap::new(test_groups, seed)?;
    boot.replicates = BOOTSTRAP_REPLICATES;
    let at = |r: &ResultRow, idx: &[usize]| subset_metrics(&r.test_scores, &truth, r.threshold, idx).ok();
    for r in rows.iter_mut().filter(|r| r.test_scores.len() == truth.len()) {
        r.ci95 = Some(Intervals::of(&boot, &r.test_scores, &truth, r.threshold));
    }
    let reals: Vec<ResultRow> = rows.iter().filter(|r| r.train_data == TrainData::Real).cloned().collect();
    for r in rows.iter_mut().filter(|r| r.train_data != TrainData::Real && r.test_scores.len() == truth.len()) {
        let Some(real) = reals.iter().find(|x| x.model == r.model && x.test_scores.len() == truth.len()) else { continue };
        r.vs_real = Some(PairedDifference {
            accuracy: r.test.accuracy - real.test.accuracy,
            accuracy_ci: boot.interval(|idx| Some(at(r, idx)?.accuracy - at(real, idx)?.accuracy)),
            auroc: r.test.auroc.zip(real.test.auroc).map(|(a, b)| a - b),
            auroc_ci: boot.interval(|idx| Some(at(r, idx)?.auroc? - at(real, idx)?.auroc?)),
        });
    }
    Ok(())
}

fn pct_ci(ci: Option<Interval>) -> String {
    ci.map(|i| format!(" [{:.1}, {:.1}]", 100.0 * i.low, 100.0 * i.high)).unwrap_or_default()
}

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What every row was computed from: data, split, seed, preset, image side.
    pub fingerprint: Fingerprint,
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
    /// The real-data CNN's occlusion saliency scored the same way: does it look at the tumour?
    #[serde(default)]
    pub cnn_saliency: Option<LocalizationRow>,
    /// How well each anomaly model reconstructs the healthy validation slices.
    #[serde(default)]
    pub reconstruction: Vec<ReconstructionRow>,
    /// Seconds per stage (as measured when the stage ran).
    pub timings_s: BTreeMap<String, f64>,
}

/// One anomaly model's row of `report.json`'s `"reconstruction"` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReconstructionRow {
    /// The reconstruction model.
    pub model: crate::anomaly::AnomalyModel,
    /// What it was trained on.
    pub train_data: TrainData,
    /// The generator of its synthetic slices; `None` for real rows.
    pub generator: Option<GeneratorKind>,
    /// Mean PSNR (dB, peak 1) of its reconstructions of the healthy real validation slices.
    pub val_healthy_psnr_db: f64,
}

/// The study's accuracies (percent) for a model × train data, where it reported one.
pub fn study_accuracy(model: Classifier, train_data: TrainData) -> Option<f64> {
    use Classifier::*;
    use TrainData::*;
    match (model, train_data) {
        (Cnn, Real) => Some(96.67),
        (Cnn, Synthetic) => Some(58.16),
        (Cnn, Mixed) => Some(49.97),
        (VaeGiaem, Real) => Some(60.44),
        (VaeGiaem, Synthetic) => Some(80.08),
        (VaeGiaem, Mixed) => Some(81.24),
        (VaeGlobalKmeans, Real) => Some(82.93),
        (VaeGlobalKmeans, Synthetic) => Some(79.39),
        (VaeGlobalKmeans, Mixed) => Some(78.80),
        _ => None,
    }
}

fn series(history: &serde_json::Value, key: &str) -> Vec<(f64, f64)> {
    history.as_array().map(|a| a.iter().enumerate().filter_map(|(i, r)| r.get(key)?.as_f64().map(|v| (i as f64 + 1.0, v))).collect()).unwrap_or_default()
}

/// The classification table of `report.md` (Markdown): one row per model × train data ×
/// generator, with the study's accuracy beside ours.
pub fn classification_table(report: &Report) -> String {
    let mut md = String::new();
    md.push_str("Brackets: 95 % intervals from a bootstrap over the test split's near-duplicate groups; Δ vs real: paired difference to the same model trained on real data, on the same test slices.\n\n");
    md.push_str("| Model | Train data | Generator | Accuracy [95 % CI] | Precision | Recall | F1 | AUROC [95 % CI] | Δ accuracy vs real [95 % CI] | Study's accuracy |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.classification {
        let m = &r.test;
        let ci = r.ci95.as_ref();
        let auroc_ci = ci.and_then(|c| c.auroc).map(|i| format!(" [{:.3}, {:.3}]", i.low, i.high)).unwrap_or_default();
        let vs = r.vs_real.map(|d| format!("{:+.1}{}", 100.0 * d.accuracy, pct_ci(d.accuracy_ci))).unwrap_or_else(|| "—".into());
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} %{} | {:.1} % | {:.1} % | {:.1} % | {}{} | {} | {} |\n",
            r.model,
            r.train_data,
            r.generator.map(|g| g.name()).unwrap_or("—"),
            100.0 * m.accuracy,
            pct_ci(ci.and_then(|c| c.accuracy)),
            100.0 * m.precision,
            100.0 * m.recall,
            100.0 * m.f1,
            m.auroc_text(3),
            auroc_ci,
            vs,
            study_accuracy(r.model, r.train_data).map(|a| format!("{a:.2} %")).unwrap_or_else(|| "—".into())
        ));
    }
    md
}

/// Writes `report.json`, `report.md`, the loss curves and the ROC curves into `spec.out`.
///
/// # Errors
/// I/O and plotting errors.
pub fn write_report(
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
    let label = |r: &ResultRow| format!("{} {}{}", r.model, r.train_data, r.generator.map(|g| format!(" ({g})")).unwrap_or_default());
    let cnn: Vec<_> = report.classification.iter().filter(|r| r.model == Classifier::Cnn).map(|r| (label(r), roc_of(r))).collect();
    roc_plot(&fig.join("roc-cnn.svg"), "CNN on the real test split", &cnn)?;
    for td in TrainData::ALL {
        let v: Vec<_> = report.classification.iter().filter(|r| r.model != Classifier::Cnn && r.train_data == td).map(|r| (label(r), roc_of(r))).collect();
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
        "train {}/{}, val {}/{}, test {}/{} (tumour/healthy), {} near-duplicate groups kept within one part. Preset `{}`, seed {}, split {}. Data hash `{}`, split hash `{}`.\n\n",
        c["train"].yes,
        c["train"].no,
        c["val"].yes,
        c["val"].no,
        c["test"].yes,
        c["test"].no,
        report.dataset.groups,
        spec.preset,
        spec.seed,
        spec.split,
        &report.fingerprint.data_hash[..16],
        &report.fingerprint.split_hash[..16]
    ));
    if let Some(l) = &report.dataset.leak_check {
        md.push_str(&format!(
            "Leak check: {} of {} test slices have a near-duplicate in train (similarity ≥ {}; pairs in `leaks_test.csv`){}.\n\n",
            l.test_with_train_duplicate,
            l.test_slices,
            l.threshold,
            l.reference_test_with_train_group
                .map(|n| format!("; {n} share a group of the folder's `near_duplicate_groups.csv` with a train slice"))
                .unwrap_or_default()
        ));
    }
    md.push_str("Every model is selected, and every operating point chosen, on the **real validation** split; all metrics are on the **real test** split. Synthetic images never enter validation or test.\n\n");
    md.push_str(&classification_table(report));
    md.push_str("\nThe study's numbers come from an unseeded random split with near-duplicates across it, thresholds picked on the evaluation data (a separate best per metric) and, for mixed data, labels merged by folder order; its 49.97 % mixed CNN is chance level.\n\n");
    if !report.generation.is_empty() {
        md.push_str("## Synthetic data: fidelity, diversity, privacy\n\nFD and MMD² on the penultimate features of the CNN trained on real data: real **test** slices of the class against as many synthetic slices as the class has real **validation** slices; the floor compares the same test slices with those validation slices (two held-out halves, disjoint groups, equal sizes). FD (all) uses every synthetic slice. FD pixels: the same on 8×8 area-averaged thumbnails (gross appearance, which a tumour classifier's features ignore). FD texture: the same on texture features (Laplacian band energies, gradient and intensity histograms: noise, stripes and blur move it, layout does not). MS-SSIM: mean over random pairs within a set (higher = less diverse). Spread: per-pixel standard deviation across the set, averaged over pixels (a collapsed generator's falls towards 0). DCR: RMS pixel distance to the nearest real training image; memorised = closer than the 1st percentile of held-out (val + test) real slices. Real CNN class rate: the fraction of the synthetic slices that the real-data CNN puts in their generator's class (GAN-test, Shmelkov et al. 2018), beside the same fraction on the real test slices of the class: a generator that does not draw what tells the classes apart scores low here, however real its slices look. Precision / recall: improved precision and recall (k = 3 nearest neighbours, Kynkäänniemi et al. 2019) on the same CNN features and slices as FD — the fraction of synthetic slices that look like some real test slice, and the fraction of real test slices that some synthetic slice looks like (coverage) — beside the real validation slices' values against the same test slices.\n\n| Generator | Class | n | FD | FD floor | FD (all) | FD pixels | FD pixels floor | FD texture | FD texture floor | MMD² | MMD² floor | MS-SSIM | MS-SSIM real | Spread | Spread real | Memorised | DCR median | Held-out DCR median | Memorised (features) | Real CNN class rate | on real test | Precision / recall | real val |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for g in &report.generation {
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.4} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} % | {:.4} | {:.4} | {:.1} % | {:.1} % | {:.1} % | {:.2} / {:.2} | {:.2} / {:.2} |\n",
                g.generator,
                g.class,
                g.n,
                g.fd_cnn,
                g.fd_floor,
                g.fd_cnn_all,
                g.fd_pixels,
                g.fd_pixels_floor,
                g.fd_texture,
                g.fd_texture_floor,
                g.mmd,
                g.mmd_floor,
                g.ms_ssim,
                g.ms_ssim_real,
                g.spread,
                g.spread_real,
                100.0 * g.memorized_fraction,
                g.dcr_median,
                g.dcr_heldout_median,
                100.0 * g.memorized_fraction_features,
                100.0 * g.real_cnn_class_rate,
                100.0 * g.real_cnn_class_rate_real,
                g.precision,
                g.recall,
                g.precision_real,
                g.recall_real
            ));
        }
        md.push_str("\n### Generator signature\n\nClassifier two-sample tests (Lopez-Paz & Oquab 2017): the held-out balanced accuracy of a linear discriminant (shrunk Fisher, standardised features), 5-fold cross-validated (fewer folds for sets under 10 slices), at telling two sets apart — ½ when it finds nothing, 1 when every slice gives its set away (a lower bound: a CNN may find more). *Draws vs real*: a class's synthetic slices against the real held-out (validation + test) slices of the class, beside real training slices against the same held-out ones (the reference). *Classes*: the generator's tumour slices against its healthy ones on texture alone, beside the real training slices' — a synthetic pair of classes that texture separates far better than the real pair hands a CNN trained on it a shortcut that real slices do not have. *Largest texture gap*: the texture statistic on which the draws' mean lies furthest from the real training slices' of the class, in those slices' standard deviations (z), with both means.\n\n| Generator | Class | Draws vs real, texture | real train vs held-out | Draws vs real, 8×8 thumbnails | real train vs held-out | Classes apart, texture | real classes | Largest texture gap: statistic, z (draws; real) |\n|---|---|---|---|---|---|---|---|---|\n");
        for g in &report.generation {
            md.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
                g.generator,
                g.class,
                g.c2st_texture,
                g.c2st_texture_real,
                g.c2st_thumbs,
                g.c2st_thumbs_real,
                g.class_texture,
                g.class_texture_real,
                g.texture_gap.as_ref().map_or("—".to_string(), |t| format!("{}, {:+.1} ({:.3}; {:.3})", t.statistic, t.z, t.mean, t.reference_mean))
            ));
        }
        md.push_str("\nMost-copied pairs (synthetic | nearest training image, closest first): `figures/copies-<generator>-<class>.png`. Real test slices (first row) beside each generator's first samples (one row each, generators in the order vae, gan): `figures/compare-yes.png`, `figures/compare-no.png`.\n\n");
    }
    if !report.reconstruction.is_empty() {
        md.push_str("## Anomaly models' reconstructions\n\nMean PSNR (dB, peak 1) of each anomaly model's output for the healthy real validation slices: a model that cannot reproduce healthy anatomy (a blur) has an error map that is high everywhere, and a tumour cannot stand out of it. The DAE's output is its denoised input, so it is expected near a copy.\n\n| Model | Train data | Generator | Healthy val PSNR (dB) |\n|---|---|---|---|\n");
        for r in &report.reconstruction {
            let g = r.generator.map_or("—".to_string(), |g| g.to_string());
            md.push_str(&format!("| {} | {} | {g} | {:.2} |\n", r.model.name(), r.train_data, r.val_healthy_psnr_db));
        }
        md.push('\n');
    }
    if !report.localization.is_empty() {
        md.push_str("## Anomaly localisation\n\nError maps of each anomaly model (VAE; DAE: residual of the denoising autoencoder) against the tumour masks of the annotated test slices, head pixels pooled. Best Dice chooses its threshold on test (an upper bound); the last column uses the threshold best on the annotated validation slices. The `none` row scores the slice's own intensity (no model): the reference an error map has to beat.\n\n| Model | Train data | Generator | Slices | Pixel AUROC | Best Dice | Dice (val threshold) |\n|---|---|---|---|---|---|---|\n");
        for l in report.localization.iter().chain(&report.localization_baseline) {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} |\n",
                l.model.map(|m| m.name()).unwrap_or("intensity"),
                l.train_data.map(|t| t.name()).unwrap_or("none"),
                l.generator.map(|g| g.name()).unwrap_or("—"),
                l.n_images,
                l.pixel_auroc,
                l.dice,
                l.dice_val_threshold
            ));
        }
        if let Some(l) = &report.cnn_saliency {
            md.push_str(&format!(
                "| cnn occlusion saliency | real | — | {} | {:.3} | {:.3} | {:.3} |\n",
                l.n_images, l.pixel_auroc, l.dice, l.dice_val_threshold
            ));
        }
        md.push_str("\nOverlays (original | error map | mask green, errors above the val threshold red, both yellow): `figures/localization-<model>.png`; the CNN row is the drop of the real-data CNN's tumour probability when an 8-px window is blacked out (occlusion sensitivity, `figures/saliency-cnn-real.png`): does the classifier look at the tumour?\n\n");
    }
    md.push_str("## Figures\n\n");
    for g in &spec.generators {
        for (_, class) in CLASSES {
            md.push_str(&format!("- `synthetic/{}/{class}-grid.png`: {} samples, class {class}\n", g.name(), g.name()));
        }
    }
    md.push_str("- `figures/loss-cnn.svg`, `figures/loss-vae.svg`, `figures/loss-gan.svg`: loss curves\n- `figures/roc-cnn.svg`, `figures/roc-anomaly-*.svg`: ROC curves on real test\n- `figures/anomaly-*.png`: original | reconstruction | error map | decision, tumour rows first\n\n## Time (s)\n\nWall time of each stage. Independent trainings run side by side, each on its share of the cores (the two classes of a generator; the CNNs on synthetic and mixed sets; the anomaly VAEs and the DAE): their times overlap, and `total` is the job's.\n\n| stage | seconds |\n|---|---|\n");
    for (k, v) in &report.timings_s {
        md.push_str(&format!("| {k} | {v:.1} |\n"));
    }
    mri_preprocess::fsutil::write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

//! The real / synthetic / mixed study (docs/design.md "Data flow"), as library code so that an
//! integration test can run it: one group-aware split; per-class generators trained on
//! **train** only; the CNN trained on real, synthetic and mixed data, selected on **real
//! val**, scored on **real test**; the anomaly VAE trained on healthy real, synthetic and mixed
//! slices, every technique's operating point chosen on **real val**, scored on **real test**;
//! `report.json`, `report.md` and figures (written by [`crate::report`]).
//!
//! The output folder belongs to one run ([`crate::rundir`]): its `run.json`, every stage file
//! (`stages/<name>.json`) and every checkpoint record the run's fingerprint. A re-run with the
//! same inputs skips the stages already complete and resumes the trainings; a run with other
//! data, split, seed, preset or image size stops with an error naming the difference (or, with
//! `fresh`, starts over).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use mri_cluster::{DetectorFile, ErrorMapOptions};
use mri_cnn::{predict_proba, CnnConfig, TrainOptions};
use mri_dae::DaeConfig;
use mri_metrics::ThresholdCriterion;
use mri_preprocess::{Fold, SplitPart};
use mri_train::spectral::SpectralExchange;
use mri_train::{Checkpoint, ConfigOverride, Fingerprint, ImageSet, Preset, RunOptions};
use mri_vae::AnomalyVaeConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::anomaly::{evaluate_techniques, save_anomaly_figure, AnomalyEvaluation, AnomalyModel};
use crate::data::{DataSpec, PreparedData, SplitFractions};
use crate::eval::TestMetrics;
use crate::generators::{
    draw_synthetic, draw_synthetic_filtered, exchange_texture, synthetic_seed, train_generators, write_class_set, GanDLayout, GeneratorKind, GeneratorSpec,
    CLASSES, TEXTURE_EXCHANGE_CUTOFF,
};
use crate::quality::{class_texture, generation_row, intensity_baseline, localization_row, saliency_row, MaskedSet, RealClass, SyntheticClass};
use crate::report::{add_intervals, write_report, ReconstructionRow};
pub use crate::report::{study_accuracy, ClassCounts, Classifier, DatasetInfo, Report, ResultRow, TrainData};
use crate::rundir::{prepare_out, read_stage, StageFile};
use crate::shortcut::{geometry_baseline_of, has_file_geometry, GEOMETRY_FEATURES, K_CANDIDATES};
use crate::SynthError;

/// Which training sets an anomaly model (the anomaly VAE, the denoising autoencoder) is trained
/// on in the main job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalySets {
    /// None.
    Off,
    /// One, on the real healthy training slices (the DAE's default: the best anomaly detector
    /// on Br35H, inside the main job's anomaly budget).
    #[default]
    Real,
    /// One per training set: real, and synthetic and mixed for each generator (the anomaly
    /// VAE's default, the study's protocol; for the DAE, five trainings with both generators are
    /// over the anomaly budget on Br35H).
    All,
}

from_str_by_name!(AnomalySets, "anomaly training sets", { Off => "off", Real => "real", All => "all" });

/// Which of a generator's draws make its synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticFilter {
    /// Every draw, in order: the study's, and the default.
    #[default]
    Off,
    /// Only the draws that the CNN trained on the real training slices puts in their
    /// generator's class, in draw order, until the set is full
    /// ([`crate::generators::write_synthetic_filtered`]): a check the data holder can run
    /// before releasing synthetic slices (it removes slices, it changes none). It measures
    /// whether the draws that do not show their class are what holds a synthetic-only CNN back;
    /// the CNN trained on such a set has been shaped by a model of the real data, so its row
    /// is no longer "synthetic data alone" in the study's sense.
    RealCnn,
}

from_str_by_name!(SyntheticFilter, "synthetic filter", { Off => "off", RealCnn => "real-cnn" });

/// What is done to a generator's synthetic set once every class is drawn (and filtered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticTexture {
    /// The draws as the generator made them: the study's, and the default.
    #[default]
    Off,
    /// Every draw takes the energy of each high-frequency ring of its Fourier spectrum from a
    /// partner drawn from the whole set, whatever its class, keeping its own phase and
    /// amplitude pattern ([`crate::generators::exchange_texture`]): two per-class generators
    /// leave two texture signatures that tell the classes apart better than real texture does
    /// (docs/models.md, session 26), and a CNN trained on the set alone learns them. Uses no
    /// real slice, so the set stays "synthetic data alone".
    Rings,
    /// As `Rings`, but the partner's whole high-frequency amplitude spectrum: a stronger
    /// exchange that leaves an echo of the partner's structures (docs/models.md, session 28).
    Amplitudes,
}

from_str_by_name!(SyntheticTexture, "synthetic texture", { Off => "off", Rings => "rings", Amplitudes => "amplitudes" });

/// How long the CNNs on synthetic and mixed sets train, against the real-data CNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnnBudget {
    /// As many images shown as the real-data CNN sees ([`equal_budget_epochs`]): a mixed set,
    /// twice the real one, trains half the epochs. Every CNN then costs the same (the main job's
    /// CNN share stays at five real-size trainings), and "mixed vs real" compares data at equal
    /// compute rather than data plus twice the optimiser steps. The default.
    #[default]
    SameImages,
    /// The same number of epochs on every set, as in the study: a mixed CNN takes twice the
    /// real one's steps and time.
    SameEpochs,
}

from_str_by_name!(CnnBudget, "CNN budget", { SameImages => "same-images", SameEpochs => "same-epochs" });

/// What to run.
#[derive(Debug, Clone)]
pub struct ExperimentSpec {
    /// Data folder (Br35H layout); `None` = built-in phantoms.
    pub data: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Preset of every model.
    pub preset: Preset,
    /// Image side (overrides the presets').
    pub image_size: Option<usize>,
    /// Epochs of every model (overrides the presets' epochs and their step minimums: exactly
    /// this many).
    pub epochs: Option<usize>,
    /// Optimiser steps of each generator (overrides the presets' minimum).
    pub generator_steps: Option<usize>,
    /// Seed of everything.
    pub seed: u64,
    /// Train / val / test fractions.
    pub split: SplitFractions,
    /// One fold of a grouped cross-validation as the test split instead of the fractions'
    /// test share ([`crate::crossval::run_cross_validation`] runs every fold).
    pub fold: Option<Fold>,
    /// Generators to compare.
    pub generators: Vec<GeneratorKind>,
    /// Synthetic images per class (default: as many as real training images of that class).
    pub synthetic_per_class: Option<usize>,
    /// Draws per class for the CNN trained on a synthetic set alone, when more than
    /// `synthetic_per_class`: the generator is sampled this often, and the first
    /// `synthetic_per_class` draws of each class (the very draws a run without it makes) are the
    /// set every other stage uses — the mixed CNN, the anomaly VAEs, the generation metrics —
    /// so that only the synthetic-only row changes. A generator's draws are free: with more of
    /// them the CNN sees each draw fewer times within its image budget (docs/models.md,
    /// session 28).
    pub synthetic_only_per_class: Option<usize>,
    /// Synthetic slices per class in the mixed CNN's set, when fewer than the shared set holds:
    /// the first draws of each class, so that a smaller share is a prefix of the default one
    /// (250 a class against ~1000 lifted the Br35H mixed CNN by 4.4 points on average,
    /// docs/models.md, session 29). The mixed anomaly VAEs and the generation metrics keep the
    /// whole shared set.
    pub mixed_synthetic_per_class: Option<usize>,
    /// Skip unreadable images.
    pub skip_invalid: bool,
    /// Phantoms per class when `data` is `None`.
    pub phantoms_per_class: usize,
    /// Remove what an earlier run wrote into `out` and start over.
    pub fresh: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Which anomaly VAEs to train (rows `vae-*`): all of them by default; `Real` or `Off` for
    /// a generator study, whose anomaly VAEs on synthetic and mixed sets cost minutes a run.
    pub anomaly_vae: AnomalySets,
    /// Which denoising autoencoders (`mri-dae`) to train beside the anomaly VAEs, scored like
    /// them (rows `dae-*`, localisation rows `dae`).
    pub dae: AnomalySets,
    /// How long the CNNs on synthetic and mixed sets train.
    pub cnn_budget: CnnBudget,
    /// Changes to the preset's GAN discriminator (pooling, blur, widths).
    pub gan_d: GanDLayout,
    /// Changes to the configs, `path=value` ([`mri_train::ConfigOverride`]), applied after the
    /// other settings: the CNNs' (every training set's), the generative VAE's, the GAN's.
    pub cnn_overrides: Vec<ConfigOverride>,
    /// See `cnn_overrides`.
    pub vae_overrides: Vec<ConfigOverride>,
    /// See `cnn_overrides`.
    pub gan_overrides: Vec<ConfigOverride>,
    /// Further changes to the CNNs trained on a synthetic set alone, applied after
    /// `cnn_overrides` (e.g. stronger augmentation against a generator's own artefacts); the
    /// real and mixed CNNs are untouched, so their trainings stay comparable and reusable.
    pub synthetic_cnn_overrides: Vec<ConfigOverride>,
    /// Which draws make each synthetic set.
    pub synthetic_filter: SyntheticFilter,
    /// What is done to each synthetic set's texture once it is drawn.
    pub synthetic_texture: SyntheticTexture,
}

impl ExperimentSpec {
    /// Phantoms, this preset, both generators, output in `out`.
    pub fn phantoms(preset: Preset, out: &Path) -> Self {
        ExperimentSpec {
            data: None,
            out: out.to_path_buf(),
            preset,
            image_size: None,
            epochs: None,
            generator_steps: None,
            seed: 0,
            split: SplitFractions::default(),
            fold: None,
            generators: vec![GeneratorKind::Vae, GeneratorKind::Gan],
            synthetic_per_class: None,
            synthetic_only_per_class: None,
            mixed_synthetic_per_class: None,
            skip_invalid: false,
            phantoms_per_class: if preset == Preset::Quick { 40 } else { 200 },
            fresh: false,
            quiet: true,
            anomaly_vae: AnomalySets::All,
            dae: AnomalySets::Real,
            cnn_budget: CnnBudget::SameImages,
            gan_d: GanDLayout::default(),
            cnn_overrides: Vec::new(),
            vae_overrides: Vec::new(),
            gan_overrides: Vec::new(),
            synthetic_cnn_overrides: Vec::new(),
            synthetic_filter: SyntheticFilter::Off,
            synthetic_texture: SyntheticTexture::Off,
        }
    }
}

/// Every model config and run option that shapes a stage's result, as each stage file records
/// it (`settings`). A stored record is read back through this type before it is compared
/// ([`crate::rundir::read_stage`]), so a field a config gained since the folder was written
/// takes its default there instead of refusing the folder as another run's.
#[derive(Serialize, Deserialize)]
pub struct RunSettings {
    /// Every CNN's config (before the per-set epoch budget).
    pub cnn: CnnConfig,
    /// The anomaly VAE's config.
    pub anomaly_vae: AnomalyVaeConfig,
    /// The denoising autoencoder's config.
    pub dae: DaeConfig,
    /// `--epochs`.
    pub epochs: Option<usize>,
    /// `--generator-steps`.
    pub generator_steps: Option<usize>,
    /// `--synthetic-per-class`.
    pub synthetic_per_class: Option<usize>,
    /// `--synthetic-only-per-class` (absent in folders written before it existed: none).
    #[serde(default)]
    pub synthetic_only_per_class: Option<usize>,
    /// `--mixed-synthetic-per-class` (absent in folders written before it existed: none).
    #[serde(default)]
    pub mixed_synthetic_per_class: Option<usize>,
    /// `--cnn-budget`.
    pub cnn_budget: CnnBudget,
    /// `--vae-set`, as given.
    pub vae_set: Vec<String>,
    /// `--gan-set`, as given.
    pub gan_set: Vec<String>,
    /// `--synthetic-cnn-set`, as given (absent in folders written before it existed).
    #[serde(default)]
    pub synthetic_cnn_set: Vec<String>,
    /// `--synthetic-filter` (absent in folders written before it existed: off).
    #[serde(default)]
    pub synthetic_filter: SyntheticFilter,
    /// `--synthetic-texture` (absent in folders written before it existed: off).
    #[serde(default)]
    pub synthetic_texture: SyntheticTexture,
}

struct Runner<'a> {
    spec: &'a ExperimentSpec,
    fingerprint: Fingerprint,
    /// Every model config and run option that shapes a stage's result (stored in each stage
    /// file; a stage written with others is refused, never reused).
    settings: serde_json::Value,
    timings: BTreeMap<String, f64>,
}

/// One training stage of [`Runner::stages`]: run with the training options of its name.
type StageJob<'a, T> = Box<dyn FnOnce(RunOptions) -> Result<T, SynthError> + Send + 'a>;

impl Runner<'_> {
    /// Runs `f` unless `stages/<name>.json` holds its result for this run's fingerprint;
    /// records the time.
    fn stage<T: Serialize + DeserializeOwned>(&mut self, name: &str, f: impl FnOnce() -> Result<T, SynthError>) -> Result<T, SynthError> {
        if let Some(value) = self.cached(name)? {
            return Ok(value);
        }
        let t0 = Instant::now();
        let value = f()?;
        self.record(name, &value, t0.elapsed().as_secs_f64())?;
        Ok(value)
    }

    /// [`Runner::stage`] for independent trainings, those not yet done side by side
    /// ([`mri_train::concurrently`]), each job given the training options of its stage's name;
    /// each one's time is its own wall time, so the stages' times add up to more than the time
    /// they took together.
    fn stages<'a, T: Serialize + DeserializeOwned + Send + 'a>(&mut self, jobs: Vec<(String, StageJob<'a, T>)>) -> Result<Vec<T>, SynthError> {
        let mut done: Vec<Option<T>> = Vec::new();
        // The stages still to run: (slot in `done`, name) beside their timed jobs.
        let (mut pending, mut timed) = (Vec::new(), Vec::new());
        for (i, (name, job)) in jobs.into_iter().enumerate() {
            done.push(self.cached(&name)?);
            if done[i].is_none() {
                println!("stage {name}:");
                let opts = self.run_options(&name, 0);
                pending.push((i, name));
                timed.push(Box::new(move || {
                    let t0 = Instant::now();
                    let value = job(opts);
                    (value, t0.elapsed().as_secs_f64())
                }) as mri_train::Job<'a, (Result<T, SynthError>, f64)>);
            }
        }
        for ((i, name), (value, seconds)) in pending.into_iter().zip(mri_train::concurrently(timed)) {
            let value = value?;
            self.record(&name, &value, seconds)?;
            done[i] = Some(value);
        }
        Ok(done.into_iter().map(|v| v.expect("cached or run")).collect())
    }

    /// The result in `stages/<name>.json` if it was computed for this run's fingerprint and
    /// settings (its time recorded as this run's).
    fn cached<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, SynthError> {
        Ok(read_stage::<T, RunSettings>(&self.stage_file(name), &self.fingerprint, &self.settings)?.map(|st| {
            println!("stage {name}: complete from an earlier run ({:.1} s then)", st.seconds);
            self.timings.insert(name.into(), st.seconds);
            st.value
        }))
    }

    /// Writes `stages/<name>.json` and records the stage's time.
    fn record<T: Serialize>(&mut self, name: &str, value: &T, seconds: f64) -> Result<(), SynthError> {
        let text =
            serde_json::to_string(&StageFile { fingerprint: self.fingerprint.clone(), settings: self.settings.clone(), seconds, value }).expect("serialises");
        mri_preprocess::fsutil::write_atomic(&self.stage_file(name), text.as_bytes())?;
        self.timings.insert(name.into(), seconds);
        Ok(())
    }

    /// `stages/<name>.json` of this run.
    fn stage_file(&self, name: &str) -> std::path::PathBuf {
        self.spec.out.join("stages").join(format!("{name}.json"))
    }

    /// Training options of a model called `name` in this run.
    fn run_options(&self, name: &str, figure_every: usize) -> RunOptions {
        RunOptions {
            seed: self.spec.seed,
            quiet: self.spec.quiet,
            checkpoint_dir: Some(self.spec.out.join("checkpoints")),
            name: name.into(),
            preset: Some(self.spec.preset),
            fingerprint: Some(self.fingerprint.clone()),
            stop_after: None,
            figures_dir: Some(self.spec.out.join("figures")),
            figure_every,
        }
    }
}

/// The shortcut check's row: k nearest neighbours on the original files' geometry, trained on
/// the training split, k chosen on validation. Phantoms have no file geometry: no row.
fn geometry_row(runner: &mut Runner, prepared: &PreparedData, rows: &mut Vec<ResultRow>) -> Result<(), SynthError> {
    if !has_file_geometry(prepared) {
        println!("stage geometry-baseline: skipped (no original files: phantoms)");
        return Ok(());
    }
    println!("stage geometry-baseline:");
    let st = runner.stage("geometry-baseline", || {
        let r = geometry_baseline_of(prepared)?.expect("checked above");
        println!("  geometry baseline (k = {}): test {}", r.k, r.test);
        Ok(r)
    })?;
    rows.push(ResultRow {
        model: Classifier::GeometryBaseline,
        train_data: TrainData::Real,
        generator: None,
        test: st.test,
        threshold: 0.5,
        ci95: None,
        vs_real: None,
        operating_point: serde_json::json!({
            "threshold": 0.5,
            "rule": "tumour when at least half of the k nearest training files by geometry are tumour",
            "k": st.k,
            "k_tried": K_CANDIDATES,
            "val_auroc": st.val_auroc,
            "selected_on": "real val AUROC",
            "features": GEOMETRY_FEATURES,
        }),
        test_scores: st.test_scores,
    });
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct CnnStage {
    test: TestMetrics,
    scores: Vec<f64>,
    best_epoch: usize,
    history: serde_json::Value,
}

fn cnn_stage(cfg: &CnnConfig, opts: &TrainOptions, train: &ImageSet, val: &ImageSet, test: &ImageSet, device: &Device) -> Result<CnnStage, SynthError> {
    let out = mri_cnn::train(cfg, train, val, device, opts)?;
    let probs = predict_proba(&out.model, test, 64, device)?;
    let scores: Vec<f64> = probs.iter().map(|&p| f64::from(p)).collect();
    let test_m = TestMetrics::from_scores_f64(&scores, &test.labels, 0.5)?;
    println!("  {}: best val epoch {} — test {test_m}", opts.name, out.best_epoch);
    Ok(CnnStage { test: test_m, scores, best_epoch: out.best_epoch, history: serde_json::to_value(&out.history).expect("serialises") })
}

/// How one anomaly stage trains its model.
enum AnomalyTrainer {
    Vae(AnomalyVaeConfig),
    Dae(DaeConfig),
}

#[derive(Serialize, Deserialize)]
struct AnomalyRow {
    model: Classifier,
    test: TestMetrics,
    detector: DetectorFile,
    scores: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct AnomalyStage {
    rows: Vec<AnomalyRow>,
    /// Mean PSNR of the model's reconstructions of healthy validation slices (`None` for the
    /// intensity baseline, which reconstructs nothing, and in stage files from before it).
    #[serde(default)]
    val_healthy_psnr_db: Option<f64>,
}

/// Saves each technique's figure and detector file and keeps its test scores.
fn anomaly_rows(name: &str, ev: AnomalyEvaluation, map_opts: ErrorMapOptions, test: &ImageSet, out: &Path) -> Result<AnomalyStage, SynthError> {
    let (recon, maps) = (&ev.test_recon, &ev.test_maps);
    if let Some(p) = ev.val_healthy_psnr_db {
        println!("  {name}: healthy validation slices reconstructed at {p:.2} dB PSNR");
    }
    let mut rows = Vec::new();
    for r in ev.results {
        save_anomaly_figure(&out.join("figures").join(format!("{name}-{}.png", r.model)), test, recon, maps, &r.detector, 3)?;
        let file = DetectorFile { error_maps: map_opts, detector: r.detector };
        file.write(&out.join("detectors").join(format!("{name}-{}.json", r.model)))?;
        println!("  {name} {}: test {}", r.model, r.test);
        let scores = file.detector.score(maps);
        rows.push(AnomalyRow { model: r.model, test: r.test, detector: file, scores });
    }
    Ok(AnomalyStage { rows, val_healthy_psnr_db: ev.val_healthy_psnr_db })
}

fn anomaly_stage(
    cfg: &AnomalyVaeConfig,
    opts: &RunOptions,
    healthy: &ImageSet,
    val: &ImageSet,
    test: &ImageSet,
    out: &Path,
    device: &Device,
) -> Result<AnomalyStage, SynthError> {
    // Model selection on healthy *real* validation slices.
    let model = mri_vae::train_vae(cfg, healthy, &val.of_class(0), device, opts)?.model;
    let map_opts = ErrorMapOptions::default();
    let ev = evaluate_techniques(&model, val, test, &map_opts, ThresholdCriterion::BalancedAccuracy, device)?;
    anomaly_rows(&opts.name, ev, map_opts, test, out)
}

fn dae_stage(
    cfg: &DaeConfig,
    opts: &RunOptions,
    healthy: &ImageSet,
    val: &ImageSet,
    test: &ImageSet,
    out: &Path,
    device: &Device,
) -> Result<AnomalyStage, SynthError> {
    // Model selection on healthy *real* validation slices, as for the anomaly VAE.
    let model = mri_dae::train_dae(cfg, healthy, &val.of_class(0), device, opts)?.model;
    let map_opts = crate::anomaly::DAE_MAPS;
    let ev = crate::anomaly::evaluate_dae(&model, val, test, &map_opts, ThresholdCriterion::BalancedAccuracy, device)?;
    anomaly_rows(&opts.name, ev, map_opts, test, out)
}

/// Epochs on `n_set` images that show a model about as many images as `epochs` epochs on
/// `n_real` (rounded, at least 1): how the main job keeps every anomaly model's training, and by
/// default every CNN's ([`CnnBudget::SameImages`]), at the real-data model's cost.
pub fn equal_budget_epochs(epochs: usize, n_real: usize, n_set: usize) -> usize {
    ((epochs * n_real) as f64 / n_set.max(1) as f64).round().max(1.0) as usize
}

/// Runs the whole study and writes `report.json`, `report.md` and the figures into `spec.out`.
///
/// It runs on a worker of rayon's pool ([`mri_train::in_pool`]): the CPU kernels' parallel
/// loops are then work-stealing joins rather than a sleep and wake per tensor op.
pub fn run_experiment(spec: &ExperimentSpec, device: &Device) -> Result<Report, SynthError> {
    mri_train::in_pool(|| run_study(spec, device))
}

fn run_study(spec: &ExperimentSpec, device: &Device) -> Result<Report, SynthError> {
    let t_all = Instant::now();
    let mut cnn_cfg = CnnConfig::preset(spec.preset, spec.image_size);
    let side = cnn_cfg.image_size;
    let mut anomaly_cfg = AnomalyVaeConfig::preset(spec.preset, Some(side));
    let mut dae_cfg = DaeConfig::preset(spec.preset, Some(side));
    if let Some(e) = spec.epochs {
        // Exactly `e` epochs: the presets' step minimums (for small sets) no longer apply.
        (cnn_cfg.epochs, anomaly_cfg.epochs, dae_cfg.epochs) = (e, e, e);
        (cnn_cfg.min_steps, anomaly_cfg.min_steps, dae_cfg.min_steps) = (0, 0, 0);
    }
    let cnn_cfg = mri_train::apply_overrides(&cnn_cfg, &spec.cnn_overrides)?;
    let synthetic_cnn_cfg = mri_train::apply_overrides(&cnn_cfg, &spec.synthetic_cnn_overrides)?;
    if spec.synthetic_per_class == Some(0) || spec.synthetic_only_per_class == Some(0) || spec.mixed_synthetic_per_class == Some(0) {
        return Err(SynthError::Invalid("--synthetic-per-class, --synthetic-only-per-class and --mixed-synthetic-per-class must be at least 1".into()));
    }

    // Data and split (always recomputed from the cache: fast), then the output folder is bound
    // to this run's fingerprint before anything is reused or written.
    let t0 = Instant::now();
    let prepared = PreparedData::load(&DataSpec {
        data: spec.data.clone(),
        image_size: side as u32,
        seed: spec.seed,
        skip_invalid: spec.skip_invalid,
        phantoms_per_class: spec.phantoms_per_class,
        split: spec.split,
        fold: spec.fold,
        verbose: !spec.quiet,
    })?;
    let fingerprint = prepared.fingerprint(Some(spec.preset));
    prepare_out(&spec.out, &fingerprint, spec.fresh)?;
    prepared.split.write(&spec.out.join("split.json"))?;
    // Generator configs are checked by their checkpoints, which every run loads before a stage.
    let settings = serde_json::to_value(RunSettings {
        cnn: cnn_cfg.clone(),
        anomaly_vae: anomaly_cfg.clone(),
        dae: dae_cfg.clone(),
        epochs: spec.epochs,
        generator_steps: spec.generator_steps,
        synthetic_per_class: spec.synthetic_per_class,
        synthetic_only_per_class: spec.synthetic_only_per_class,
        mixed_synthetic_per_class: spec.mixed_synthetic_per_class,
        cnn_budget: spec.cnn_budget,
        vae_set: spec.vae_overrides.iter().map(|o| o.to_string()).collect(),
        gan_set: spec.gan_overrides.iter().map(|o| o.to_string()).collect(),
        synthetic_cnn_set: spec.synthetic_cnn_overrides.iter().map(|o| o.to_string()).collect(),
        synthetic_filter: spec.synthetic_filter,
        synthetic_texture: spec.synthetic_texture,
    })
    .expect("serialises");
    crate::rundir::check_stages::<RunSettings>(&spec.out.join("stages"), &fingerprint, &settings)?;
    let mut runner = Runner { spec, fingerprint, settings, timings: BTreeMap::new() };
    let (train, val, test) = (prepared.image_set(SplitPart::Train), prepared.image_set(SplitPart::Val), prepared.image_set(SplitPart::Test));
    // Test slices with a near-duplicate in train, by our detector and by the folder's shipped
    // grouping: 0 unless the split leaks.
    let leaks = match prepared.leak_check()? {
        Some((summary, pairs)) => {
            pairs.write_csv(&spec.out.join("leaks_test.csv"))?;
            Some(summary)
        }
        None => None,
    };
    runner.timings.insert("data".into(), t0.elapsed().as_secs_f64());
    let counts = |s: &ImageSet| ClassCounts { yes: s.of_class(1).len(), no: s.of_class(0).len() };
    let dataset = DatasetInfo {
        source: prepared.dataset.source.describe(),
        image_size: side,
        counts: [("train", counts(&train)), ("val", counts(&val)), ("test", counts(&test))].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        groups: prepared.groups.iter().collect::<std::collections::BTreeSet<_>>().len(),
        leak_check: leaks,
    };
    println!(
        "stage data: {} — train {}/{}, val {}/{}, test {}/{} (yes/no); {}",
        dataset.source,
        dataset.counts["train"].yes,
        dataset.counts["train"].no,
        dataset.counts["val"].yes,
        dataset.counts["val"].no,
        dataset.counts["test"].yes,
        dataset.counts["test"].no,
        match leaks {
            Some(l) => format!(
                "{} test slices with a near-duplicate in train{}",
                l.test_with_train_duplicate,
                l.reference_test_with_train_group.map(|n| format!(" ({n} by the shipped grouping)")).unwrap_or_default()
            ),
            None => "no leak check (phantoms are independent draws)".into(),
        }
    );

    // The CNN on real slices first: the other stages read its features, and a synthetic
    // filter its verdicts.
    println!("stage cnn-real:");
    let opts = runner.run_options("cnn-real", 0);
    let st_real = runner.stage("cnn-real", || cnn_stage(&cnn_cfg, &opts, &train, &val, &test, device))?;
    let ckpt_dir = spec.out.join("checkpoints");
    let (_, cnn_real) = mri_cnn::load_cnn(&Checkpoint::at(&ckpt_dir, "cnn-real"), device)?;

    // Generators per class, trained on train only, and their synthetic sets.
    let mut synthetic: BTreeMap<GeneratorKind, ImageSet> = BTreeMap::new();
    // Larger sets for the synthetic-only CNNs (`synthetic_only_per_class`), by generator.
    let mut synthetic_only: BTreeMap<GeneratorKind, ImageSet> = BTreeMap::new();
    let mut gen_histories: Vec<(String, serde_json::Value)> = Vec::new();
    for &kind in &spec.generators {
        let gspec = GeneratorSpec {
            kind,
            preset: spec.preset,
            image_size: side,
            epochs: spec.epochs,
            steps: spec.generator_steps,
            gan_d: spec.gan_d.clone(),
            overrides: match kind {
                GeneratorKind::Vae => spec.vae_overrides.clone(),
                GeneratorKind::Gan => spec.gan_overrides.clone(),
            },
            seed: spec.seed,
            out: spec.out.clone(),
            figure_every: 5,
            quiet: spec.quiet,
            fingerprint: Some(runner.fingerprint.clone()),
        };
        let t0 = Instant::now();
        let trained = train_generators(&gspec, &train, &val, device)?;
        let t_train = t0.elapsed().as_secs_f64();
        let mut set = ImageSet::new(side);
        let dir = spec.out.join("synthetic").join(kind.name());
        // Draws per class of the set every stage uses; the synthetic-only CNN may take more.
        let mut per_class = Vec::new();
        for ((class, gen, report), (label, _)) in trained.iter().zip(CLASSES) {
            let n_shared = spec.synthetic_per_class.unwrap_or_else(|| train.of_class(label).len());
            per_class.push((label, n_shared));
            let n = n_shared.max(spec.synthetic_only_per_class.unwrap_or(0));
            // Synthetic labels come from the generator's class, never from folder order.
            let seed = synthetic_seed(spec.seed, label);
            // Drawn here, written once the set is final (after a texture exchange, if any).
            let drawn = match spec.synthetic_filter {
                SyntheticFilter::Off => draw_synthetic(gen, class, label, n, seed, device)?,
                SyntheticFilter::RealCnn => {
                    let keep = |b: &ImageSet| -> Result<Vec<bool>, SynthError> {
                        Ok(mri_cnn::predict_proba(&cnn_real, b, 64, device)?.iter().map(|&p| crate::quality::in_class(p, label)).collect())
                    };
                    let (kept, draws) = draw_synthetic_filtered(gen, class, label, n, seed, device, &keep)?;
                    println!("  {kind} {class}: kept {n} of {draws} draws, those the real-data CNN puts in the class");
                    kept
                }
            };
            set = set.concat(&drawn)?;
            gen_histories.push((format!("{}-{class}", kind.name()), report.history.clone()));
        }
        let exchange = match spec.synthetic_texture {
            SyntheticTexture::Off => None,
            SyntheticTexture::Rings => Some(SpectralExchange::RingEnergies),
            SyntheticTexture::Amplitudes => Some(SpectralExchange::Amplitudes),
        };
        if let Some(what) = exchange {
            // One partner stream per generator and seed; the files on disk are the set the
            // CNNs train on. With `synthetic_only_per_class` the partners come from all the
            // draws, so the shared first draws are exchanged with partners a smaller run lacks.
            set = exchange_texture(&set, what, synthetic_seed(spec.seed, 0x7E47) ^ kind as u64)?;
            println!("  {kind}: {what:?} above {TEXTURE_EXCHANGE_CUTOFF} cycles per side exchanged across the classes");
        }
        for (label, class) in CLASSES {
            write_class_set(&set.of_class(label), class, &dir, device)?;
        }
        runner.timings.insert(format!("generator-{}", kind.name()), t_train);
        println!("stage generator-{}: {} synthetic slices in {} ({:.1} s)", kind.name(), set.len(), dir.display(), t0.elapsed().as_secs_f64());
        // The shared set: the first draws of each class (the synthetic-only set when no more
        // were asked for).
        let shared = first_of_each_class(&set, &per_class)?;
        if shared.len() < set.len() {
            println!("  {kind}: the CNN on synthetic slices alone takes all {}; every other stage the first {}", set.len(), shared.len());
            synthetic_only.insert(kind, set);
        }
        synthetic.insert(kind, shared);
    }

    // Real | each generator, per class: eight slices a row, real test slices first.
    for (label, class) in CLASSES {
        let real = test.of_class(label);
        let mut tiles: Vec<&[f32]> = (0..real.len().min(8)).map(|i| real.image(i)).collect();
        let per_row = tiles.len();
        let syn_sets: Vec<ImageSet> = synthetic.values().map(|s| s.of_class(label)).collect();
        for set in &syn_sets {
            tiles.extend((0..set.len().min(per_row)).map(|i| set.image(i)));
        }
        if per_row > 0 {
            let dir = spec.out.join("figures");
            std::fs::create_dir_all(&dir).map_err(|e| SynthError::Io { path: dir.clone(), source: e })?;
            mri_preprocess::save_grid(&spec.out.join("figures").join(format!("compare-{class}.png")), &tiles, side, per_row)?;
        }
    }

    let mut rows: Vec<ResultRow> = Vec::new();
    let mut cnn_histories: Vec<(String, serde_json::Value)> = Vec::new();
    let mut push_cnn = |rows: &mut Vec<ResultRow>, st: CnnStage, epochs: usize, train_data: TrainData, generator: Option<GeneratorKind>, name: &str| {
        cnn_histories.push((name.to_string(), st.history.clone()));
        rows.push(ResultRow {
            model: Classifier::Cnn,
            train_data,
            generator,
            test: st.test,
            threshold: 0.5,
            ci95: None,
            vs_real: None,
            operating_point: serde_json::json!({"threshold": 0.5, "rule": "tumour when softmax probability >= 0.5", "epochs": epochs, "selected_epoch": st.best_epoch, "selected_on": "real val loss"}),
            test_scores: st.scores,
        });
    };
    push_cnn(&mut rows, st_real, cnn_cfg.epochs_for(train.len()), TrainData::Real, None, "cnn-real");
    geometry_row(&mut runner, &prepared, &mut rows)?;
    // The CNNs on synthetic and mixed sets are independent of each other: side by side.
    let mut cnn_jobs = Vec::new();
    for (&g, syn) in &synthetic {
        let syn_only = synthetic_only.get(&g).unwrap_or(syn);
        let syn_mixed = match spec.mixed_synthetic_per_class {
            None => None,
            Some(k) => {
                for (label, class) in CLASSES {
                    let n = syn.of_class(label).len();
                    if k > n {
                        return Err(SynthError::Invalid(format!(
                            "--mixed-synthetic-per-class {k} exceeds the {n} synthetic {class} slices of the {g} set (raise --synthetic-per-class)"
                        )));
                    }
                }
                Some(first_of_each_class(syn, &CLASSES.map(|(label, _)| (label, k)))?)
            }
        };
        for (what, set) in [(TrainData::Synthetic, syn_only.clone()), (TrainData::Mixed, train.concat(syn_mixed.as_ref().unwrap_or(syn))?)] {
            let name = format!("cnn-{what}-{g}");
            let base = if what == TrainData::Synthetic { &synthetic_cnn_cfg } else { &cnn_cfg };
            let cfg = match spec.cnn_budget {
                CnnBudget::SameImages => CnnConfig { epochs: equal_budget_epochs(base.epochs, train.len(), set.len()), ..base.clone() },
                CnnBudget::SameEpochs => base.clone(),
            };
            cnn_jobs.push((name, cfg, set, what, g));
        }
    }
    let stage_jobs: Vec<(String, StageJob<'_, CnnStage>)> = cnn_jobs
        .iter()
        .map(|(name, cfg, set, _, _)| {
            let (val, test) = (&val, &test);
            let job: StageJob<'_, CnnStage> = Box::new(move |opts| cnn_stage(cfg, &opts, set, val, test, device));
            (name.clone(), job)
        })
        .collect();
    for ((name, cfg, set, what, g), st) in cnn_jobs.iter().zip(runner.stages(stage_jobs)?) {
        push_cnn(&mut rows, st, cfg.epochs_for(set.len()), *what, Some(*g), name);
    }

    // Fidelity, diversity and privacy of each synthetic set, on features of the real-data CNN.
    let mut generation = Vec::new();
    for (&g, syn) in &synthetic {
        let name = format!("generation-{g}");
        println!("stage {name}:");
        let rows_g = runner.stage(&name, || {
            let mut out = Vec::new();
            for (label, class) in CLASSES {
                let (tr, va, te) = (train.of_class(label), val.of_class(label), test.of_class(label));
                let held = va.concat(&te)?;
                let row = generation_row(
                    &cnn_real,
                    &SyntheticClass { generator: g, class, label, images: &syn.of_class(label) },
                    &RealClass { train: &tr, val: &va, heldout: &held, test: &te },
                    spec.seed,
                    &spec.out.join("figures"),
                    device,
                )?;
                println!(
                    "  {g} {class}: FD {:.2} (floor {:.2}), MMD² {:.4}, MS-SSIM {:.3} (real {:.3}), spread {:.3} (real {:.3}), memorised {:.1} %, DCR median {:.4} (held-out {:.4}), real CNN class rate {:.1} % (real test {:.1} %), precision / recall {:.2} / {:.2} (real val {:.2} / {:.2})",
                    row.fd_cnn,
                    row.fd_floor,
                    row.mmd,
                    row.ms_ssim,
                    row.ms_ssim_real,
                    row.spread,
                    row.spread_real,
                    100.0 * row.memorized_fraction,
                    row.dcr_median,
                    row.dcr_heldout_median,
                    100.0 * row.real_cnn_class_rate,
                    100.0 * row.real_cnn_class_rate_real,
                    row.precision,
                    row.recall,
                    row.precision_real,
                    row.recall_real
                );
                out.push(row);
            }
            let (yes, no) = (CLASSES[0].0, CLASSES[1].0);
            let (sep, sep_real) = class_texture(&syn.of_class(yes), &syn.of_class(no), &train.of_class(yes), &train.of_class(no))?;
            println!(
                "  {g} signature: texture tells its draws from real held-out slices at {} (real train: {}), its classes apart at {:.2} (real: {:.2}); thumbnails {}",
                out.iter().map(|r| format!("{:.2}", r.c2st_texture)).collect::<Vec<_>>().join(" / "),
                out.iter().map(|r| format!("{:.2}", r.c2st_texture_real)).collect::<Vec<_>>().join(" / "),
                sep,
                sep_real,
                out.iter().map(|r| format!("{:.2} (real {:.2})", r.c2st_thumbs, r.c2st_thumbs_real)).collect::<Vec<_>>().join(" / "),
            );
            for row in &mut out {
                (row.class_texture, row.class_texture_real) = (sep, sep_real);
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
    // Does the real-data CNN look at the tumour? Its occlusion map against the same masks.
    let cnn_saliency = match &masked {
        Some((mv, mt)) => Some(runner.stage("saliency-cnn-real", || {
            let row = saliency_row(&cnn_real, mv, mt, &spec.out.join("figures").join("saliency-cnn-real.png"), device)?;
            println!(
                "  cnn-real occlusion saliency: pixel AUROC {:.3}, best Dice {:.3}, Dice at the val threshold {:.3} ({} slices)",
                row.pixel_auroc, row.dice, row.dice_val_threshold, row.n_images
            );
            Ok(row)
        })?),
        None => None,
    };
    let mut localization = Vec::new();
    let mut localize = |runner: &mut Runner, name: &str, train_data: TrainData, generator: Option<GeneratorKind>| -> Result<(), SynthError> {
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

    let mut reconstruction = Vec::new();
    // `model`: the reconstruction model, `None` for the intensity baseline (no reconstruction).
    let mut push_anomaly =
        |rows: &mut Vec<ResultRow>, st: AnomalyStage, model: Option<AnomalyModel>, train_data: TrainData, generator: Option<GeneratorKind>| {
            if let (Some(model), Some(p)) = (model, st.val_healthy_psnr_db) {
                reconstruction.push(ReconstructionRow { model, train_data, generator, val_healthy_psnr_db: p });
            }
            for r in st.rows {
                rows.push(ResultRow {
                    model: r.model,
                    train_data,
                    generator,
                    test: r.test,
                    threshold: r.detector.detector.operating_point().map(|op| op.threshold).unwrap_or(0.5),
                    ci95: None,
                    vs_real: None,
                    operating_point: serde_json::to_value(&r.detector).expect("serialises"),
                    test_scores: r.scores,
                });
            }
        };
    println!("stage anomaly-intensity-baseline:");
    let st = runner.stage("anomaly-intensity-baseline", || {
        let (r, maps) = crate::anomaly::intensity_baseline(&val, &test, ThresholdCriterion::BalancedAccuracy)?;
        let black = ImageSet { pixels: vec![0.0; test.pixels.len()], ..test.clone() };
        save_anomaly_figure(&spec.out.join("figures").join("anomaly-intensity-baseline.png"), &test, &black, &maps, &r.detector, 3)?;
        let file = DetectorFile { error_maps: crate::anomaly::INTENSITY_MAPS, detector: r.detector };
        file.write(&spec.out.join("detectors").join("intensity-baseline.json"))?;
        println!("  intensity baseline: test {}", r.test);
        let scores = file.detector.score(&maps);
        Ok(AnomalyStage { rows: vec![AnomalyRow { model: r.model, test: r.test, detector: file, scores }], val_healthy_psnr_db: None })
    })?;
    push_anomaly(&mut rows, st, None, TrainData::Real, None);
    // Every anomaly model sees as many training images as the real-data one (a mixed set's model
    // trains for fewer epochs): the anomaly budget of the main job holds whatever the data, and
    // the comparison is at equal compute.
    let n_real_healthy = train.of_class(0).len();
    // The healthy training sets `which` names: real, then each generator's synthetic and mixed.
    let healthy_sets = |which: AnomalySets| -> Result<Vec<(TrainData, Option<GeneratorKind>, ImageSet)>, SynthError> {
        let mut sets = Vec::new();
        if which != AnomalySets::Off {
            sets.push((TrainData::Real, None, train.of_class(0)));
        }
        if which == AnomalySets::All {
            for (&g, syn) in &synthetic {
                sets.push((TrainData::Synthetic, Some(g), syn.of_class(0)));
                sets.push((TrainData::Mixed, Some(g), train.of_class(0).concat(&syn.of_class(0))?));
            }
        }
        Ok(sets)
    };
    let job_name = |model: &str, what: TrainData, g: Option<GeneratorKind>| match g {
        None => format!("anomaly-{model}-real"),
        Some(g) => format!("anomaly-{model}-{what}-{g}"),
    };
    let mut anomaly_jobs = Vec::new();
    for (what, g, set) in healthy_sets(spec.anomaly_vae)? {
        let cfg = AnomalyVaeConfig { epochs: equal_budget_epochs(anomaly_cfg.epochs, n_real_healthy, set.len()), ..anomaly_cfg.clone() };
        anomaly_jobs.push((job_name("vae", what, g), AnomalyTrainer::Vae(cfg), set, what, g));
    }
    for (what, g, set) in healthy_sets(spec.dae)? {
        let cfg = DaeConfig { epochs: equal_budget_epochs(dae_cfg.epochs, n_real_healthy, set.len()), ..dae_cfg.clone() };
        anomaly_jobs.push((job_name("dae", what, g), AnomalyTrainer::Dae(cfg), set, what, g));
    }
    // The anomaly models are independent of each other: the anomaly VAEs side by side, then the
    // DAEs side by side (a DAE beside the short VAEs left one core idle for most of its time:
    // the phantom job's DAE took 136 s on one core of a lane against 79 s on both).
    let is_dae = |i: &usize| matches!(anomaly_jobs[*i].1, AnomalyTrainer::Dae(_));
    let batches: [Vec<usize>; 2] = [(0..anomaly_jobs.len()).filter(|i| !is_dae(i)).collect(), (0..anomaly_jobs.len()).filter(is_dae).collect()];
    let mut trained: Vec<Option<AnomalyStage>> = (0..anomaly_jobs.len()).map(|_| None).collect();
    for batch in &batches {
        let stage_jobs: Vec<(String, StageJob<'_, AnomalyStage>)> = batch
            .iter()
            .map(|&i| {
                let (name, trainer, set, _, _) = &anomaly_jobs[i];
                let (val, test, out) = (&val, &test, &spec.out);
                let job: StageJob<'_, AnomalyStage> = Box::new(move |opts| match trainer {
                    AnomalyTrainer::Vae(cfg) => anomaly_stage(cfg, &opts, set, val, test, out, device),
                    AnomalyTrainer::Dae(cfg) => dae_stage(cfg, &opts, set, val, test, out, device),
                });
                (name.clone(), job)
            })
            .collect();
        for (&i, st) in batch.iter().zip(runner.stages(stage_jobs)?) {
            trained[i] = Some(st);
        }
    }
    // The DAEs' localisation rows, after the VAEs' (`localize` holds `localization` until then).
    let mut dae_localization = Vec::new();
    for ((name, trainer, _, what, g), st) in anomaly_jobs.iter().zip(trained) {
        let st = st.expect("every anomaly stage ran");
        match trainer {
            AnomalyTrainer::Vae(_) => {
                push_anomaly(&mut rows, st, Some(AnomalyModel::Vae), *what, *g);
                localize(&mut runner, name, *what, *g)?;
            }
            AnomalyTrainer::Dae(_) => {
                push_anomaly(&mut rows, st, Some(AnomalyModel::Dae), *what, *g);
                if let Some((mv, mt)) = &masked {
                    let stage = format!("localization-{name}");
                    let row = runner.stage(&stage, || {
                        let (_, model, _) = mri_dae::load_dae(&Checkpoint::at(&ckpt_dir, name), device)?;
                        let row = crate::quality::localization_row_dae(
                            &model,
                            *what,
                            *g,
                            mv,
                            mt,
                            &spec.out.join("figures").join(format!("localization-{name}.png")),
                            device,
                        )?;
                        println!(
                            "  {stage}: pixel AUROC {:.3}, best Dice {:.3}, Dice at the val threshold {:.3} ({} slices)",
                            row.pixel_auroc, row.dice, row.dice_val_threshold, row.n_images
                        );
                        Ok(row)
                    })?;
                    dae_localization.push(row);
                }
            }
        }
    }
    localization.extend(dae_localization);

    // Intervals over the test split's near-duplicate groups; paired differences to real.
    add_intervals(&mut rows, &test.labels, &prepared.part_of(&prepared.groups, SplitPart::Test), spec.seed)?;
    runner.timings.insert("total".into(), t_all.elapsed().as_secs_f64());
    let report = Report {
        fingerprint: runner.fingerprint.clone(),
        dataset,
        classification: rows,
        generation,
        localization,
        localization_baseline,
        cnn_saliency,
        reconstruction,
        timings_s: runner.timings,
    };
    write_report(spec, &report, &test.labels, &gen_histories, &cnn_histories)?;
    Ok(report)
}

/// The first `k` images of each `(label, k)` class of `set`, class after class in that order:
/// the shared synthetic set of every stage, and the mixed CNN's smaller share of it.
fn first_of_each_class(set: &ImageSet, per_class: &[(u32, usize)]) -> Result<ImageSet, SynthError> {
    let mut out = ImageSet::new(set.side);
    for &(label, k) in per_class {
        out = out.concat(&first_images(&set.of_class(label), k))?;
    }
    Ok(out)
}

/// The first `k` images of `set` (all of them when it has fewer), with their labels.
fn first_images(set: &ImageSet, k: usize) -> ImageSet {
    let k = k.min(set.len());
    let px = set.side * set.side;
    ImageSet { side: set.side, pixels: set.pixels[..k * px].to_vec(), labels: set.labels[..k].to_vec() }
}

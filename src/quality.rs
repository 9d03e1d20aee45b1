//! What a synthetic set is worth beyond classification accuracy: fidelity (Fréchet distance
//! and MMD on features of the CNN trained on real data), diversity (pairwise MS-SSIM),
//! privacy (distance to the closest training image, memorisation rate, a figure of the
//! most-copied pairs), and how well an anomaly VAE's error maps outline tumours (pixel AUROC,
//! Dice against annotated masks, overlay figures).
//!
//! ## Choices
//! - **Features**: the penultimate activations of the CNN trained on real data ([`cnn_features`]).
//!   Inception weights cannot be downloaded here, and MONAI's `FIDMetric` likewise takes any
//!   extractor; values are therefore not comparable with published FIDs, only across rows.
//! - **Fidelity reference**: `fd_cnn` compares the real **test** slices of a class with as
//!   many synthetic slices of that class as there are real **validation** slices of it;
//!   `fd_floor` compares the same test slices with those validation slices — two halves of the
//!   real held-out data (no near-duplicate group crosses them) of the same sizes, so both carry
//!   the same small-sample bias, and neither half was seen by the feature extractor's training
//!   (the real **train** slices were: on Br35H at 64 px their features sit apart from held-out
//!   ones — FD test–train 10.35 against test–val 4.81 for healthy slices, 5.22 against 3.44 for
//!   tumour slices — so a train-based floor is not one). A generator as good as new real data
//!   scores ≈ `fd_floor`. `fd_cnn_all` uses every synthetic slice.
//! - **A task network sees only its task**: the CNN's features encode what separates tumour
//!   from healthy, so any image without tumour-like structure looks "healthy" to it (on Br35H
//!   the GAN's noisy healthy samples score FD 3.79 against a floor of 4.81). `fd_pixels`, the
//!   same distance on 8×8 area-averaged thumbnails (64 values of gross appearance: head shape,
//!   contrast, layout), is reported beside it as a check that does not share this blind spot.
//! - **Privacy**: distances in pixel space are RMS per pixel (Euclidean / √pixels, intensities
//!   in [0, 1]); the held-out reference is real val + test of the class; a synthetic image is
//!   memorised when it is closer to a training image than the held-out 1st percentile.
//! - **Localisation**: pixels inside the head only (the error maps' region), pooled over the
//!   annotated test tumour slices. `dice` is the best Dice over thresholds (an upper bound, as
//!   ⌈Dice⌉ in Baur et al.); `dice_val_threshold` applies the threshold that is best on the
//!   annotated validation slices instead, which is what a user would get.

use std::path::Path;

use candle_core::Device;
use image::{Rgb, RgbImage};
use mri_cluster::{ErrorMapOptions, ErrorMaps};
use mri_cnn::Cnn;
use mri_metrics::generative::{frechet_distance, mmd_unbiased, precision_recall, PrecisionRecall};
use mri_metrics::pixel_spread;
use mri_metrics::privacy::{memorisation, MemorisationParams};
use mri_metrics::segmentation::{best_dice, dice_at};
use mri_metrics::ssim::{mean_pairwise_ms_ssim, SsimParams};
use mri_metrics::texture::{largest_texture_gap, texture_feature_rows, TextureGap, TEXTURE_DIM};
use mri_metrics::two_sample::{classifier_two_sample, TwoSampleParams};
use mri_preprocess::phantom::area_downsample;
use mri_train::ImageSet;
use mri_vae::VaeModel;
use serde::{Deserialize, Serialize};

use crate::anomaly::error_maps;
use crate::generators::GeneratorKind;
use crate::report::TrainData;
use crate::SynthError;

/// Random pairs behind each mean pairwise MS-SSIM.
pub const MS_SSIM_PAIRS: usize = 500;

/// Features of every image of `set` from the CNN's penultimate layer (eval mode), row-major
/// `len × dim`; returns `(features, dim)`.
///
/// # Errors
/// Tensor errors.
pub fn cnn_features(cnn: &Cnn, set: &ImageSet, batch_size: usize, device: &Device) -> Result<(Vec<f32>, usize), SynthError> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::new();
    let mut dim = 0;
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = set.batch(chunk, None, device)?;
        let f = cnn.features(&x, false)?;
        dim = f.dim(1)?;
        out.extend(f.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((out, dim))
}

fn nan() -> f64 {
    f64::NAN
}

/// Texture features of every image of a set (rows of [`TEXTURE_DIM`]).
fn texture(set: &ImageSet) -> Vec<f32> {
    texture_feature_rows(&set.pixels, set.side)
}

/// Neighbours of the k-NN manifolds behind `precision` and `recall` (the paper's choice).
const PR_NEIGHBOURS: usize = 3;

/// Side of the thumbnails behind `fd_pixels`.
const THUMB: usize = 8;

/// Every image area-averaged to `THUMB × THUMB`, row-major `len × THUMB²`.
fn thumbs(set: &ImageSet) -> Vec<f32> {
    (0..set.len()).flat_map(|i| area_downsample(set.image(i), set.side, THUMB)).collect()
}

/// One generator × class row of `report.json`'s `"generation"` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenerationRow {
    /// The generator.
    pub generator: GeneratorKind,
    /// `yes` or `no`.
    pub class: String,
    /// Synthetic images compared.
    pub n: usize,
    /// Fréchet distance on CNN features, real test vs the first `n_ref` synthetic images.
    pub fd_cnn: f64,
    /// Fréchet distance, real test vs real validation (the floor; `n_ref` images).
    pub fd_floor: f64,
    /// Fréchet distance, real test vs all `n` synthetic images.
    pub fd_cnn_all: f64,
    /// Fréchet distance on 8×8 area-averaged thumbnails, real test vs the first `n_ref` synthetic images.
    pub fd_pixels: f64,
    /// `fd_pixels`' floor: real test vs real validation thumbnails.
    pub fd_pixels_floor: f64,
    /// Fréchet distance on texture features ([`mri_metrics::texture`]: Laplacian band energies,
    /// gradient and intensity histograms), real test vs the first `n_ref` synthetic images: the
    /// realism-sensitive space (noise, stripes and blur move it; layout does not). Missing in
    /// reports written before it existed: NaN.
    #[serde(default = "nan")]
    pub fd_texture: f64,
    /// `fd_texture`'s floor: real test vs real validation.
    #[serde(default = "nan")]
    pub fd_texture_floor: f64,
    /// Images on the second side of `fd_cnn`, `fd_floor`, `mmd` and `mmd_floor`.
    pub n_ref: usize,
    /// Unbiased MMD², real test vs the first `n_ref` synthetic images; Gaussian kernel, median-heuristic bandwidth.
    pub mmd: f64,
    /// Unbiased MMD², real test vs real validation (the floor of `mmd`).
    pub mmd_floor: f64,
    /// Mean pairwise MS-SSIM within the synthetic set (higher = less diverse).
    pub ms_ssim: f64,
    /// Mean pairwise MS-SSIM within the real training images of the class.
    pub ms_ssim_real: f64,
    /// Per-pixel standard deviation across the synthetic set, averaged over pixels
    /// ([`mri_metrics::pixel_spread`]; a collapsed generator's falls towards 0). Missing in
    /// reports written before it existed: NaN.
    #[serde(default = "nan")]
    pub spread: f64,
    /// The same over the real training images of the class.
    #[serde(default = "nan")]
    pub spread_real: f64,
    /// Fraction of synthetic images closer (pixels) to a training image than the held-out 1st percentile.
    pub memorized_fraction: f64,
    /// Median distance (RMS per pixel) from a synthetic image to its nearest training image.
    pub dcr_median: f64,
    /// Median distance (RMS per pixel) from a held-out real image to its nearest training image.
    pub dcr_heldout_median: f64,
    /// The held-out 1st percentile (RMS per pixel) that defines memorisation.
    pub dcr_threshold: f64,
    /// As `memorized_fraction`, in CNN-feature space.
    pub memorized_fraction_features: f64,
    /// Median synthetic-to-train distance in CNN-feature space.
    pub dcr_features_median: f64,
    /// Median held-out-to-train distance in CNN-feature space.
    pub dcr_features_heldout_median: f64,
    /// Fraction of the synthetic slices that the CNN trained on real data puts in the
    /// generator's class ("GAN-test", Shmelkov et al. 2018): low when the generator does not
    /// draw what tells the classes apart (NaN in reports written before it existed).
    #[serde(default = "nan")]
    pub real_cnn_class_rate: f64,
    /// The same on the real test slices of the class (the CNN's recall there): the reference.
    #[serde(default = "nan")]
    pub real_cnn_class_rate_real: f64,
    /// Improved precision (k = 3, Kynkäänniemi et al. 2019) of the synthetic slices against the
    /// real test slices on the real-data CNN's features (the same `n_ref` slices as `fd_cnn`):
    /// the fraction that look like some real slice.
    #[serde(default = "nan")]
    pub precision: f64,
    /// Improved recall on the same features: the fraction of real test slices that some
    /// synthetic slice looks like (coverage; a classifier trained on the synthetic set alone
    /// has seen nothing of the rest).
    #[serde(default = "nan")]
    pub recall: f64,
    /// `precision` of the real validation slices against the test slices: the floor's twin.
    #[serde(default = "nan")]
    pub precision_real: f64,
    /// `recall` of the real validation slices against the test slices.
    #[serde(default = "nan")]
    pub recall_real: f64,
    /// Classifier two-sample test on texture features ([`mri_metrics::two_sample`]: held-out
    /// balanced accuracy of a linear discriminant) of the synthetic slices against the real
    /// held-out (validation + test) slices of the class: ½ when texture does
    /// not give a draw away, 1 when every draw carries the generator's mark.
    #[serde(default = "nan")]
    pub c2st_texture: f64,
    /// The same test of real training slices against the held-out ones: the reference (≈ ½).
    #[serde(default = "nan")]
    pub c2st_texture_real: f64,
    /// As `c2st_texture` on the 8×8 thumbnails (brightness, contrast, head size and layout).
    #[serde(default = "nan")]
    pub c2st_thumbs: f64,
    /// As `c2st_texture_real` on the 8×8 thumbnails.
    #[serde(default = "nan")]
    pub c2st_thumbs_real: f64,
    /// The two-sample test of the generator's tumour slices against its healthy ones on
    /// texture features (the same value in both class rows): how well texture alone tells the
    /// synthetic classes apart — a shortcut for a CNN trained on them when it is well above
    /// `class_texture_real`.
    #[serde(default = "nan")]
    pub class_texture: f64,
    /// The same for the real training slices: how much texture tells real tumour slices from
    /// healthy ones.
    #[serde(default = "nan")]
    pub class_texture_real: f64,
    /// The texture statistic on which the class's synthetic slices lie furthest from its real
    /// training slices, in the real slices' standard deviations
    /// ([`mri_metrics::texture::largest_texture_gap`]): what gives the draws away most plainly
    /// (the generator's texture-matching loss pulls at these same statistics). Absent in
    /// reports written before it existed.
    #[serde(default)]
    pub texture_gap: Option<TextureGap>,
}

/// The synthetic slices of one class and where they came from.
pub struct SyntheticClass<'a> {
    /// The generator.
    pub generator: GeneratorKind,
    /// `yes` or `no`.
    pub class: &'a str,
    /// The class's label (1 tumour, 0 healthy).
    pub label: u32,
    /// The slices.
    pub images: &'a ImageSet,
}

/// The real slices of one class, by split part.
pub struct RealClass<'a> {
    /// Training slices of the class.
    pub train: &'a ImageSet,
    /// Validation slices of the class.
    pub val: &'a ImageSet,
    /// Validation + test slices of the class (never seen by a generator).
    pub heldout: &'a ImageSet,
    /// Test slices of the class.
    pub test: &'a ImageSet,
}

/// Fidelity, diversity and privacy of one synthetic class against the real slices of that
/// class; writes `copies-<generator>-<class>.png` (the 8 synthetic images nearest a training
/// image, each beside it) into `fig_dir`.
///
/// # Errors
/// Sets too small for a statistic (fewer than 2 images), tensor and file errors.
pub fn generation_row(cnn: &Cnn, syn: &SyntheticClass, real: &RealClass, seed: u64, fig_dir: &Path, device: &Device) -> Result<GenerationRow, SynthError> {
    let (generator, class, synthetic) = (syn.generator, syn.class, syn.images);
    let side = synthetic.side;
    let px = side * side;
    let (f_syn, dim) = cnn_features(cnn, synthetic, 64, device)?;
    let (f_test, _) = cnn_features(cnn, real.test, 64, device)?;
    let (f_train, _) = cnn_features(cnn, real.train, 64, device)?;
    let (f_held, _) = cnn_features(cnn, real.heldout, 64, device)?;
    let (f_val, _) = cnn_features(cnn, real.val, 64, device)?;
    // Synthetic images are i.i.d. draws, so the first n_ref are a fair subsample.
    let n_ref = real.val.len().min(synthetic.len());
    let f_syn_ref = &f_syn[..n_ref * dim];
    let ssim = SsimParams::default();
    let mem_p = MemorisationParams::default();
    let pixels = memorisation(&synthetic.pixels, &real.heldout.pixels, &real.train.pixels, px, &mem_p)?;
    let feats = memorisation(&f_syn, &f_held, &f_train, dim, &mem_p)?;
    let rms = 1.0 / (px as f64).sqrt();
    // The most-copied pairs: synthetic | nearest training image, closest first.
    let mut order: Vec<usize> = (0..synthetic.len()).collect();
    order.sort_by(|&a, &b| pixels.synthetic[a].distance.total_cmp(&pixels.synthetic[b].distance));
    let mut tiles: Vec<&[f32]> = Vec::new();
    for &i in order.iter().take(8) {
        tiles.push(synthetic.image(i));
        tiles.push(real.train.image(pixels.synthetic[i].index));
    }
    std::fs::create_dir_all(fig_dir).map_err(|e| SynthError::Io { path: fig_dir.to_path_buf(), source: e })?;
    mri_preprocess::save_grid(&fig_dir.join(format!("copies-{generator}-{class}.png")), &tiles, side, 4)?;
    // Both need more rows than neighbours: tiny test fixtures get NaN rather than an error.
    let pr_or_nan = |real: &[f32], syn: &[f32]| -> Result<PrecisionRecall, SynthError> {
        if real.len() / dim > PR_NEIGHBOURS && syn.len() / dim > PR_NEIGHBOURS {
            Ok(precision_recall(real, syn, dim, PR_NEIGHBOURS)?)
        } else {
            Ok(PrecisionRecall { precision: f64::NAN, recall: f64::NAN, k: PR_NEIGHBOURS })
        }
    };
    let pr = pr_or_nan(&f_test, f_syn_ref)?;
    let pr_real = pr_or_nan(&f_test, &f_val)?;
    // Texture and thumbnail rows of each set, computed once.
    let [tex_syn, tex_test, tex_val, tex_train, tex_held] = [synthetic, real.test, real.val, real.train, real.heldout].map(texture);
    let [th_syn, th_test, th_val, th_train, th_held] = [synthetic, real.test, real.val, real.train, real.heldout].map(thumbs);
    let class_rate = |set: &ImageSet| -> Result<f64, SynthError> { Ok(class_rate(&mri_cnn::predict_proba(cnn, set, 64, device)?, syn.label)) };
    Ok(GenerationRow {
        generator,
        class: class.into(),
        n: synthetic.len(),
        fd_cnn: frechet_distance(&f_test, f_syn_ref, dim)?,
        fd_floor: frechet_distance(&f_test, &f_val, dim)?,
        fd_cnn_all: frechet_distance(&f_test, &f_syn, dim)?,
        fd_pixels: frechet_distance(&th_test, &th_syn[..n_ref * THUMB * THUMB], THUMB * THUMB)?,
        fd_pixels_floor: frechet_distance(&th_test, &th_val, THUMB * THUMB)?,
        fd_texture: frechet_distance(&tex_test, &tex_syn[..n_ref * TEXTURE_DIM], TEXTURE_DIM)?,
        fd_texture_floor: frechet_distance(&tex_test, &tex_val, TEXTURE_DIM)?,
        n_ref,
        mmd: mmd_unbiased(&f_test, f_syn_ref, dim)?.mmd2,
        mmd_floor: mmd_unbiased(&f_test, &f_val, dim)?.mmd2,
        ms_ssim: mean_pairwise_ms_ssim(&synthetic.pixels, side, MS_SSIM_PAIRS, seed, &ssim)?.0,
        ms_ssim_real: mean_pairwise_ms_ssim(&real.train.pixels, side, MS_SSIM_PAIRS, seed, &ssim)?.0,
        spread: pixel_spread(&synthetic.pixels, px)?,
        spread_real: pixel_spread(&real.train.pixels, px)?,
        memorized_fraction: pixels.memorised_fraction,
        dcr_median: pixels.synthetic_median * rms,
        dcr_heldout_median: pixels.heldout_median * rms,
        dcr_threshold: pixels.threshold * rms,
        memorized_fraction_features: feats.memorised_fraction,
        dcr_features_median: feats.synthetic_median,
        dcr_features_heldout_median: feats.heldout_median,
        real_cnn_class_rate: class_rate(synthetic)?,
        real_cnn_class_rate_real: class_rate(real.test)?,
        precision: pr.precision,
        recall: pr.recall,
        precision_real: pr_real.precision,
        recall_real: pr_real.recall,
        c2st_texture: signature(&tex_syn, &tex_held, TEXTURE_DIM)?,
        c2st_texture_real: signature(&tex_train, &tex_held, TEXTURE_DIM)?,
        c2st_thumbs: signature(&th_syn, &th_held, THUMB * THUMB)?,
        c2st_thumbs_real: signature(&th_train, &th_held, THUMB * THUMB)?,
        // Set by `class_texture` once both classes' rows exist.
        class_texture: f64::NAN,
        class_texture_real: f64::NAN,
        texture_gap: largest_texture_gap(&tex_syn, &tex_train),
    })
}

/// The two-sample test ([`classifier_two_sample`]) of `a` against `b`, every row of both (the
/// balanced accuracy and the discriminant's midpoint rule do not depend on the sizes): 5 folds,
/// fewer when a set has under 10 rows (tiny test fixtures); NaN under 4 rows.
fn signature(a: &[f32], b: &[f32], dim: usize) -> Result<f64, SynthError> {
    let smaller = (a.len() / dim).min(b.len() / dim);
    let p = TwoSampleParams::default();
    let folds = p.folds.min(smaller / 2);
    if folds < 2 {
        return Ok(f64::NAN);
    }
    Ok(classifier_two_sample(a, b, dim, &TwoSampleParams { folds, ..p })?.accuracy)
}

/// Texture's class separation ([`GenerationRow::class_texture`]) of one generator's tumour and
/// healthy slices, and of the real training slices of both classes: `(synthetic, real)`.
///
/// # Errors
/// Numerical failures of the discriminant.
pub fn class_texture(syn_yes: &ImageSet, syn_no: &ImageSet, real_yes: &ImageSet, real_no: &ImageSet) -> Result<(f64, f64), SynthError> {
    Ok((signature(&texture(syn_yes), &texture(syn_no), TEXTURE_DIM)?, signature(&texture(real_yes), &texture(real_no), TEXTURE_DIM)?))
}

/// Whether a tumour probability is on `label`'s side of ½ (label 1: ≥ ½, label 0: < ½): the
/// main job's operating rule for its CNNs.
pub fn in_class(tumour_proba: f32, label: u32) -> bool {
    (tumour_proba >= 0.5) == (label == 1)
}

/// Fraction of tumour probabilities [`in_class`] `label`; NaN for no images.
pub fn class_rate(tumour_proba: &[f32], label: u32) -> f64 {
    if tumour_proba.is_empty() {
        return f64::NAN;
    }
    let hits = tumour_proba.iter().filter(|&&p| in_class(p, label)).count();
    hits as f64 / tumour_proba.len() as f64
}

/// One anomaly VAE's row of `report.json`'s `"localization"` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalizationRow {
    /// The reconstruction model; `None` for [`intensity_baseline`] (reports written before the
    /// DAE existed hold only VAE rows and read back as `vae`).
    #[serde(default = "vae_model")]
    pub model: Option<crate::anomaly::AnomalyModel>,
    /// What the anomaly model was trained on; `None` (JSON `null`) for [`intensity_baseline`].
    pub train_data: Option<TrainData>,
    /// The generator of its synthetic slices; `None` for real rows and the baseline.
    pub generator: Option<GeneratorKind>,
    /// Annotated test tumour slices scored.
    pub n_images: usize,
    /// AUROC of error-map pixels against the masks (head pixels of those slices, pooled).
    pub pixel_auroc: f64,
    /// Best Dice over thresholds on the test pixels (an upper bound).
    pub dice: f64,
    /// The threshold (normalised error) giving `dice`.
    pub dice_threshold: f32,
    /// Dice on test at the threshold that is best on the annotated validation slices.
    pub dice_val_threshold: f64,
}

/// Localisation needs annotated tumour slices on both sides (threshold from val, score on test).
fn check_masked(val: &MaskedSet, test: &MaskedSet) -> Result<(), SynthError> {
    if test.images.is_empty() || val.images.is_empty() {
        return Err(SynthError::Invalid("localisation needs annotated tumour slices in both validation and test".into()));
    }
    Ok(())
}

fn vae_model() -> Option<crate::anomaly::AnomalyModel> {
    Some(crate::anomaly::AnomalyModel::Vae)
}

/// A set of tumour slices with their masks (`side²` each, row-major).
#[derive(Debug, Clone)]
pub struct MaskedSet {
    /// The slices.
    pub images: ImageSet,
    /// Their masks, concatenated.
    pub masks: Vec<bool>,
}

impl MaskedSet {
    /// The slices of `set` that have a mask (`masks` aligned with `set`).
    pub fn select(set: &ImageSet, masks: &[Option<Vec<bool>>]) -> Self {
        let mut images = ImageSet::new(set.side);
        let mut flat = Vec::new();
        for (i, m) in masks.iter().enumerate() {
            if let Some(m) = m {
                images.push(set.image(i), set.labels[i]).expect("same side");
                flat.extend_from_slice(m);
            }
        }
        MaskedSet { images, masks: flat }
    }
}

/// Head-region pixels' (errors, truth) pooled over all maps.
fn region_pixels(maps: &ErrorMaps, masks: &[bool]) -> (Vec<f32>, Vec<bool>) {
    let (mut e, mut t) = (Vec::new(), Vec::new());
    for i in 0..maps.len() {
        let px = maps.side * maps.side;
        for ((&err, &inside), &tumour) in maps.map(i).iter().zip(maps.region(i)).zip(&masks[i * px..(i + 1) * px]) {
            if inside {
                e.push(err);
                t.push(tumour);
            }
        }
    }
    (e, t)
}

/// Pixel AUROC and Dice of a VAE's error maps against the masks; writes an overlay figure
/// (`figure`: per row original | error map | overlay with the mask in green and the pixels
/// above the validation threshold in red, overlap yellow).
///
/// # Errors
/// Empty sets, tensor and file errors.
pub fn localization_row<M: VaeModel>(
    model: &M,
    train_data: TrainData,
    generator: Option<GeneratorKind>,
    val: &MaskedSet,
    test: &MaskedSet,
    figure: &Path,
    device: &Device,
) -> Result<LocalizationRow, SynthError> {
    check_masked(val, test)?;
    let opts = ErrorMapOptions::default();
    let (_, val_maps) = error_maps(model, &val.images, &opts, device)?;
    let (_, test_maps) = error_maps(model, &test.images, &opts, device)?;
    score_maps(&val_maps, &test_maps, Some((crate::anomaly::AnomalyModel::Vae, train_data)), generator, val, test, figure)
}

/// As [`localization_row`] for a denoising autoencoder: its residual maps (as
/// [`crate::anomaly::DAE_MAPS`] but over the whole head, the pixels the intensity baseline is
/// scored on) against the annotated tumour pixels.
///
/// # Errors
/// As [`localization_row`].
pub fn localization_row_dae(
    model: &mri_dae::DenoisingAe,
    train_data: TrainData,
    generator: Option<GeneratorKind>,
    val: &MaskedSet,
    test: &MaskedSet,
    figure: &Path,
    device: &Device,
) -> Result<LocalizationRow, SynthError> {
    check_masked(val, test)?;
    let maps = |set: &ImageSet| -> Result<ErrorMaps, SynthError> {
        let recon = mri_dae::denoise_set(model, set, 64, device)?;
        let opts = ErrorMapOptions { erode_px: 0, ..crate::anomaly::DAE_MAPS };
        Ok(ErrorMaps::from_reconstructions(&set.pixels, &recon.pixels, set.side, &opts)?)
    };
    score_maps(&maps(&val.images)?, &maps(&test.images)?, Some((crate::anomaly::AnomalyModel::Dae, train_data)), generator, val, test, figure)
}

/// The model-free reference: the slice's own intensity as the "error map" (same head region and
/// per-slice normalisation). Many Br35H tumours are the brightest tissue of their slice, so an
/// anomaly VAE's maps are worth something only where they beat this.
///
/// # Errors
/// As [`localization_row`].
pub fn intensity_baseline(val: &MaskedSet, test: &MaskedSet, figure: &Path) -> Result<LocalizationRow, SynthError> {
    check_masked(val, test)?;
    score_maps(&head_intensity_maps(&val.images)?, &head_intensity_maps(&test.images)?, None, None, val, test, figure)
}

/// The slice's own intensity as a map over the head region, normalised per slice (default
/// [`ErrorMapOptions`]): the localisation baseline's maps, and the region every other map
/// scored against it ([`saliency_row`]) is read in.
fn head_intensity_maps(set: &ImageSet) -> Result<ErrorMaps, SynthError> {
    Ok(ErrorMaps::from_reconstructions(&set.pixels, &vec![0.0; set.pixels.len()], set.side, &ErrorMapOptions::default())?)
}

/// Occlusion sensitivity (Zeiler & Fergus 2014): for each `patch`×`patch` window (stride
/// `patch / 2`, the last window flush with the edge) the slice is scored again with the window
/// set to 0 (the background); a pixel's value is the mean drop of the score over the windows
/// that cover it. `score` maps a set of slices to one score each (e.g. the CNN's tumour
/// probability); slice `i`'s map is `[i·S², (i+1)·S²)` of the result.
///
/// # Errors
/// `patch` of 0 or above the side; the scorer's errors.
pub fn occlusion_maps(set: &ImageSet, patch: usize, score: impl Fn(&ImageSet) -> Result<Vec<f32>, SynthError>) -> Result<Vec<f32>, SynthError> {
    let s = set.side;
    if patch == 0 || patch > s {
        return Err(SynthError::Invalid(format!("occlusion patch must be in 1..={s}, got {patch}")));
    }
    let stride = (patch / 2).max(1);
    let mut starts: Vec<usize> = (0..=s - patch).step_by(stride).collect();
    if starts.last() != Some(&(s - patch)) {
        starts.push(s - patch);
    }
    let windows: Vec<(usize, usize)> = starts.iter().flat_map(|&y| starts.iter().map(move |&x| (y, x))).collect();
    let mut out = Vec::with_capacity(set.len() * s * s);
    for i in 0..set.len() {
        let img = set.image(i);
        let mut batch = ImageSet::new(s);
        batch.push(img, 0)?;
        for &(y0, x0) in &windows {
            let mut occluded = img.to_vec();
            for row in occluded[y0 * s..(y0 + patch) * s].chunks_mut(s) {
                row[x0..x0 + patch].fill(0.0);
            }
            batch.push(&occluded, 0)?;
        }
        let scores = score(&batch)?;
        let (mut sum, mut count) = (vec![0f32; s * s], vec![0u32; s * s]);
        for (&(y0, x0), &sc) in windows.iter().zip(&scores[1..]) {
            for y in y0..y0 + patch {
                for x in x0..x0 + patch {
                    sum[y * s + x] += scores[0] - sc;
                    count[y * s + x] += 1;
                }
            }
        }
        out.extend(sum.iter().zip(&count).map(|(&v, &c)| v / c as f32));
    }
    Ok(out)
}

/// Does the CNN look at the tumour? Occlusion maps of `cnn`'s tumour probability (8-px windows
/// at 64 px, scaled with the side; without test-time flips) scored like an anomaly model's error
/// maps against the annotated tumour masks (same head region and per-slice normalisation as
/// [`intensity_baseline`], the row to read it against). The row's `model` is `None` and its
/// `train_data` is real.
///
/// # Errors
/// As [`localization_row`].
pub fn saliency_row(cnn: &Cnn, val: &MaskedSet, test: &MaskedSet, figure: &Path, device: &Device) -> Result<LocalizationRow, SynthError> {
    check_masked(val, test)?;
    let model = cnn.with_test_time_flip(false);
    let maps = |set: &ImageSet| -> Result<ErrorMaps, SynthError> {
        let patch = (set.side / 8).max(1);
        let occ = occlusion_maps(set, patch, |b| Ok(mri_cnn::predict_proba(&model, b, 128, device)?))?;
        let mut m = ErrorMaps::from_raw(set.side, occ, Some(head_intensity_maps(set)?.region))?;
        m.normalise();
        Ok(m)
    };
    let row = score_maps(&maps(&val.images)?, &maps(&test.images)?, None, None, val, test, figure)?;
    Ok(LocalizationRow { train_data: Some(TrainData::Real), ..row })
}

fn score_maps(
    val_maps: &ErrorMaps,
    test_maps: &ErrorMaps,
    model: Option<(crate::anomaly::AnomalyModel, TrainData)>,
    generator: Option<GeneratorKind>,
    val: &MaskedSet,
    test: &MaskedSet,
    figure: &Path,
) -> Result<LocalizationRow, SynthError> {
    let (ve, vt) = region_pixels(val_maps, &val.masks);
    let (te, tt) = region_pixels(test_maps, &test.masks);
    let val_best = best_dice(&ve, &vt)?;
    let test_best = best_dice(&te, &tt)?;
    let te64: Vec<f64> = te.iter().map(|&v| f64::from(v)).collect();
    save_overlays(figure, &test.images, test_maps, &test.masks, val_best.threshold, 6)?;
    Ok(LocalizationRow {
        model: model.map(|m| m.0),
        train_data: model.map(|m| m.1),
        generator,
        n_images: test.images.len(),
        pixel_auroc: mri_metrics::auroc(&te64, &tt)?,
        dice: test_best.dice,
        dice_threshold: test_best.threshold,
        dice_val_threshold: dice_at(&te, &tt, val_best.threshold)?,
    })
}

/// Rows of original | error map | overlay (RGB PNG), `n` slices spread over the set.
fn save_overlays(path: &Path, set: &ImageSet, maps: &ErrorMaps, masks: &[bool], threshold: f32, n: usize) -> Result<(), SynthError> {
    let s = set.side;
    let n = n.min(set.len());
    let gap = 2;
    let mut img = RgbImage::from_pixel((3 * s + 2 * gap) as u32, (n * s + n.saturating_sub(1) * gap) as u32, Rgb([255, 255, 255]));
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for r in 0..n {
        let i = r * set.len() / n;
        let (x_img, e_map, m) = (set.image(i), maps.map(i), &masks[i * s * s..(i + 1) * s * s]);
        for p in 0..s * s {
            let (x, y) = ((p % s) as u32, (r * (s + gap) + p / s) as u32);
            let g = byte(x_img[p]);
            img.put_pixel(x, y, Rgb([g, g, g]));
            let e = byte(e_map[p]);
            img.put_pixel(x + (s + gap) as u32, y, Rgb([e, e, e]));
            let hot = maps.region(i)[p] && e_map[p] >= threshold;
            let dim = g / 2;
            let c = match (m[p], hot) {
                (true, true) => Rgb([255, 230, 0]),
                (true, false) => Rgb([dim, 200, dim]),
                (false, true) => Rgb([230, dim, dim]),
                (false, false) => Rgb([g, g, g]),
            };
            img.put_pixel(x + 2 * (s + gap) as u32, y, c);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SynthError::Io { path: dir.to_path_buf(), source: e })?;
    }
    img.save(path).map_err(|e| SynthError::Invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_rate_counts_each_side_of_one_half() {
        let p = [0.9, 0.5, 0.49, 0.1];
        assert_eq!(class_rate(&p, 1), 0.5); // 0.9 and 0.5 (the operating rule: ≥ ½ is tumour)
        assert_eq!(class_rate(&p, 0), 0.5);
        assert_eq!(class_rate(&[0.2, 0.3, 0.7], 0), 2.0 / 3.0);
        assert!(class_rate(&[], 1).is_nan());
    }

    /// A scorer that reads one 4×4 "lesion" (rows 4..8, columns 8..12 of a 16-px slice): its
    /// occlusion map is positive exactly on the windows that cover the lesion, highest on it,
    /// and 0 wherever no covering window touches it.
    #[test]
    fn occlusion_maps_light_up_what_the_score_reads() {
        let s = 16;
        let mut set = ImageSet::new(s);
        set.push(&vec![1.0; s * s], 0).unwrap();
        let inside = |p: usize| (4..8).contains(&(p / s)) && (8..12).contains(&(p % s));
        let score = |b: &ImageSet| -> Result<Vec<f32>, SynthError> {
            Ok((0..b.len()).map(|i| b.image(i).iter().enumerate().filter(|(p, _)| inside(*p)).map(|(_, v)| v).sum::<f32>() / 16.0).collect())
        };
        let m = occlusion_maps(&set, 4, score).unwrap();
        assert_eq!(m.len(), s * s);
        let max = m.iter().copied().fold(f32::MIN, f32::max);
        for (p, &v) in m.iter().enumerate().filter(|(p, _)| inside(*p)) {
            assert!(v > 0.0 && v >= 0.5 * max, "pixel {p}: {v}");
        }
        assert_eq!(m[15 * s], 0.0, "a corner far from the lesion");
        let argmax = (0..s * s).max_by(|&a, &b| m[a].total_cmp(&m[b])).unwrap();
        assert!(inside(argmax), "the strongest pixel {argmax} is on the lesion");
        assert!(occlusion_maps(&set, 0, score).is_err() && occlusion_maps(&set, 17, score).is_err());
    }
}

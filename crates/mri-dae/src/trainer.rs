//! Seeded, resumable DAE training with validation model selection; denoising of whole sets.

use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarMap;
use mri_train::{
    run_epochs, save_recon_grid, seeded_normal, seeded_var_builder, stream_seed, Adam, Checkpoint, EpochProgress, EpochTask, ImageSet, ModelKind, RunOptions,
    TrainError,
};
use serde::{Deserialize, Serialize};

use crate::config::{DaeConfig, NoiseUpsampling};
use crate::model::DenoisingAe;
use crate::{DaeError, Result};

/// Coarse noise for a batch `x` (N, 1, S, S): N(0, `noise_std`²) drawn on a
/// `noise_res`² grid (stream `name`), upsampled to S (bilinear or nearest, `noise_upsampling`), rolled by a seeded offset (so
/// the grid's corners fall anywhere) and kept inside the head (pixels above
/// `head_threshold`); only its magnitude with `bright_noise_only`. Add it to `x` to get the
/// training input.
pub fn coarse_noise(cfg: &DaeConfig, x: &Tensor, seed: u64, name: &str) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let r = cfg.noise_res;
    let mut grid = (seeded_normal(seed, name, (n, c, r, r), x.device())? * f64::from(cfg.noise_std))?;
    if cfg.bright_noise_only {
        grid = grid.abs()?;
    }
    let mut up = match cfg.noise_upsampling {
        NoiseUpsampling::Bilinear => grid.upsample_bilinear2d(h, w, false)?,
        NoiseUpsampling::Nearest => grid.upsample_nearest2d(h, w)?,
        NoiseUpsampling::Mixed => {
            // One seeded coin per image: its sign picks the sharp patches.
            let coin = seeded_normal(seed, &format!("{name}/shape"), (n, 1, 1, 1), x.device())?.ge(0f64)?.to_dtype(x.dtype())?;
            let (smooth, sharp) = (grid.upsample_bilinear2d(h, w, false)?, grid.upsample_nearest2d(h, w)?);
            (smooth.broadcast_mul(&(1.0 - &coin)?)? + sharp.broadcast_mul(&coin)?)?
        }
    };
    let shift = stream_seed(seed, &format!("{name}/roll")) as usize;
    let (dy, dx) = (shift % h, (shift / h) % w);
    if dy > 0 {
        up = Tensor::cat(&[up.narrow(2, h - dy, dy)?, up.narrow(2, 0, h - dy)?], 2)?;
    }
    if dx > 0 {
        up = Tensor::cat(&[up.narrow(3, w - dx, dx)?, up.narrow(3, 0, w - dx)?], 3)?;
    }
    let head = x.gt(f64::from(cfg.head_threshold))?.to_dtype(x.dtype())?;
    Ok((up * head)?)
}

/// Mean squared error of `denoised` against `clean` per pixel, over the whole image: the noise
/// is only inside the head, but the background must stay what it was too (left out of the
/// loss, it drifts and its edge with the head lights up the residual maps).
fn head_mse(_cfg: &DaeConfig, denoised: &Tensor, clean: &Tensor) -> candle_core::Result<Tensor> {
    (denoised - clean)?.sqr()?.mean_all()
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaeEpoch {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Mean training loss (squared error per pixel).
    pub train_loss: f64,
    /// The same on validation images with fixed noise (stream `val-noise/<batch>`).
    pub val_loss: f64,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained DAE.
pub struct DaeTrainOutput {
    /// The model with the weights of the best validation epoch.
    pub model: DenoisingAe,
    /// Its variables.
    pub varmap: VarMap,
    /// One record per epoch.
    pub history: Vec<DaeEpoch>,
    /// The epoch whose weights were kept, counting from 1.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// True when `stop_after` ended the run early.
    pub stopped_early: bool,
}

/// Validation loss: denoising fixed noise (streams `val-noise/<batch>` of `seed`), eval mode.
///
/// # Errors
/// An empty set; candle errors.
pub fn evaluate_dae_loss(model: &DenoisingAe, cfg: &DaeConfig, set: &ImageSet, seed: u64, device: &Device) -> Result<f64> {
    if set.is_empty() {
        return Err(DaeError::Data("cannot evaluate on an empty set".into()));
    }
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut sum = 0f64;
    for (b, chunk) in idx.chunks(cfg.batch_size).enumerate() {
        let (x, _) = set.batch(chunk, None, device)?;
        let noisy = (&x + coarse_noise(cfg, &x, seed, &format!("val-noise/{b}"))?)?;
        sum += head_mse(cfg, &model.forward_t(&noisy, false)?, &x)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(sum / set.len() as f64)
}

fn check_set(what: &str, set: &ImageSet, side: usize) -> Result<()> {
    if set.is_empty() {
        return Err(DaeError::Data(format!("the {what} set is empty")));
    }
    if set.side != side {
        return Err(DaeError::Data(format!("{what} images are {0}×{0}, the config expects {side}", set.side)));
    }
    Ok(())
}

struct DaeTask<'a> {
    cfg: &'a DaeConfig,
    model: DenoisingAe,
    vm: VarMap,
    adam: Adam,
    train: &'a ImageSet,
    val: &'a ImageSet,
    seed: u64,
    device: &'a Device,
}

impl EpochTask for DaeTask<'_> {
    type Record = DaeEpoch;
    type State = ();
    type Error = DaeError;

    fn kind(&self) -> ModelKind {
        ModelKind::DenoisingAe
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).expect("config serialises")
    }
    fn read_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        mri_train::reread_config::<DaeConfig>(stored)
    }
    fn epochs(&self) -> usize {
        self.cfg.epochs_for(self.train.len())
    }
    fn batches(&self, _epoch: usize) -> usize {
        self.train.len().div_ceil(self.cfg.batch_size)
    }
    fn varmaps(&self) -> Vec<&VarMap> {
        vec![&self.vm]
    }
    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        vec![("", &self.adam)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("", &mut self.adam)]
    }
    fn state(&self) {}
    fn set_state(&mut self, _state: ()) {}
    fn run_epoch(&mut self, epoch: usize, bar: &EpochProgress) -> Result<DaeEpoch> {
        let t0 = Instant::now();
        let lr = self.cfg.lr_at(epoch, self.epochs());
        self.adam.set_lr(lr);
        let mut sum = 0f64;
        for idx in &self.train.epoch_batches(self.seed, epoch as u64, self.cfg.batch_size) {
            let (x, _) = self.train.batch(idx, None, self.device)?;
            let noisy = (&x + coarse_noise(self.cfg, &x, self.seed, &format!("noise/{}", self.adam.steps()))?)?;
            let loss = head_mse(self.cfg, &self.model.forward_t(&noisy, true)?, &x)?;
            self.adam.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            sum += l * idx.len() as f64;
            bar.batch(l);
        }
        let val_loss = evaluate_dae_loss(&self.model, self.cfg, self.val, self.seed, self.device)?;
        Ok(DaeEpoch { epoch: epoch + 1, train_loss: sum / self.train.len() as f64, val_loss, lr, seconds: t0.elapsed().as_secs_f64() })
    }
    fn selection_loss(&self, r: &DaeEpoch) -> Option<f64> {
        Some(r.val_loss)
    }
    fn summary(&self, r: &DaeEpoch) -> String {
        format!("loss {:.5} val {:.5} lr {:.1e}", r.train_loss, r.val_loss, r.lr)
    }
    fn write_figures(&self, dir: &std::path::Path, name: &str, epoch: usize) -> Result<()> {
        // Noisy validation inputs above their denoised versions.
        let show: Vec<usize> = (0..self.val.len().min(8)).collect();
        let (x, _) = self.val.batch(&show, None, self.device)?;
        let noisy = (&x + coarse_noise(self.cfg, &x, self.seed, "val-noise/0")?)?;
        let denoised = self.model.forward_t(&noisy, false)?;
        save_recon_grid(&dir.join(format!("{name}-denoise-epoch{:03}.png", epoch + 1)), &noisy.clamp(0f32, 1f32)?, Some(&denoised.clamp(0f32, 1f32)?))?;
        Ok(())
    }
}

/// Trains the DAE on every image of `train` (healthy slices: filter first with
/// [`ImageSet::of_class`]), keeping the epoch with the lowest validation loss, through the
/// shared epoch loop ([`mri_train::run_epochs`]): seeded (initialisation, shuffling, noise
/// streams `noise/<step>`), resumable from its checkpoints, with grids every `figure_every`
/// epochs when a figures folder is set.
///
/// # Errors
/// Config or data errors; candle and checkpoint errors.
pub fn train_dae(cfg: &DaeConfig, train: &ImageSet, val: &ImageSet, device: &Device, opts: &RunOptions) -> Result<DaeTrainOutput> {
    cfg.check()?;
    check_set("training", train, cfg.image_size)?;
    check_set("validation", val, cfg.image_size)?;
    let vm = VarMap::new();
    let model = DenoisingAe::new(cfg, seeded_var_builder(&vm, opts.seed, DType::F32, device))?;
    let adam = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_"))?;
    let mut task = DaeTask { cfg, model, vm, adam, train, val, seed: opts.seed, device };
    let out = run_epochs(&mut task, opts)?;
    Ok(DaeTrainOutput {
        model: task.model,
        varmap: task.vm,
        history: out.history,
        best_epoch: out.best_epoch.unwrap_or(0),
        best_val_loss: out.best_loss.unwrap_or(f64::INFINITY),
        stopped_early: out.stopped_early,
    })
}

/// Loads a DAE from a checkpoint written by [`train_dae`] (its config is read from the sidecar).
///
/// # Errors
/// [`TrainError::CheckpointMismatch`] when the checkpoint holds another model kind; corrupt files.
pub fn load_dae(ckpt: &Checkpoint, device: &Device) -> Result<(DaeConfig, DenoisingAe, VarMap)> {
    let side = ckpt.read_sidecar()?;
    if side.model != ModelKind::DenoisingAe {
        return Err(TrainError::CheckpointMismatch {
            path: ckpt.sidecar.clone(),
            reason: format!("it holds a {}, not a {}", side.model, ModelKind::DenoisingAe),
        }
        .into());
    }
    let cfg: DaeConfig = serde_json::from_value(side.config.clone())
        .map_err(|e| DaeError::from(TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: e.to_string() }))?;
    let vm = VarMap::new();
    let model = DenoisingAe::new(&cfg, seeded_var_builder(&vm, side.seed, DType::F32, device))?;
    ckpt.load_weights_with(&side, &vm)?;
    Ok((cfg, model, vm))
}

/// The denoised version of every image of a set (eval mode, no noise added), clamped to
/// [0, 1], as a set with the same labels: the "reconstruction" whose residual is the tumour
/// evidence.
///
/// # Errors
/// Candle errors.
pub fn denoise_set(model: &DenoisingAe, set: &ImageSet, batch_size: usize, device: &Device) -> Result<ImageSet> {
    let mut out = ImageSet::new(set.side);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = set.batch(chunk, None, device)?;
        let r: Vec<f32> = model.forward_t(&x, false)?.clamp(0f32, 1f32)?.flatten_all()?.to_vec1()?;
        out.pixels.extend(r);
        out.labels.extend(chunk.iter().map(|&i| set.labels[i]));
    }
    Ok(out)
}

//! Ensembles: k CNNs of one config trained from different seeds on the same split, predicting
//! the mean of their tumour probabilities, saved as one checkpoint that [`load_classifier`]
//! reads like a single CNN's.
//!
//! Why: on Br35H a single residual CNN's test accuracy moves by several points with the seed
//! of its initialisation and augmentation alone; averaging members removes that part of the
//! variance (Lakshminarayanan et al., "Simple and scalable predictive uncertainty estimation
//! using deep ensembles", NeurIPS 2017).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mri_train::{seeded_var_builder, stream_seed, Checkpoint, ImageSet, ModelKind, Preset, Sidecar};

use crate::model::{Cnn, CnnConfig};
use crate::trainer::{train, TrainOptions, TrainOutput};
use crate::{CnnError, Result};

/// The sidecar `extra` key that marks an ensemble checkpoint and lists its members' seeds.
const SEEDS_KEY: &str = "ensemble_seeds";

/// Anything that turns images into tumour probabilities: one CNN or an ensemble.
pub trait TumourClassifier {
    /// Tumour probabilities (N) of images (N, 1, S, S), in eval mode.
    ///
    /// # Errors
    /// Candle errors (wrong shape or device).
    fn proba(&self, xs: &Tensor) -> candle_core::Result<Tensor>;
}

impl TumourClassifier for Cnn {
    fn proba(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Cnn::proba(self, xs)
    }
}

/// Several CNNs whose tumour probabilities are averaged. A one-member ensemble predicts
/// exactly what its member does.
#[derive(Clone)]
pub struct CnnEnsemble {
    members: Vec<Cnn>,
}

impl CnnEnsemble {
    /// An ensemble of `members`.
    ///
    /// # Errors
    /// [`CnnError::Config`] for no member.
    pub fn new(members: Vec<Cnn>) -> Result<Self> {
        if members.is_empty() {
            return Err(CnnError::Config("an ensemble needs at least one member".into()));
        }
        Ok(CnnEnsemble { members })
    }

    /// The members.
    pub fn members(&self) -> &[Cnn] {
        &self.members
    }

    /// The number of members (at least 1).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: an ensemble has at least one member.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl TumourClassifier for CnnEnsemble {
    fn proba(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut sum = self.members[0].proba(xs)?;
        for m in &self.members[1..] {
            sum = (sum + m.proba(xs)?)?;
        }
        if self.members.len() == 1 {
            Ok(sum)
        } else {
            sum / self.members.len() as f64
        }
    }
}

/// Member `i`'s seed: member 0 has the run's own seed (so a one-member ensemble is the single
/// CNN that seed trains), the others independent streams of it.
pub fn member_seed(seed: u64, i: usize) -> u64 {
    if i == 0 {
        seed
    } else {
        stream_seed(seed, &format!("ensemble/member{i}"))
    }
}

/// What [`train_ensemble`] returns.
pub struct EnsembleOutput {
    /// The members together.
    pub ensemble: CnnEnsemble,
    /// Each member's training (model, variables, history, selected epoch), in member order.
    pub members: Vec<TrainOutput>,
}

/// Trains `k` CNNs of `cfg` on the same sets, member `i` with [`member_seed`]`(opts.seed, i)`,
/// one after the other through [`train`] (each selecting its own best validation epoch).
///
/// With `k == 1` this is [`train`] itself (same checkpoint names). With `k > 1` and a
/// checkpoint folder, member `i` checkpoints (and resumes) as `NAME-m{i}` and the ensemble is
/// saved as `NAME`, one checkpoint holding every member's weights that [`load_classifier`]
/// loads.
///
/// # Errors
/// `k == 0`; everything [`train`] returns; writing the ensemble checkpoint.
pub fn train_ensemble(cfg: &CnnConfig, k: usize, train_set: &ImageSet, val: &ImageSet, device: &Device, opts: &TrainOptions) -> Result<EnsembleOutput> {
    if k == 0 {
        return Err(CnnError::Config("an ensemble needs at least one member (k = 0)".into()));
    }
    let seeds: Vec<u64> = (0..k).map(|i| member_seed(opts.seed, i)).collect();
    let mut members = Vec::with_capacity(k);
    for (i, &seed) in seeds.iter().enumerate() {
        let mut o = opts.clone();
        o.seed = seed;
        if k > 1 {
            o.name = format!("{}-m{i}", opts.name);
        }
        members.push(train(cfg, train_set, val, device, &o)?);
    }
    if k > 1 {
        if let Some(dir) = &opts.checkpoint_dir {
            let vms: Vec<&VarMap> = members.iter().map(|m| &m.varmap).collect();
            save_ensemble(&Checkpoint::at(dir, &opts.name), cfg, &vms, &seeds, opts.preset, opts.fingerprint.clone())?;
        }
    }
    let ensemble = CnnEnsemble::new(members.iter().map(|m| m.model.clone()).collect())?;
    Ok(EnsembleOutput { ensemble, members })
}

/// Saves trained members (their variable maps, in order, with the seeds they were built from)
/// as one checkpoint: weights `member{i}.<name>`, the members' seeds in the sidecar.
///
/// # Errors
/// Members and seeds of different lengths, none, or writing the files.
pub fn save_ensemble(
    ckpt: &Checkpoint,
    cfg: &CnnConfig,
    members: &[&VarMap],
    seeds: &[u64],
    preset: Option<Preset>,
    fingerprint: Option<mri_train::Fingerprint>,
) -> Result<()> {
    if members.is_empty() || members.len() != seeds.len() {
        return Err(CnnError::Config(format!("an ensemble checkpoint needs one seed per member ({} members, {} seeds)", members.len(), seeds.len())));
    }
    // One map under member prefixes: the variables are shared (reference-counted), not copied.
    let all = VarMap::new();
    {
        let mut data = all.data().lock().unwrap();
        for (i, vm) in members.iter().enumerate() {
            for (name, var) in vm.data().lock().unwrap().iter() {
                data.insert(format!("member{i}.{name}"), var.clone());
            }
        }
    }
    let mut side = Sidecar::new(ModelKind::Cnn, preset, serde_json::to_value(cfg).expect("config serialises"), cfg.epochs, seeds[0]);
    side.fingerprint = fingerprint;
    side.extra = serde_json::json!({ SEEDS_KEY: seeds });
    ckpt.save(&all, None, &side)?;
    Ok(())
}

/// The members' seeds when the sidecar is an ensemble's, `None` for a single CNN's.
fn ensemble_seeds(ckpt: &Checkpoint, side: &Sidecar) -> Result<Option<Vec<u64>>> {
    match side.extra.get(SEEDS_KEY) {
        None => Ok(None),
        Some(v) => {
            let seeds: Vec<u64> = serde_json::from_value(v.clone())
                .map_err(|e| mri_train::TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: format!("{SEEDS_KEY}: {e}") })?;
            if seeds.is_empty() {
                return Err(mri_train::TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: format!("{SEEDS_KEY} is empty") }.into());
            }
            Ok(Some(seeds))
        }
    }
}

/// Reads a CNN checkpoint's sidecar and config, refusing other model kinds.
pub(crate) fn read_cnn_sidecar(ckpt: &Checkpoint) -> Result<(Sidecar, CnnConfig)> {
    let side = ckpt.read_sidecar()?;
    if side.model != ModelKind::Cnn {
        return Err(mri_train::TrainError::CheckpointMismatch { path: ckpt.sidecar.clone(), reason: format!("it holds a {}, not a CNN", side.model) }.into());
    }
    let cfg: CnnConfig = serde_json::from_value(side.config.clone())
        .map_err(|e| mri_train::TrainError::CorruptCheckpoint { path: ckpt.sidecar.clone(), reason: e.to_string() })?;
    Ok((side, cfg))
}

/// Whether a CNN checkpoint holds an ensemble (and of how many members).
///
/// # Errors
/// As [`load_classifier`], without reading the weights.
pub fn ensemble_size(ckpt: &Checkpoint) -> Result<Option<usize>> {
    let (side, _) = read_cnn_sidecar(ckpt)?;
    Ok(ensemble_seeds(ckpt, &side)?.map(|s| s.len()))
}

/// Loads a classifier for prediction: a single CNN's checkpoint written by [`train`] as a
/// one-member ensemble, or an ensemble's written by [`train_ensemble`] / [`save_ensemble`].
///
/// # Errors
/// [`mri_train::TrainError::CheckpointMismatch`] for another model kind or a missing weight;
/// corrupt or missing files.
pub fn load_classifier(ckpt: &Checkpoint, device: &Device) -> Result<(CnnConfig, CnnEnsemble)> {
    let (side, cfg) = read_cnn_sidecar(ckpt)?;
    let seeds = ensemble_seeds(ckpt, &side)?;
    let members = load_members(ckpt, &side, &cfg, seeds.as_deref(), device)?;
    Ok((cfg, CnnEnsemble::new(members)?))
}

/// Loads a single CNN for prediction or as a feature extractor, refusing an ensemble's
/// checkpoint by name (see [`crate::load_cnn`]).
pub(crate) fn load_single(ckpt: &Checkpoint, device: &Device) -> Result<(CnnConfig, Cnn)> {
    let (side, cfg) = read_cnn_sidecar(ckpt)?;
    if let Some(seeds) = ensemble_seeds(ckpt, &side)? {
        return Err(mri_train::TrainError::CheckpointMismatch {
            path: ckpt.sidecar.clone(),
            reason: format!("it holds an ensemble of {} CNNs, not one; load it with load_classifier", seeds.len()),
        }
        .into());
    }
    let model = load_members(ckpt, &side, &cfg, None, device)?.remove(0);
    Ok((cfg, model))
}

/// Builds the CNNs a checkpoint holds (one for `seeds == None`, else one per seed under
/// `member{i}`) and loads their weights.
fn load_members(ckpt: &Checkpoint, side: &Sidecar, cfg: &CnnConfig, seeds: Option<&[u64]>, device: &Device) -> Result<Vec<Cnn>> {
    let vm = VarMap::new();
    let members = match seeds {
        None => vec![Cnn::new(cfg, seeded_var_builder(&vm, side.seed, DType::F32, device), side.seed)?],
        Some(seeds) => {
            let mut members = Vec::with_capacity(seeds.len());
            for (i, &s) in seeds.iter().enumerate() {
                members.push(Cnn::new(cfg, seeded_var_builder(&vm, s, DType::F32, device).pp(format!("member{i}")), s)?);
            }
            members
        }
    };
    ckpt.load_weights_with(side, &vm)?;
    Ok(members)
}

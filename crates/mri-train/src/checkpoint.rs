//! Checkpoints: `NAME.safetensors` (weights, keys = the `vb.pp(..)` names), `NAME.optim.safetensors`
//! (Adam moments `m.<var>` / `v.<var>`) and `NAME.json` (the [`Sidecar`]). Every file is written
//! to a temporary name and renamed, and the sidecar last, so a checkpoint whose sidecar exists
//! is complete: training killed at any moment leaves the previous checkpoint intact.
//!
//! The weights are plain safetensors, readable from Python:
//! `safetensors.numpy.load_file("cnn-real.safetensors")`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::optim::Adam;
use crate::{Result, TrainError};

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Model kind, e.g. `"cnn"`.
    pub model: String,
    /// Preset the config came from (`quick`, `default`, `paper`, or `custom`).
    pub preset: String,
    /// The model's full config (its serde form).
    pub config: serde_json::Value,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// Learning rate at the time of saving.
    pub lr: f64,
    /// Per-epoch metrics so far (model-specific records).
    pub metrics: serde_json::Value,
    /// Anything else the trainer needs to resume (schedule state, best epoch, …).
    pub extra: serde_json::Value,
    /// Version of the crate that wrote it.
    pub crate_version: String,
}

/// The three files of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `NAME.safetensors`.
    pub weights: PathBuf,
    /// `NAME.optim.safetensors`.
    pub optim: PathBuf,
    /// `NAME.json`.
    pub sidecar: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source: e }
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn save_tensors(map: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = tmp_of(path);
    candle_core::safetensors::save(map, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: "file is missing".into() });
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: e.to_string() })
}

impl Checkpoint {
    /// The checkpoint called `name` in `dir`.
    pub fn at(dir: &Path, name: &str) -> Self {
        Checkpoint {
            weights: dir.join(format!("{name}.safetensors")),
            optim: dir.join(format!("{name}.optim.safetensors")),
            sidecar: dir.join(format!("{name}.json")),
        }
    }

    /// The checkpoint one of whose files is `path` (`X.safetensors`, `X.optim.safetensors` or
    /// `X.json`), so a user can pass whichever file they see.
    pub fn from_file(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = [".optim.safetensors", ".safetensors", ".json"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(&name).to_string();
        Self::at(path.parent().unwrap_or(Path::new(".")), &stem)
    }

    /// True when a complete checkpoint is there (its sidecar, written last, exists).
    pub fn exists(&self) -> bool {
        self.sidecar.exists()
    }

    /// Saves weights, optimiser state (if any) and sidecar, atomically, creating the folder.
    pub fn save(&self, varmap: &VarMap, optim: Option<&Adam>, sidecar: &Sidecar) -> Result<()> {
        let optims: Vec<(&str, &Adam)> = optim.map(|o| ("", o)).into_iter().collect();
        self.save_parts(&[varmap], &optims, sidecar)
    }

    /// Saves several variable maps into one weights file (their names must not collide: build
    /// each model under its own `vb.pp(..)` prefix, e.g. `generator` and `discriminator`) and
    /// several optimisers into one state file, each state key prefixed by its label
    /// (`"{label}.m.<var>"`; an empty label adds no prefix).
    pub fn save_parts(&self, varmaps: &[&VarMap], optims: &[(&str, &Adam)], sidecar: &Sidecar) -> Result<()> {
        if let Some(dir) = self.sidecar.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let mut weights: HashMap<String, Tensor> = HashMap::new();
        for vm in varmaps {
            for (k, v) in vm.data().lock().unwrap().iter() {
                if weights.insert(k.clone(), v.as_tensor().clone()).is_some() {
                    return Err(TrainError::InvalidParameter { name: "varmaps", reason: format!("two variables named {k}") });
                }
            }
        }
        save_tensors(&weights, &self.weights)?;
        if !optims.is_empty() {
            let mut state = HashMap::new();
            for (label, o) in optims {
                for (k, v) in o.state() {
                    state.insert(if label.is_empty() { k } else { format!("{label}.{k}") }, v);
                }
            }
            save_tensors(&state, &self.optim)?;
        }
        let json = serde_json::to_string_pretty(sidecar).expect("sidecar serialises");
        let tmp = tmp_of(&self.sidecar);
        std::fs::write(&tmp, json).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &self.sidecar).map_err(|e| io(&self.sidecar, e))
    }

    /// Reads the sidecar.
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] when it is missing or not valid JSON of this form.
    pub fn read_sidecar(&self) -> Result<Sidecar> {
        let text = std::fs::read_to_string(&self.sidecar).map_err(|e| TrainError::CorruptCheckpoint { path: self.sidecar.clone(), reason: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| TrainError::CorruptCheckpoint { path: self.sidecar.clone(), reason: e.to_string() })
    }

    /// Checks that the sidecar was written for this model kind and config.
    ///
    /// # Errors
    /// [`TrainError::CheckpointMismatch`] naming the first difference.
    pub fn check(&self, sidecar: &Sidecar, model: &str, config: &serde_json::Value) -> Result<()> {
        let mismatch = |reason: String| Err(TrainError::CheckpointMismatch { path: self.sidecar.clone(), reason });
        if sidecar.model != model {
            return mismatch(format!("it holds a {:?} model, not {model:?}", sidecar.model));
        }
        if &sidecar.config != config {
            let (a, b) = (sidecar.config.as_object(), config.as_object());
            let diff = match (a, b) {
                (Some(a), Some(b)) => a
                    .iter()
                    .find(|(k, v)| b.get(*k) != Some(v))
                    .map(|(k, v)| format!("config field {k} is {v} in the checkpoint but {} here", b.get(k).unwrap_or(&serde_json::Value::Null)))
                    .unwrap_or_else(|| "configs differ".into()),
                _ => "configs differ".into(),
            };
            return mismatch(diff);
        }
        Ok(())
    }

    /// Loads the weights into every variable of `varmap` (which the model already created).
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] for an unreadable file; [`TrainError::CheckpointMismatch`]
    /// for a missing variable or another shape.
    pub fn load_weights(&self, varmap: &VarMap) -> Result<()> {
        let saved = load_tensors(&self.weights)?;
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let t = saved.get(name).ok_or_else(|| TrainError::CheckpointMismatch { path: self.weights.clone(), reason: format!("no weight named {name}") })?;
            if t.shape() != var.shape() {
                return Err(TrainError::CheckpointMismatch {
                    path: self.weights.clone(),
                    reason: format!("{name} has shape {:?}, the model {:?}", t.shape(), var.shape()),
                });
            }
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Restores the optimiser's moments and step.
    pub fn load_optim(&self, optim: &mut Adam, step: u64) -> Result<()> {
        self.load_optim_labelled(optim, "", step)
    }

    /// Restores the moments of the optimiser saved under `label` by [`Checkpoint::save_parts`].
    pub fn load_optim_labelled(&self, optim: &mut Adam, label: &str, step: u64) -> Result<()> {
        let state = load_tensors(&self.optim)?;
        let state: HashMap<String, Tensor> = if label.is_empty() {
            state
        } else {
            let prefix = format!("{label}.");
            state.into_iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v))).collect()
        };
        optim.load_state(&state, step, &self.optim)
    }

    /// The model kind its sidecar names (`"cnn"`, `"generative-vae"`, …), to dispatch on.
    pub fn model_kind(&self) -> Result<String> {
        Ok(self.read_sidecar()?.model)
    }
}

/// A copy of every variable's value (to keep the best epoch's weights in memory).
pub fn snapshot(vm: &VarMap) -> Result<HashMap<String, Tensor>> {
    vm.data().lock().unwrap().iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
}

/// Every variable's values, sorted by name: for comparing two models' weights exactly.
pub fn var_values(vm: &VarMap) -> Result<Vec<(String, Vec<f32>)>> {
    let mut v = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.as_tensor().to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)))
        .collect::<Result<Vec<_>>>()?;
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Sets every variable back to a [`snapshot`].
pub fn restore(vm: &VarMap, snap: &HashMap<String, Tensor>) -> Result<()> {
    for (k, v) in vm.data().lock().unwrap().iter() {
        let t = snap.get(k).ok_or_else(|| TrainError::InvalidParameter { name: "snapshot", reason: format!("no value for {k}") })?;
        v.set(t)?;
    }
    Ok(())
}

//! Checkpoints as one unit. A checkpoint called `NAME` in a folder is its manifest `NAME.json`
//! (the [`Sidecar`]) and the data files the manifest names, each with its BLAKE3 hash:
//! `NAME.<hash16>.safetensors` (weights, keys = the `vb.pp(..)` names) and, for a resume point,
//! `NAME.<hash16>.optim.safetensors` (Adam moments `m.<var>` / `v.<var>`, prefixed by the
//! optimiser's label when there are several).
//!
//! Saving writes the data files under new names first (their names carry their content hash,
//! so they never overwrite the files the current manifest names), then replaces the manifest
//! by an atomic rename, then removes the data files no manifest names any more. A run killed at
//! any moment therefore leaves the previous consistent checkpoint in place (rolled back, never
//! mixed), and loading verifies every file against its hash, so flipped bytes are found.
//! Temporary files of a killed save are swept by the next save or resume.
//!
//! The weights are plain safetensors, readable from Python:
//! `safetensors.numpy.load_file("cnn-real.<hash16>.safetensors")` (the manifest names the file).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::optim::Adam;
use crate::{Fingerprint, ModelKind, Preset, Result, TrainError};

/// One data file of a checkpoint, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name, in the manifest's folder.
    pub file: String,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
}

/// Where one optimiser stood when the checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
}

/// A checkpoint's manifest: what it holds, what it was computed from, and its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Model kind.
    pub model: ModelKind,
    /// Preset the config came from (`None` for a config built by hand).
    pub preset: Option<Preset>,
    /// The model's full config (its serde form).
    pub config: serde_json::Value,
    /// Epochs completed.
    pub epoch: usize,
    /// The run's seed.
    pub seed: u64,
    /// What the run was computed from (data, split, seed, preset, side), when known.
    #[serde(default)]
    pub fingerprint: Option<Fingerprint>,
    /// Each optimiser's step count and learning rate, by label (`""` for a single one).
    #[serde(default)]
    pub optimizers: BTreeMap<String, OptimizerState>,
    /// Per-epoch metrics so far (model-specific records).
    pub metrics: serde_json::Value,
    /// Anything else the trainer needs to resume (schedule state, best epoch, …).
    pub extra: serde_json::Value,
    /// The data files (`weights`, and `optim` for a resume point), filled in by
    /// [`Checkpoint::save_parts`].
    #[serde(default)]
    pub files: BTreeMap<String, FileEntry>,
    /// Version of the crate that wrote it.
    pub crate_version: String,
}

impl Sidecar {
    /// A manifest for `model` after `epoch` epochs, with empty metrics and no files yet.
    pub fn new(model: ModelKind, preset: Option<Preset>, config: serde_json::Value, epoch: usize, seed: u64) -> Self {
        Sidecar {
            model,
            preset,
            config,
            epoch,
            seed,
            fingerprint: None,
            optimizers: BTreeMap::new(),
            metrics: serde_json::Value::Null,
            extra: serde_json::Value::Null,
            files: BTreeMap::new(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A checkpoint: the manifest `NAME.json` in a folder and the files it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The folder.
    pub dir: PathBuf,
    /// `NAME`.
    pub name: String,
    /// The manifest, `NAME.json`.
    pub sidecar: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source: e }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> TrainError {
    TrainError::CorruptCheckpoint { path: path.to_path_buf(), reason: reason.to_string() }
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    h.update_reader(file).map_err(|e| io(path, e))?;
    Ok(h.finalize().to_hex().to_string())
}

/// `true` for 16 lowercase hex digits: the hash part of a data file's name.
fn is_hash16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Checkpoint {
    /// The checkpoint called `name` in `dir`.
    pub fn at(dir: &Path, name: &str) -> Self {
        Checkpoint { dir: dir.to_path_buf(), name: name.to_string(), sidecar: dir.join(format!("{name}.json")) }
    }

    /// The checkpoint one of whose files is `path` (`X.json`, `X.<hash>.safetensors`,
    /// `X.<hash>.optim.safetensors`), so a user can pass whichever file they see.
    pub fn from_file(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut stem = [".optim.safetensors", ".safetensors", ".json"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(&name);
        if let Some((head, hash)) = stem.rsplit_once('.') {
            if is_hash16(hash) {
                stem = head;
            }
        }
        Self::at(path.parent().unwrap_or(Path::new(".")), stem)
    }

    /// True when a checkpoint is there (its manifest, written last, exists).
    pub fn exists(&self) -> bool {
        self.sidecar.exists()
    }

    /// The data files of this checkpoint's name in its folder, named by a manifest or not.
    fn data_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let prefix = format!("{}.", self.name);
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let rest = n.strip_prefix(&prefix)?;
                let hash = rest.strip_suffix(".optim.safetensors").or_else(|| rest.strip_suffix(".safetensors"))?;
                is_hash16(hash).then(|| e.path())
            })
            .collect()
    }

    /// Removes this checkpoint's temporary files and the data files its manifest does not name
    /// (what a save killed before or after its manifest switch leaves). Returns how many.
    pub fn sweep(&self) -> Result<usize> {
        let keep: Vec<String> = match self.read_sidecar() {
            Ok(s) => s.files.values().map(|f| f.file.clone()).collect(),
            Err(_) if !self.exists() => Vec::new(),
            // A damaged manifest: leave its files for the user to look at.
            Err(_) => return Ok(0),
        };
        let mut removed = 0;
        for p in self.data_files() {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !keep.contains(&n) {
                std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
                removed += 1;
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(removed) };
        let prefix = format!("{}.", self.name);
        for e in entries.filter_map(|e| e.ok()) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && mri_preprocess::fsutil::is_temp_name(&n) {
                std::fs::remove_file(e.path()).map_err(|err| io(&e.path(), err))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes `map` as `NAME.<hash16><suffix>` and returns its manifest entry.
    fn write_data(&self, map: &HashMap<String, Tensor>, suffix: &str) -> Result<FileEntry> {
        let tmp = tmp_of(&self.dir.join(format!("{}{suffix}", self.name)));
        let result = (|| {
            candle_core::safetensors::save(map, &tmp)?;
            let blake3 = hash_file(&tmp)?;
            let file = format!("{}.{}{suffix}", self.name, &blake3[..16]);
            std::fs::rename(&tmp, self.dir.join(&file)).map_err(|e| io(&self.dir.join(&file), e))?;
            Ok(FileEntry { file, blake3 })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Saves one model's weights and optionally its optimiser (label `""`).
    pub fn save(&self, varmap: &VarMap, optim: Option<&Adam>, sidecar: &Sidecar) -> Result<()> {
        let optims: Vec<(&str, &Adam)> = optim.map(|o| ("", o)).into_iter().collect();
        self.save_parts(&[varmap], &optims, sidecar)
    }

    /// Saves several variable maps into one weights file (their names must not collide: build
    /// each model under its own `vb.pp(..)` prefix, e.g. `generator` and `discriminator`) and
    /// several optimisers into one state file, each state key prefixed by its label
    /// (`"{label}.m.<var>"`; an empty label adds no prefix). The manifest records each file's
    /// hash and each optimiser's step and learning rate. Atomic as a whole (see the module docs).
    pub fn save_parts(&self, varmaps: &[&VarMap], optims: &[(&str, &Adam)], sidecar: &Sidecar) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let mut weights: HashMap<String, Tensor> = HashMap::new();
        for vm in varmaps {
            for (k, v) in vm.data().lock().unwrap().iter() {
                if weights.insert(k.clone(), v.as_tensor().clone()).is_some() {
                    return Err(TrainError::InvalidParameter { name: "varmaps", reason: format!("two variables named {k}") });
                }
            }
        }
        let mut side = sidecar.clone();
        side.files.clear();
        side.files.insert("weights".into(), self.write_data(&weights, ".safetensors")?);
        if !optims.is_empty() {
            let mut state = HashMap::new();
            side.optimizers.clear();
            for (label, o) in optims {
                for (k, v) in o.state()? {
                    state.insert(if label.is_empty() { k } else { format!("{label}.{k}") }, v);
                }
                side.optimizers.insert(label.to_string(), OptimizerState { step: o.steps(), lr: o.lr() });
            }
            side.files.insert("optim".into(), self.write_data(&state, ".optim.safetensors")?);
        }
        let json = serde_json::to_string_pretty(&side).expect("sidecar serialises");
        let tmp = tmp_of(&self.sidecar);
        let written = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, &self.sidecar));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&self.sidecar, e));
        }
        self.sweep()?;
        Ok(())
    }

    /// Reads the manifest.
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] when it is missing or not valid JSON of this form.
    pub fn read_sidecar(&self) -> Result<Sidecar> {
        let text = std::fs::read_to_string(&self.sidecar).map_err(|e| corrupt(&self.sidecar, e))?;
        serde_json::from_str(&text).map_err(|e| corrupt(&self.sidecar, e))
    }

    /// The path of data file `key` (`weights` or `optim`) after checking it against its hash.
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] when the manifest names no such file, the file is
    /// missing, or its bytes do not match the recorded hash.
    pub fn verified_file(&self, sidecar: &Sidecar, key: &str) -> Result<PathBuf> {
        let entry = sidecar.files.get(key).ok_or_else(|| corrupt(&self.sidecar, format!("the manifest names no {key} file")))?;
        let path = self.dir.join(&entry.file);
        if !path.exists() {
            return Err(corrupt(&path, "file is missing (named by the manifest)"));
        }
        let got = hash_file(&path)?;
        if got != entry.blake3 {
            return Err(corrupt(
                &path,
                format!("content does not match the manifest (BLAKE3 {} recorded, {} found): the file was changed or damaged", &entry.blake3[..16], &got[..16]),
            ));
        }
        Ok(path)
    }

    fn load_verified(&self, sidecar: &Sidecar, key: &str) -> Result<HashMap<String, Tensor>> {
        let path = self.verified_file(sidecar, key)?;
        candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| corrupt(&path, e))
    }

    /// The path of data file `key` (`weights` or `optim`) as the manifest names it, unverified
    /// (to show it to a person, or to damage it in a test).
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] when the manifest is unreadable or names no such file.
    pub fn file(&self, key: &str) -> Result<PathBuf> {
        let side = self.read_sidecar()?;
        let entry = side.files.get(key).ok_or_else(|| corrupt(&self.sidecar, format!("the manifest names no {key} file")))?;
        Ok(self.dir.join(&entry.file))
    }

    /// The path of the weights file (verified).
    pub fn weights_file(&self) -> Result<PathBuf> {
        self.verified_file(&self.read_sidecar()?, "weights")
    }

    /// Checks that the manifest was written for this model kind and config. Fields named in
    /// `continuable` (how long to train, e.g. `epochs`) may differ: a run with more epochs
    /// continues a finished one.
    ///
    /// # Errors
    /// [`TrainError::CheckpointMismatch`] naming the first difference.
    pub fn check(&self, sidecar: &Sidecar, model: ModelKind, config: &serde_json::Value, continuable: &[&str]) -> Result<()> {
        let mismatch = |reason: String| Err(TrainError::CheckpointMismatch { path: self.sidecar.clone(), reason });
        if sidecar.model != model {
            return mismatch(format!("it holds a {:?} model, not {:?}", sidecar.model.name(), model.name()));
        }
        let (a, b) = (sidecar.config.as_object(), config.as_object());
        match (a, b) {
            (Some(a), Some(b)) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                if let Some(k) = keys.into_iter().find(|k| !continuable.contains(&k.as_str()) && a.get(*k) != b.get(*k)) {
                    let show = |v: Option<&serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
                    return mismatch(format!("config field {k} is {} in the checkpoint but {} here", show(a.get(k)), show(b.get(k))));
                }
            }
            _ if sidecar.config != *config => return mismatch("configs differ".into()),
            _ => {}
        }
        Ok(())
    }

    /// Loads the weights into every variable of `varmap` (which the model already created).
    ///
    /// # Errors
    /// [`TrainError::CorruptCheckpoint`] for a missing, damaged or unreadable file;
    /// [`TrainError::CheckpointMismatch`] for a missing variable or another shape.
    pub fn load_weights(&self, varmap: &VarMap) -> Result<()> {
        let side = self.read_sidecar()?;
        self.load_weights_with(&side, varmap)
    }

    /// As [`Checkpoint::load_weights`] with the manifest already read.
    pub fn load_weights_with(&self, sidecar: &Sidecar, varmap: &VarMap) -> Result<()> {
        let saved = self.load_verified(sidecar, "weights")?;
        let path = self.dir.join(&sidecar.files["weights"].file);
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let t = saved.get(name).ok_or_else(|| TrainError::CheckpointMismatch { path: path.clone(), reason: format!("no weight named {name}") })?;
            if t.shape() != var.shape() {
                return Err(TrainError::CheckpointMismatch {
                    path: path.clone(),
                    reason: format!("{name} has shape {:?}, the model {:?}", t.shape(), var.shape()),
                });
            }
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Restores the moments, step and learning rate of the optimiser saved under `label` by
    /// [`Checkpoint::save_parts`] (`""` for a single optimiser).
    pub fn load_optim_labelled(&self, sidecar: &Sidecar, optim: &mut Adam, label: &str) -> Result<()> {
        let st = *sidecar.optimizers.get(label).ok_or_else(|| corrupt(&self.sidecar, format!("the manifest has no optimiser {label:?}")))?;
        let state = self.load_verified(sidecar, "optim")?;
        let state: HashMap<String, Tensor> = if label.is_empty() {
            state
        } else {
            let prefix = format!("{label}.");
            state.into_iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v))).collect()
        };
        optim.load_state(&state, st.step, &self.dir.join(&sidecar.files["optim"].file))?;
        optim.set_lr(st.lr);
        Ok(())
    }

    /// The model kind its manifest names, to dispatch on.
    pub fn model_kind(&self) -> Result<ModelKind> {
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

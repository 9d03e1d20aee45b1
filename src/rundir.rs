//! An output folder belongs to one run. `run.json` in it records the run's [`Fingerprint`]
//! (data, split, seed, preset, image side); a later command that writes into the same folder
//! with other inputs stops with an error naming what differs, instead of reusing (or
//! overwriting) results computed from something else. `--fresh` removes what this project
//! wrote there and starts over.

use std::path::{Path, PathBuf};

use mri_train::Fingerprint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SynthError;

/// The file that binds a folder to a run.
pub const RUN_FILE: &str = "run.json";

/// Everything the examples and the experiment write into an output folder: what `--fresh`
/// removes (nothing else in the folder is touched).
pub const GENERATED: &[&str] = &[
    RUN_FILE,
    "split.json",
    "leaks_test.csv",
    "stages",
    "checkpoints",
    "synthetic",
    "figures",
    "detectors",
    "report.json",
    "report.md",
    "history.json",
    "test_metrics.json",
    "anomaly_results.json",
];

fn io(path: &Path, e: std::io::Error) -> SynthError {
    SynthError::Io { path: path.to_path_buf(), source: e }
}

/// Removes the entries of [`GENERATED`] from `out`; returns what was removed.
///
/// # Errors
/// A file or folder that cannot be removed (named).
pub fn clear_generated(out: &Path) -> Result<Vec<PathBuf>, SynthError> {
    let mut removed = Vec::new();
    for name in GENERATED {
        let p = out.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }.map_err(|e| io(&p, e))?;
        removed.push(p);
    }
    Ok(removed)
}

/// Makes `out` this run's folder: with `fresh`, first removes what an earlier run wrote
/// ([`clear_generated`]); sweeps temporary files a killed run left; then writes `run.json`, or
/// checks the one there.
///
/// # Errors
/// [`SynthError::RunMismatch`] when `out` holds another run's results (the message names the
/// first difference); I/O errors.
pub fn prepare_out(out: &Path, fingerprint: &Fingerprint, fresh: bool) -> Result<(), SynthError> {
    if fresh {
        for p in clear_generated(out)? {
            println!("--fresh: removed {}", p.display());
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    mri_preprocess::fsutil::sweep_temp_files(out)?;
    let path = out.join(RUN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let there: Fingerprint = serde_json::from_str(&text)
                .map_err(|e| SynthError::RunMismatch { path: path.clone(), reason: format!("its {RUN_FILE} cannot be read ({e})") })?;
            check_same(&path, &there, fingerprint)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = serde_json::to_string_pretty(fingerprint).expect("serialises");
            mri_preprocess::fsutil::write_atomic(&path, text.as_bytes())?;
            Ok(())
        }
        Err(e) => Err(io(&path, e)),
    }
}

/// `Ok` when `there` (recorded in `path`) equals `here`.
///
/// # Errors
/// [`SynthError::RunMismatch`] naming the first difference.
pub fn check_same(path: &Path, there: &Fingerprint, here: &Fingerprint) -> Result<(), SynthError> {
    match there.difference(here) {
        None => Ok(()),
        Some(reason) => Err(SynthError::RunMismatch { path: path.to_path_buf(), reason }),
    }
}

/// A stage's stored result: its value, how long it took, and what it was computed from.
#[derive(Serialize, Deserialize)]
pub struct StageFile<T> {
    /// What the stage was computed from.
    pub fingerprint: Fingerprint,
    /// The run's model settings (every model config and the run options that shape results);
    /// `null` in files written before they were recorded.
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Seconds it took.
    pub seconds: f64,
    /// Its result.
    pub value: T,
}

/// The stored result of a stage at `path` when it was computed from `fingerprint` with
/// `settings`; `None` when there is none (or it is unreadable: it is then recomputed).
///
/// # Errors
/// [`SynthError::RunMismatch`] when it was computed from another run's inputs, or with other
/// model settings (another `--epochs`, or a newer version's presets): a result is never reused
/// for a run it does not describe.
///
/// The stored settings are read back as an `S` (the type `settings` was written from) before
/// they are compared, so that a config field added since the file was written takes its
/// default there rather than reading as a difference ([`mri_train::reread_config`]).
pub fn read_stage<T: DeserializeOwned, S: Serialize + DeserializeOwned>(
    path: &Path,
    fingerprint: &Fingerprint,
    settings: &serde_json::Value,
) -> Result<Option<StageFile<T>>, SynthError> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let Ok(stage) = serde_json::from_str::<StageFile<T>>(&text) else { return Ok(None) };
    check_same(path, &stage.fingerprint, fingerprint)?;
    if stage.settings.is_null() {
        return Err(SynthError::RunMismatch { path: path.to_path_buf(), reason: "it records no model settings (an older version wrote it)".into() });
    }
    if let Some(reason) = first_difference("settings", &mri_train::reread_config::<S>(&stage.settings), settings) {
        return Err(SynthError::RunMismatch { path: path.to_path_buf(), reason });
    }
    Ok(Some(stage))
}

/// Checks every stage file in `dir` (`stages/` of an output folder) with [`read_stage`], so
/// that a run with other settings stops before it trains or overwrites anything.
///
/// # Errors
/// As [`read_stage`], for the first stage file (by name) that does not describe this run.
pub fn check_stages<S: Serialize + DeserializeOwned>(dir: &Path, fingerprint: &Fingerprint, settings: &serde_json::Value) -> Result<(), SynthError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    paths.sort();
    for p in paths {
        read_stage::<serde_json::Value, S>(&p, fingerprint, settings)?;
    }
    Ok(())
}

/// The first place where JSON `there` differs from `here`, as `"settings.cnn.epochs is 15
/// there but 20 here"` (objects walked key by key, in sorted order); `None` when equal.
pub fn first_difference(at: &str, there: &serde_json::Value, here: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (there, here) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) => first_difference(&format!("{at}.{k}"), x, y),
                (x, y) => {
                    let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
                    Some(format!("{at}.{k} is {} there but {} here", show(x), show(y)))
                }
            })
        }
        _ if there == here => None,
        _ => Some(format!("{at} is {there} there but {here} here")),
    }
}

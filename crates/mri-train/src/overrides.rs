//! `path=value` changes to a model config from the command line (`--vae-set loss.beta=0.001`,
//! `--gan-set diff_augment=null`, `--cnn-set augment.rotation_deg=0`): one mechanism for every
//! ablation, so that turning a recipe's ingredient off needs no new flag, and the checkpoint's
//! config (and so resume checks and reports) records exactly what was trained.
//!
//! A config is serialised to JSON, the field at `path` is replaced, and the result is
//! deserialised back: a path that names no field, or a value of the wrong type, is an error
//! that names the path and, for an unknown field, the fields there are.

use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::{Result, TrainError};

/// One `path=value` override: `path` is a dot-separated field path into the config's JSON
/// form; `value` is read as JSON (`0.001`, `true`, `null`, `[16,32]`, `{"kind":"bce-kl"}`) or,
/// when it is not valid JSON, as a string (`sampler=prior`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfigOverride {
    /// Field names from the top of the config down.
    pub path: Vec<String>,
    /// The new value.
    pub value: Value,
}

impl ConfigOverride {
    /// The path as written (`loss.beta`).
    pub fn path_text(&self) -> String {
        self.path.join(".")
    }
}

impl std::fmt::Display for ConfigOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path_text(), self.value)
    }
}

impl FromStr for ConfigOverride {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        let (path, value) =
            s.split_once('=').ok_or_else(|| TrainError::ConfigOverride { path: s.into(), reason: "expected path=value, e.g. loss.beta=0.001".into() })?;
        let path: Vec<String> = path.trim().split('.').map(|p| p.trim().to_string()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(TrainError::ConfigOverride { path: s.into(), reason: "empty field name in the path".into() });
        }
        let value = value.trim();
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok(ConfigOverride { path, value })
    }
}

/// `cfg` with every override applied in order.
///
/// # Errors
/// [`TrainError::ConfigOverride`] for a path that names no field of the config (the message
/// lists the fields where the path left off) or a value the field's type refuses.
pub fn apply_overrides<T: Serialize + DeserializeOwned>(cfg: &T, overrides: &[ConfigOverride]) -> Result<T> {
    let mut json = serde_json::to_value(cfg).map_err(|e| TrainError::ConfigOverride { path: String::new(), reason: e.to_string() })?;
    for o in overrides {
        let err = |reason: String| TrainError::ConfigOverride { path: o.path_text(), reason };
        let mut node = &mut json;
        for (i, key) in o.path.iter().enumerate() {
            let here = if i == 0 { "the config".to_string() } else { o.path[..i].join(".") };
            let obj = node.as_object_mut().ok_or_else(|| err(format!("{here} is a single value, not a set of fields")))?;
            if !obj.contains_key(key) {
                let fields: Vec<&str> = obj.keys().map(String::as_str).collect();
                return Err(err(format!("{here} has no field {key} (its fields: {})", fields.join(", "))));
            }
            node = obj.get_mut(key).expect("checked");
        }
        *node = o.value.clone();
        // Deserialise after each override so that an error names the override that caused it.
        T::deserialize(&json).map_err(|e| err(format!("{} is refused: {e}", o.value)))?;
    }
    serde_json::from_value(json).map_err(|e| TrainError::ConfigOverride { path: String::new(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "kebab-case")]
    enum Loss {
        Bce,
        Mse { beta: f64 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Cfg {
        lr: f64,
        channels: Vec<usize>,
        loss: Loss,
        ema: Option<f64>,
        name: String,
    }

    fn cfg() -> Cfg {
        Cfg { lr: 1e-3, channels: vec![16, 32], loss: Loss::Mse { beta: 0.01 }, ema: Some(0.999), name: "a".into() }
    }

    fn set(s: &str) -> ConfigOverride {
        s.parse().unwrap()
    }

    #[test]
    fn overrides_set_nested_fields_lists_enums_options_and_strings() {
        let c = apply_overrides(&cfg(), &[set("lr=2e-3"), set("loss.beta=0.001"), set("channels=[8, 16, 32]"), set("ema=null"), set("name=plain")]).unwrap();
        assert_eq!(c, Cfg { lr: 2e-3, channels: vec![8, 16, 32], loss: Loss::Mse { beta: 0.001 }, ema: None, name: "plain".into() });
        // A whole tagged enum replaced; later overrides see earlier ones.
        let c = apply_overrides(&cfg(), &[set(r#"loss={"kind":"bce"}"#)]).unwrap();
        assert_eq!(c.loss, Loss::Bce);
        let c = apply_overrides(&cfg(), &[set("lr=1"), set("lr=3")]).unwrap();
        assert_eq!(c.lr, 3.0);
        assert_eq!(apply_overrides(&cfg(), &[]).unwrap(), cfg());
    }

    #[test]
    fn overrides_name_the_unknown_field_and_the_refused_value() {
        let e = apply_overrides(&cfg(), &[set("loss.betta=1")]).unwrap_err().to_string();
        assert!(e.contains("loss.betta") && e.contains("no field betta") && e.contains("beta"), "{e}");
        let e = apply_overrides(&cfg(), &[set("lr=fast")]).unwrap_err().to_string();
        assert!(e.contains("lr") && e.contains("refused"), "{e}");
        let e = apply_overrides(&cfg(), &[set("lr.x=1")]).unwrap_err().to_string();
        assert!(e.contains("lr.x") && e.contains("not a set of fields"), "{e}");
        assert!("lr".parse::<ConfigOverride>().unwrap_err().to_string().contains("path=value"));
        assert!("a..b=1".parse::<ConfigOverride>().is_err());
        assert_eq!(set("loss.beta=0.5").to_string(), "loss.beta=0.5");
    }
}

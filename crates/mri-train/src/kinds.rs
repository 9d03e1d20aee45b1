//! The typed names every crate shares: model presets ([`Preset`], resolved through one path,
//! [`Presets::preset`]) and model kinds ([`ModelKind`], one spelling each, used by checkpoint
//! sidecars, the throughput tool and the reports).

use serde::{Deserialize, Serialize};

/// A model preset: how big a model is and how long it trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Tiny models for tests: seconds on phantoms (32 px unless told otherwise).
    Quick,
    /// Sized for a 2-core CPU at 64 px (minutes on phantoms, under an hour on Br35H).
    Default,
    /// The study's layouts at 128 px (GPU advised).
    Paper,
}

impl Preset {
    /// All presets, smallest first.
    pub const ALL: [Preset; 3] = [Preset::Quick, Preset::Default, Preset::Paper];

    /// `quick`, `default` or `paper`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Default => "default",
            Preset::Paper => "paper",
        }
    }

    /// The image side the preset uses when none is given.
    pub fn image_size(self) -> usize {
        match self {
            Preset::Quick => 32,
            Preset::Default => 64,
            Preset::Paper => 128,
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = crate::TrainError;
    fn from_str(s: &str) -> crate::Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| crate::TrainError::InvalidParameter { name: "preset", reason: format!("unknown preset {s:?}; expected quick, default or paper") })
    }
}

/// A model config with the three presets. [`Presets::preset`] is the one place where a preset
/// and an optional image side become a config, for every model.
pub trait Presets: Sized {
    /// Tiny, for tests, at `image_size`.
    fn quick(image_size: usize) -> Self;
    /// Sized for a 2-core CPU, at `image_size`.
    fn default_preset(image_size: usize) -> Self;
    /// The study's layout (at its own 128 px).
    fn paper() -> Self;
    /// Sets the input side.
    fn set_image_size(&mut self, image_size: usize);

    /// The config of `preset`; `image_size` overrides the preset's side.
    fn preset(preset: Preset, image_size: Option<usize>) -> Self {
        let side = image_size.unwrap_or(preset.image_size());
        let mut c = match preset {
            Preset::Quick => Self::quick(side),
            Preset::Default => Self::default_preset(side),
            Preset::Paper => Self::paper(),
        };
        c.set_image_size(side);
        c
    }
}

/// Implements [`Presets`] for a config type that has inherent `quick(usize)`,
/// `default_preset(usize)` and `paper()` constructors and an `image_size` field.
#[macro_export]
macro_rules! impl_presets {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::Presets for $t {
            fn quick(image_size: usize) -> Self {
                <$t>::quick(image_size)
            }
            fn default_preset(image_size: usize) -> Self {
                <$t>::default_preset(image_size)
            }
            fn paper() -> Self {
                <$t>::paper()
            }
            fn set_image_size(&mut self, image_size: usize) {
                self.image_size = image_size;
            }
        }
    )+};
}

/// Which model a checkpoint, a throughput line or a report row is about. One spelling each
/// (serde, `Display` and `FromStr` agree): `cnn`, `generative-vae`, `anomaly-vae`, `gan`,
/// `denoising-ae`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The tumour / no-tumour CNN.
    Cnn,
    /// The generative VAE (one per class).
    GenerativeVae,
    /// The anomaly VAE (trained on healthy slices).
    AnomalyVae,
    /// The GAN (generator and discriminator in one checkpoint).
    Gan,
    /// The denoising autoencoder (trained on healthy slices; its residual is the tumour evidence).
    DenoisingAe,
}

impl ModelKind {
    /// All kinds.
    pub const ALL: [ModelKind; 5] = [ModelKind::Cnn, ModelKind::GenerativeVae, ModelKind::AnomalyVae, ModelKind::Gan, ModelKind::DenoisingAe];

    /// The one spelling of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cnn => "cnn",
            ModelKind::GenerativeVae => "generative-vae",
            ModelKind::AnomalyVae => "anomaly-vae",
            ModelKind::Gan => "gan",
            ModelKind::DenoisingAe => "denoising-ae",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::TrainError;
    fn from_str(s: &str) -> crate::Result<Self> {
        ModelKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| crate::TrainError::InvalidParameter {
            name: "model",
            reason: format!("unknown model {s:?}; expected cnn, generative-vae, anomaly-vae or gan"),
        })
    }
}

//! Device choice from the command line.

use candle_core::Device;

use crate::{Result, TrainError};

/// `--device cpu|cuda|metal|auto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// The first CUDA GPU (needs the `cuda` feature).
    Cuda,
    /// The Metal GPU (needs the `metal` feature).
    Metal,
    /// CUDA if built and present, else Metal if built and present, else the CPU.
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "metal" => Ok(Self::Metal),
            "auto" => Ok(Self::Auto),
            _ => Err(TrainError::Device(format!("unknown device {s:?}; expected cpu, cuda, metal or auto"))),
        }
    }
}

impl DeviceChoice {
    /// Opens the device.
    ///
    /// # Errors
    /// [`TrainError::Device`] when the device was not built in (cargo feature) or is absent.
    pub fn device(self) -> Result<Device> {
        let gpu_err = |what: &str, e: candle_core::Error| {
            TrainError::Device(format!("cannot open {what} ({e}); build with --features {what} on a machine that has one, or use --device cpu"))
        };
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| gpu_err("cuda", e)),
            DeviceChoice::Metal => Device::new_metal(0).map_err(|e| gpu_err("metal", e)),
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    DeviceChoice::Cuda.device()
                } else if candle_core::utils::metal_is_available() {
                    DeviceChoice::Metal.device()
                } else {
                    Ok(Device::Cpu)
                }
            }
        }
    }
}

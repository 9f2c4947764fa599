//! Choosing where tensors live: `--device cpu|cuda|auto`.

use serde::{Deserialize, Serialize};

/// The device a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// Always the CPU.
    #[default]
    Cpu,
    /// The first CUDA device; an error if CUDA is not available.
    Cuda,
    /// CUDA when available, otherwise the CPU (and say so).
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device cuda was requested but libtorch reports no CUDA device \
         (is this a GPU machine with a CUDA 13 capable driver? use --device cpu or --device auto)"
    )]
    CudaUnavailable,
}

/// Resolve a choice to a concrete `tch::Device`. `auto` without CUDA prints a note on stderr.
pub fn resolve(choice: DeviceChoice) -> Result<tch::Device, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(tch::Device::Cpu),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                Err(DeviceError::CudaUnavailable)
            }
        }
        DeviceChoice::Auto => {
            if tch::Cuda::is_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                eprintln!("note: --device auto: no CUDA device found, running on the CPU");
                Ok(tch::Device::Cpu)
            }
        }
    }
}

//! DP-SGD: per-sample gradients, clipping (flat, per-layer; materialised or ghost), Poisson
//! sampling, Gaussian noise from a CSPRNG, and the private optimizer step.
//!
//! One DP step (Abadi et al. 2016, Alg. 1, with Poisson sampling as analysed by Mironov et al. 2019):
//! 1. sample the batch B: each of the N records joins independently with probability q ([`sampling`]);
//! 2. per example i ∈ B compute the clip factor c_i = min(1, C/‖∇ℓ_i‖) and the clipped sum
//!    Σ_i c_i ∇ℓ_i ([`engine`]), in chunks of at most `max_physical_batch` (virtual steps);
//! 3. add N(0, σ²C²) to every coordinate ([`noise`], fed by [`keystream`]) and divide by the *expected* batch size L = qN;
//! 4. apply the optimizer ([`optim`]) to this privatised gradient (weight decay added after privatisation).

pub mod engine;
pub mod keystream;
pub mod noise;
pub mod optim;
pub mod sampling;
pub mod step;

pub use engine::{clipped_grad_sum, per_sample_grads, per_sample_sq_norms, ClippedBatch};
pub use noise::NoiseSource;
pub use optim::{Optimizer, OptimizerKind};
pub use sampling::PoissonSampler;
pub use step::DpSgd;

use serde::{Deserialize, Serialize};

/// How the per-sample clipping budget is split.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Clipping {
    /// Clip the whole-model per-sample gradient: c_i = min(1, C/‖∇ℓ_i‖).
    #[default]
    Flat,
    /// Clip each of the K DP layers separately to C_l = C/√K, so that the whole per-sample
    /// gradient has norm ≤ √(Σ_l C_l²) = C and the sensitivity (hence the privacy analysis) is
    /// unchanged (McMahan et al. 2018, "per-layer clipping").
    PerLayer,
}

/// How per-sample gradients (or their norms) are obtained.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GradMode {
    /// Materialise every per-sample gradient from (a, g) (Opacus "hooks").
    Materialize,
    /// Per-sample norms without materialising (ghost norms), then the clipped sum straight from
    /// (a, g, c) — book-keeping, no second backward (Bu et al. 2023). Per layer, materialises
    /// instead when that is cheaper (2T² ≥ d_in·d_out).
    #[default]
    Ghost,
    /// One example at a time: a full backward per example. Slow; the correctness oracle.
    Naive,
}

/// Settings of the privatisation. Validated by [`DpSettings::check`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    /// σ: noise standard deviation in units of the clipping norm C.
    pub noise_multiplier: f64,
    /// C: per-sample clipping norm.
    pub max_grad_norm: f64,
    #[serde(default)]
    pub clipping: Clipping,
    #[serde(default)]
    pub grad_mode: GradMode,
    /// Largest chunk processed at once; a larger logical batch is split and noised once.
    #[serde(default)]
    pub max_physical_batch: Option<usize>,
}

impl Default for DpSettings {
    fn default() -> Self {
        DpSettings {
            noise_multiplier: 1.0,
            max_grad_norm: 1.0,
            clipping: Clipping::Flat,
            grad_mode: GradMode::Ghost,
            max_physical_batch: None,
        }
    }
}

impl crate::params::ParamGuard for DpSettings {
    type Error = DpError;

    /// Reject σ < 0 or not finite, C ≤ 0 or not finite, `max_physical_batch = 0`.
    fn validate(&self) -> Result<(), DpError> {
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier >= 0.0) {
            return Err(DpError::Invalid {
                field: "noise_multiplier",
                value: self.noise_multiplier.to_string(),
                reason: "must be finite and ≥ 0",
            });
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(DpError::Invalid {
                field: "max_grad_norm",
                value: self.max_grad_norm.to_string(),
                reason: "must be finite and > 0",
            });
        }
        if self.max_physical_batch == Some(0) {
            return Err(DpError::Invalid {
                field: "max_physical_batch",
                value: "0".into(),
                reason: "must be ≥ 1 when given",
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error("invalid DP setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("sampling rate q = {0} is not in (0, 1]")]
    SampleRate(f64),
    #[error("libtorch error: {0}")]
    Tch(#[from] tch::TchError),
}

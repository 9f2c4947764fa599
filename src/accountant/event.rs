//! What is being accounted: the method and the phases of DP-SGD (Poisson-subsampled Gaussian).

use super::error::AccountantError;

/// Accounting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Rényi DP (Mironov, Talwar, Zhang 2019) with the conversion of Balle et al. 2020.
    Rdp,
    /// Privacy loss distribution, connect-the-dots discretisation, FFT composition.
    Pld,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Rdp => "rdp",
            Method::Pld => "pld",
        })
    }
}

/// `steps` steps of the Poisson-subsampled Gaussian mechanism with sampling rate `q` and noise
/// multiplier `sigma` (noise std σ·C for clipping norm C; sensitivity C under add/remove-one).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub q: f64,
    pub sigma: f64,
    pub steps: u64,
}

impl Phase {
    /// Checks q ∈ (0, 1], σ finite ≥ 0, steps ≥ 1.
    pub fn validate(&self) -> Result<(), AccountantError> {
        check_q(self.q)?;
        check_sigma(self.sigma)?;
        if self.steps == 0 {
            return Err(AccountantError::ZeroSteps);
        }
        Ok(())
    }
}

pub(crate) fn check_q(q: f64) -> Result<(), AccountantError> {
    if q.is_finite() && q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(AccountantError::SampleRate(q))
    }
}

pub(crate) fn check_sigma(sigma: f64) -> Result<(), AccountantError> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(AccountantError::NoiseMultiplier(sigma))
    }
}

pub(crate) fn check_delta(delta: f64) -> Result<(), AccountantError> {
    if delta.is_finite() && delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(AccountantError::Delta(delta))
    }
}

pub(crate) fn check_epsilon(eps: f64) -> Result<(), AccountantError> {
    if eps.is_finite() && eps > 0.0 {
        Ok(())
    } else {
        Err(AccountantError::Epsilon(eps))
    }
}

pub(crate) fn check_phases(phases: &[Phase]) -> Result<(), AccountantError> {
    if phases.is_empty() {
        return Err(AccountantError::NoPhases);
    }
    phases.iter().try_for_each(Phase::validate)
}

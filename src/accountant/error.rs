//! Errors of the privacy accountant. Each names the parameter (and CLI flag) at fault.

/// What can go wrong in an accountant call.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum AccountantError {
    #[error("sample rate q (--sample-rate) must be in (0, 1], got {0}")]
    SampleRate(f64),
    #[error("noise multiplier σ (--noise-multiplier) must be finite and >= 0, got {0}")]
    NoiseMultiplier(f64),
    #[error("δ (--delta) must be in (0, 1), got {0}")]
    Delta(f64),
    #[error("ε (--target-epsilon / epsilon) must be finite and > 0, got {0}")]
    Epsilon(f64),
    #[error("number of steps (--steps / --epochs) must be >= 1, got 0")]
    ZeroSteps,
    #[error("epochs (--epochs) must be finite and > 0, got {0}")]
    Epochs(f64),
    #[error("no phases given: the accountant needs at least one (q, σ, steps) phase")]
    NoPhases,
    #[error("group size k must be >= 1, got 0")]
    GroupSize,
    #[error("σ calibration failed: {0}")]
    Calibration(String),
    #[error("PLD accountant: {0}")]
    Pld(String),
}

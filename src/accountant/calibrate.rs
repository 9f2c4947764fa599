//! Noise calibration: σ for a target (ε, δ), and steps ↔ epochs.
//!
//! The search is a port of Opacus's `get_noise_multiplier` (opacus/accountants/utils.py), so that
//! with the RDP method it returns the same σ as Opacus: σ_high starts at 10 and is doubled until
//! ε(σ_high) ≤ target (the first doubling always happens, so the first value tried is 20); then
//! bisection on [0, σ_high] until target − ε(σ_high) ≤ tolerance; σ_high is returned, so
//! ε(σ) ≤ target always holds for the returned σ.

use super::error::AccountantError;
use super::event::{check_delta, check_epsilon, check_q, Method, Phase};

/// Opacus's default `epsilon_tolerance`.
pub const EPSILON_TOLERANCE: f64 = 0.01;
/// Opacus's `MAX_SIGMA`: beyond it the budget is declared too small.
pub const MAX_SIGMA: f64 = 1e6;

/// Steps of `epochs` epochs at sampling rate q, as Opacus counts them: `int(epochs / q)`
/// (truncation toward zero). With batch size L and dataset size N, q = L/N, so one epoch is
/// ⌊N/L⌋ steps (e.g. q = 256/60000: 234 steps per epoch). Saturates at u64::MAX; 0 for q ≤ 0.
pub fn steps_for_epochs(q: f64, epochs: f64) -> u64 {
    let s = epochs / q;
    if s.is_nan() || s <= 0.0 {
        0
    } else {
        s as u64
    }
}

/// σ for a target ε at δ, q and T steps, with the default tolerance 0.01.
pub fn calibrate_sigma(
    method: Method,
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
) -> Result<f64, AccountantError> {
    calibrate_sigma_with_tolerance(method, target_epsilon, delta, q, steps, EPSILON_TOLERANCE)
}

/// σ for a target ε (Opacus `get_noise_multiplier` search) with a given ε tolerance.
pub fn calibrate_sigma_with_tolerance(
    method: Method,
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    tolerance: f64,
) -> Result<f64, AccountantError> {
    check_epsilon(target_epsilon)?;
    check_delta(delta)?;
    check_q(q)?;
    if steps == 0 {
        return Err(AccountantError::ZeroSteps);
    }
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(AccountantError::Calibration(format!("tolerance must be > 0, got {tolerance}")));
    }
    let eps_at = |sigma: f64| -> Result<f64, AccountantError> {
        Ok(super::epsilon(method, &[Phase { q, sigma, steps }], delta)?.epsilon)
    };
    let mut sigma_low = 0.0;
    let mut sigma_high = 10.0;
    let mut eps_high = f64::INFINITY;
    while eps_high > target_epsilon {
        sigma_high *= 2.0;
        eps_high = eps_at(sigma_high)?;
        if sigma_high > MAX_SIGMA {
            return Err(AccountantError::Calibration(format!(
                "the privacy budget is too low: ε = {target_epsilon} at δ = {delta} needs σ > {MAX_SIGMA}"
            )));
        }
    }
    while target_epsilon - eps_high > tolerance {
        let sigma = 0.5 * (sigma_low + sigma_high);
        let eps = eps_at(sigma)?;
        if eps < target_epsilon {
            sigma_high = sigma;
            eps_high = eps;
        } else {
            sigma_low = sigma;
        }
        if sigma_high - sigma_low < 1e-12 {
            break;
        }
    }
    Ok(sigma_high)
}

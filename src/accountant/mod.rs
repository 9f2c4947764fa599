//! Privacy accounting for DP-SGD (Poisson-subsampled Gaussian, add/remove-one neighbours):
//! RDP ([`rdp`]), PLD ([`pld`]), σ calibration ([`calibrate`]), group privacy ([`group`]),
//! Gaussian DP ([`gdp`]). Pure Rust, no torch dependency. Formulas and sources:
//! `docs/accountant.md`.
//!
//! Units: the sensitivity is the clipping norm C and the noise std is σ·C, so everything is in
//! units of C and only the noise multiplier σ matters. q is the Poisson sampling rate (expected
//! batch size L over dataset size N: q = L/N).

pub mod calibrate;
pub mod error;
pub mod event;
pub mod gdp;
pub mod group;
pub mod pld;
pub mod rdp;
pub mod special;

pub use calibrate::{calibrate_sigma, calibrate_sigma_with_tolerance, steps_for_epochs};
pub use error::AccountantError;
pub use event::{Method, Phase};
pub use gdp::{gdp_epsilon, gdp_mu};
pub use pld::PldOptions;

use event::{check_delta, check_epsilon, check_phases};

/// ε at a given δ, and for RDP the order that attains it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpsilonReport {
    pub epsilon: f64,
    /// RDP only: the minimising order α (None for PLD, or when ε = ∞).
    pub optimal_order: Option<f64>,
}

fn any_sigma_zero(phases: &[Phase]) -> bool {
    phases.iter().any(|p| p.sigma == 0.0)
}

/// ε(δ) of the composition of `phases` (RDP with Opacus's default orders, or PLD with the
/// default [`PldOptions`]). σ = 0 in any phase gives ε = +∞.
pub fn epsilon(method: Method, phases: &[Phase], delta: f64) -> Result<EpsilonReport, AccountantError> {
    match method {
        Method::Rdp => epsilon_rdp(phases, delta, &rdp::default_orders()),
        Method::Pld => epsilon_pld(phases, delta, &PldOptions::default()),
    }
}

/// RDP ε(δ) with the given orders (all > 1).
pub fn epsilon_rdp(phases: &[Phase], delta: f64, orders: &[f64]) -> Result<EpsilonReport, AccountantError> {
    check_phases(phases)?;
    check_delta(delta)?;
    if any_sigma_zero(phases) {
        return Ok(EpsilonReport { epsilon: f64::INFINITY, optimal_order: None });
    }
    let curve = rdp::rdp_phases(phases, orders);
    let (epsilon, optimal_order) = rdp::rdp_to_epsilon(orders, &curve, delta);
    Ok(EpsilonReport { epsilon, optimal_order })
}

/// The composed PLD (both directions) of `phases` (σ > 0 in every phase).
pub fn pld_of_phases(phases: &[Phase], opts: &PldOptions) -> Result<pld::ComposedPld, AccountantError> {
    check_phases(phases)?;
    let parts = phases
        .iter()
        .map(|p| Ok((pld::MixtureGaussian::subsampled_gaussian(p.q, p.sigma)?, p.steps)))
        .collect::<Result<Vec<_>, AccountantError>>()?;
    pld::compose_pairs(&parts, opts)
}

/// PLD ε(δ) with the given options.
pub fn epsilon_pld(phases: &[Phase], delta: f64, opts: &PldOptions) -> Result<EpsilonReport, AccountantError> {
    check_phases(phases)?;
    check_delta(delta)?;
    if any_sigma_zero(phases) {
        return Ok(EpsilonReport { epsilon: f64::INFINITY, optimal_order: None });
    }
    let pld = pld_of_phases(phases, opts)?;
    Ok(EpsilonReport { epsilon: pld.epsilon_for_delta(delta), optimal_order: None })
}

/// δ(ε) of the composition of `phases`. σ = 0 in any phase gives δ = 1 (no guarantee).
pub fn delta_for_epsilon(method: Method, phases: &[Phase], epsilon: f64) -> Result<f64, AccountantError> {
    check_phases(phases)?;
    check_epsilon(epsilon)?;
    if any_sigma_zero(phases) {
        return Ok(1.0);
    }
    match method {
        Method::Rdp => {
            let orders = rdp::default_orders();
            let curve = rdp::rdp_phases(phases, &orders);
            Ok(rdp::rdp_to_delta(&orders, &curve, epsilon))
        }
        Method::Pld => Ok(pld_of_phases(phases, &PldOptions::default())?.delta_for_epsilon(epsilon)),
    }
}

/// μ of the Gaussian-DP CLT approximation (see [`gdp`]).
pub fn gdp_mu_phases(phases: &[Phase]) -> f64 {
    // μ² adds over independent compositions (CLT): μ_total = sqrt(Σ μ_i²).
    phases.iter().map(|p| gdp_mu(p.q, p.sigma, p.steps).powi(2)).sum::<f64>().sqrt()
}

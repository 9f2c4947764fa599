//! Group privacy for a group of k records.
//!
//! * Generic (any (ε, δ)-DP mechanism; Dwork & Roth 2014, Theorem 2.2 extended to δ, Vadhan 2017
//!   Lemma 2.2): a group of k is (kε, k·e^{(k−1)ε}·δ)-DP. Loose.
//! * Tight, for DP-SGD with Poisson sampling: in each step the number J of the k group records
//!   that fall into the batch is Binomial(k, q); clipped to norm C and aligned (worst case), their
//!   joint contribution shifts the noisy sum by J·C. Per step the pair is therefore
//!   P = Σ_j P(J = j)·N(j, σ²) vs Q = N(0, σ²) (units of C), in both directions (add or remove the
//!   group), composed over T steps by the PLD code ([`super::pld`]). For k = 1 this is exactly the
//!   ordinary subsampled-Gaussian pair.

use super::error::AccountantError;
use super::event::{check_delta, check_epsilon, check_q, check_sigma};
use super::pld::{compose_pairs, ComposedPld, MixtureGaussian, PldOptions};

/// Generic group conversion: (ε, δ) for one record → (kε, k·e^{(k−1)ε}·δ) for k records
/// (δ capped at 1).
pub fn generic_group(eps: f64, delta: f64, k: u64) -> (f64, f64) {
    let kf = k as f64;
    let d = if delta == 0.0 { 0.0 } else { (kf.ln() + (kf - 1.0) * eps + delta.ln()).exp() };
    (kf * eps, d.min(1.0))
}

fn check(k: u64, q: f64, sigma: f64, steps: u64) -> Result<(), AccountantError> {
    if k == 0 {
        return Err(AccountantError::GroupSize);
    }
    check_q(q)?;
    check_sigma(sigma)?;
    if steps == 0 {
        return Err(AccountantError::ZeroSteps);
    }
    Ok(())
}

/// The mixture pair of one step for a group of k (k = 1: the ordinary subsampled Gaussian).
pub fn group_pair(k: u64, q: f64, sigma: f64) -> Result<MixtureGaussian, AccountantError> {
    if k == 1 {
        MixtureGaussian::subsampled_gaussian(q, sigma)
    } else {
        MixtureGaussian::group(k, q, sigma)
    }
}

/// Composed PLD (both directions) of a group of k over T steps (σ > 0).
pub fn group_pld(
    k: u64,
    q: f64,
    sigma: f64,
    steps: u64,
    opts: &PldOptions,
) -> Result<ComposedPld, AccountantError> {
    check(k, q, sigma, steps)?;
    if sigma == 0.0 {
        return Err(AccountantError::NoiseMultiplier(sigma));
    }
    compose_pairs(&[(group_pair(k, q, sigma)?, steps)], opts)
}

/// δ(ε) for a group of k records (PLD, tight mixture pair). σ = 0: δ = 1 (no guarantee).
pub fn group_delta(k: u64, q: f64, sigma: f64, steps: u64, epsilon: f64) -> Result<f64, AccountantError> {
    check(k, q, sigma, steps)?;
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(AccountantError::Epsilon(epsilon));
    }
    if sigma == 0.0 {
        return Ok(1.0);
    }
    Ok(group_pld(k, q, sigma, steps, &PldOptions::default())?.delta_for_epsilon(epsilon))
}

/// ε(δ) for a group of k records (PLD, tight mixture pair). σ = 0: ε = +∞.
pub fn group_epsilon(k: u64, q: f64, sigma: f64, steps: u64, delta: f64) -> Result<f64, AccountantError> {
    check(k, q, sigma, steps)?;
    check_delta(delta)?;
    if sigma == 0.0 {
        return Ok(f64::INFINITY);
    }
    Ok(group_pld(k, q, sigma, steps, &PldOptions::default())?.epsilon_for_delta(delta))
}

/// The group's privacy profile: (ε, δ(ε)) for each ε of `eps_grid` (one PLD built, evaluated at
/// each point). This is the curve the group-privacy ceiling of the bounds module needs.
pub fn group_profile(
    k: u64,
    q: f64,
    sigma: f64,
    steps: u64,
    eps_grid: &[f64],
) -> Result<Vec<(f64, f64)>, AccountantError> {
    check(k, q, sigma, steps)?;
    for &e in eps_grid {
        if !(e.is_finite() && e >= 0.0) {
            return Err(AccountantError::Epsilon(e));
        }
    }
    if sigma == 0.0 {
        return Ok(eps_grid.iter().map(|&e| (e, 1.0)).collect());
    }
    let pld = group_pld(k, q, sigma, steps, &PldOptions::default())?;
    Ok(eps_grid.iter().map(|&e| (e, pld.delta_for_epsilon(e))).collect())
}

/// The generic conversion applied to the ordinary accountant's ε at δ (for comparison).
pub fn generic_group_epsilon(k: u64, eps1: f64, delta1: f64) -> Result<(f64, f64), AccountantError> {
    if k == 0 {
        return Err(AccountantError::GroupSize);
    }
    check_epsilon(eps1.max(f64::MIN_POSITIVE))?;
    Ok(generic_group(eps1, delta1, k))
}

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
pub fn epsilon_pld(
    phases: &[Phase],
    delta: f64,
    opts: &PldOptions,
) -> Result<EpsilonReport, AccountantError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pld_eps(q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
        epsilon(Method::Pld, &[Phase { q, sigma, steps }], delta).unwrap().epsilon
    }
    fn rdp_eps(q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
        epsilon(Method::Rdp, &[Phase { q, sigma, steps }], delta).unwrap().epsilon
    }

    #[test]
    fn sigma_zero_is_infinite_not_nan() {
        let p = [Phase { q: 0.01, sigma: 0.0, steps: 10 }];
        assert_eq!(epsilon(Method::Rdp, &p, 1e-5).unwrap().epsilon, f64::INFINITY);
        assert_eq!(epsilon(Method::Pld, &p, 1e-5).unwrap().epsilon, f64::INFINITY);
        assert_eq!(delta_for_epsilon(Method::Pld, &p, 1.0).unwrap(), 1.0);
        assert_eq!(gdp_mu(0.01, 0.0, 10), f64::INFINITY);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let ok = Phase { q: 0.01, sigma: 1.0, steps: 10 };
        assert!(matches!(
            epsilon(Method::Rdp, &[Phase { q: 0.0, ..ok }], 1e-5),
            Err(AccountantError::SampleRate(_))
        ));
        assert!(matches!(
            epsilon(Method::Rdp, &[Phase { q: 1.5, ..ok }], 1e-5),
            Err(AccountantError::SampleRate(_))
        ));
        assert!(matches!(
            epsilon(Method::Pld, &[Phase { sigma: -1.0, ..ok }], 1e-5),
            Err(AccountantError::NoiseMultiplier(_))
        ));
        assert!(matches!(
            epsilon(Method::Pld, &[Phase { steps: 0, ..ok }], 1e-5),
            Err(AccountantError::ZeroSteps)
        ));
        assert!(matches!(epsilon(Method::Rdp, &[ok], 1.0), Err(AccountantError::Delta(_))));
        assert!(matches!(epsilon(Method::Rdp, &[], 1e-5), Err(AccountantError::NoPhases)));
        assert!(matches!(delta_for_epsilon(Method::Rdp, &[ok], 0.0), Err(AccountantError::Epsilon(_))));
        assert!(matches!(
            calibrate_sigma(Method::Rdp, -1.0, 1e-5, 0.01, 10),
            Err(AccountantError::Epsilon(_))
        ));
        assert!(matches!(group::group_epsilon(0, 0.01, 1.0, 10, 1e-5), Err(AccountantError::GroupSize)));
    }

    #[test]
    fn steps_for_epochs_like_opacus() {
        assert_eq!(steps_for_epochs(256.0 / 60000.0, 1.0), 234);
        assert_eq!(steps_for_epochs(0.01, 20.0), 2000);
    }

    #[test]
    fn group_of_one_is_the_ordinary_accountant_and_mixture_agrees() {
        let (q, s, t) = (0.02, 1.0, 50);
        let g = group::group_epsilon(1, q, s, t, 1e-5).unwrap();
        assert_eq!(g, pld_eps(q, s, t, 1e-5));
        // The general binomial mixture with k = 1 matches the two-component pair.
        let m = pld::MixtureGaussian::group(1, q, s).unwrap();
        let o = pld::MixtureGaussian::subsampled_gaussian(q, s).unwrap();
        for e in [0.0, 0.1, 1.0] {
            assert!((m.delta_remove(e) - o.delta_remove(e)).abs() < 1e-14);
            assert!((m.delta_add(e) - o.delta_add(e)).abs() < 1e-14);
        }
    }

    #[test]
    fn group_is_tighter_than_generic_conversion() {
        let (q, s, t, k) = (0.01, 1.0, 100, 4);
        let e1 = pld_eps(q, s, t, 1e-6);
        let (ek, dk) = group::generic_group(e1, 1e-6, k);
        let d_tight = group::group_delta(k, q, s, t, ek).unwrap();
        assert!(d_tight <= dk, "tight δ {d_tight} > generic δ {dk}");
        let prof = group::group_profile(k, q, s, t, &[0.5, 1.0, 2.0]).unwrap();
        assert!(prof[0].1 >= prof[1].1 && prof[1].1 >= prof[2].1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

        #[test]
        fn rdp_monotone(q in 0.001f64..0.5, s in 0.6f64..4.0, t in 1u64..2000, f in 1.1f64..3.0) {
            let e = rdp_eps(q, s, t, 1e-5);
            prop_assert!(rdp_eps(q, s, (t as f64 * f) as u64 + 1, 1e-5) >= e);
            prop_assert!(rdp_eps((q * f).min(1.0), s, t, 1e-5) >= e);
            prop_assert!(rdp_eps(q, s * f, t, 1e-5) <= e);
        }

        #[test]
        fn pld_monotone(q in 0.005f64..0.2, s in 0.8f64..3.0, t in 1u64..200, f in 1.2f64..2.0) {
            let e = pld_eps(q, s, t, 1e-5);
            let tol = 1e-6 * (1.0 + e);
            prop_assert!(pld_eps(q, s, (t as f64 * f) as u64 + 1, 1e-5) >= e - tol);
            prop_assert!(pld_eps((q * f).min(1.0), s, t, 1e-5) >= e - tol);
            prop_assert!(pld_eps(q, s * f, t, 1e-5) <= e + tol);
        }

        #[test]
        fn delta_epsilon_roundtrip(q in 0.005f64..0.2, s in 0.8f64..3.0, t in 1u64..300, ld in -9.0f64..-3.0) {
            let delta = 10f64.powf(ld);
            let p = [Phase { q, sigma: s, steps: t }];
            for method in [Method::Rdp, Method::Pld] {
                let e = epsilon(method, &p, delta).unwrap().epsilon;
                if e > 1e-6 {
                    let d = delta_for_epsilon(method, &p, e).unwrap();
                    prop_assert!((d - delta).abs() <= 1e-3 * delta, "{method}: δ(ε(δ)) = {d} vs δ = {delta}");
                }
            }
        }

        #[test]
        fn group_epsilon_increases_with_k(q in 0.005f64..0.1, s in 0.8f64..2.0, t in 1u64..100) {
            let e1 = group::group_epsilon(1, q, s, t, 1e-5).unwrap();
            let e2 = group::group_epsilon(2, q, s, t, 1e-5).unwrap();
            let e3 = group::group_epsilon(3, q, s, t, 1e-5).unwrap();
            prop_assert!(e1 <= e2 && e2 <= e3, "{e1} {e2} {e3}");
        }
    }
}

//! Bounds on the success of collective action: Hardt et al. 2023 ([`hardt`]), several collectives
//! and coordination noise ([`multi`]), a DP-SGD lower bound for convex softmax/logistic regression
//! and its deep-model prediction ([`dpsgd`], with the reference solver in [`reference`]), and the
//! group-privacy ceiling on steerability ([`ceiling`]). Pure Rust, no torch dependency.
//!
//! Every bound returns a [`BoundValue`] saying whether it is a **guarantee** (holds under the
//! stated assumptions; a measurement outside it is a bug), a **prediction** (a trend model,
//! compared but never asserted) or **approximate** (rigorous only up to a stated approximation).
//! Derivations, assumptions and sources: `docs/bounds.md`.

pub mod ceiling;
pub mod dpsgd;
pub mod error;
pub mod hardt;
pub mod moment;
pub mod multi;
pub mod prediction;
pub mod reference;

pub use error::{BoundError, Result};

use serde::Serialize;

/// What kind of statement a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundKind {
    /// Holds under the stated assumptions (at `probability`, when given).
    Guarantee,
    /// A trend model, reported beside measurements but never asserted.
    Prediction,
    /// Rigorous only up to a stated approximation (e.g. the GDP central-limit approximation).
    Approximate,
}

/// A bound's value with its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoundValue {
    /// The bound on the success rate, in `[0, 1]`.
    pub value: f64,
    /// Guarantee, prediction or approximate.
    pub kind: BoundKind,
    /// For probabilistic guarantees: the probability (over the training randomness) with which it
    /// holds; `None` for deterministic statements.
    pub probability: Option<f64>,
    /// The assumptions under which `kind` applies, in one paragraph.
    pub assumptions: &'static str,
}

impl BoundValue {
    pub(crate) fn new(
        value: f64,
        kind: BoundKind,
        probability: Option<f64>,
        assumptions: &'static str,
    ) -> Self {
        BoundValue { value: clamp01(value), kind, probability, assumptions }
    }
}

/// Clamp to `[0, 1]`, mapping NaN to 0 (a vacuous lower bound). Callers validate inputs first,
/// so NaN only arises from a degenerate but valid corner (e.g. ∞·0) and 0 is the safe reading for
/// a lower bound; upper bounds handle their corners before calling this.
pub(crate) fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Critical mass by bisection: the smallest `alpha ∈ (0, 1]` with `bound(alpha) >= target`,
/// for a bound that is non-decreasing in `alpha`, to within `tol` (the returned value `a` has
/// `bound(a) >= target` and `bound(a - tol) < target` unless `a <= tol`).
/// `Ok(None)` when even `alpha = 1` falls short of the target.
pub fn critical_mass_by_bisection(
    target: f64,
    tol: f64,
    bound: &dyn Fn(f64) -> Result<f64>,
) -> Result<Option<f64>> {
    error::check_open_closed("target", target, 0.0, 1.0, "a success rate in (0, 1]")?;
    error::check_open_closed("tol", tol, 0.0, 0.5, "a tolerance in (0, 0.5]")?;
    if bound(1.0)? < target {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while hi - lo > tol {
        let mid = 0.5 * (lo + hi);
        if bound(mid)? >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

/// Standard normal CDF Φ.
pub(crate) fn phi(x: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().cdf(x)
}

/// Standard normal quantile Φ⁻¹ on (0, 1).
pub(crate) fn phi_inv(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

//! Hardt, Mazumdar, Mendler-Dünner, Zrnic 2023 (ICML), "Algorithmic Collective Action in Machine
//! Learning": the feature-label strategy's success bound and its critical mass.
//!
//! The firm learns from `P_α = α·P* + (1−α)·P₀`, with `P*` the law of `(g(x), y*)`, `x ∼ P₀`.
//! For a classifier that is Bayes-optimal under some `P′` with `TV(P_α, P′) ≤ ε`:
//!
//! `S(α) ≥ 1 − ((1−α)/α)·Δ·ξ − 2ε/α`
//!
//! where `ξ = P₀(g(X))` is the clean mass on the signal set and
//! `Δ = sup_{x′ ∈ g(X)} [max_y P₀(y|x′) − P₀(y*|x′)]`. With ε = 0 this is Hardt et al.'s
//! Theorem (Bayes-optimal learner); the `2ε/α` form is our own derivation (`docs/bounds.md` §1),
//! kept pluggable through [`Suboptimality`] because the paper's exact ε-term could not be
//! confirmed.

use super::error::{check_closed, check_open_closed, BoundError, Result};
use super::{BoundKind, BoundValue};
use serde::Serialize;

/// How far the learner is from Bayes-optimal, i.e. the ε-term subtracted from the bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "form", content = "value")]
pub enum Suboptimality {
    /// A Bayes-optimal learner: no ε-term.
    None,
    /// The learner is Bayes-optimal for some `P′` with `TV(P_α, P′) ≤ ε`: subtract `2ε/α`
    /// (derived in `docs/bounds.md` §1; the factor 2 is tight for that argument).
    TotalVariation(f64),
    /// A user-supplied absolute term `a ∈ [0, 1]` subtracted from the success bound (e.g. an
    /// empirical estimate of the learner's error on the signal set). Its validity is the user's.
    Absolute(f64),
}

impl Suboptimality {
    /// Check the parameter's range (ε ∈ [0, 1], a ∈ [0, 1]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Suboptimality::None => Ok(()),
            Suboptimality::TotalVariation(e) => {
                check_closed("suboptimality_tv", e, 0.0, 1.0, "a total-variation distance in [0, 1]")
                    .map(|_| ())
            }
            Suboptimality::Absolute(a) => {
                check_closed("suboptimality_abs", a, 0.0, 1.0, "an absolute term in [0, 1]").map(|_| ())
            }
        }
    }

    /// The term subtracted from the success bound for a collective of size `alpha`.
    pub fn penalty(&self, alpha: f64) -> f64 {
        match *self {
            Suboptimality::None => 0.0,
            Suboptimality::TotalVariation(e) => 2.0 * e / alpha,
            Suboptimality::Absolute(a) => a,
        }
    }

    fn kind(&self) -> BoundKind {
        match self {
            // A user-supplied term is only as good as the user's estimate of it.
            Suboptimality::Absolute(_) => BoundKind::Prediction,
            _ => BoundKind::Guarantee,
        }
    }
}

/// Assumption text shared by Hardt-type bounds.
pub const HARDT_ASSUMPTIONS: &str = "Firm's training law is the mixture αP* + (1−α)P₀ (members drawn from P₀, feature-label strategy (g(x), y*)); \
the learner is Bayes-optimal, or Bayes-optimal for a law within total variation ε of the mixture; \
ξ = P₀(g(X)) and Δ = sup over the signal set of max_y P₀(y|x′) − P₀(y*|x′) are population quantities \
(plug-in estimates make the statement approximate). Success is measured on x ∼ P₀ (Hardt et al. 2023, feature-label strategy).";

fn validate(alpha: f64, delta_gap: f64, xi: f64, sub: &Suboptimality) -> Result<()> {
    check_open_closed("alpha", alpha, 0.0, 1.0, "a collective fraction in (0, 1]")?;
    check_closed("delta_gap", delta_gap, 0.0, 1.0, "a suboptimality gap Δ in [0, 1]")?;
    check_closed("xi", xi, 0.0, 1.0, "a signal-set mass ξ in [0, 1]")?;
    sub.validate()
}

/// The unclamped value `1 − ((1−α)/α)·Δ·ξ − penalty(α)`.
fn raw(alpha: f64, delta_gap: f64, xi: f64, sub: &Suboptimality) -> f64 {
    1.0 - (1.0 - alpha) / alpha * delta_gap * xi - sub.penalty(alpha)
}

/// Hardt et al.'s feature-label lower bound `S(α) ≥ 1 − ((1−α)/α)·Δ·ξ − ε-term`, clamped to [0, 1].
pub fn hardt_bound(alpha: f64, delta_gap: f64, xi: f64, sub: Suboptimality) -> Result<BoundValue> {
    validate(alpha, delta_gap, xi, &sub)?;
    Ok(BoundValue::new(raw(alpha, delta_gap, xi, &sub), sub.kind(), None, HARDT_ASSUMPTIONS))
}

/// Critical mass `α*(S*)`: the smallest `α ∈ (0, 1]` whose Hardt bound reaches `target`.
///
/// Closed forms (solve `bound(α) ≥ S*` for α; the bound is increasing in α):
/// - no ε-term: `α* = Δξ / (1 − S* + Δξ)`;
/// - total variation ε: `α* = (Δξ + 2ε) / (1 − S* + Δξ)`;
/// - absolute a: `α* = Δξ / (1 − a − S* + Δξ)` (unreachable when `1 − a < S*`).
///
/// `Ok(None)` when no α ≤ 1 reaches the target. `Ok(Some(0.0))` means every α > 0 does
/// (Δξ = 0 and no ε-term): the infimum is 0.
pub fn hardt_critical_mass(target: f64, delta_gap: f64, xi: f64, sub: Suboptimality) -> Result<Option<f64>> {
    check_open_closed("target", target, 0.0, 1.0, "a success rate in (0, 1]")?;
    validate(1.0, delta_gap, xi, &sub)?;
    let dx = delta_gap * xi;
    let (num, den) = match sub {
        Suboptimality::None => (dx, 1.0 - target + dx),
        Suboptimality::TotalVariation(e) => (dx + 2.0 * e, 1.0 - target + dx),
        Suboptimality::Absolute(a) => (dx, 1.0 - a - target + dx),
    };
    if num == 0.0 && den > 0.0 {
        return Ok(Some(0.0));
    }
    if den <= 0.0 {
        // Target 1 with Δξ = 0 and no ε-term is reached by any α (num = 0, den = 0).
        return Ok(if num == 0.0 && den == 0.0 { Some(0.0) } else { None });
    }
    let a = num / den;
    if a > 1.0 {
        return Ok(None);
    }
    Ok(Some(a))
}

/// Signal-set mass ξ estimated from data: the fraction of clean training points that already lie
/// on the signal set (the collective module decides membership and passes the count).
pub fn xi_from_counts(on_signal_set: u64, total: u64) -> Result<f64> {
    if total == 0 {
        return Err(BoundError::InvalidParameter {
            name: "total",
            value: 0.0,
            expected: "at least one clean training point",
        });
    }
    if on_signal_set > total {
        return Err(BoundError::InvalidParameter {
            name: "on_signal_set",
            value: on_signal_set as f64,
            expected: "a count no larger than total",
        });
    }
    Ok(on_signal_set as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_bound() {
        // α = 0.1, Δ = 0.5, ξ = 0.02: 1 − (0.9/0.1)·0.5·0.02 = 1 − 9·0.01 = 0.91.
        let b = hardt_bound(0.1, 0.5, 0.02, Suboptimality::None).unwrap();
        assert!((b.value - 0.91).abs() < 1e-12);
        assert_eq!(b.kind, BoundKind::Guarantee);
        // With TV ε = 0.01: subtract 2·0.01/0.1 = 0.2 → 0.71.
        let b = hardt_bound(0.1, 0.5, 0.02, Suboptimality::TotalVariation(0.01)).unwrap();
        assert!((b.value - 0.71).abs() < 1e-12);
        // Clamped at 0: α = 0.001, Δξ = 0.5 → 1 − 999·0.5 < 0.
        assert_eq!(hardt_bound(0.001, 1.0, 0.5, Suboptimality::None).unwrap().value, 0.0);
    }

    #[test]
    fn hand_computed_critical_mass() {
        // Δξ = 0.01, S* = 0.9: α* = 0.01/(0.1 + 0.01) = 1/11.
        let a = hardt_critical_mass(0.9, 0.5, 0.02, Suboptimality::None).unwrap().unwrap();
        assert!((a - 1.0 / 11.0).abs() < 1e-12);
        // And the bound at α* is exactly S*.
        let b = hardt_bound(a, 0.5, 0.02, Suboptimality::None).unwrap().value;
        assert!((b - 0.9).abs() < 1e-12);
        // TV ε = 0.01: (0.01 + 0.02)/0.11 = 3/11.
        let a = hardt_critical_mass(0.9, 0.5, 0.02, Suboptimality::TotalVariation(0.01)).unwrap().unwrap();
        assert!((a - 3.0 / 11.0).abs() < 1e-12);
        // Unique trigger: any positive collective.
        assert_eq!(hardt_critical_mass(0.99, 0.7, 0.0, Suboptimality::None).unwrap(), Some(0.0));
        // Absolute term too large: unreachable.
        assert_eq!(hardt_critical_mass(0.9, 0.5, 0.02, Suboptimality::Absolute(0.2)).unwrap(), None);
    }

    #[test]
    fn rejects_bad_input_naming_the_parameter() {
        let e = hardt_bound(1.5, 0.5, 0.1, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("alpha"));
        let e = hardt_bound(0.1, f64::NAN, 0.1, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("delta_gap"));
        let e = hardt_bound(0.1, 0.5, -0.1, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("xi"));
        let e = hardt_critical_mass(0.0, 0.5, 0.1, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("target"));
        assert!(xi_from_counts(3, 2).is_err());
        assert_eq!(xi_from_counts(1, 4).unwrap(), 0.25);
    }
}

//! Several collectives and coordination noise, in Hardt et al.'s mixture framing (cf. Karan et al.
//! 2025 "Sync or Sink", Battiloro et al. 2025). Derivation: `docs/bounds.md` §4.
//!
//! Training law `(1 − A)·P₀ + Σ_j α_j·P*_j` with `A = Σ_j α_j` and `P*_j` the law of
//! `(g_j(x), y*_j)`, `x ∼ P₀`. For collective `i` and a learner Bayes-optimal for some law within
//! TV ε of the mixture:
//!
//! `S_i ≥ 1 − [ (1 − A)·Δ_i·ξ_i + Σ_{j ≠ i, y*_j ≠ y*_i} α_j·ω_{ji} ] / α_i − 2ε/α_i`
//!
//! where `ω_{ji} = P_{x∼P₀}(g_j(x) ∈ signal set of i)` is the overlap of collective j's planted
//! points with i's signal set. Collectives with the same target never hurt (dropped: lower bound).

use super::error::{check_closed, check_open_closed, BoundError, Result};
use super::hardt::Suboptimality;
use super::{BoundKind, BoundValue};
use serde::{Deserialize, Serialize};

/// One collective in the mixture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collective {
    /// Its fraction α_j of the training data, in (0, 1].
    pub alpha: f64,
    /// Its target class y*_j.
    pub target: usize,
    /// Δ_j: suboptimality gap of y*_j under P₀ on its own signal set, in [0, 1].
    pub delta_gap: f64,
    /// ξ_j = P₀(g_j(X)): clean mass on its own signal set, in [0, 1].
    pub xi: f64,
}

/// Assumptions of the mixture bounds.
pub const MULTI_ASSUMPTIONS: &str = "Training law (1−Σα_j)P₀ + Σ α_j P*_j (every collective's members drawn from P₀, each planting (g_j(x), y*_j)); \
learner Bayes-optimal (or within total variation ε of it, giving the 2ε/α_i term); ω_ji = P₀(g_j(X) ∈ g_i(X)) overlap masses \
and Δ_i, ξ_i are population quantities; success of i measured on g_i(x), x ∼ P₀. Competing mass is bounded as if all \
other collectives with a different target agreed on one label (worst case).";

/// Lower bound on collective `i`'s success among `collectives`; `overlap[j][i] = ω_{ji}`
/// (diagonal ignored). A square matrix of size `collectives.len()` is required.
pub fn multi_collective_bound(
    collectives: &[Collective],
    overlap: &[Vec<f64>],
    i: usize,
    sub: Suboptimality,
) -> Result<BoundValue> {
    let raw = multi_raw(collectives, overlap, i, &sub)?;
    let kind =
        if matches!(sub, Suboptimality::Absolute(_)) { BoundKind::Prediction } else { BoundKind::Guarantee };
    Ok(BoundValue::new(raw, kind, None, MULTI_ASSUMPTIONS))
}

fn multi_raw(collectives: &[Collective], overlap: &[Vec<f64>], i: usize, sub: &Suboptimality) -> Result<f64> {
    let m = collectives.len();
    if m == 0 {
        return Err(BoundError::Empty { name: "collectives" });
    }
    if i >= m {
        return Err(BoundError::InvalidParameter {
            name: "index",
            value: i as f64,
            expected: "an index into collectives",
        });
    }
    if overlap.len() != m {
        return Err(BoundError::LengthMismatch {
            a_name: "overlap",
            a: overlap.len(),
            b_name: "collectives",
            b: m,
        });
    }
    for row in overlap {
        if row.len() != m {
            return Err(BoundError::LengthMismatch {
                a_name: "overlap row",
                a: row.len(),
                b_name: "collectives",
                b: m,
            });
        }
        for &w in row {
            check_closed("overlap", w, 0.0, 1.0, "an overlap mass in [0, 1]")?;
        }
    }
    let mut total = 0.0;
    for c in collectives {
        check_open_closed("alpha", c.alpha, 0.0, 1.0, "a collective fraction in (0, 1]")?;
        check_closed("delta_gap", c.delta_gap, 0.0, 1.0, "a suboptimality gap Δ in [0, 1]")?;
        check_closed("xi", c.xi, 0.0, 1.0, "a signal-set mass ξ in [0, 1]")?;
        total += c.alpha;
    }
    if total > 1.0 + 1e-12 {
        return Err(BoundError::InvalidParameter {
            name: "alpha (sum over collectives)",
            value: total,
            expected: "a total fraction <= 1",
        });
    }
    sub.validate()?;
    let ci = collectives[i];
    let competing: f64 = collectives
        .iter()
        .enumerate()
        .filter(|&(j, c)| j != i && c.target != ci.target)
        .map(|(j, c)| c.alpha * overlap[j][i])
        .sum();
    let clean = (1.0 - total).max(0.0);
    Ok(1.0 - (clean * ci.delta_gap * ci.xi + competing) / ci.alpha - sub.penalty(ci.alpha))
}

/// Critical mass of collective `i` given the others fixed: the smallest α_i ∈ (0, 1 − Σ_{j≠i} α_j]
/// whose bound reaches `target`. Closed form (the bound is increasing in α_i):
/// `α_i* = [(1 − A₋ᵢ)Δ_iξ_i + Σ_conflicting α_jω_ji + 2ε] / (1 − S* + Δ_iξ_i)` (TV ε; with an
/// absolute term a replace `1 − S*` by `1 − a − S*` and drop 2ε). `None` if it does not fit.
pub fn multi_critical_mass(
    collectives: &[Collective],
    overlap: &[Vec<f64>],
    i: usize,
    target: f64,
    sub: Suboptimality,
) -> Result<Option<f64>> {
    check_open_closed("target", target, 0.0, 1.0, "a success rate in (0, 1]")?;
    // Validate everything once through the bound itself.
    multi_raw(collectives, overlap, i, &sub)?;
    let ci = collectives[i];
    let others: f64 = collectives.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, c)| c.alpha).sum();
    let competing: f64 = collectives
        .iter()
        .enumerate()
        .filter(|&(j, c)| j != i && c.target != ci.target)
        .map(|(j, c)| c.alpha * overlap[j][i])
        .sum();
    let dx = ci.delta_gap * ci.xi;
    let (num, den) = match sub {
        Suboptimality::None => ((1.0 - others) * dx + competing, 1.0 - target + dx),
        Suboptimality::TotalVariation(e) => ((1.0 - others) * dx + competing + 2.0 * e, 1.0 - target + dx),
        Suboptimality::Absolute(a) => ((1.0 - others) * dx + competing, 1.0 - a - target + dx),
    };
    if num == 0.0 && den >= 0.0 {
        return Ok(Some(0.0));
    }
    if den <= 0.0 {
        return Ok(None);
    }
    let a = num / den;
    Ok(if a <= 1.0 - others { Some(a) } else { None })
}

/// Coordination noise within one collective of size α (Karan et al. 2025's setting, our model):
/// a fraction `nu_wrong_label` of members plant the trigger with a wrong label, a fraction
/// `nu_wrong_trigger` plant a jittered trigger that misses the signal set (wasted, not harmful).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationNoise {
    /// Collective fraction α, in (0, 1].
    pub alpha: f64,
    /// Fraction ν_L of members who use a wrong label, in [0, 1].
    pub nu_wrong_label: f64,
    /// Fraction ν_T of members whose trigger misses the signal set, in [0, 1]; ν_L + ν_T ≤ 1.
    pub nu_wrong_trigger: f64,
    /// ω: fraction of the wrong-label members' planted points on the signal set (1 when they use
    /// the right trigger with the wrong label), in [0, 1].
    pub wrong_label_overlap: f64,
    /// Δ on the signal set, in [0, 1].
    pub delta_gap: f64,
    /// ξ = P₀(g(X)), in [0, 1].
    pub xi: f64,
}

/// Lower bound under coordination noise:
/// `S ≥ 1 − [(1−α)Δξ + α·ν_L·ω] / (α(1 − ν_L − ν_T)) − ε-term(α(1 − ν_L − ν_T))`.
/// It is the three-collective case of [`multi_collective_bound`] (coordinated part, wrong-label
/// part with a different target, jittered part with the same target) and reduces to Hardt's bound
/// at ν = 0.
pub fn noise_bound(n: &CoordinationNoise, sub: Suboptimality) -> Result<BoundValue> {
    let (cols, overlap) = noise_as_mixture(n)?;
    multi_collective_bound(&cols, &overlap, 0, sub)
}

/// The collective size α needed to reach `target` under coordination noise with fixed ν's
/// (bisection on [`noise_bound`], which is increasing in α).
pub fn noise_critical_mass(n: &CoordinationNoise, target: f64, sub: Suboptimality) -> Result<Option<f64>> {
    noise_as_mixture(n)?;
    super::critical_mass_by_bisection(target, 1e-9, &|a| {
        let m = CoordinationNoise { alpha: a, ..*n };
        Ok(noise_bound(&m, sub)?.value)
    })
}

fn noise_as_mixture(n: &CoordinationNoise) -> Result<(Vec<Collective>, Vec<Vec<f64>>)> {
    check_open_closed("alpha", n.alpha, 0.0, 1.0, "a collective fraction in (0, 1]")?;
    check_closed("nu_wrong_label", n.nu_wrong_label, 0.0, 1.0, "a fraction in [0, 1]")?;
    check_closed("nu_wrong_trigger", n.nu_wrong_trigger, 0.0, 1.0, "a fraction in [0, 1]")?;
    check_closed("wrong_label_overlap", n.wrong_label_overlap, 0.0, 1.0, "a fraction in [0, 1]")?;
    let good = 1.0 - n.nu_wrong_label - n.nu_wrong_trigger;
    if good.is_nan() || good <= 0.0 {
        return Err(BoundError::InvalidParameter {
            name: "nu_wrong_label + nu_wrong_trigger",
            value: n.nu_wrong_label + n.nu_wrong_trigger,
            expected: "a total noise fraction < 1 (some members must coordinate)",
        });
    }
    // Parts with zero size are dropped (a collective needs α > 0); target 0 = intended, 1 = wrong.
    let mut cols = vec![Collective { alpha: n.alpha * good, target: 0, delta_gap: n.delta_gap, xi: n.xi }];
    let mut overlap_to_main = vec![0.0];
    if n.nu_wrong_label > 0.0 {
        cols.push(Collective { alpha: n.alpha * n.nu_wrong_label, target: 1, delta_gap: 0.0, xi: 0.0 });
        overlap_to_main.push(n.wrong_label_overlap);
    }
    if n.nu_wrong_trigger > 0.0 {
        cols.push(Collective { alpha: n.alpha * n.nu_wrong_trigger, target: 0, delta_gap: 0.0, xi: 0.0 });
        overlap_to_main.push(0.0);
    }
    let m = cols.len();
    let overlap =
        (0..m).map(|j| (0..m).map(|i| if i == 0 { overlap_to_main[j] } else { 0.0 }).collect()).collect();
    Ok((cols, overlap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::hardt::hardt_bound;

    #[test]
    fn single_collective_is_hardt() {
        let c = [Collective { alpha: 0.1, target: 3, delta_gap: 0.5, xi: 0.02 }];
        let b = multi_collective_bound(&c, &[vec![0.0]], 0, Suboptimality::None).unwrap();
        let h = hardt_bound(0.1, 0.5, 0.02, Suboptimality::None).unwrap();
        assert!((b.value - h.value).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_two_collectives() {
        // i: α=0.1, Δξ = 0.5·0.02; j: α=0.05, other target, ω_ji = 0.5.
        // A = 0.15: 1 − [0.85·0.01 + 0.05·0.5]/0.1 = 1 − (0.0085 + 0.025)/0.1 = 1 − 0.335 = 0.665.
        let c = [
            Collective { alpha: 0.1, target: 1, delta_gap: 0.5, xi: 0.02 },
            Collective { alpha: 0.05, target: 2, delta_gap: 0.5, xi: 0.02 },
        ];
        let ov = vec![vec![0.0, 0.0], vec![0.5, 0.0]];
        let b = multi_collective_bound(&c, &ov, 0, Suboptimality::None).unwrap();
        assert!((b.value - 0.665).abs() < 1e-12, "{}", b.value);
        // Same target: j cannot hurt, only its mass leaves P₀: 1 − 0.85·0.01/0.1 = 0.915.
        let c2 = [c[0], Collective { target: 1, ..c[1] }];
        let b2 = multi_collective_bound(&c2, &ov, 0, Suboptimality::None).unwrap();
        assert!((b2.value - 0.915).abs() < 1e-12);
        // Critical mass inverts the bound.
        let a = multi_critical_mass(&c, &ov, 0, 0.665, Suboptimality::None).unwrap().unwrap();
        assert!((a - 0.1).abs() < 1e-12, "{a}");
    }

    #[test]
    fn noise_hand_computed_and_reduces_to_hardt() {
        let n = CoordinationNoise {
            alpha: 0.1,
            nu_wrong_label: 0.0,
            nu_wrong_trigger: 0.0,
            wrong_label_overlap: 1.0,
            delta_gap: 0.5,
            xi: 0.02,
        };
        let h = hardt_bound(0.1, 0.5, 0.02, Suboptimality::None).unwrap().value;
        assert!((noise_bound(&n, Suboptimality::None).unwrap().value - h).abs() < 1e-12);
        // ν_L = 0.1, ν_T = 0.1, ω = 1: 1 − [0.9·0.01 + 0.1·0.1·1]/(0.1·0.8) = 1 − 0.019/0.08 = 0.7625.
        let n = CoordinationNoise { nu_wrong_label: 0.1, nu_wrong_trigger: 0.1, ..n };
        let b = noise_bound(&n, Suboptimality::None).unwrap().value;
        assert!((b - 0.7625).abs() < 1e-12, "{b}");
        let a = noise_critical_mass(&n, 0.7625, Suboptimality::None).unwrap().unwrap();
        assert!((a - 0.1).abs() < 1e-6, "{a}");
    }

    #[test]
    fn errors_name_the_parameter() {
        let c = [
            Collective { alpha: 0.7, target: 1, delta_gap: 0.5, xi: 0.1 },
            Collective { alpha: 0.7, target: 2, delta_gap: 0.5, xi: 0.1 },
        ];
        let e =
            multi_collective_bound(&c, &[vec![0.0; 2], vec![0.0; 2]], 0, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("alpha"));
        let e = multi_collective_bound(&c[..1], &[vec![0.0; 2]], 0, Suboptimality::None).unwrap_err();
        assert!(e.to_string().contains("overlap"));
        let n = CoordinationNoise {
            alpha: 0.1,
            nu_wrong_label: 0.6,
            nu_wrong_trigger: 0.5,
            wrong_label_overlap: 1.0,
            delta_gap: 0.5,
            xi: 0.02,
        };
        assert!(noise_bound(&n, Suboptimality::None).unwrap_err().to_string().contains("nu_wrong"));
    }
}

//! The group-privacy ceiling: an upper bound on how far a collective of k records can raise the
//! expected success above the no-collective rate S₀, because the training is differentially
//! private. Derivation: `docs/bounds.md` §3.
//!
//! For any event E on the trained model and datasets D, D′ a group of m apart, an (ε′, δ_m(ε′))
//! group guarantee gives, in both directions,
//! `P_{D′}(E) ≤ e^{ε′}·P_D(E) + δ_m(ε′)` and `P_D(Eᶜ) ≤ e^{ε′}·P_{D′}(Eᶜ) + δ_m(ε′)`.
//! With E = "the model sends g(x) to y*" for one test point and averaging over test points:
//!
//! `E[S] ≤ min_{ε′} min{ e^{ε′}·S₀ + δ_m(ε′),  1 − e^{−ε′}·(1 − S₀ − δ_m(ε′)) }`, capped at 1.
//!
//! **Adjacency.** The accountant reports add/remove ε (Poisson-sampled DP-SGD). The collective
//! *substitutes* k of the N clean records, and S₀ is measured on the clean N records, so the two
//! datasets are k removals plus k additions apart: a group of m = 2k under add/remove (this tool's
//! default, [`Adjacency::AddRemove`]), applied either as one group of 2k or as two chained stages
//! of k (remove the originals, add the modified records; see [`ceiling_two_stage`]). Under a
//! replace-one guarantee ([`Adjacency::ReplaceOne`]) the substitution is a group of k — but only
//! if the (ε, δ) supplied is a replace-one guarantee, which the add/remove accountant does not give.
//! The tight DP-SGD group profile (`accountant::group`, Ganesh 2024) is add/remove: use it with
//! [`ceiling_two_stage`] only (remove k, add k); it must not be applied once as a replace-one
//! group of k, and the 2k-group profile must not be applied once either (it bounds D against
//! D ∪ G, and a substitution is not of that form). `crowdout bound ceiling --tight` refuses
//! `--adjacency replace-one`.

use super::error::{check_closed, check_nonneg, check_positive, BoundError, Result};
use super::{phi, phi_inv, BoundKind, BoundValue};
use serde::{Deserialize, Serialize};

/// Neighbouring relation of the (ε, δ) guarantee supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Adjacency {
    /// Add/remove one record (the accountant's relation for Poisson-sampled DP-SGD): a
    /// substitution of k records is a group of 2k.
    AddRemove,
    /// Replace one record: a substitution of k records is a group of k.
    ReplaceOne,
}

impl Adjacency {
    /// Group size m for a collective that substitutes `k` records.
    pub fn group_size(self, k: u64) -> u64 {
        match self {
            Adjacency::AddRemove => 2 * k,
            Adjacency::ReplaceOne => k,
        }
    }
}

/// Assumptions of the ceiling from a privacy profile.
pub const CEILING_ASSUMPTIONS: &str = "Training is (ε′, δ(ε′))-DP for the group that separates the with-collective and the clean dataset, \
in both directions (the profile supplied is the max over both). Bounds the EXPECTED success over the training randomness \
(not one run's success), against S₀ = the expected no-collective success on the same triggered test points with the clean N records. \
Default adjacency add/remove: the collective's substitution of k records is a group of 2k.";

/// Assumptions of the GDP variant.
pub const GDP_ASSUMPTIONS: &str = "Training treated as μ-GDP (for DP-SGD this is the central-limit approximation, not a guarantee); \
a group of m is mμ-GDP; bounds the expected success via Φ(Φ⁻¹(S₀) + mμ), which is concave in S₀ so averaging over test points is allowed.";

fn check_profile(profile: &[(f64, f64)]) -> Result<()> {
    if profile.is_empty() {
        return Err(BoundError::Empty { name: "profile" });
    }
    for &(e, d) in profile {
        if e.is_nan() || e < 0.0 {
            return Err(BoundError::InvalidParameter {
                name: "profile epsilon",
                value: e,
                expected: "ε >= 0 (may be +inf)",
            });
        }
        check_closed("profile delta", d, 0.0, 1.0, "δ in [0, 1]")?;
    }
    Ok(())
}

/// One (ε, δ) point's bound on a probability p′ given p: `min(1, e^ε p + δ, 1 − e^{−ε}(1 − p − δ))`.
fn one_point(p: f64, eps: f64, delta: f64) -> f64 {
    if delta >= 1.0 || !eps.is_finite() {
        return 1.0;
    }
    let up = eps.exp() * p + delta;
    let comp = 1.0 - (-eps).exp() * (1.0 - p - delta);
    let v = up.min(comp).min(1.0);
    if v.is_nan() {
        1.0
    } else {
        v.max(0.0)
    }
}

/// The single-stage map `p ↦ min over the profile of one_point`. Non-decreasing in p.
fn stage(p: f64, profile: &[(f64, f64)]) -> f64 {
    profile.iter().fold(1.0_f64, |acc, &(e, d)| acc.min(one_point(p, e, d)))
}

/// Ceiling from the privacy profile of the whole group (datasets m apart):
/// `E[S] ≤ min over (ε′, δ) of min{e^{ε′}S₀ + δ, 1 − e^{−ε′}(1 − S₀ − δ)}`, capped at 1.
pub fn ceiling_from_profile(s0: f64, group_profile: &[(f64, f64)]) -> Result<BoundValue> {
    check_closed("s0", s0, 0.0, 1.0, "a no-collective success rate in [0, 1]")?;
    check_profile(group_profile)?;
    Ok(BoundValue::new(stage(s0, group_profile), BoundKind::Guarantee, None, CEILING_ASSUMPTIONS))
}

/// The ε′ grid (61 log-spaced points, 0.01 … 50) on which a group privacy profile is evaluated for
/// the ceiling; the minimum over any grid is a valid bound, a finer one only tightens it.
pub fn default_eps_grid() -> Vec<f64> {
    (0..=60).map(|i| 10f64.powf(-2.0 + 3.7 * i as f64 / 60.0)).collect()
}

/// Ceiling from a curve ε′ ↦ δ(ε′) evaluated on `eps_grid` (the minimum over a grid is still a
/// valid upper bound; a finer grid only tightens it).
pub fn ceiling_from_curve(
    s0: f64,
    delta_of_eps: &dyn Fn(f64) -> f64,
    eps_grid: &[f64],
) -> Result<BoundValue> {
    let profile: Vec<(f64, f64)> = eps_grid.iter().map(|&e| (e, delta_of_eps(e))).collect();
    ceiling_from_profile(s0, &profile)
}

/// Two chained stages under add/remove: remove the k original records (D_clean → D_mid), then add
/// the k modified ones (D_mid → D_with). `profile_k` must hold for a group of k added or removed
/// records, in both directions. `E[S] ≤ c(c(S₀))` with c the single-stage map, which is
/// non-decreasing, so chaining is valid.
pub fn ceiling_two_stage(s0: f64, profile_k: &[(f64, f64)]) -> Result<BoundValue> {
    check_closed("s0", s0, 0.0, 1.0, "a no-collective success rate in [0, 1]")?;
    check_profile(profile_k)?;
    let mid = stage(s0, profile_k);
    Ok(BoundValue::new(stage(mid, profile_k), BoundKind::Guarantee, None, CEILING_ASSUMPTIONS))
}

/// Generic group conversion (Dwork & Roth 2014, Thm 2.2 chained): an (ε, δ)-DP mechanism is
/// `(mε, δ·(e^{mε} − 1)/(e^ε − 1))`-DP for groups of m (δ·m when ε = 0).
pub fn generic_group_point(eps: f64, delta: f64, m: u64) -> Result<(f64, f64)> {
    check_nonneg("epsilon", eps)?;
    check_closed("delta", delta, 0.0, 1.0, "δ in [0, 1]")?;
    let mf = m as f64;
    let dm = if eps == 0.0 { delta * mf } else { delta * (mf * eps).exp_m1() / eps.exp_m1() };
    Ok((mf * eps, if dm.is_nan() { 1.0 } else { dm.min(1.0) }))
}

/// Ceiling from a single per-record (ε, δ) guarantee via the generic group conversion, for a
/// collective substituting `k` records under `adjacency`. Under add/remove both the one-group-of-2k
/// and the two-stage-k forms are valid; the smaller is returned.
pub fn ceiling_generic(s0: f64, eps: f64, delta: f64, k: u64, adjacency: Adjacency) -> Result<BoundValue> {
    check_closed("s0", s0, 0.0, 1.0, "a no-collective success rate in [0, 1]")?;
    if k == 0 {
        // No collective: the with- and without-collective datasets coincide.
        return Ok(BoundValue::new(s0, BoundKind::Guarantee, None, CEILING_ASSUMPTIONS));
    }
    let m = adjacency.group_size(k);
    let whole = ceiling_from_profile(s0, &[generic_group_point(eps, delta, m)?])?;
    match adjacency {
        Adjacency::ReplaceOne => Ok(whole),
        Adjacency::AddRemove => {
            let two = ceiling_two_stage(s0, &[generic_group_point(eps, delta, k)?])?;
            Ok(if two.value < whole.value { two } else { whole })
        }
    }
}

/// GDP variant: under μ-GDP a group of m is mμ-GDP, and `E[S] ≤ Φ(Φ⁻¹(S₀) + mμ)`.
/// Labelled [`BoundKind::Approximate`]: DP-SGD is only approximately μ-GDP (CLT,
/// Bu–Dong–Long–Su 2020, μ ≈ q√T·√(e^{1/σ²} − 1)).
pub fn ceiling_gdp(s0: f64, mu: f64, m: u64) -> Result<BoundValue> {
    check_closed("s0", s0, 0.0, 1.0, "a no-collective success rate in [0, 1]")?;
    check_nonneg("mu", mu)?;
    let v = if s0 <= 0.0 {
        0.0
    } else if s0 >= 1.0 {
        1.0
    } else {
        phi(phi_inv(s0) + m as f64 * mu)
    };
    Ok(BoundValue::new(v, BoundKind::Approximate, None, GDP_ASSUMPTIONS))
}

/// The CLT μ of Poisson-subsampled Gaussian DP-SGD (Bu, Dong, Long, Su 2020):
/// `μ = q·√T·√(e^{1/σ²} − 1)`. Approximate.
pub fn gdp_mu_clt(q: f64, sigma: f64, steps: u64) -> Result<f64> {
    super::error::check_open_closed("q", q, 0.0, 1.0, "a sampling rate in (0, 1]")?;
    check_positive("sigma", sigma)?;
    Ok(q * (steps as f64).sqrt() * (1.0 / (sigma * sigma)).exp_m1().sqrt())
}

/// The smallest collective size k ≤ `max_k` whose ceiling reaches `target`: every collective with
/// fewer members has expected success below `target` — a privacy-side LOWER bound on the critical
/// mass. `ceiling(k)` must be non-decreasing in k (all ceilings here are). `None` if not reached.
pub fn min_group_for_target(
    target: f64,
    max_k: u64,
    ceiling: &dyn Fn(u64) -> Result<f64>,
) -> Result<Option<u64>> {
    check_closed("target", target, 0.0, 1.0, "a success rate in [0, 1]")?;
    if ceiling(max_k)? < target {
        return Ok(None);
    }
    // Invariant: ceiling(hi) >= target; ceiling(lo) < target or lo is below the range.
    let (mut lo, mut hi) = (0_u64, max_k);
    if ceiling(0)? >= target {
        return Ok(Some(0));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ceiling(mid)? >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_single_point() {
        // ε = ln 2, δ = 0.01, S₀ = 0.1: min(0.2 + 0.01, 1 − 0.5·(0.89)) = min(0.21, 0.555) = 0.21.
        let b = ceiling_from_profile(0.1, &[(2f64.ln(), 0.01)]).unwrap();
        assert!((b.value - 0.21).abs() < 1e-12);
        // S₀ = 0.8: min(1.61, 1 − 0.5·0.19 = 0.905) = 0.905 (the complementary form binds).
        let b = ceiling_from_profile(0.8, &[(2f64.ln(), 0.01)]).unwrap();
        assert!((b.value - 0.905).abs() < 1e-12);
    }

    #[test]
    fn generic_group_conversion() {
        // m = 3, ε = ln 2: (3 ln 2, δ·(8 − 1)/(2 − 1)) = (ln 8, 7δ).
        let (e, d) = generic_group_point(2f64.ln(), 1e-3, 3).unwrap();
        assert!((e - 8f64.ln()).abs() < 1e-12 && (d - 7e-3).abs() < 1e-15);
        let (e, d) = generic_group_point(0.0, 1e-3, 3).unwrap();
        assert_eq!((e, d), (0.0, 3e-3));
    }

    #[test]
    fn add_remove_uses_a_group_of_2k() {
        // ReplaceOne with k = 2 equals AddRemove with k = 1 (both m = 2), up to the two-stage min.
        let a = ceiling_generic(0.05, 0.5, 1e-5, 2, Adjacency::ReplaceOne).unwrap().value;
        let one_group =
            ceiling_from_profile(0.05, &[generic_group_point(0.5, 1e-5, 2).unwrap()]).unwrap().value;
        assert!((a - one_group).abs() < 1e-15);
        let b = ceiling_generic(0.05, 0.5, 1e-5, 1, Adjacency::AddRemove).unwrap().value;
        assert!(b <= one_group + 1e-15);
        // Here e^{2·0.5}·0.05 + δ(e−1)/(e^{0.5}−1) ≈ 0.13592 + 2.6487e-5.
        let expect = 1f64.exp() * 0.05 + 1e-5 * 1f64.exp_m1() / 0.5f64.exp_m1();
        assert!((one_group - expect).abs() < 1e-12, "{one_group} vs {expect}");
    }

    #[test]
    fn gdp_variant() {
        // S₀ = 0.5, mμ = 1: Φ(1) ≈ 0.841344746.
        let b = ceiling_gdp(0.5, 0.5, 2).unwrap();
        assert!((b.value - 0.841_344_746_068_543).abs() < 1e-9);
        assert_eq!(b.kind, BoundKind::Approximate);
        assert_eq!(ceiling_gdp(0.0, 3.0, 10).unwrap().value, 0.0);
    }

    #[test]
    fn min_group_search() {
        let f = |k: u64| ceiling_generic(0.01, 0.1, 1e-6, k, Adjacency::AddRemove).map(|b| b.value);
        let k = min_group_for_target(0.5, 10_000, &f).unwrap().unwrap();
        assert!(f(k).unwrap() >= 0.5 && f(k - 1).unwrap() < 0.5);
        assert_eq!(min_group_for_target(0.5, 3, &f).unwrap(), None);
    }

    #[test]
    fn bad_input() {
        assert!(ceiling_from_profile(1.2, &[(1.0, 0.0)]).unwrap_err().to_string().contains("s0"));
        assert!(ceiling_from_profile(0.2, &[]).unwrap_err().to_string().contains("profile"));
        assert!(generic_group_point(-1.0, 0.0, 2).unwrap_err().to_string().contains("epsilon"));
        assert!(ceiling_gdp(0.2, f64::NAN, 2).unwrap_err().to_string().contains("mu"));
    }
}

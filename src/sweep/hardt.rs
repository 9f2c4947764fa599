//! Hardt et al.'s diagnostics for one sweep cell (docs/bounds.md §1, §4): the signal uniqueness
//! ξ̂, the suboptimality gap Δ̂ from a calibrated clean model, the bound at the collective's own
//! composition (coordination noise as a mixture), and the implied suboptimality ε̂_TV.
//!
//! - **ξ̂** = share of clean training points within Euclidean distance τ of the signal set,
//!   ‖x − g(x)‖₂ ≤ τ. Defined for set-to-value triggers (patch, token), where g(x) is the nearest
//!   point of g(X) to x. For additive triggers (offset, grid) ‖x − g(x)‖ is the shift itself, not
//!   a distance to g(X): ξ̂ is then n/a and so is the bound — never a wrong 1.0.
//! - **Δ̂**: the derivation needs only ∫_F [P₀(f(x′)|x′) − P₀(y*|x′)] dP₀ ≤ ∫_{g(X)} [max_y P₀(y|x′) −
//!   P₀(y*|x′)] dP₀ = ξ·Δ̄, with Δ̄ the P₀-mean gap on the signal set (the integrand is ≥ 0), so
//!   Δ̄ ≤ sup-Δ may replace Δ. Δ̂ estimates Δ̄ by the mean gap of the arm's no-collective model on
//!   the clean training points counted in ξ̂, its softmax temperature-calibrated on the clean test
//!   set (Guo et al. 2017). An estimate: with it the bound is an estimate of the guarantee; with
//!   ξ̂ = 0 it is n/a (no clean point on the signal set) and Δ = 1 is used, which is immaterial
//!   there (Δ·ξ = 0).
//! - **ε̂_TV**: the smallest TV suboptimality ε with Hardt's bound (Δ̂, ξ̂, −2ε/α term) ≤ the
//!   measured success: how far from Bayes-optimal the trained model must be to explain it.

use tch::{Device, Kind, Tensor};

use crate::bounds::{hardt as hb, multi};
use crate::collective::{self, CollectiveSpec, Deviation, Trigger};
use crate::data::{Dataset, Split};
use crate::models::Model;

/// Tolerance τ of ξ̂ (Euclidean distance to the signal set, in input units).
pub const XI_TOLERANCE: f64 = 1e-3;

/// ξ̂ for set-to-value triggers; `None` (n/a) for additive ones.
pub fn xi_hat(train: &Dataset, trigger: &Trigger) -> Result<Option<f64>, String> {
    if trigger.is_additive() {
        return Ok(None);
    }
    collective::xi_relaxed(train, trigger, XI_TOLERANCE).map(Some).map_err(|e| e.to_string())
}

/// Logits of `model` on `x` as f64 on the CPU ([`crate::train::run::logits`]).
fn logits(model: &Model, x: &Tensor, device: Device) -> Tensor {
    crate::train::run::logits(model, x, device).to_kind(Kind::Double)
}

/// The temperature T minimising the clean test set's negative log-likelihood of softmax(z/T),
/// by golden-section search on ln T ∈ [ln 0.05, ln 20].
fn temperature(z: &Tensor, y: &Tensor) -> f64 {
    let nll = |lt: f64| -> f64 {
        let lp = (z / lt.exp()).log_softmax(-1, Kind::Double);
        -lp.gather(1, &y.unsqueeze(1), false).mean(Kind::Double).double_value(&[])
    };
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let c = b - g * (b - a);
        let d = a + g * (b - a);
        if nll(c) < nll(d) {
            b = d;
        } else {
            a = c;
        }
    }
    (0.5 * (a + b)).exp()
}

/// Δ̂: the calibrated clean model's mean gap max_y p(y|x) − p(y*|x) over the clean training points
/// on the signal set; `None` when there are none (ξ̂ = 0) or the trigger is additive.
pub fn delta_hat(
    clean: &Model,
    device: Device,
    split: &Split,
    spec: &CollectiveSpec,
) -> Result<Option<f64>, String> {
    if spec.trigger.is_additive() {
        return Ok(None);
    }
    let mask =
        collective::on_signal_set(&split.train, &spec.trigger, XI_TOLERANCE).map_err(|e| e.to_string())?;
    let idx = mask.nonzero().squeeze_dim(1);
    if idx.size()[0] == 0 {
        return Ok(None);
    }
    let t = temperature(&logits(clean, &split.test.x, device), &split.test.y);
    let p = (logits(clean, &split.train.x.index_select(0, &idx), device) / t).softmax(-1, Kind::Double);
    let gap = p.max_dim(1, false).0 - p.select(1, spec.target);
    Ok(Some(gap.mean(Kind::Double).double_value(&[])))
}

/// (ν_L, ν_T) of a collective's coordination noise at deviator share `nu`: wrong-target members
/// compete on the signal set (ω = 1); jittered and dropped-out members only remove mass.
fn noise_parts(spec: &CollectiveSpec, nu: f64) -> (f64, f64) {
    match spec.noise.as_ref().map(|n| n.kind) {
        Some(Deviation::WrongTarget) => (nu, 0.0),
        Some(_) => (0.0, nu),
        None => (0.0, 0.0),
    }
}

/// Hardt et al.'s bound at collective fraction `alpha` with deviator share `nu` (the
/// coordination-noise mixture of [`multi::noise_bound`]), gap `delta`, ξ, and TV term ε.
pub fn bound(
    spec: &CollectiveSpec,
    alpha: f64,
    nu: f64,
    delta: f64,
    xi: f64,
    eps: f64,
) -> Result<f64, String> {
    let (nu_l, nu_t) = noise_parts(spec, nu);
    let n = multi::CoordinationNoise {
        alpha,
        nu_wrong_label: nu_l,
        nu_wrong_trigger: nu_t,
        wrong_label_overlap: 1.0,
        delta_gap: delta,
        xi,
    };
    let sub = if eps > 0.0 { hb::Suboptimality::TotalVariation(eps) } else { hb::Suboptimality::None };
    multi::noise_bound(&n, sub).map(|b| b.value).map_err(|e| e.to_string())
}

/// ε̂_TV: the smallest ε with [`bound`] ≤ `success` (0 when the Bayes-optimal bound already holds),
/// by bisection on the non-increasing bound.
pub fn implied_tv(
    spec: &CollectiveSpec,
    alpha: f64,
    nu: f64,
    delta: f64,
    xi: f64,
    success: f64,
) -> Result<f64, String> {
    if bound(spec, alpha, nu, delta, xi, 0.0)? <= success {
        return Ok(0.0);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if bound(spec, alpha, nu, delta, xi, mid)? <= success {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn implied_tv_inverts_the_bound() {
        let spec =
            CollectiveSpec::from_str("trigger=patch:size=3:pos=br:value=1,target=0,alpha=0.1").unwrap();
        // ξ = 0: the Bayes-optimal bound is 1; the TV term 2ε/α must bring it down to the success.
        let e = implied_tv(&spec, 0.1, 0.0, 1.0, 0.0, 0.6).unwrap();
        assert!((e - 0.02).abs() < 1e-9, "{e}");
        assert!((bound(&spec, 0.1, 0.0, 1.0, 0.0, e).unwrap() - 0.6).abs() < 1e-9);
        assert_eq!(implied_tv(&spec, 0.1, 0.0, 1.0, 0.0, 1.0).unwrap(), 0.0);
    }

    #[test]
    fn temperature_recovers_a_known_scale() {
        // Logits z = 3·u where labels are drawn from softmax(u): the NLL-optimal temperature is ≈ 3.
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let n = 4000;
        let mut u = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let r: Vec<f64> = (0..3).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect();
            let e: Vec<f64> = r.iter().map(|v| v.exp()).collect();
            let s: f64 = e.iter().sum();
            let x: f64 = rng.random::<f64>() * s;
            let lab = if x < e[0] {
                0
            } else if x < e[0] + e[1] {
                1
            } else {
                2
            };
            u.extend(r);
            y.push(lab as i64);
        }
        let z = Tensor::from_slice(&u).reshape([n as i64, 3]) * 3.0;
        let t = temperature(&z, &Tensor::from_slice(&y));
        assert!((t - 3.0).abs() < 0.3, "{t}");
    }
}

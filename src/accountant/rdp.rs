//! Rényi DP of the Poisson-subsampled Gaussian mechanism and its conversion to (ε, δ).
//!
//! Per step, at order α > 1 (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the
//! Sampled Gaussian Mechanism", Sections 3.3–3.4):
//! RDP(α) = log A_α / (α − 1), A_α = E_{z∼N(0,σ²)}[((1−q) + q·e^{(2z−1)/(2σ²)})^α].
//! * integer α: A_α = Σ_{i=0}^{α} C(α,i) q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} (binomial expansion);
//! * fractional α: the two-sided series of MTZ 2019 Section 3.3, split at
//!   z₀ = σ² ln(1/q − 1) + ½, each term weighted by ½·erfc(·), summed until both terms < e^{−30};
//! * q = 1: RDP(α) = α/(2σ²) (the Gaussian mechanism).
//!
//! All sums run in log space ([`SignedLog`]); none overflows. The same algorithm as Opacus
//! (`opacus/accountants/analysis/rdp.py`), so results agree with it to floating-point accuracy.
//!
//! RDP composes additively over steps and over phases.
//! Conversion (Balle, Barthe, Gaboardi, Hsu, Sato 2020, "Hypothesis testing interpretations and
//! Rényi DP", Theorem 21; the formula Opacus and dp_accounting use):
//! ε = min_α [ RDP(α) + ln(1 − 1/α) − (ln δ + ln α)/(α − 1) ],
//! and inversely δ(ε) = min_α exp((α−1)(RDP(α) − ε + ln(1 − 1/α)) − ln α).

use super::event::Phase;
use super::special::{log_add, log_ndtr, SignedLog};

/// Opacus's `RDPAccountant.DEFAULT_ALPHAS`: `[1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))`.
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + x as f64 / 10.0).collect();
    v.extend((12..64).map(|a| a as f64));
    v
}

/// ln C(n, i) for integer n (exact enough: a sum of logs).
fn log_binom_int(n: u64, i: u64) -> f64 {
    let i = i.min(n - i);
    (0..i).map(|j| ((n - j) as f64).ln() - ((j + 1) as f64).ln()).sum()
}

/// log A_α for integer α ≥ 1 (binomial expansion), q ∈ (0,1), σ > 0.
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let lq = q.ln();
    let l1q = (-q).ln_1p();
    let s2 = 2.0 * sigma * sigma;
    let mut acc = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let fi = i as f64;
        let t = log_binom_int(alpha, i) + fi * lq + (alpha - i) as f64 * l1q + (fi * fi - fi) / s2;
        acc = log_add(acc, t);
    }
    acc
}

/// ln(½·erfc(x)) = ln Φ(−√2·x).
#[inline]
fn log_half_erfc(x: f64) -> f64 {
    log_ndtr(-x * std::f64::consts::SQRT_2)
}

/// log A_α for fractional α (MTZ 2019 Section 3.3, two-sided series), q ∈ (0,1), σ > 0.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let lq = q.ln();
    let l1q = (-q).ln_1p();
    let s2 = sigma * sigma;
    let z0 = s2 * (1.0 / q - 1.0).ln() + 0.5;
    let sq2s = std::f64::consts::SQRT_2 * sigma;
    let mut a0 = SignedLog::ZERO;
    let mut a1 = SignedLog::ZERO;
    // Generalised binomial coefficient C(α, i), kept as sign and ln|·|, by the recurrence
    // C(α, i+1) = C(α, i)·(α − i)/(i + 1).
    let mut coef_sign = 1.0;
    let mut log_coef = 0.0;
    let mut i: u64 = 0;
    loop {
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_coef + fi * lq + j * l1q;
        let log_t1 = log_coef + j * lq + fi * l1q;
        let log_e0 = log_half_erfc((fi - z0) / sq2s);
        let log_e1 = log_half_erfc((z0 - j) / sq2s);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * s2) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * s2) + log_e1;
        a0 = a0.add(coef_sign, log_s0);
        a1 = a1.add(coef_sign, log_s1);
        if log_s0.max(log_s1) < -30.0 || i > 100_000 {
            break;
        }
        let ratio = (alpha - fi) / (fi + 1.0);
        if ratio < 0.0 {
            coef_sign = -coef_sign;
        }
        log_coef += ratio.abs().ln();
        i += 1;
    }
    // A_α = A0 + A1 is positive; tiny negative round-off is reported as the magnitude's log.
    let total = a0.add(a1.sign, a1.log_abs);
    total.log_abs
}

/// log A_α of the Poisson-subsampled Gaussian (per step), α > 1.
/// q = 1 gives the Gaussian's α(α−1)/(2σ²); σ = 0 gives +∞ (for q > 0).
pub fn log_a(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha * (alpha - 1.0) / (2.0 * sigma * sigma);
    }
    if alpha.fract() == 0.0 && alpha < 1e15 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    }
}

/// RDP at order α of one step.
pub fn rdp_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    log_a(q, sigma, alpha) / (alpha - 1.0)
}

/// Total RDP of the phases at each order (composition: sum over steps and phases).
pub fn rdp_phases(phases: &[Phase], orders: &[f64]) -> Vec<f64> {
    orders.iter().map(|&a| phases.iter().map(|p| p.steps as f64 * rdp_step(p.q, p.sigma, a)).sum()).collect()
}

/// (ε, optimal order) from an RDP curve (Balle et al. 2020 conversion; Opacus's
/// `get_privacy_spent`): the first order attaining the minimum is reported. Returns
/// (+∞, None) when every order gives +∞ or NaN. A negative minimum (large δ) is reported as 0:
/// (ε', δ)-DP with ε' < 0 implies (0, δ)-DP, and a negative ε is meaningless to a reader.
pub fn rdp_to_epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, Option<f64>) {
    let ld = delta.ln();
    let mut best = f64::INFINITY;
    let mut best_order = None;
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = r - (ld + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln();
        if eps.is_nan() {
            continue;
        }
        if eps < best {
            best = eps;
            best_order = Some(a);
        }
    }
    (best.max(0.0), best_order)
}

/// δ(ε) from an RDP curve: the inverse of the same conversion, minimised over orders, capped at 1.
pub fn rdp_to_delta(orders: &[f64], rdp: &[f64], epsilon: f64) -> f64 {
    let mut best = 1.0_f64;
    for (&a, &r) in orders.iter().zip(rdp) {
        let log_delta = (a - 1.0) * (r - epsilon + ((a - 1.0) / a).ln()) - a.ln();
        if log_delta.is_nan() {
            continue;
        }
        best = best.min(log_delta.exp());
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_like_opacus() {
        let o = default_orders();
        assert_eq!(o.len(), 151);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 12.0);
        assert_eq!(o[150], 63.0);
    }

    #[test]
    fn integer_and_fractional_series_agree_near_integers() {
        // The fractional series at α = 3 + tiny must be close to the integer sum at α = 3.
        for &(q, s) in &[(0.01, 1.0), (0.1, 0.8), (0.004, 2.0)] {
            let i = log_a(q, s, 3.0);
            let f = log_a_frac(q, s, 3.0 + 1e-9);
            assert!(((i - f) / i).abs() < 1e-6, "q={q} s={s}: {i} vs {f}");
            let f3 = log_a_frac(q, s, 3.0);
            assert!(((i - f3) / i).abs() < 1e-9, "q={q} s={s}: {i} vs {f3}");
        }
    }

    #[test]
    fn q_one_is_gaussian() {
        assert_eq!(rdp_step(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert!(rdp_step(0.5, 0.0, 3.0).is_infinite());
    }
}

//! Gaussian DP summary (CLT approximation) of Poisson-subsampled DP-SGD.
//!
//! μ = q·sqrt(T·(e^{1/σ²} − 1)) (Bu, Dong, Long, Su 2020, "Deep learning with Gaussian differential
//! privacy", Theorem 5 / CLT; Opacus `GaussianAccountant` with `poisson=True`). An approximation,
//! not a bound: report it beside ε, never instead of it. (ε, δ) of μ-GDP (Dong, Roth, Su 2019,
//! Corollary 2.13): δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2).

use super::special::{log_ndtr, ndtr};

/// μ of the CLT approximation; +∞ when σ = 0.
pub fn gdp_mu(q: f64, sigma: f64, steps: u64) -> f64 {
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    q * (steps as f64).sqrt() * (1.0 / (sigma * sigma)).exp_m1().sqrt()
}

/// δ(ε) of μ-GDP.
pub fn gdp_delta(mu: f64, eps: f64) -> f64 {
    if mu == f64::INFINITY {
        return 1.0;
    }
    if mu <= 0.0 {
        return 0.0;
    }
    let d = ndtr(-eps / mu + mu / 2.0) - (eps + log_ndtr(-eps / mu - mu / 2.0)).exp();
    d.clamp(0.0, 1.0)
}

/// ε of μ-GDP at δ, by bisection (δ(ε) is decreasing). +∞ for μ = ∞; 0 when δ(0) ≤ δ.
pub fn gdp_epsilon(mu: f64, delta: f64) -> f64 {
    if mu == f64::INFINITY {
        return f64::INFINITY;
    }
    if gdp_delta(mu, 0.0) <= delta {
        return 0.0;
    }
    let mut hi = 1.0;
    while gdp_delta(mu, hi) > delta {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if gdp_delta(mu, mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    hi
}

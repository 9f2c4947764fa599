//! Numerical helpers in log space: log Φ, log-add/sub, the standard normal tails.
//!
//! Everything the accountant needs from special functions, written so that the far tails
//! (probabilities down to 1e-300 and below) keep their relative accuracy.

use libm::erfc;

const LN_2PI_HALF: f64 = 0.918_938_533_204_672_8; // ln(2π)/2

/// ln Φ(x), Φ the standard normal CDF, accurate in relative terms for all x.
///
/// Same piecewise scheme as SciPy's `log_ndtr`: `ln1p(-Φ(-x))` for large x, `ln(erfc(-x/√2)/2)`
/// in the middle, and for x < -30 the asymptotic series
/// Φ(x) = φ(x)/|x| · (1 − 1/x² + 3/x⁴ − 15/x⁶ + 105/x⁸ − …) (Abramowitz & Stegun 26.2.12).
pub fn log_ndtr(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    if x == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x > 6.0 {
        (-0.5 * erfc(x / std::f64::consts::SQRT_2)).ln_1p()
    } else if x > -30.0 {
        (0.5 * erfc(-x / std::f64::consts::SQRT_2)).ln()
    } else {
        let x2 = x * x;
        let inv = 1.0 / x2;
        // Terms of the asymptotic series; at |x| >= 30 six terms are far below f64 precision.
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..8 {
            term *= -((2 * k - 1) as f64) * inv;
            sum += term;
        }
        -0.5 * x2 - (-x).ln() - LN_2PI_HALF + sum.ln()
    }
}

/// Φ(x), the standard normal CDF.
pub fn ndtr(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// ln(e^a + e^b) without overflow.
#[inline]
pub fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// A signed number kept as (sign, ln|value|), for sums of terms with both signs in log space.
#[derive(Clone, Copy, Debug)]
pub struct SignedLog {
    /// +1.0 or -1.0 (the sign of an exact zero is +1).
    pub sign: f64,
    /// ln|value|; −∞ for zero.
    pub log_abs: f64,
}

impl SignedLog {
    pub const ZERO: SignedLog = SignedLog { sign: 1.0, log_abs: f64::NEG_INFINITY };

    /// Adds sign·e^{log_abs}.
    pub fn add(self, sign: f64, log_abs: f64) -> SignedLog {
        if log_abs == f64::NEG_INFINITY {
            return self;
        }
        if self.log_abs == f64::NEG_INFINITY {
            return SignedLog { sign, log_abs };
        }
        if self.sign == sign {
            return SignedLog { sign, log_abs: log_add(self.log_abs, log_abs) };
        }
        // Opposite signs: the larger magnitude keeps its sign.
        let (big, small, s) = if self.log_abs >= log_abs {
            (self.log_abs, log_abs, self.sign)
        } else {
            (log_abs, self.log_abs, sign)
        };
        if big == small {
            return SignedLog::ZERO;
        }
        SignedLog { sign: s, log_abs: big + (-(small - big).exp()).ln_1p() }
    }
}

/// z with ln Φ(−z) = `log_tail`, i.e. the upper-tail quantile for a tail probability e^{log_tail}
/// (`log_tail` < ln ½). Bisection on [`log_ndtr`]: used a few times per accountant call only.
pub fn upper_tail_quantile(log_tail: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while log_ndtr(-hi) > log_tail {
        hi *= 2.0;
        if hi > 1e6 {
            break;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if log_ndtr(-mid) > log_tail {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-14 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ndtr_matches_known_values() {
        // Reference values from SciPy 1.17 special.log_ndtr.
        let cases = [
            (0.0, -std::f64::consts::LN_2),
            (-1.0, -1.8410216450092634),
            (-10.0, -53.23128515051248),
            (-40.0, -804.6084420137539),
            (3.0, -0.0013508099647481925),
            (10.0, -7.61985302416047e-24),
        ];
        for (x, want) in cases {
            let got = log_ndtr(x);
            assert!(((got - want) / want).abs() < 1e-12, "log_ndtr({x}) = {got}, want {want}");
        }
        // Continuity across the switch to the asymptotic series.
        let a = log_ndtr(-30.0 + 1e-9);
        let b = log_ndtr(-30.0 - 1e-9);
        assert!(((a - b) / a).abs() < 1e-9);
    }

    #[test]
    fn signed_log_sums() {
        let s = SignedLog::ZERO.add(1.0, 3f64.ln()).add(-1.0, 1f64.ln());
        assert!((s.sign - 1.0).abs() < 1e-15 && (s.log_abs - 2f64.ln()).abs() < 1e-14);
        let s = s.add(-1.0, 5f64.ln());
        assert!(s.sign < 0.0 && (s.log_abs - 3f64.ln()).abs() < 1e-14);
    }

    #[test]
    fn tail_quantile_inverts() {
        let z = upper_tail_quantile(-50.0 + 0.5f64.ln());
        assert!((log_ndtr(-z) - (-50.0 + 0.5f64.ln())).abs() < 1e-9);
    }
}

//! Pure statistics over training seeds (no torch, no I/O): confidence intervals for the mean of a
//! variable in [0, 1] and the exact binomial tail, used by [`super::analysis`] to compare bounds
//! on the *expected* success E[S] (over the training randomness) with a handful of seeds.
//!
//! **Two intervals, and which one decides.** With ~10 seeds of a success rate in [0, 1] that can
//! be bimodal over seeds (near the critical mass half the trainings are steered; DESIGN.md), a
//! normal-theory interval has no guaranteed coverage. Verdicts that call a bound *violated* must
//! mean "bug", so they use a **distribution-free** interval whose coverage is ≥ 1 − α for every
//! law on [0, 1] and every n; the Student-t interval is reported beside it (and a t-only crossing
//! is reported as *tension*, never as a violation).
//!
//! * **Distribution-free (Anderson 1969, with the DKW–Massart band).** For i.i.d. X_i ∈ [0, 1]
//!   with CDF F and empirical CDF F_n, Massart (1990) gives, for ε with e^{−2nε²} ≤ ½,
//!   P(sup_x (F_n(x) − F(x)) > ε) ≤ e^{−2nε²} (one-sided DKW, tight constant). On the complement,
//!   F ≥ F_n − ε everywhere, and since E[X] = ∫₀¹ (1 − F(x)) dx,
//!
//!   E[X] ≤ U = ∫₀¹ (1 − max(0, F_n(x) − ε)) dx = 1 − Σ_{i=1}^{n} max(0, i/n − ε)·(x₍ᵢ₊₁₎ − x₍ᵢ₎),
//!
//!   with x₍₁₎ ≤ … ≤ x₍ₙ₎ the order statistics and x₍ₙ₊₁₎ = 1. With ε = √(ln(1/α)/(2n)) this is a
//!   one-sided (1 − α) upper bound; the lower bound is L(x) = 1 − U(1 − x). This is Anderson's
//!   bound (T. W. Anderson, "Confidence limits for the expected value of an arbitrary bounded
//!   random variable with a continuous distribution function", Bull. ISI 43, 1969; see also
//!   Learned-Miller & Thomas 2019, arXiv 1905.06208); it holds for discrete laws too because the
//!   DKW inequality does. It is never worse than Hoeffding's √(ln(1/α)/(2n)) half-width around
//!   the mean, and it adapts to data piled at one end. No bound valid for every law on [0, 1] can
//!   be much tighter with n seeds: if all n values are 0, a law with mass p at 1 produces that
//!   sample with probability (1 − p)ⁿ, so an upper bound below 1 − α^{1/n} (≈ 0.31 for n = 10,
//!   α = 2.5 %) would fail. That is the price of a verdict that means "bug".
//! * **Student-t.** mean ± t_{n−1, 1−α/2}·s/√n (s the sample standard deviation, n − 1
//!   denominator), clamped to [0, 1]. Exact only for normal data; reported for reference.
//!
//! **Binomial tail.** For a bound that holds per run with probability ≥ 1 − β, the number of
//! seeds (out of n, independent) that fall below it is stochastically at most Binomial(n, β), so
//! p = P(Bin(n, β) ≥ count) is a valid p-value; [`binomial_tail_ge`] computes it exactly.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Bad input to the statistics: the library never panics on data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("{what}: value {value} is not in [0, 1]")]
    OutOfRange { what: &'static str, value: f64 },
    #[error("{what}: {value} is not a valid probability level in (0, 1/2]")]
    Level { what: &'static str, value: f64 },
    #[error("{what}: no values")]
    Empty { what: &'static str },
}

/// Validates that every value is finite and in [0, 1].
fn check_unit(what: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    if xs.is_empty() {
        return Err(StatsError::Empty { what });
    }
    for &x in xs {
        if !(0.0..=1.0).contains(&x) {
            return Err(StatsError::OutOfRange { what, value: x });
        }
    }
    Ok(())
}

fn check_alpha(what: &'static str, alpha: f64) -> Result<(), StatsError> {
    // Massart's constant needs e^{−2nε²} ≤ ½, i.e. α ≤ ½.
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(StatsError::Level { what, value: alpha });
    }
    Ok(())
}

/// Sample mean.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (n − 1 denominator); `None` for n < 2.
pub fn sample_sd(xs: &[f64]) -> Option<f64> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (n - 1) as f64).sqrt())
}

/// One-sided (1 − α) **upper** confidence bound on E[X] for i.i.d. X ∈ [0, 1], valid for every law
/// (Anderson's bound with the one-sided DKW–Massart band; module docs).
pub fn anderson_upper(xs: &[f64], alpha: f64) -> Result<f64, StatsError> {
    check_unit("anderson_upper", xs)?;
    check_alpha("anderson_upper alpha", alpha)?;
    let n = xs.len();
    let eps = ((1.0 / alpha).ln() / (2.0 * n as f64)).sqrt();
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.push(1.0);
    let mut removed = 0.0;
    for i in 1..=n {
        let h = i as f64 / n as f64 - eps;
        if h > 0.0 {
            removed += h * (v[i] - v[i - 1]);
        }
    }
    Ok((1.0 - removed).clamp(0.0, 1.0))
}

/// One-sided (1 − α) **lower** confidence bound on E[X], X ∈ [0, 1]: `1 − anderson_upper(1 − x)`.
pub fn anderson_lower(xs: &[f64], alpha: f64) -> Result<f64, StatsError> {
    check_unit("anderson_lower", xs)?;
    let flipped: Vec<f64> = xs.iter().map(|x| 1.0 - x).collect();
    Ok((1.0 - anderson_upper(&flipped, alpha)?).clamp(0.0, 1.0))
}

/// Bernoulli relative entropy kl(p‖q) = p ln(p/q) + (1 − p) ln((1 − p)/(1 − q)), with 0 ln 0 = 0.
fn kl_bernoulli(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| {
        if a <= 0.0 {
            0.0
        } else if b <= 0.0 {
            f64::INFINITY
        } else {
            a * (a / b).ln()
        }
    };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// One-sided (1 − α) **upper** confidence bound on E[X] for i.i.d. X ∈ [0, 1], valid for every law:
/// the Chernoff–Hoeffding bound in relative-entropy form (Hoeffding 1963, Thm 1:
/// P(X̄ ≤ μ − t) ≤ exp(−n·kl(μ − t‖μ)) for independent variables in [0, 1] with mean μ), inverted:
/// U = max{μ ≥ x̄ : n·kl(x̄‖μ) ≤ ln(1/α)}. Near 0 it is far tighter than Anderson's bound (all-zero
/// samples give U = 1 − α^{1/n}, the exact Bernoulli limit the module docs name), while
/// Anderson's is tighter for spread-out data; [`summarize`] takes the smaller of the two, each at
/// half the level (Bonferroni).
pub fn kl_upper(xs: &[f64], alpha: f64) -> Result<f64, StatsError> {
    check_unit("kl_upper", xs)?;
    check_alpha("kl_upper alpha", alpha)?;
    let n = xs.len() as f64;
    let m = mean(xs).unwrap_or(0.0);
    let budget = (1.0 / alpha).ln() / n;
    let (mut lo, mut hi) = (m, 1.0_f64);
    if kl_bernoulli(m, hi) <= budget {
        return Ok(1.0);
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if kl_bernoulli(m, mid) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// One-sided (1 − α) **lower** confidence bound on E[X], X ∈ [0, 1]: `1 − kl_upper(1 − x)`.
pub fn kl_lower(xs: &[f64], alpha: f64) -> Result<f64, StatsError> {
    check_unit("kl_lower", xs)?;
    let flipped: Vec<f64> = xs.iter().map(|x| 1.0 - x).collect();
    Ok((1.0 - kl_upper(&flipped, alpha)?).clamp(0.0, 1.0))
}

/// Two-sided Student-t interval `mean ± t_{n−1,1−α/2}·s/√n`, clamped to [0, 1]; `None` for n < 2.
pub fn student_t_interval(xs: &[f64], alpha: f64) -> Result<Option<(f64, f64)>, StatsError> {
    check_unit("student_t_interval", xs)?;
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::Level { what: "student_t_interval alpha", value: alpha });
    }
    let (Some(m), Some(s)) = (mean(xs), sample_sd(xs)) else { return Ok(None) };
    let n = xs.len() as f64;
    let t = match StudentsT::new(0.0, 1.0, n - 1.0) {
        Ok(d) => d.inverse_cdf(1.0 - alpha / 2.0),
        Err(_) => return Ok(None),
    };
    let h = t * s / n.sqrt();
    Ok(Some(((m - h).max(0.0), (m + h).min(1.0))))
}

/// Exact P(Binomial(n, p) ≥ c), summed term by term in log space (0 ≤ p ≤ 1).
pub fn binomial_tail_ge(n: u64, p: f64, c: u64) -> Result<f64, StatsError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(StatsError::OutOfRange { what: "binomial_tail_ge p", value: p });
    }
    if c == 0 {
        return Ok(1.0);
    }
    if c > n {
        return Ok(0.0);
    }
    if p == 0.0 {
        return Ok(0.0);
    }
    if p == 1.0 {
        return Ok(1.0);
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // ln C(n, j) built incrementally from j = 0.
    let mut ln_c = 0.0;
    let mut total = 0.0;
    for j in 0..=n {
        if j > 0 {
            ln_c += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        if j >= c {
            total += (ln_c + j as f64 * lp + (n - j) as f64 * lq).exp();
        }
    }
    Ok(total.min(1.0))
}

/// Summary of one variable over seeds: mean, both intervals (two-sided level 1 − `alpha`, i.e.
/// each distribution-free end at α/2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedSummary {
    pub n: usize,
    pub mean: f64,
    pub sd: Option<f64>,
    /// Distribution-free lower / upper end, each one-sided at level α/2: the better of Anderson's
    /// and the Chernoff–Hoeffding (kl) bound, each at α/4 (Bonferroni).
    pub lo: f64,
    pub hi: f64,
    /// Student-t interval (`None` for n < 2).
    pub t_lo: Option<f64>,
    pub t_hi: Option<f64>,
}

/// Mean and both 1 − `alpha` intervals of values in [0, 1].
pub fn summarize(xs: &[f64], alpha: f64) -> Result<SeedSummary, StatsError> {
    check_unit("summarize", xs)?;
    let t = student_t_interval(xs, alpha)?;
    Ok(SeedSummary {
        n: xs.len(),
        mean: mean(xs).unwrap_or(f64::NAN),
        sd: sample_sd(xs),
        lo: anderson_lower(xs, alpha / 4.0)?.max(kl_lower(xs, alpha / 4.0)?),
        hi: anderson_upper(xs, alpha / 4.0)?.min(kl_upper(xs, alpha / 4.0)?),
        t_lo: t.map(|x| x.0),
        t_hi: t.map(|x| x.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn kl_bound_hand_values_and_validity() {
        // All zeros: U = 1 − α^{1/n} exactly (kl(0‖μ) = −ln(1 − μ)).
        for n in [10usize, 40] {
            let u = kl_upper(&vec![0.0; n], 0.025).unwrap();
            assert!((u - (1.0 - 0.025f64.powf(1.0 / n as f64))).abs() < 1e-9, "{n}: {u}");
        }
        // Coverage on a spiky law: X = 1 w.p. 0.05, else 0.01; n = 10, α = 0.05: the bound must be
        // below μ in at most ≈ 5% of 4000 draws.
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mu = 0.05 + 0.95 * 0.01;
        let mut below = 0;
        for _ in 0..4000 {
            let xs: Vec<f64> = (0..10).map(|_| if rng.random::<f64>() < 0.05 { 1.0 } else { 0.01 }).collect();
            below += (kl_upper(&xs, 0.05).unwrap() < mu) as u32;
        }
        assert!(below <= 260, "{below}/4000 below the mean");
        // Lower bound mirrors the upper.
        let l = kl_lower(&[1.0; 10], 0.025).unwrap();
        assert!((l - 0.025f64.powf(0.1)).abs() < 1e-9);
    }

    #[test]
    fn anderson_hand_computed() {
        // n = 4, α = e^{-2} → ε = √(2/8) = 0.5. Sorted 0, 0.2, 0.4, 1:
        // U = 1 − [max(0,.25−.5)(.2) + max(0,.5−.5)(.2) + (.75−.5)(.6) + (1−.5)(0)] = 1 − 0.15 = 0.85.
        let a = (-2.0f64).exp();
        let u = anderson_upper(&[0.4, 0.0, 1.0, 0.2], a).unwrap();
        assert!((u - 0.85).abs() < 1e-12, "{u}");
        // All zeros: U = 1 − (1 − ε)·1 = ε (the Hoeffding half-width), L = 0.
        let z = [0.0; 8];
        let eps = ((1.0 / 0.025f64).ln() / 16.0).sqrt();
        assert!((anderson_upper(&z, 0.025).unwrap() - eps).abs() < 1e-12);
        assert_eq!(anderson_lower(&z, 0.025).unwrap(), 0.0);
        // Never tighter than the intrinsic limit 1 − α^{1/n} for all-zero data (module docs).
        assert!(anderson_upper(&[0.0; 10], 0.025).unwrap() >= 1.0 - 0.025f64.powf(0.1));
    }

    #[test]
    fn intervals_bracket_the_mean_and_are_ordered() {
        let xs = [0.1, 0.9, 0.15, 0.85, 0.2, 0.8, 0.5, 0.55, 0.45, 0.6];
        let s = summarize(&xs, 0.05).unwrap();
        assert!(s.lo <= s.mean && s.mean <= s.hi);
        let (tl, th) = (s.t_lo.unwrap(), s.t_hi.unwrap());
        assert!(tl <= s.mean && s.mean <= th);
        // The distribution-free interval is the wider one here.
        assert!(s.lo <= tl && th <= s.hi, "{s:?}");
        // t interval by hand: mean 0.51, t_{9,0.975} = 2.2621571628.
        let sd = sample_sd(&xs).unwrap();
        let h = 2.262_157_162_8 * sd / 10f64.sqrt();
        assert!((th - (0.51 + h)).abs() < 1e-8 && (tl - (0.51 - h)).abs() < 1e-8);
    }

    /// Coverage sanity: over 2000 simulated experiments of n = 10 draws from a bimodal law on
    /// [0, 1] (the seed-level behaviour near the critical mass) and from a law piled near 0, the
    /// distribution-free one-sided bounds miss E[X] at most at their nominal rate (plus Monte Carlo
    /// slack), while the t interval is allowed to under-cover.
    #[test]
    fn distribution_free_coverage() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        type Law = (&'static str, f64, Box<dyn Fn(&mut ChaCha20Rng) -> f64>);
        let laws: [Law; 2] = [
            (
                "bimodal",
                0.3 * 0.95 + 0.7 * 0.02,
                Box::new(|r: &mut ChaCha20Rng| if r.random::<f64>() < 0.3 { 0.95 } else { 0.02 }),
            ),
            (
                "rare spike",
                0.05 * 1.0 + 0.95 * 0.01,
                Box::new(|r: &mut ChaCha20Rng| if r.random::<f64>() < 0.05 { 1.0 } else { 0.01 }),
            ),
        ];
        for (name, mu, draw) in laws.iter() {
            let (mut miss_hi, mut miss_lo, reps) = (0, 0, 2000);
            for _ in 0..reps {
                let xs: Vec<f64> = (0..10).map(|_| draw(&mut rng)).collect();
                if anderson_upper(&xs, 0.025).unwrap() < *mu {
                    miss_hi += 1;
                }
                if anderson_lower(&xs, 0.025).unwrap() > *mu {
                    miss_lo += 1;
                }
            }
            // Nominal 2.5 % each = 50 of 2000; allow Monte Carlo slack (sd ≈ 7).
            assert!(
                miss_hi <= 70 && miss_lo <= 70,
                "{name}: upper misses {miss_hi}, lower misses {miss_lo} of {reps}"
            );
        }
    }

    #[test]
    fn binomial_tail_exact_values() {
        // P(Bin(10, 0.05) ≥ 0) = 1; ≥ 1 = 1 − 0.95^10; ≥ 11 = 0.
        assert_eq!(binomial_tail_ge(10, 0.05, 0).unwrap(), 1.0);
        assert!((binomial_tail_ge(10, 0.05, 1).unwrap() - (1.0 - 0.95f64.powi(10))).abs() < 1e-14);
        assert_eq!(binomial_tail_ge(10, 0.05, 11).unwrap(), 0.0);
        // P(Bin(10, 0.05) ≥ 3) = 1 − Σ_{j<3} = 0.0115035574 (exact: 1 − 0.95^10 − 10·0.05·0.95^9 − 45·0.05²·0.95^8).
        let e = 1.0 - 0.95f64.powi(10) - 10.0 * 0.05 * 0.95f64.powi(9) - 45.0 * 0.0025 * 0.95f64.powi(8);
        assert!((binomial_tail_ge(10, 0.05, 3).unwrap() - e).abs() < 1e-14);
        assert!((e - 0.011_503_557_4).abs() < 1e-10, "{e}");
        // P(Bin(20, 0.5) ≥ 20) = 2^-20; P(Bin(4, 0.5) ≥ 2) = 11/16.
        assert!((binomial_tail_ge(20, 0.5, 20).unwrap() - 2f64.powi(-20)).abs() < 1e-18);
        assert!((binomial_tail_ge(4, 0.5, 2).unwrap() - 11.0 / 16.0).abs() < 1e-14);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(anderson_upper(&[], 0.05), Err(StatsError::Empty { .. })));
        assert!(matches!(anderson_upper(&[0.2, 1.5], 0.05), Err(StatsError::OutOfRange { .. })));
        assert!(matches!(anderson_upper(&[0.2, f64::NAN], 0.05), Err(StatsError::OutOfRange { .. })));
        assert!(matches!(anderson_upper(&[0.2], 0.7), Err(StatsError::Level { .. })));
        assert!(matches!(binomial_tail_ge(3, 1.2, 1), Err(StatsError::OutOfRange { .. })));
        assert_eq!(student_t_interval(&[0.3], 0.05).unwrap(), None);
    }
}

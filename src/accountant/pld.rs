//! Privacy loss distributions (PLD) for a "mixture of Gaussians vs Gaussian" dominating pair,
//! discretised pessimistically (connect-the-dots) and composed by FFT.
//!
//! **Pair.** P = Σ_j w_j·N(m_j, σ²) against Q = N(0, σ²), with m_j ≥ 0 in units of the clipping
//! norm C and Σ w_j = 1. One DP-SGD step with Poisson sampling rate q under add/remove-one
//! neighbouring is dominated by w = (1−q, q), m = (0, 1) ("remove": P vs Q; "add": Q vs P;
//! Mironov et al. 2019, Zhu, Dong, Wang 2022 "Optimal accounting of DP via characteristic
//! functions"). A group of k records gives w_j = Binomial(k, q)(j), m_j = j (see `group`).
//! The privacy loss of the remove direction, L(x) = ln Σ_j w_j exp((m_j x − m_j²/2)/σ²), is
//! increasing in x, so the hockey-stick divergence has the closed form
//! δ_remove(ε) = P(X > x_ε) − e^ε Q(X > x_ε),  δ_add(ε) = Q(X < x'_ε) − e^ε P(X < x'_ε),
//! with L(x_ε) = ε and L(x'_ε) = −ε (as dp_accounting's `MonotonePrivacyLoss`).
//!
//! **Discretisation.** Connect-the-dots (Doroshenko, Ghazi, Kamath, Kumar, Manurangsi 2022,
//! "Connect the Dots: Tighter Discrete Approximations of Privacy Loss Distributions", Algorithm 1,
//! fixed-gap form as in dp_accounting `create_pmf_pessimistic_connect_dots_fixed_gap`): on the grid
//! ε_i = iΔ covering the losses of x ∈ [−zσ, zσ + max m] (Φ(−z) = ½e^{−50}), the discrete PLD with
//! mass p_1 = 1 − δ_1 + (δ_2−δ_1)/(e^Δ−1), p_i = ((δ_{i+1}−δ_i) − e^Δ(δ_i−δ_{i−1}))/(e^Δ−1),
//! p_n = (δ_n−δ_{n−1})/(e^{−Δ}−1) and mass δ_n at +∞ has a hockey-stick curve that interpolates
//! δ(ε) linearly in e^ε between grid points; since δ is convex in e^ε this dominates the true
//! pair, so every ε reported is an upper bound (up to floating-point error).
//!
//! **Composition.** Discrete PLDs compose by convolution. T-fold self-composition is one FFT:
//! the transform is raised to the power T (polar form) and transformed back; phases multiply
//! their powered transforms. The FFT length covers the range where the composed mass lies,
//! bounded by a Chernoff bound at 40 orders (dp_accounting `compute_self_convolve_bounds`);
//! the mass outside (≤ τ = 1e−15) is added to the mass at +∞, keeping the result pessimistic.
//! If the composed range would need more than `max_fft_len` grid points, Δ is enlarged (still
//! an upper bound, only looser).

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

use super::error::AccountantError;
use super::special::{log_add, log_ndtr, ndtr, upper_tail_quantile};

/// Knobs of the PLD accountant. `Default` is the one source of truth for the defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PldOptions {
    /// Grid spacing Δ of the privacy loss (dp_accounting's `value_discretization_interval`).
    pub discretization: f64,
    /// Mass that may be cut from the composed tails (moved to +∞).
    pub tail_mass_truncation: f64,
    /// ln of the noise mass left outside the per-step x range (dp_accounting default −50).
    pub log_mass_truncation: f64,
    /// Largest FFT length; beyond it Δ is enlarged.
    pub max_fft_len: usize,
}

impl Default for PldOptions {
    fn default() -> Self {
        PldOptions {
            discretization: 1e-4,
            tail_mass_truncation: 1e-15,
            log_mass_truncation: -50.0,
            max_fft_len: 1 << 21,
        }
    }
}

/// The dominating pair P = Σ_j w_j N(m_j, σ²) vs Q = N(0, σ²) (σ > 0).
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureGaussian {
    /// (ln w_j, m_j) for components with non-negligible weight, means increasing.
    comps: Vec<(f64, f64)>,
    /// Weight of the component at mean 0 (w_0; 0 if none).
    w0: f64,
    /// 1 − w_0, computed without cancellation.
    w0c: f64,
    sigma: f64,
}

impl MixtureGaussian {
    /// General mixture from (weight, mean) pairs; means ≥ 0, weights ≥ 0 summing to 1.
    /// `one_minus_w0` is 1 − (weight at mean 0), passed separately for accuracy.
    pub fn new(weights_means: &[(f64, f64)], one_minus_w0: f64, sigma: f64) -> Result<Self, AccountantError> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(AccountantError::NoiseMultiplier(sigma));
        }
        let mut comps: Vec<(f64, f64)> = Vec::new();
        let mut w0 = 0.0;
        for &(w, m) in weights_means {
            if !(w >= 0.0 && m >= 0.0 && m.is_finite()) {
                return Err(AccountantError::Pld(format!("bad mixture component (weight {w}, mean {m})")));
            }
            if m == 0.0 {
                w0 += w;
            } else if w > 0.0 {
                comps.push((w.ln(), m));
            }
        }
        if comps.is_empty() {
            return Err(AccountantError::Pld("mixture has no component with a positive mean".into()));
        }
        comps.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(MixtureGaussian { comps, w0, w0c: one_minus_w0, sigma })
    }

    /// One step of the Poisson-subsampled Gaussian: (1−q)N(0,σ²) + qN(1,σ²) vs N(0,σ²).
    pub fn subsampled_gaussian(q: f64, sigma: f64) -> Result<Self, AccountantError> {
        Self::new(&[(1.0 - q, 0.0), (q, 1.0)], q, sigma)
    }

    /// Group of k records: Σ_j Binomial(k,q)(j)·N(j, σ²) vs N(0, σ²).
    pub fn group(k: u64, q: f64, sigma: f64) -> Result<Self, AccountantError> {
        let lq = q.ln();
        let l1q = (-q).ln_1p();
        let mut wm = Vec::with_capacity(k as usize + 1);
        let mut log_binom = 0.0;
        for j in 0..=k {
            if j > 0 {
                log_binom += ((k - j + 1) as f64).ln() - (j as f64).ln();
            }
            let lw = log_binom
                + j as f64 * lq
                + if q == 1.0 {
                    if j == k {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    }
                } else {
                    (k - j) as f64 * l1q
                };
            wm.push((lw.exp(), j as f64));
        }
        let one_minus_w0 = if q == 1.0 { 1.0 } else { -((k as f64) * l1q).exp_m1() };
        Self::new(&wm, one_minus_w0, sigma)
    }

    fn a(&self, m: f64) -> f64 {
        m / (self.sigma * self.sigma)
    }
    fn b(&self, m: f64) -> f64 {
        -m * m / (2.0 * self.sigma * self.sigma)
    }

    /// g(x) = ln Σ_{m_j>0} w_j exp((m_j x − m_j²/2)/σ²) (convex, increasing).
    fn g(&self, x: f64) -> f64 {
        let mut mx = f64::NEG_INFINITY;
        for &(lw, m) in &self.comps {
            mx = mx.max(lw + self.a(m) * x + self.b(m));
        }
        if mx == f64::NEG_INFINITY {
            return mx;
        }
        let s: f64 = self.comps.iter().map(|&(lw, m)| (lw + self.a(m) * x + self.b(m) - mx).exp()).sum();
        mx + s.ln()
    }

    /// Privacy loss of the remove direction, L(x) = ln(w_0 + e^{g(x)}).
    pub fn loss(&self, x: f64) -> f64 {
        if self.w0 > 0.0 {
            log_add(self.w0.ln(), self.g(x))
        } else {
            self.g(x)
        }
    }

    /// Solves g(x) = t (Newton from the right; exact for one component).
    fn g_inverse(&self, t: f64) -> f64 {
        if self.comps.len() == 1 {
            let (lw, m) = self.comps[0];
            return (t - lw - self.b(m)) / self.a(m);
        }
        // Each term alone is a lower bound of g: start at the smallest x where some term reaches t.
        let mut x =
            self.comps.iter().map(|&(lw, m)| (t - lw - self.b(m)) / self.a(m)).fold(f64::INFINITY, f64::min);
        for _ in 0..200 {
            let mut mx = f64::NEG_INFINITY;
            for &(lw, m) in &self.comps {
                mx = mx.max(lw + self.a(m) * x + self.b(m));
            }
            let (mut s, mut ds) = (0.0, 0.0);
            for &(lw, m) in &self.comps {
                let e = (lw + self.a(m) * x + self.b(m) - mx).exp();
                s += e;
                ds += e * self.a(m);
            }
            let gx = mx + s.ln();
            let step = (gx - t) / (ds / s);
            x -= step;
            if step.is_nan() || step.abs() <= 1e-13 * (1.0 + x.abs()) {
                break;
            }
        }
        x
    }

    /// x with L(x) = ℓ, or None when ℓ ≤ inf L = ln w_0.
    fn loss_inverse(&self, l: f64) -> Option<f64> {
        // e^ℓ − w_0 = expm1(ℓ) + (1 − w_0), without cancellation.
        let r = l.exp_m1() + self.w0c;
        if self.w0 > 0.0 && r <= 0.0 {
            return None;
        }
        let t = if self.w0 > 0.0 { r.ln() } else { l };
        Some(self.g_inverse(t))
    }

    /// ln P(X > x).
    fn log_p_sf(&self, x: f64) -> f64 {
        let s = self.sigma;
        let mut acc = if self.w0 > 0.0 { self.w0.ln() + log_ndtr(-x / s) } else { f64::NEG_INFINITY };
        for &(lw, m) in &self.comps {
            acc = log_add(acc, lw + log_ndtr((m - x) / s));
        }
        acc
    }

    /// ln P(X < x).
    fn log_p_cdf(&self, x: f64) -> f64 {
        let s = self.sigma;
        let mut acc = if self.w0 > 0.0 { self.w0.ln() + log_ndtr(x / s) } else { f64::NEG_INFINITY };
        for &(lw, m) in &self.comps {
            acc = log_add(acc, lw + log_ndtr((x - m) / s));
        }
        acc
    }

    /// Whether plain (non-log) tail probabilities are safe at x and e^{±ε}: every standardised
    /// argument within ±30 (no underflow of Φ) and |ε| < 700 (no overflow of e^ε).
    fn plain_ok(&self, x: f64, eps: f64) -> bool {
        let s = self.sigma;
        let m_max = self.comps.last().map_or(0.0, |c| c.1);
        eps.abs() < 700.0 && (x / s).abs() < 30.0 && ((x - m_max) / s).abs() < 30.0
    }

    /// Hockey-stick divergence of the remove direction, H_{e^ε}(P ‖ Q).
    pub fn delta_remove(&self, eps: f64) -> f64 {
        match self.loss_inverse(eps) {
            None => -eps.exp_m1(),
            Some(x) => {
                let s = self.sigma;
                let d = if self.plain_ok(x, eps) {
                    let q0 = ndtr(-x / s);
                    let mut p = self.w0 * q0;
                    for &(lw, m) in &self.comps {
                        p += lw.exp() * ndtr((m - x) / s);
                    }
                    p - eps.exp() * q0
                } else {
                    self.log_p_sf(x).exp() - (eps + log_ndtr(-x / s)).exp()
                };
                d.clamp(0.0, 1.0)
            }
        }
    }

    /// Hockey-stick divergence of the add direction, H_{e^ε}(Q ‖ P).
    pub fn delta_add(&self, eps: f64) -> f64 {
        match self.loss_inverse(-eps) {
            None => 0.0,
            Some(x) => {
                let s = self.sigma;
                let d = if self.plain_ok(x, eps) {
                    let q0 = ndtr(x / s);
                    let mut p = self.w0 * q0;
                    for &(lw, m) in &self.comps {
                        p += lw.exp() * ndtr((x - m) / s);
                    }
                    q0 - eps.exp() * p
                } else {
                    ndtr(x / s) - (eps + self.log_p_cdf(x)).exp()
                };
                d.clamp(0.0, 1.0)
            }
        }
    }

    /// The x range [−zσ, zσ + max m] outside which the noise mass is below e^{log_mass}.
    fn x_range(&self, log_mass: f64) -> (f64, f64) {
        let z = upper_tail_quantile(log_mass + 0.5f64.ln());
        let mut m_max = 0.0_f64;
        for &(lw, m) in &self.comps {
            if lw > log_mass {
                m_max = m_max.max(m);
            }
        }
        (-z * self.sigma, z * self.sigma + m_max)
    }

    /// Loss ranges (remove, add) covered by the discretisation.
    fn eps_ranges(&self, log_mass: f64) -> ((f64, f64), (f64, f64)) {
        let (xl, xh) = self.x_range(log_mass);
        let (ll, lh) = (self.loss(xl), self.loss(xh));
        ((ll, lh), (-lh, -ll))
    }
}

/// A discrete PLD: mass `probs[i]` at loss (lower + i)·Δ, plus `inf_mass` at +∞.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscretePld {
    pub discretization: f64,
    pub lower: i64,
    pub probs: Vec<f64>,
    pub inf_mass: f64,
}

impl DiscretePld {
    /// Connect-the-dots PLD of a hockey-stick curve `delta` on the grid covering [lo, hi].
    pub fn connect_dots(delta: impl Fn(f64) -> f64, lo: f64, hi: f64, d: f64) -> DiscretePld {
        let il = (lo / d).floor() as i64;
        let ih = ((hi / d).ceil() as i64).max(il);
        let n = (ih - il + 1) as usize;
        let mut deltas: Vec<f64> = (0..n).map(|i| delta((il + i as i64) as f64 * d)).collect();
        // Hockey-stick curves are non-increasing; enforce it against round-off.
        for i in 1..n {
            if deltas[i] > deltas[i - 1] {
                deltas[i] = deltas[i - 1];
            }
        }
        if n == 1 {
            return DiscretePld {
                discretization: d,
                lower: il,
                probs: vec![1.0 - deltas[0]],
                inf_mass: deltas[0],
            };
        }
        let em1 = d.exp_m1();
        let ed = d.exp();
        let mut probs = vec![0.0; n];
        probs[0] = 1.0 - deltas[0] + (deltas[1] - deltas[0]) / em1;
        for i in 1..n - 1 {
            let diff_next = deltas[i + 1] - deltas[i];
            let diff_prev = deltas[i] - deltas[i - 1];
            probs[i] = (diff_next - diff_prev * ed) / em1;
        }
        probs[n - 1] = (deltas[n - 1] - deltas[n - 2]) / (-d).exp_m1();
        for p in probs.iter_mut() {
            if *p < 0.0 {
                *p = 0.0;
            }
        }
        DiscretePld { discretization: d, lower: il, probs, inf_mass: deltas[n - 1] }
    }

    /// δ(ε) = inf_mass + Σ_{ℓ > ε} p_ℓ (1 − e^{ε−ℓ}).
    pub fn delta_for_epsilon(&self, eps: f64) -> f64 {
        let d = self.discretization;
        let mut s = self.inf_mass;
        for (i, &p) in self.probs.iter().enumerate().rev() {
            let l = (self.lower + i as i64) as f64 * d;
            if l <= eps {
                break;
            }
            s += p * -(eps - l).exp_m1();
        }
        s.clamp(0.0, 1.0)
    }

    /// Smallest ε ≥ 0 with δ(ε) ≤ δ (dp_accounting `_get_epsilon_for_delta`, with the lower mass
    /// Σ p e^{−ℓ} kept in log space so that losses beyond 709 do not underflow).
    pub fn epsilon_for_delta(&self, delta: f64) -> f64 {
        if self.inf_mass > delta {
            return f64::INFINITY;
        }
        let d = self.discretization;
        let mut upper = self.inf_mass;
        let mut log_lower = f64::NEG_INFINITY;
        for (i, &p) in self.probs.iter().enumerate().rev() {
            let l = (self.lower + i as i64) as f64 * d;
            if upper > delta && log_lower > f64::NEG_INFINITY && (upper - delta).ln() - log_lower >= l {
                break;
            }
            upper += p;
            if p > 0.0 {
                log_lower = log_add(log_lower, p.ln() - l);
            }
        }
        if upper <= delta || log_lower == f64::NEG_INFINITY {
            return 0.0;
        }
        ((upper - delta).ln() - log_lower).max(0.0)
    }
}

/// Smallest n ≥ target whose prime factors are 2, 3, 5, 7 (fast for rustfft).
fn next_fast_len(target: usize) -> usize {
    let mut best = target.next_power_of_two();
    let mut p7 = 1usize;
    while p7 < best {
        let mut p5 = p7;
        while p5 < best {
            let mut p3 = p5;
            while p3 < best {
                let mut n = p3;
                while n < target {
                    n *= 2;
                }
                best = best.min(n);
                p3 *= 3;
            }
            p5 *= 5;
        }
        p7 *= 7;
    }
    best
}

/// Chernoff bounds [lo, hi] (absolute grid indices) outside which the composition of
/// `parts` (PLD, times) has mass at most τ (τ/2 per side).
fn chernoff_bounds(parts: &[(&DiscretePld, u64)], tau: f64) -> (i64, i64) {
    let n_max = parts.iter().map(|(p, _)| p.probs.len()).max().unwrap_or(1) as f64;
    let mut lo: i64 = parts.iter().map(|(p, t)| p.lower * *t as i64).sum();
    let mut hi: i64 = parts.iter().map(|(p, t)| (p.lower + p.probs.len() as i64 - 1) * *t as i64).sum();
    if tau <= 0.0 {
        return (lo, hi);
    }
    let log_two_over_tau = (2.0 / tau).ln();
    for k in (-20i32..=20).filter(|&k| k != 0) {
        let lam = k as f64 / n_max;
        let mut total = 0.0;
        for (p, t) in parts {
            // ln Σ_j p_j e^{λ j}, |λ j| ≤ 20, so no overflow; e^{λ j} by running products,
            // refreshed every 4096 terms (relative error ≲ 1e-12, plenty for a bound).
            let r = lam.exp();
            let mut w = 1.0;
            let mut s = 0.0;
            for (j, &pj) in p.probs.iter().enumerate() {
                if j % 4096 == 0 {
                    w = (lam * j as f64).exp();
                }
                s += pj * w;
                w *= r;
            }
            total += *t as f64 * (lam * p.lower as f64 + s.ln());
        }
        let bound = (total + log_two_over_tau) / lam;
        if !bound.is_finite() {
            continue;
        }
        if lam > 0.0 {
            hi = hi.min(bound.ceil() as i64);
        } else {
            lo = lo.max(bound.floor() as i64);
        }
    }
    (lo, hi.max(lo))
}

/// z^e by repeated squaring (≈ 2·log₂ e complex products, no transcendental functions).
#[inline]
fn cpow(mut b: Complex<f64>, mut e: u64) -> Complex<f64> {
    let mut r = Complex::new(1.0, 0.0);
    while e > 0 {
        if e & 1 == 1 {
            r *= b;
        }
        e >>= 1;
        if e > 0 {
            b *= b;
        }
    }
    r
}

/// Composition of `parts` (each PLD composed `times` times) on the index range [lo, hi]:
/// one real FFT per part (a length-N/2 complex FFT with the even/odd packing), the half
/// spectrum raised to the power T, multiplied across parts, one inverse real FFT.
fn compose(parts: &[(&DiscretePld, u64)], tau: f64, (lo, hi): (i64, i64)) -> DiscretePld {
    let d = parts[0].0.discretization;
    let out_len = (hi - lo + 1) as usize;
    let n_max = parts.iter().map(|(p, _)| p.probs.len()).max().unwrap_or(1);
    let half = next_fast_len(out_len.max(n_max).div_ceil(2).max(1));
    let n = 2 * half;
    let mut planner = FftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(half);
    let inv = planner.plan_fft_inverse(half);
    // Twiddles W^k = e^{−2πik/N}, k = 0..=half.
    let tw: Vec<Complex<f64>> = (0..=half)
        .map(|k| {
            let (s, c) = (-2.0 * std::f64::consts::PI * k as f64 / n as f64).sin_cos();
            Complex::new(c, s)
        })
        .collect();
    let mut acc = vec![Complex::new(1.0, 0.0); half + 1];
    let mut z = vec![Complex::new(0.0, 0.0); half];
    let mut base: i64 = 0;
    let mut log_keep = 0.0; // ln Π (1 − inf_i)^{T_i}
    for (p, t) in parts {
        base += p.lower * *t as i64;
        log_keep += *t as f64 * (-p.inf_mass).ln_1p();
        z.iter_mut().for_each(|c| *c = Complex::new(0.0, 0.0));
        for (i, &x) in p.probs.iter().enumerate() {
            if i % 2 == 0 {
                z[i / 2].re = x;
            } else {
                z[i / 2].im = x;
            }
        }
        fwd.process(&mut z);
        // |X|^T underflows below e^{-745}: skip those bins (set to 0).
        let r2_min = (-1490.0 / *t as f64).exp();
        for k in 0..=half {
            let zk = z[k % half];
            let zc = z[(half - k) % half].conj();
            let e = (zk + zc) * 0.5;
            let o = (zk - zc) * Complex::new(0.0, -0.5);
            let x = e + tw[k] * o;
            acc[k] = if x.norm_sqr() < r2_min { Complex::new(0.0, 0.0) } else { acc[k] * cpow(x, *t) };
        }
    }
    // Inverse real FFT of the Hermitian half spectrum acc[0..=half].
    for k in 0..half {
        let yk = acc[k];
        let yc = acc[half - k].conj();
        let e = (yk + yc) * 0.5;
        let o = (yk - yc) * 0.5 * tw[k].conj();
        z[k] = e + Complex::new(0.0, 1.0) * o;
    }
    inv.process(&mut z);
    let scale = 1.0 / half as f64;
    let at = |pos: usize| if pos.is_multiple_of(2) { z[pos / 2].re } else { z[pos / 2].im } * scale;
    let probs: Vec<f64> = (lo..=hi).map(|idx| at((idx - base).rem_euclid(n as i64) as usize)).collect();
    let inf_mass = (-log_keep.exp_m1() + tau).min(1.0);
    DiscretePld { discretization: d, lower: lo, probs, inf_mass }
}

/// Composed PLDs of both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposedPld {
    pub remove: DiscretePld,
    pub add: DiscretePld,
}

impl ComposedPld {
    /// δ(ε) = max of both directions.
    pub fn delta_for_epsilon(&self, eps: f64) -> f64 {
        self.remove.delta_for_epsilon(eps).max(self.add.delta_for_epsilon(eps))
    }
    /// ε(δ) = max of both directions.
    pub fn epsilon_for_delta(&self, delta: f64) -> f64 {
        self.remove.epsilon_for_delta(delta).max(self.add.epsilon_for_delta(delta))
    }
    /// Grid spacing actually used (≥ the requested one).
    pub fn discretization(&self) -> f64 {
        self.remove.discretization
    }
}

/// Largest grid spacing Δ the PLD accountant accepts after widening (see [`compose_pairs`]).
pub const MAX_DISCRETIZATION: f64 = 1.0;

/// Builds and composes the PLDs of `parts` = (pair, steps), both directions.
pub fn compose_pairs(
    parts: &[(MixtureGaussian, u64)],
    opts: &PldOptions,
) -> Result<ComposedPld, AccountantError> {
    if parts.is_empty() {
        return Err(AccountantError::NoPhases);
    }
    if !(opts.discretization > 0.0 && opts.discretization.is_finite()) {
        return Err(AccountantError::Pld(format!("discretization must be > 0, got {}", opts.discretization)));
    }
    let ranges: Vec<_> = parts.iter().map(|(m, _)| m.eps_ranges(opts.log_mass_truncation)).collect();
    let max_fft = opts.max_fft_len.max(1024) as f64;
    let mut d = opts.discretization;
    // Each per-step grid must fit comfortably in the FFT.
    for ((rl, rh), (al, ah)) in &ranges {
        let w = (rh - rl).max(ah - al);
        if !w.is_finite() {
            return Err(AccountantError::Pld("privacy loss range is not finite".into()));
        }
        d = d.max(2.0 * w / max_fft);
    }
    for _attempt in 0..8 {
        let build = |dir_remove: bool| -> Vec<DiscretePld> {
            parts
                .iter()
                .zip(&ranges)
                .map(|((m, _), (r, a))| {
                    if dir_remove {
                        DiscretePld::connect_dots(|e| m.delta_remove(e), r.0, r.1, d)
                    } else {
                        DiscretePld::connect_dots(|e| m.delta_add(e), a.0, a.1, d)
                    }
                })
                .collect()
        };
        let rem = build(true);
        let add = build(false);
        let rp: Vec<(&DiscretePld, u64)> = rem.iter().zip(parts).map(|(p, (_, t))| (p, *t)).collect();
        let ap: Vec<(&DiscretePld, u64)> = add.iter().zip(parts).map(|(p, (_, t))| (p, *t)).collect();
        // The composed grid indices (per-step index × T, summed over phases) must fit in i64;
        // beyond that (T around 10¹⁸) the arithmetic would wrap and report nonsense.
        let fits = |ps: &[(&DiscretePld, u64)]| {
            ps.iter()
                .map(|(p, t)| (p.lower.unsigned_abs() as f64 + p.probs.len() as f64) * *t as f64)
                .sum::<f64>()
                < 1e18
        };
        if !fits(&rp) || !fits(&ap) {
            let steps: u64 = parts.iter().map(|(_, t)| *t).fold(0, u64::saturating_add);
            return Err(AccountantError::Pld(format!(
                "T = {steps} steps is beyond what the PLD grid can index; ε is enormous here: use the RDP accountant"
            )));
        }
        let tau = opts.tail_mass_truncation;
        let (rl, rh) = chernoff_bounds(&rp, tau);
        let (al, ah) = chernoff_bounds(&ap, tau);
        let need = ((rh - rl + 1).max(ah - al + 1)) as f64;
        if need > max_fft {
            d *= need / max_fft * 1.05;
            continue;
        }
        if d > MAX_DISCRETIZATION {
            // So coarse a grid no longer resolves the loss distribution (e.g. σ → 0, or T in the
            // trillions): refuse rather than report a meaningless, possibly too small ε.
            return Err(AccountantError::Pld(format!(
                "the privacy loss range is too wide for the PLD accountant (grid spacing would be {d:.3e} > {MAX_DISCRETIZATION}); \
                 ε is enormous here: use the RDP accountant"
            )));
        }
        return Ok(ComposedPld { remove: compose(&rp, tau, (rl, rh)), add: compose(&ap, tau, (al, ah)) });
    }
    Err(AccountantError::Pld("could not fit the composed privacy loss range into the FFT".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astronomically_many_steps_are_an_error_not_a_zero_epsilon() {
        let m = MixtureGaussian::subsampled_gaussian(0.01, 1.0).unwrap();
        for t in [1_000_000_000_000_000_000u64, u64::MAX] {
            match compose_pairs(&[(m.clone(), t)], &PldOptions::default()) {
                Err(AccountantError::Pld(msg)) => assert!(msg.contains("use the RDP accountant"), "{msg}"),
                other => panic!("T = {t}: expected an error, got {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn next_fast_len_is_smooth() {
        assert_eq!(next_fast_len(1), 1);
        assert_eq!(next_fast_len(11), 12);
        assert_eq!(next_fast_len(1025), 1029);
        for n in [17usize, 1000, 123_457] {
            let m = next_fast_len(n);
            assert!(m >= n);
            let mut r = m;
            for p in [2, 3, 5, 7] {
                while r.is_multiple_of(p) {
                    r /= p;
                }
            }
            assert_eq!(r, 1);
        }
    }

    #[test]
    fn gaussian_hockey_stick_matches_closed_form() {
        // q = 1: both directions equal the Gaussian curve Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), μ = 1/σ.
        let s = 1.3;
        let m = MixtureGaussian::subsampled_gaussian(1.0, s).unwrap();
        let mu = 1.0 / s;
        for eps in [0.0, 0.5, 1.0, 3.0] {
            let want = ndtr(-eps / mu + mu / 2.0) - eps.exp() * ndtr(-eps / mu - mu / 2.0);
            assert!((m.delta_remove(eps) - want).abs() < 1e-14);
            assert!((m.delta_add(eps) - want).abs() < 1e-14);
        }
    }

    #[test]
    fn loss_inverse_roundtrip_for_groups() {
        let m = MixtureGaussian::group(5, 0.05, 0.9).unwrap();
        for l in [-0.2, 0.0, 0.3, 2.0, 10.0] {
            let x = m.loss_inverse(l).unwrap();
            assert!((m.loss(x) - l).abs() < 1e-10, "l={l} x={x} L={}", m.loss(x));
        }
        assert!(m.loss_inverse((1.0f64 - 0.05).powi(5).ln() - 1e-9).is_none());
    }

    #[test]
    fn connect_dots_single_step_dominates() {
        let m = MixtureGaussian::subsampled_gaussian(0.01, 1.0).unwrap();
        let pld = compose_pairs(&[(m.clone(), 1)], &PldOptions::default()).unwrap();
        for eps in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let exact = m.delta_remove(eps).max(m.delta_add(eps));
            let got = pld.delta_for_epsilon(eps);
            assert!(got >= exact - 1e-12, "eps={eps}: {got} < {exact}");
            assert!(got <= exact * 1.01 + 1e-12, "eps={eps}: {got} vs {exact}");
        }
    }
}

//! Pure-Rust reference computations for the convex DP-SGD bound on softmax regression: the
//! reference point Θ̂ (minimiser of the clipped or unclipped L2-regularised objective, by
//! deterministic full-batch gradient descent), margins, the constants the bound needs, and a small
//! noisy clipped SGD simulator used to check the bound across seeds.
//!
//! Layout: Θ is K×D row-major (`theta[c·D + j]`), every x̃ already has its bias coordinate 1
//! appended (D = d + 1). The per-sample loss is cross-entropy ℓ(Θ; x, y) = −log softmax(Θx̃)_y,
//! gradient `(p − e_y) x̃ᵀ`, Frobenius norm `‖p − e_y‖·‖x̃‖ ≤ √2‖x̃‖`.

use super::error::{check_positive, BoundError, Result};
use crate::rng::ChaCha20Rng;
use rand::RngExt;
use rand_distr::StandardNormal;

fn check_data(xs: &[Vec<f64>], ys: &[usize], classes: usize) -> Result<usize> {
    if xs.is_empty() {
        return Err(BoundError::Empty { name: "xs" });
    }
    if xs.len() != ys.len() {
        return Err(BoundError::LengthMismatch { a_name: "xs", a: xs.len(), b_name: "ys", b: ys.len() });
    }
    if classes < 2 {
        return Err(BoundError::InvalidParameter {
            name: "classes",
            value: classes as f64,
            expected: "K >= 2",
        });
    }
    let d = xs[0].len();
    if d == 0 {
        return Err(BoundError::Empty { name: "xs[0]" });
    }
    for x in xs {
        if x.len() != d {
            return Err(BoundError::LengthMismatch { a_name: "xs[i]", a: x.len(), b_name: "xs[0]", b: d });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(BoundError::InvalidParameter {
                name: "xs",
                value: f64::NAN,
                expected: "finite features",
            });
        }
    }
    if let Some(&y) = ys.iter().find(|&&y| y >= classes) {
        return Err(BoundError::InvalidParameter {
            name: "ys",
            value: y as f64,
            expected: "labels < classes",
        });
    }
    Ok(d)
}

/// Logits Θx̃.
pub fn logits(theta: &[f64], classes: usize, x: &[f64]) -> Vec<f64> {
    let d = x.len();
    (0..classes).map(|c| theta[c * d..(c + 1) * d].iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Adds `w·clip_C(∇ℓ(Θ; x, y))` to `acc` (no clipping when `clip` is None).
fn add_clipped_grad(
    acc: &mut [f64],
    theta: &[f64],
    classes: usize,
    x: &[f64],
    y: usize,
    clip: Option<f64>,
    w: f64,
) {
    let d = x.len();
    let mut v = softmax(&logits(theta, classes, x));
    v[y] -= 1.0;
    let vn = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let xn = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let norm = vn * xn;
    let scale = match clip {
        Some(c) if norm > c => c / norm,
        _ => 1.0,
    };
    for c in 0..classes {
        let f = w * scale * v[c];
        for j in 0..d {
            acc[c * d + j] += f * x[j];
        }
    }
}

/// `(1/N)Σ_i clip_C(∇ℓ_i(Θ)) + λΘ`: the gradient of the clipped objective (binary / K = 2, where
/// it is one) or the clipped mean map (K ≥ 3); the unclipped gradient when `clip` is None.
pub fn mean_gradient(
    theta: &[f64],
    xs: &[Vec<f64>],
    ys: &[usize],
    classes: usize,
    clip: Option<f64>,
    lambda: f64,
) -> Vec<f64> {
    let n = xs.len() as f64;
    let mut g: Vec<f64> = theta.iter().map(|t| lambda * t).collect();
    for (x, &y) in xs.iter().zip(ys) {
        add_clipped_grad(&mut g, theta, classes, x, y, clip, 1.0 / n);
    }
    g
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Smoothness bound of the softmax data term in Θ: `mean_i ‖x̃_i‖²/2` (‖diag(p) − ppᵀ‖ ≤ 1/2 and the
/// triangle inequality over samples). Also valid for the Huberised 2-class loss (ψ'' ≤ 1/4 times
/// ‖e₁ − e₂‖² = 2).
pub fn softmax_smoothness_bound(xs: &[Vec<f64>]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().map(|x| x.iter().map(|a| a * a).sum::<f64>()).sum::<f64>() / (2.0 * xs.len() as f64)
}

/// Upper bound on the mean clipping bias `sup_Θ ‖(1/N)Σ(∇ℓ_i − clip(∇ℓ_i))‖ ≤ (1/N)Σ(√2‖x̃_i‖ − C)_+`.
pub fn clip_bias_bound(xs: &[Vec<f64>], clip: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().map(|x| (std::f64::consts::SQRT_2 * norm(x) - clip).max(0.0)).sum::<f64>() / xs.len() as f64
}

/// ‖x̃_i‖ for each point.
pub fn x_norms(xs: &[Vec<f64>]) -> Vec<f64> {
    xs.iter().map(|x| norm(x)).collect()
}

/// Margins `min_{y≠y*}(θ_{y*} − θ_y)ᵀx̃` of each point toward `target`.
pub fn softmax_margins(theta: &[f64], classes: usize, xs: &[Vec<f64>], target: usize) -> Vec<f64> {
    xs.iter()
        .map(|x| {
            let z = logits(theta, classes, x);
            (0..classes).filter(|&c| c != target).map(|c| z[target] - z[c]).fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// Fraction of points whose logit for `target` strictly exceeds every other logit.
pub fn success_rate(theta: &[f64], classes: usize, xs: &[Vec<f64>], target: usize) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    softmax_margins(theta, classes, xs, target).iter().filter(|&&m| m > 0.0).count() as f64 / xs.len() as f64
}

/// A computed reference point Θ̃.
#[derive(Debug, Clone)]
pub struct SoftmaxFit {
    /// Θ̃, K×D row-major.
    pub theta: Vec<f64>,
    /// ‖G(Θ̃)‖ with G the (clipped) mean gradient plus λΘ̃.
    pub grad_norm: f64,
    /// `‖Θ̃ − Θ̂‖ ≤ grad_norm/λ` where G is λ-strongly monotone (no clipping, or K = 2); `None` for
    /// the K ≥ 3 clipped fixed point, where no such certificate is proven.
    pub error_bound: Option<f64>,
    /// Iterations used.
    pub iterations: usize,
}

/// Θ̃ by full-batch gradient descent from 0 with step `1/(smoothness + λ)` until `‖G(Θ̃)‖ ≤ tol`
/// or `max_iter` iterations. `clip = None`: the unclipped minimiser; `Some(C)`: the clipped
/// minimiser (K = 2) or clipped fixed point (K ≥ 3).
pub fn fit_softmax_reference(
    xs: &[Vec<f64>],
    ys: &[usize],
    classes: usize,
    lambda: f64,
    clip: Option<f64>,
    tol: f64,
    max_iter: usize,
) -> Result<SoftmaxFit> {
    let d = check_data(xs, ys, classes)?;
    check_positive("lambda", lambda)?;
    check_positive("tol", tol)?;
    if let Some(c) = clip {
        check_positive("clip", c)?;
    }
    let step = 1.0 / (softmax_smoothness_bound(xs) + lambda);
    let mut theta = vec![0.0; classes * d];
    let mut g = mean_gradient(&theta, xs, ys, classes, clip, lambda);
    let mut it = 0;
    while norm(&g) > tol && it < max_iter {
        for (t, gi) in theta.iter_mut().zip(&g) {
            *t -= step * gi;
        }
        g = mean_gradient(&theta, xs, ys, classes, clip, lambda);
        it += 1;
    }
    let gn = norm(&g);
    let certified = clip.is_none() || classes == 2;
    Ok(SoftmaxFit {
        theta,
        grad_norm: gn,
        error_bound: if certified { Some(gn / lambda) } else { None },
        iterations: it,
    })
}

/// Θ̃ for **2-class softmax** with clipping: the minimiser of the clipped objective, fitted in the
/// one vector w = θ₁ − θ₀ the loss depends on. By symmetry of the L2 term, the minimiser over Θ
/// has θ₀ = −θ₁, so Θ̂_C = (−ŵ/2, ŵ/2) with ŵ = argmin Ψ(w) + (λ/4)‖w‖², Ψ(w) = (1/N)Σψ_i(s_i wᵀx̃_i),
/// ψ′(u) = −min(σ(−u), C/(√2‖x̃_i‖)), s_i = +1 for label 1 and −1 for label 0. Ψ is convex and
/// (mean‖x̃‖²/4)-smooth, so Nesterov's method with adaptive restart (O'Donoghue & Candès 2015)
/// converges linearly at rate ≈ 1 − √(λ/(2·L_w)). The returned `grad_norm` is ‖∇F_C(Θ̃)‖ computed
/// afresh in Θ-space with [`mean_gradient`], so `error_bound = grad_norm/λ` is a certificate
/// (λ-strong convexity) whatever the iteration did. Stops when `error_bound ≤ tol` or after
/// `max_iter` iterations.
pub fn fit_two_class_reference(
    xs: &[Vec<f64>],
    ys: &[usize],
    lambda: f64,
    clip: f64,
    tol: f64,
    max_iter: usize,
) -> Result<SoftmaxFit> {
    let d = check_data(xs, ys, 2)?;
    check_positive("lambda", lambda)?;
    check_positive("clip", clip)?;
    check_positive("tol", tol)?;
    let n = xs.len() as f64;
    let caps: Vec<f64> =
        xs.iter().map(|x| clip / (std::f64::consts::SQRT_2 * norm(x)).max(f64::MIN_POSITIVE)).collect();
    let signs: Vec<f64> = ys.iter().map(|&y| if y == 1 { 1.0 } else { -1.0 }).collect();
    // ∇ of Ψ(w) + (λ/4)‖w‖² and the objective value (for restarts).
    // The data term over a range of rows, added into `g`.
    let partial = |rows: std::ops::Range<usize>, w: &[f64], g: &mut [f64]| {
        for i in rows {
            let (x, s) = (&xs[i], signs[i]);
            let f = -s * sigmoid(-s * dot(x, w)).min(caps[i]) / n;
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi += f * xi;
            }
        }
    };
    // Large fits run their two halves on two threads: in a sweep the other worker is often waiting
    // for this very reference (the privacy arms of one (α, seed) share it).
    let threads = if xs.len() * d >= 1 << 22 { 2 } else { 1 };
    let grad = |w: &[f64], g: &mut [f64]| {
        for (gi, wi) in g.iter_mut().zip(w) {
            *gi = 0.5 * lambda * wi;
        }
        if threads == 1 {
            partial(0..xs.len(), w, g);
            return;
        }
        let half = xs.len() / 2;
        let mut other = vec![0.0; d];
        std::thread::scope(|sc| {
            sc.spawn(|| partial(half..xs.len(), w, &mut other));
            partial(0..half, w, g);
        });
        for (gi, oi) in g.iter_mut().zip(&other) {
            *gi += oi;
        }
    };
    let lw = xs.iter().map(|x| x.iter().map(|a| a * a).sum::<f64>()).sum::<f64>() / (4.0 * n) + 0.5 * lambda;
    let step = 1.0 / lw;
    let kappa = lw / (0.5 * lambda);
    let mom = (kappa.sqrt() - 1.0) / (kappa.sqrt() + 1.0);
    let mut w = vec![0.0; d];
    let mut w_prev = w.clone();
    let mut y = w.clone();
    let mut g = vec![0.0; d];
    let mut it = 0;
    let to_theta =
        |w: &[f64]| -> Vec<f64> { w.iter().map(|v| -0.5 * v).chain(w.iter().map(|v| 0.5 * v)).collect() };
    loop {
        grad(&y, &mut g);
        // ‖∇_Θ F_C‖ = √2·‖∇_w‖ on the symmetric subspace; checked exactly at the end.
        if (std::f64::consts::SQRT_2 * norm(&g)) / lambda <= 0.5 * tol || it >= max_iter {
            w.clone_from(&y);
            break;
        }
        let next: Vec<f64> = y.iter().zip(&g).map(|(a, b)| a - step * b).collect();
        // Gradient restart: drop the momentum when it points uphill.
        let uphill: f64 = g.iter().zip(next.iter().zip(&w)).map(|(gi, (a, b))| gi * (a - b)).sum();
        w_prev.clone_from(&w);
        w = next;
        let m = if uphill > 0.0 { 0.0 } else { mom };
        y = w.iter().zip(&w_prev).map(|(a, b)| a + m * (a - b)).collect();
        it += 1;
    }
    let theta = to_theta(&w);
    let gn = norm(&mean_gradient(&theta, xs, ys, 2, Some(clip), lambda));
    Ok(SoftmaxFit { theta, grad_norm: gn, error_bound: Some(gn / lambda), iterations: it })
}

/// ⟨a, b⟩ with eight independent partial sums: a plain `sum()` is one chain of dependent adds
/// (the compiler may not reorder floating-point additions), which made the reference fit
/// latency-bound; eight chains let it vectorise. The order of additions differs from a
/// left-to-right sum by rounding only.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Settings of the simulated DP-SGD run.
#[derive(Debug, Clone, Copy)]
pub struct SimSettings {
    /// λ (added as λΘ outside the clip).
    pub lambda: f64,
    /// Learning rate η.
    pub lr: f64,
    /// Steps T.
    pub steps: u64,
    /// Noise multiplier σ.
    pub sigma: f64,
    /// Clipping norm C.
    pub clip: f64,
    /// Poisson sampling rate q; the normaliser is L = qN.
    pub q: f64,
}

/// Noisy clipped SGD exactly as the bound models it: Poisson sampling at rate q, flat clipping at
/// C, N(0, σ²C²) noise on the clipped sum, division by L = qN, plus λΘ; T steps from `theta0`.
/// Sampling and noise draw from the given ChaCha20 stream. Returns the last iterate.
pub fn simulate_dpsgd_softmax(
    xs: &[Vec<f64>],
    ys: &[usize],
    classes: usize,
    s: &SimSettings,
    theta0: &[f64],
    sampling: &mut ChaCha20Rng,
    noise: &mut ChaCha20Rng,
) -> Result<Vec<f64>> {
    let d = check_data(xs, ys, classes)?;
    if theta0.len() != classes * d {
        return Err(BoundError::LengthMismatch {
            a_name: "theta0",
            a: theta0.len(),
            b_name: "classes*dim",
            b: classes * d,
        });
    }
    check_positive("clip", s.clip)?;
    super::error::check_open_closed("q", s.q, 0.0, 1.0, "a sampling rate in (0, 1]")?;
    let l = s.q * xs.len() as f64;
    let mut theta = theta0.to_vec();
    let mut g = vec![0.0; theta.len()];
    for _ in 0..s.steps {
        g.iter_mut().for_each(|v| *v = 0.0);
        for (x, &y) in xs.iter().zip(ys) {
            if s.q >= 1.0 || sampling.random::<f64>() < s.q {
                add_clipped_grad(&mut g, &theta, classes, x, y, Some(s.clip), 1.0);
            }
        }
        for (gi, t) in g.iter_mut().zip(&theta) {
            let z: f64 = noise.sample(StandardNormal);
            *gi = (*gi + s.sigma * s.clip * z) / l + s.lambda * t;
        }
        for (t, gi) in theta.iter_mut().zip(&g) {
            *t -= s.lr * gi;
        }
    }
    Ok(theta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences_unclipped() {
        let xs = vec![vec![0.5, -1.0, 1.0], vec![2.0, 0.3, 1.0], vec![-1.0, -0.2, 1.0]];
        let ys = vec![0, 2, 1];
        let theta: Vec<f64> = (0..9).map(|i| 0.1 * i as f64 - 0.4).collect();
        let lam = 0.3;
        let f = |t: &[f64]| {
            let mut s = 0.0;
            for (x, &y) in xs.iter().zip(&ys) {
                let z = logits(t, 3, x);
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                s += lse - z[y];
            }
            s / xs.len() as f64 + 0.5 * lam * t.iter().map(|a| a * a).sum::<f64>()
        };
        let g = mean_gradient(&theta, &xs, &ys, 3, None, lam);
        for k in 0..9 {
            let mut tp = theta.clone();
            let mut tm = theta.clone();
            tp[k] += 1e-6;
            tm[k] -= 1e-6;
            let fd = (f(&tp) - f(&tm)) / 2e-6;
            assert!((fd - g[k]).abs() < 1e-6, "coord {k}: {fd} vs {}", g[k]);
        }
    }

    #[test]
    fn two_class_fit_matches_plain_gradient_descent() {
        let xs = vec![
            vec![1.0, 0.0, 1.0],
            vec![-1.0, 0.5, 1.0],
            vec![0.2, -1.0, 1.0],
            vec![-0.5, -0.5, 1.0],
            vec![3.0, 2.0, 1.0],
        ];
        let ys = vec![0, 1, 0, 1, 1];
        for clip in [0.3, 1.0, 10.0] {
            let slow = fit_softmax_reference(&xs, &ys, 2, 0.05, Some(clip), 1e-11, 1_000_000).unwrap();
            let fast = fit_two_class_reference(&xs, &ys, 0.05, clip, 1e-9, 100_000).unwrap();
            assert!(fast.error_bound.unwrap() <= 1e-9, "{:?}", fast.error_bound);
            let dist = slow.theta.iter().zip(&fast.theta).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
            assert!(dist < 1e-8, "clip {clip}: {dist}");
            assert!(fast.iterations < slow.iterations);
        }
    }

    #[test]
    fn two_class_fit_on_two_threads_is_certified() {
        // 5,000 × 840 ≥ 2²² entries: the threaded gradient. The certificate ‖∇F_C(Θ̃)‖/λ is
        // computed independently by `mean_gradient`, so it checks the threaded path.
        use rand::SeedableRng;
        let mut rng = crate::rng::ChaCha20Rng::seed_from_u64(5);
        let (n, d) = (5000, 840);
        let xs: Vec<Vec<f64>> = (0..n)
            .map(|_| (0..d).map(|j| if j + 1 == d { 1.0 } else { rng.random::<f64>() * 0.2 - 0.1 }).collect())
            .collect();
        let ys: Vec<usize> = (0..n).map(|i| usize::from(xs[i][0] + xs[i][1] > 0.0)).collect();
        let fit = fit_two_class_reference(&xs, &ys, 0.5, 0.3, 1e-7, 10_000).unwrap();
        assert!(
            fit.error_bound.unwrap() <= 1e-7,
            "{:?} after {} iterations",
            fit.error_bound,
            fit.iterations
        );
    }

    #[test]
    fn fit_converges_and_certifies() {
        let xs = vec![vec![1.0, 0.0, 1.0], vec![-1.0, 0.5, 1.0], vec![0.2, -1.0, 1.0], vec![-0.5, -0.5, 1.0]];
        let ys = vec![0, 1, 0, 1];
        let fit = fit_softmax_reference(&xs, &ys, 2, 0.1, Some(0.5), 1e-10, 100_000).unwrap();
        assert!(fit.grad_norm <= 1e-10);
        assert!(fit.error_bound.unwrap() <= 1e-9);
        let fit3 = fit_softmax_reference(&xs, &ys, 3, 0.1, Some(0.5), 1e-10, 100_000).unwrap();
        assert!(fit3.error_bound.is_none());
        assert!(fit_softmax_reference(&xs, &ys[..3], 2, 0.1, None, 1e-9, 10).is_err());
    }
}

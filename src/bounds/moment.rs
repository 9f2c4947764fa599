//! The convex DP-SGD guarantee by a **second-moment recursion** (docs/bounds.md §2.9): a bound on
//! the *expected* success E[S] over Poisson sampling and Gaussian noise, and a per-run bound that
//! holds with probability ≥ 1 − β. It replaces the worst-case sum of per-step norms of
//! [`super::dpsgd`] (which adds T noise vectors as if they were aligned) by their mean square,
//! where independent steps add in quadrature.
//!
//! **Setting** (as §2.1): binary logistic regression or 2-class softmax, whose clipped per-sample
//! gradients are the gradients of a convex Huberised loss, so DP-SGD is noisy SGD on
//! F_C(Θ) = (1/N)Σψ_i(Θ) + (λ/2)‖Θ‖², λ-strongly convex; η ≤ 2/(β_s + 2λ) makes the full-batch step
//! T(Θ) = Θ − η∇F_C(Θ) a ρ-contraction, ρ = 1 − ηλ (Baillon–Haddad). With Δ_t = Θ_t − Θ̂_C,
//!
//! ```text
//! Δ_{t+1} = [T(Θ_t) − T(Θ̂_C)] − η·w_t,   w_t = (1/L)Σ_i (b_i − q)·h_i(Θ_t) + (σC/L)·ζ_t,
//! E[‖Δ_{t+1}‖² | F_t] = ‖T(Θ_t) − T(Θ̂_C)‖² + η²·E[‖w_t‖² | F_t]      (E[w_t | F_t] = 0)
//!                     ≤ ρ²‖Δ_t‖² + η²·s²,
//! s² = (q(1−q)/L²)·Σ_i min(C, G_i)² + σ²C²D/L²                         (G_i ≥ sup_Θ ‖∇ℓ_i(Θ)‖)
//! E‖Δ_T‖² ≤ ρ^{2T}·‖Θ₀ − Θ̂_C‖² + η²s²·(1 − ρ^{2T})/(1 − ρ²)  =: V.
//! ```
//!
//! **Margins.** A triggered point x̃_i is classified y* when its margin at Θ_T is > 0, which holds
//! whenever ‖Δ_T‖ < a_i = m̃_i/(κ‖x̃_i‖) − e_opt (m̃_i: margin at the computed reference Θ̃,
//! e_opt ≥ ‖Θ̃ − Θ̂_C‖, κ = √2 for softmax, 1 for one logistic vector). Markov's inequality on ‖Δ_T‖²:
//!
//! ```text
//! E[S] ≥ (1/n)·Σ_i [a_i > 0]·(1 − min(1, V/a_i², W/a_i⁴))              (guarantee on E[S])
//! S    ≥ (1/n)·#{i : a_i > min(√(V/β), (W/β)^{1/4})}   w.p. ≥ 1 − β      (per run)
//! ```
//!
//! with W ≥ E‖Δ_T‖⁴ from the analogous fourth-moment recursion (`fourth_moment`): the noise's
//! D coordinates make ‖Δ_T‖² concentrate, so W ≈ V² and the fourth-moment tail W/a⁴ is far
//! smaller than V/a² where a² ≫ V.
//!
//! Pure Rust, no torch.

use serde::Serialize;

use super::dpsgd::{check_points, validate_sgd, ConvexModel, Sgd};
use super::error::{check_nonneg, BoundError, Result};
use super::{BoundKind, BoundValue};

/// Assumptions of the second-moment guarantee.
pub const MOMENT_ASSUMPTIONS: &str = "Binary logistic or 2-class softmax regression (bias appended) trained by DP-SGD with Poisson sampling at rate q, \
flat per-sample clipping at C, Gaussian noise N(0, σ²C²I) on the clipped sum, normaliser L = qN, L2 term λΘ outside the clip, plain SGD \
(no momentum) with constant step η ≤ 2/(smoothness + 2λ), T steps from a Θ₀ independent of sampling and noise, last iterate. Reference: \
the minimiser of the clipped objective on the exact training set, with certified optimisation error. `mean` bounds E[S] over sampling \
and noise; `high_prob` holds for one run with probability ≥ 1 − β. Float rounding of the trainer is not covered.";

/// Everything the second-moment bound needs, as numbers and slices.
#[derive(Debug, Clone, Copy)]
pub struct MomentInputs<'a> {
    /// Binary logistic or 2-class softmax (the clipped loss must be convex).
    pub model: ConvexModel,
    /// Margin of each triggered test point at the computed reference Θ̃ (label ≠ y*).
    pub margins: &'a [f64],
    /// ‖x̃_i‖ of the same points, bias coordinate included.
    pub x_norms: &'a [f64],
    /// ‖Θ₀ − Θ̃‖_F.
    pub theta0_dist: f64,
    /// e_opt ≥ ‖Θ̃ − Θ̂_C‖_F (e.g. ‖∇F_C(Θ̃)‖/λ).
    pub theta_hat_error: f64,
    /// λ > 0.
    pub lambda: f64,
    /// η ≤ 2/(smoothness + 2λ).
    pub lr: f64,
    /// T.
    pub steps: u64,
    /// σ ≥ 0.
    pub sigma: f64,
    /// C > 0.
    pub clip: f64,
    /// L = qN > 0.
    pub expected_batch: f64,
    /// q ∈ (0, 1].
    pub q: f64,
    /// D: number of parameters the noise is added to.
    pub dim: usize,
    /// Σ_i min(C, G_i)² over the N training records, G_i ≥ sup_Θ‖∇ℓ_i‖ (κ‖x̃_i‖); at most N·C².
    pub clipped_grad_sq_sum: f64,
    /// Smoothness bound β_s of the data term.
    pub smoothness: f64,
    /// β ∈ (0, 1) of the per-run bound.
    pub beta: f64,
}

/// The parts of V = the bound on E‖Θ_T − Θ̂_C‖².
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MomentParts {
    /// ρ^{2T}(‖Θ₀ − Θ̃‖ + e_opt)²: what remains of the initial distance.
    pub init: f64,
    /// η²·(q(1−q)/L²)Σmin(C, G_i)²·(1 − ρ^{2T})/(1 − ρ²): Poisson sampling.
    pub sampling: f64,
    /// η²·(σ²C²D/L²)·(1 − ρ^{2T})/(1 − ρ²): Gaussian noise.
    pub noise: f64,
    /// V = init + sampling + noise.
    pub total: f64,
    /// W ≥ E‖Θ_T − Θ̂_C‖⁴, from the fourth-moment recursion (module doc); with it Markov's
    /// inequality on ‖Δ_T‖⁴ gives the tail W/a⁴, tighter than V/a² far out.
    pub fourth: f64,
    /// e_opt, subtracted from every normalised margin.
    pub opt_error: f64,
    /// ρ^T.
    pub contraction: f64,
}

impl MomentParts {
    /// The largest of the three parts of V, by name: `init`, `sampling` or `noise`.
    pub fn dominant(&self) -> &'static str {
        if self.init >= self.sampling && self.init >= self.noise {
            "init"
        } else if self.sampling >= self.noise {
            "sampling"
        } else {
            "noise"
        }
    }
}

/// Both bounds with V and the reference point's own success.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MomentBound {
    /// Lower bound on E[S] over sampling and noise.
    pub mean: BoundValue,
    /// Lower bound on one run's S, holding with probability ≥ 1 − β.
    pub high_prob: BoundValue,
    /// V and its parts.
    pub parts: MomentParts,
    /// Fraction of triggered points with margin > 0 at Θ̃: the σ → 0, T → ∞ limit of success
    /// (up to the optimisation error), i.e. what clipping alone leaves.
    pub reference_success: f64,
    /// κ.
    pub margin_constant: f64,
}

/// The second-moment DP-SGD guarantee (module doc).
pub fn moment_bound(inp: &MomentInputs) -> Result<MomentBound> {
    if !matches!(inp.model, ConvexModel::BinaryLogistic | ConvexModel::Softmax { classes: 2 }) {
        return Err(BoundError::NotCovered(
            "the second-moment guarantee needs a convex clipped loss: binary logistic regression or 2-class softmax".into(),
        ));
    }
    check_points(inp.margins, inp.x_norms, "margins", "x_norms")?;
    check_nonneg("theta0_dist", inp.theta0_dist)?;
    check_nonneg("theta_hat_error", inp.theta_hat_error)?;
    check_nonneg("clipped_grad_sq_sum", inp.clipped_grad_sq_sum)?;
    check_nonneg("smoothness", inp.smoothness)?;
    validate_sgd(&Sgd {
        lambda: inp.lambda,
        lr: inp.lr,
        steps: inp.steps,
        sigma: inp.sigma,
        clip: inp.clip,
        l: inp.expected_batch,
        q: inp.q,
        dim: inp.dim,
        beta: inp.beta,
    })?;
    let max_lr = 2.0 / (inp.smoothness + 2.0 * inp.lambda);
    if inp.lr > max_lr {
        return Err(BoundError::StepTooLarge { lr: inp.lr, max: max_lr });
    }
    let parts = second_moment(inp);
    let kappa = inp.model.margin_constant();
    let n = inp.margins.len() as f64;
    let normalised: Vec<f64> = inp
        .margins
        .iter()
        .zip(inp.x_norms)
        .map(|(&m, &x)| {
            if x > 0.0 {
                m / (kappa * x) - parts.opt_error
            } else if m > 0.0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    // P(‖Δ_T‖ ≥ a) ≤ min(V/a², W/a⁴): Markov on the second and on the fourth power.
    let tail = |a: f64| (parts.total / (a * a)).min(parts.fourth / (a * a * a * a)).min(1.0);
    let mean: f64 = normalised.iter().map(|&a| if a > 0.0 { 1.0 - tail(a) } else { 0.0 }).sum::<f64>() / n;
    // The smallest radius whose tail bound is β, from either moment (both are fixed numbers).
    let r = (parts.total / inp.beta).sqrt().min((parts.fourth / inp.beta).sqrt().sqrt());
    let high_prob = normalised.iter().filter(|&&a| a > r).count() as f64 / n;
    let reference_success = inp.margins.iter().filter(|&&m| m > 0.0).count() as f64 / n;
    Ok(MomentBound {
        mean: BoundValue::new(mean, BoundKind::Guarantee, None, MOMENT_ASSUMPTIONS),
        high_prob: BoundValue::new(high_prob, BoundKind::Guarantee, Some(1.0 - inp.beta), MOMENT_ASSUMPTIONS),
        parts,
        reference_success,
        margin_constant: kappa,
    })
}

/// V and its parts (inputs already validated).
fn second_moment(inp: &MomentInputs) -> MomentParts {
    let rho = 1.0 - inp.lr * inp.lambda;
    let t = inp.steps as f64;
    let contraction = (t * rho.ln()).exp();
    let c2 = contraction * contraction;
    // η²(1 − ρ^{2T})/(1 − ρ²), with 1 − ρ² = ηλ(2 − ηλ).
    let geo = inp.lr * (1.0 - c2) / (inp.lambda * (2.0 - inp.lr * inp.lambda));
    let l2 = inp.expected_batch * inp.expected_batch;
    let sampling_var = if inp.q >= 1.0 { 0.0 } else { inp.q * (1.0 - inp.q) / l2 * inp.clipped_grad_sq_sum };
    let noise_var = inp.sigma * inp.sigma * inp.clip * inp.clip * inp.dim as f64 / l2;
    let d0 = inp.theta0_dist + inp.theta_hat_error;
    let init = c2 * d0 * d0;
    let sampling = geo * sampling_var;
    let noise = geo * noise_var;
    let fourth = fourth_moment(inp, rho, d0, sampling_var, noise_var);
    MomentParts {
        init,
        sampling,
        noise,
        total: init + sampling + noise,
        fourth,
        opt_error: inp.theta_hat_error,
        contraction,
    }
}

/// W ≥ E‖Δ_T‖⁴ by iterating the fourth-moment recursion (docs/bounds.md §2.9, step 6):
///
/// ```text
/// M1_{t+1} = ρ²M1_t + η²s²,        M1_0 = d0²
/// M2_{t+1} = ρ⁴M2_t + (4λ_w + 2s²)η²ρ²M1_t + 4η³ρ·m3·√M1_t + η⁴m4,   M2_0 = d0⁴
/// λ_w = s_samp² + σ²C²/L²  (bounds E⟨u, w⟩²/‖u‖²),   s² = s_samp² + σ²C²D/L²
/// E‖e‖⁴ ≤ q(1−q)·C²G2/L⁴ + 3s_samp⁴ =: e4,   m3 = e4^{3/4} ≥ E‖e‖³
/// m4 = e4 + (4 + 2D)(σC/L)²s_samp² + (σC/L)⁴D(D + 2) ≥ E‖w‖⁴
/// ```
///
/// with s_samp² = q(1−q)G2/L² and G2 = Σ_i min(C, κ‖x̃_i‖)² (Σ_i min(C, κ‖x̃_i‖)⁴ ≤ C²·G2).
fn fourth_moment(inp: &MomentInputs, rho: f64, d0: f64, s_samp2: f64, noise_var: f64) -> f64 {
    let (eta, l) = (inp.lr, inp.expected_batch);
    let g2 = inp.clipped_grad_sq_sum;
    let pq = if inp.q >= 1.0 { 0.0 } else { inp.q * (1.0 - inp.q) };
    let sc2 = (inp.sigma * inp.clip / l).powi(2); // (σC/L)²
    let dim = inp.dim as f64;
    let s2 = s_samp2 + noise_var;
    let lambda_w = s_samp2 + sc2;
    let e4 = pq * inp.clip * inp.clip * g2 / l.powi(4) + 3.0 * s_samp2 * s_samp2;
    let m3 = e4.powf(0.75);
    let m4 = e4 + (4.0 + 2.0 * dim) * sc2 * s_samp2 + sc2 * sc2 * dim * (dim + 2.0);
    let (mut m1, mut m2) = (d0 * d0, d0.powi(4));
    let (r2, r4) = (rho * rho, rho.powi(4));
    for _ in 0..inp.steps {
        let next2 = r4 * m2
            + (4.0 * lambda_w + 2.0 * s2) * eta * eta * r2 * m1
            + 4.0 * eta.powi(3) * rho * m3 * m1.sqrt()
            + eta.powi(4) * m4;
        m1 = r2 * m1 + eta * eta * s2;
        m2 = next2;
    }
    m2
}

/// Σ_i min(C, κ‖x̃_i‖)² over training points: the per-sample clipped gradient norms' worst case
/// (‖∇ℓ_i‖ ≤ κ‖x̃_i‖: ‖p − e_y‖ ≤ √2 for softmax, |σ| ≤ 1 for logistic).
pub fn clipped_grad_sq_sum(
    model: ConvexModel,
    train_x_norms: impl IntoIterator<Item = f64>,
    clip: f64,
) -> f64 {
    let kappa = model.grad_norm_factor();
    train_x_norms.into_iter().map(|x| (kappa * x).min(clip).powi(2)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(m: &'a [f64], x: &'a [f64]) -> MomentInputs<'a> {
        MomentInputs {
            model: ConvexModel::Softmax { classes: 2 },
            margins: m,
            x_norms: x,
            theta0_dist: 1.0,
            theta_hat_error: 0.0,
            lambda: 0.1,
            lr: 0.1,
            steps: 1000,
            sigma: 1.0,
            clip: 1.0,
            expected_batch: 100.0,
            q: 0.1,
            dim: 10,
            clipped_grad_sq_sum: 1000.0,
            smoothness: 1.0,
            beta: 0.05,
        }
    }

    #[test]
    fn hand_computed_second_moment() {
        let m = [10.0, 0.5, -1.0];
        let x = [1.0, 1.0, 1.0];
        let b = moment_bound(&base(&m, &x)).unwrap();
        let rho: f64 = 0.99;
        let c2 = rho.powi(2000);
        let geo = 0.01 * (1.0 - c2) / (1.0 - rho * rho);
        let samp = 0.1 * 0.9 / 1e4 * 1000.0;
        let noise = 10.0 / 1e4;
        let v = c2 + geo * (samp + noise);
        assert!((b.parts.total - v).abs() < 1e-12, "{} vs {v}", b.parts.total);
        assert!((b.parts.sampling - geo * samp).abs() < 1e-14);
        assert_eq!(b.parts.dominant(), "sampling");
        // a_i = m_i/√2.
        let k = std::f64::consts::SQRT_2;
        let a = [10.0 / k, 0.5 / k];
        let w = b.parts.fourth;
        assert!(w >= v * v, "E‖Δ‖⁴ ≥ (E‖Δ‖²)²: {w} vs {}", v * v);
        let tail = |a: f64| (v / (a * a)).min(w / a.powi(4)).min(1.0);
        let mean = ((1.0 - tail(a[0])) + (1.0 - tail(a[1]))) / 3.0;
        assert!((b.mean.value - mean).abs() < 1e-12);
        let r = (v / 0.05).sqrt().min((w / 0.05).powf(0.25));
        let hp = a.iter().filter(|&&ai| ai > r).count() as f64 / 3.0;
        assert_eq!(b.high_prob.value, hp);
        assert_eq!(b.high_prob.probability, Some(0.95));
        assert_eq!(b.mean.kind, BoundKind::Guarantee);
        assert!((b.reference_success - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn fourth_moment_by_hand() {
        let m = [1.0];
        let x = [1.0];
        // No noise, no sampling: W = ρ^{4T}·d0⁴ exactly.
        let mut i = base(&m, &x);
        i.sigma = 0.0;
        i.q = 1.0;
        let b = moment_bound(&i).unwrap();
        assert!((b.parts.fourth - 0.99f64.powi(4000)).abs() < 1e-15);
        // One step from d0 = 1 (η = λ = 0.1, ρ = 0.99, L = 100, q = 0.1, G2 = 1000, C = σ = 1, D = 10).
        let mut i = base(&m, &x);
        i.steps = 1;
        let b = moment_bound(&i).unwrap();
        let (eta, rho, l) = (0.1f64, 0.99f64, 100.0f64);
        let ss = 0.1 * 0.9 * 1000.0 / (l * l); // s_samp²
        let sc2 = 1.0 / (l * l); // (σC/L)²
        let s2 = ss + sc2 * 10.0;
        let lw = ss + sc2;
        let e4 = 0.1 * 0.9 * 1000.0 / l.powi(4) + 3.0 * ss * ss;
        let m4 = e4 + 24.0 * sc2 * ss + sc2 * sc2 * 120.0;
        let w1 = rho.powi(4)
            + (4.0 * lw + 2.0 * s2) * eta * eta * rho * rho
            + 4.0 * eta.powi(3) * rho * e4.powf(0.75)
            + eta.powi(4) * m4;
        assert!((b.parts.fourth - w1).abs() < 1e-15, "{} vs {w1}", b.parts.fourth);
    }

    #[test]
    fn q_one_has_no_sampling_term_and_k3_is_refused() {
        let m = [1.0];
        let x = [1.0];
        let mut i = base(&m, &x);
        i.q = 1.0;
        assert_eq!(moment_bound(&i).unwrap().parts.sampling, 0.0);
        i.model = ConvexModel::Softmax { classes: 3 };
        assert!(matches!(moment_bound(&i), Err(BoundError::NotCovered(_))));
    }

    #[test]
    fn errors_name_the_field() {
        let m = [1.0];
        let x = [1.0];
        let mut i = base(&m, &x);
        i.lr = 1.9;
        assert!(matches!(moment_bound(&i), Err(BoundError::StepTooLarge { .. })));
        let mut i = base(&m, &x);
        i.beta = 1.0;
        assert!(moment_bound(&i).unwrap_err().to_string().contains("beta"));
        let x2 = [1.0, 2.0];
        assert!(moment_bound(&base(&m, &x2)).unwrap_err().to_string().contains("x_norms"));
    }

    #[test]
    fn clipped_grad_sum_caps_at_c() {
        let s = clipped_grad_sq_sum(ConvexModel::Softmax { classes: 2 }, [0.1, 10.0], 1.0);
        assert!((s - (0.02 + 1.0)).abs() < 1e-12);
    }
}

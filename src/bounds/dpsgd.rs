//! A DP-SGD lower bound on collective success, in the spirit of Solanki et al. 2025 (arXiv
//! 2505.05707, Thm 2: `S_T ≥ −(1−ηB)^T‖θ₀−θ*‖ − σC·f₁·f₂`), derived for our own setting with every
//! constant computable. Derivation and assumptions: `docs/bounds.md` §2.
//!
//! **Radius.** With probability ≥ 1 − β over Poisson sampling and Gaussian noise, the DP-SGD
//! iterate after T steps is within `r` of the reference point Θ̂ (Frobenius norm):
//!
//! ```text
//! r = ρ^T·(‖Θ₀ − Θ̃‖ + e_opt) + ((1 − ρ^T)/λ)·[ noise + sampling + bias ] + e_opt,   ρ = 1 − ηλ
//! noise    = (σC/L)·(√D + √(2 ln(2T/β)))                       (Gaussian norm concentration)
//! sampling = C·[√(2(1−q)·ln(4T/β)/L) + (2·max(q,1−q)/(3L))·ln(4T/β)]   (Pinelis 1994, Hilbert space)
//! bias     = 0 for the clipped minimiser; sup‖clipping bias‖ for the unclipped minimiser
//! ```
//!
//! where Θ̃ is the computed reference, `e_opt ≥ ‖Θ̃ − Θ̂‖` its optimisation error (e.g.
//! `‖∇F(Θ̃)‖/λ`), L = qN the expected batch (the normaliser), D the number of parameters.
//!
//! **Margins.** A triggered point x̃ (bias 1 appended) is classified y* whenever its reference
//! margin `m = min_{y≠y*} (θ̃_{y*} − θ̃_y)ᵀx̃` exceeds `κ·r·‖x̃‖`, with κ = √2 for softmax (the
//! Frobenius norm of `(e_{y*} − e_y)x̃ᵀ`) and κ = 1 for binary logistic regression with one weight
//! vector (margin `s*·θ̃ᵀx̃`). So `S(Θ_T) ≥ (1/n)·#{i : m_i > κ·r·‖x̃_i‖}` with probability ≥ 1 − β.

use super::error::{check_nonneg, check_open_closed, check_positive, BoundError, Result};
use super::{BoundKind, BoundValue};
use serde::Serialize;

/// The convex model trained by DP-SGD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvexModel {
    /// Binary logistic regression with one weight vector θ (bias appended to x): predicts 1 iff
    /// θᵀx̃ > 0. Margins are `s*·θ̃ᵀx̃`, κ = 1.
    BinaryLogistic,
    /// Softmax regression with `classes` rows Θ ∈ R^{K×(d+1)}; margins
    /// `min_{y≠y*}(θ̃_{y*} − θ̃_y)ᵀx̃`, κ = √2.
    Softmax {
        /// Number of classes K ≥ 2.
        classes: usize,
    },
}

impl ConvexModel {
    /// κ: how far a parameter move of Frobenius norm r can shift a margin, per unit ‖x̃‖.
    pub fn margin_constant(self) -> f64 {
        match self {
            ConvexModel::BinaryLogistic => 1.0,
            ConvexModel::Softmax { .. } => std::f64::consts::SQRT_2,
        }
    }

    /// `sup_Θ ‖∇ℓ(Θ; x, y)‖ / ‖x̃‖`: 1 for binary logistic (|σ| ≤ 1), √2 for softmax (‖p − e_y‖ ≤ √2).
    pub fn grad_norm_factor(self) -> f64 {
        self.margin_constant()
    }

    fn clipped_loss_is_convex(self) -> bool {
        matches!(self, ConvexModel::BinaryLogistic | ConvexModel::Softmax { classes: 2 })
    }
}

/// Which reference point Θ̂ the margins were computed at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// Θ̂_C: the minimiser of the clipped objective `(1/N)Σψ_i(Θ) + (λ/2)‖Θ‖²`, whose per-sample
    /// gradients are exactly the clipped gradients. A convex objective only for binary logistic
    /// regression and 2-class softmax (the clipping factor depends on the margin alone) — a
    /// guarantee there; rejected for K ≥ 3.
    ClippedMinimiser,
    /// Θ̂: the minimiser of the unclipped objective `(1/N)Σℓ_i(Θ) + (λ/2)‖Θ‖²`; clipping is then a
    /// bounded bias with `clip_bias ≥ sup_Θ ‖(1/N)Σ_i (∇ℓ_i − clip(∇ℓ_i))‖`, e.g.
    /// `(1/N)Σ_i (κ‖x̃_i‖ − C)_+` ([`super::reference::clip_bias_bound`]); 0 when C ≥ κ·max‖x̃_i‖
    /// (clipping never active). A guarantee for every K.
    UnclippedMinimiser {
        /// Upper bound on the mean clipping bias (≥ 0).
        clip_bias: f64,
    },
    /// K ≥ 3: the zero of the clipped mean map (limit of full-batch clipped GD). The clipped map is
    /// not monotone for K ≥ 3, so contraction toward it is not proven: a **prediction**.
    ClippedFixedPoint,
}

/// Everything the convex DP-SGD bound needs, as numbers and slices.
#[derive(Debug, Clone, Copy)]
pub struct ConvexDpsgdInputs<'a> {
    /// The model class.
    pub model: ConvexModel,
    /// The reference point the margins come from.
    pub reference: Reference,
    /// Margin at the computed reference Θ̃ of each triggered test point (label ≠ y*):
    /// `min_{y≠y*}(θ̃_{y*} − θ̃_y)ᵀx̃_i` (softmax) or `s*·θ̃ᵀx̃_i` (binary).
    pub theta_hat_margins: &'a [f64],
    /// ‖x̃_i‖ of the same points, bias coordinate (1) included.
    pub x_norms: &'a [f64],
    /// ‖Θ₀ − Θ̃‖_F: initial point to the computed reference.
    pub theta0_dist: f64,
    /// e_opt ≥ ‖Θ̃ − Θ̂‖_F, e.g. ‖∇F(Θ̃)‖/λ by λ-strong convexity (0 if exact).
    pub theta_hat_error: f64,
    /// L2 coefficient λ > 0, applied as `+λΘ` outside the clipped, noised average.
    pub lambda: f64,
    /// Learning rate η ≤ 2/(smoothness + 2λ).
    pub lr: f64,
    /// Number of DP-SGD steps T.
    pub steps: u64,
    /// Noise multiplier σ ≥ 0 (noise N(0, σ²C²) added to the sum of clipped gradients).
    pub sigma: f64,
    /// Clipping norm C > 0 (flat, whole-gradient clipping).
    pub clip: f64,
    /// Expected batch size L = qN (the normaliser).
    pub expected_batch: f64,
    /// Poisson sampling rate q ∈ (0, 1].
    pub q: f64,
    /// Number of parameters D (K·(d+1) for softmax, d+1 for binary).
    pub dim: usize,
    /// Failure probability β ∈ (0, 1): the bound holds with probability ≥ 1 − β.
    pub beta: f64,
    /// Upper bound on the smoothness of the data term (1/N)Σψ_i, e.g. mean‖x̃‖²/2 for softmax,
    /// mean‖x̃‖²/4 for binary ([`super::reference::softmax_smoothness_bound`]).
    pub smoothness: f64,
}

/// The radius and its parts, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Radius {
    /// r: the total radius used in the margin test.
    pub total: f64,
    /// ρ^T·(‖Θ₀ − Θ̃‖ + e_opt): what remains of the initial distance.
    pub init: f64,
    /// ((1 − ρ^T)/λ)·noise.
    pub noise: f64,
    /// ((1 − ρ^T)/λ)·sampling.
    pub sampling: f64,
    /// ((1 − ρ^T)/λ)·bias.
    pub bias: f64,
    /// e_opt, added once for the margins being taken at Θ̃ rather than Θ̂.
    pub opt_error: f64,
    /// ρ^T.
    pub contraction: f64,
}

/// The bound with its radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpsgdBound {
    /// The success bound.
    pub bound: BoundValue,
    /// The radius and its parts.
    pub radius: Radius,
    /// κ used in the margin test.
    pub margin_constant: f64,
}

/// Assumptions of the convex guarantee.
pub const CONVEX_ASSUMPTIONS: &str = "Convex model (binary logistic or softmax regression, bias appended) trained by DP-SGD with Poisson sampling at rate q, \
flat per-sample clipping at C, Gaussian noise N(0, σ²C²I) added to the clipped sum, normaliser L = qN, L2 term λΘ added outside the clip, \
constant step η ≤ 2/(smoothness + 2λ), T steps from Θ₀, last iterate. Reference: the clipped minimiser (binary / 2-class softmax: Huberised convex loss) \
or the unclipped minimiser plus a clipping-bias bound (any K). Holds with probability ≥ 1 − β over sampling and noise, for the fixed training set \
and the fixed triggered test points whose margins were supplied.";

/// Assumptions of the K ≥ 3 clipped fixed-point variant.
pub const FIXED_POINT_ASSUMPTIONS: &str = "Softmax with K ≥ 3 and clipping active: the clipped mean map is not monotone, so contraction toward its fixed point is \
assumed, not proven. Same expression as the convex guarantee; a prediction only.";

/// Assumptions of the deep-model prediction.
pub const DEEP_ASSUMPTIONS: &str = "Deep model treated as if DP-SGD contracted toward a reference point at rate 1 − ηλ_eff in a D_eff-dimensional parameter subspace: \
λ_eff (weight decay plus an empirical curvature estimate), D_eff, the smoothness and the margins (e.g. of a clip-only or non-private model on the \
triggered points, with last-layer feature norms) are estimates. The expression is a labelled prediction, never a guarantee.";

/// Parameters of the noisy clipped SGD shared by the guarantees (here and [`super::moment`]) and
/// the prediction.
pub(super) struct Sgd {
    pub(super) lambda: f64,
    pub(super) lr: f64,
    pub(super) steps: u64,
    pub(super) sigma: f64,
    pub(super) clip: f64,
    /// Expected batch L = qN.
    pub(super) l: f64,
    pub(super) q: f64,
    pub(super) dim: usize,
    pub(super) beta: f64,
}

/// Checks every SGD parameter, naming the one at fault.
pub(super) fn validate_sgd(s: &Sgd) -> Result<()> {
    check_positive("lambda", s.lambda)?;
    check_positive("lr", s.lr)?;
    check_nonneg("sigma", s.sigma)?;
    check_positive("clip", s.clip)?;
    check_positive("expected_batch", s.l)?;
    check_open_closed("q", s.q, 0.0, 1.0, "a sampling rate in (0, 1]")?;
    if s.dim == 0 {
        return Err(BoundError::InvalidParameter {
            name: "dim",
            value: 0.0,
            expected: "a parameter count >= 1",
        });
    }
    if !(s.beta > 0.0 && s.beta < 1.0) {
        return Err(BoundError::InvalidParameter {
            name: "beta",
            value: s.beta,
            expected: "a failure probability in (0, 1)",
        });
    }
    if s.lr * s.lambda >= 1.0 {
        return Err(BoundError::InvalidParameter { name: "lr", value: s.lr, expected: "lr·lambda < 1" });
    }
    Ok(())
}

/// The radius for initial distance `d0` (already including e_opt), bias per step, e_opt.
fn radius(s: &Sgd, d0: f64, bias: f64, e_opt: f64) -> Radius {
    let t = s.steps as f64;
    let contraction = (t * (-s.lr * s.lambda).ln_1p()).exp();
    let geo = (1.0 - contraction) / s.lambda;
    let (noise, sampling) = if s.steps == 0 {
        (0.0, 0.0)
    } else {
        let ln_noise = (2.0 * t / s.beta).ln();
        let ln_samp = (4.0 * t / s.beta).ln();
        let noise = s.sigma * s.clip / s.l * ((s.dim as f64).sqrt() + (2.0 * ln_noise).sqrt());
        let sampling = if s.q >= 1.0 {
            0.0 // every record is in every batch: no sampling error
        } else {
            s.clip
                * ((2.0 * (1.0 - s.q) * ln_samp / s.l).sqrt()
                    + 2.0 * s.q.max(1.0 - s.q) / (3.0 * s.l) * ln_samp)
        };
        (noise, sampling)
    };
    let init = contraction * d0;
    let r = Radius {
        total: 0.0,
        init,
        noise: geo * noise,
        sampling: geo * sampling,
        bias: geo * bias,
        opt_error: e_opt,
        contraction,
    };
    Radius { total: r.init + r.noise + r.sampling + r.bias + r.opt_error, ..r }
}

/// `(1/n)·#{i : m_i > κ·r·‖x̃_i‖}`.
pub fn margin_success(margins: &[f64], x_norms: &[f64], kappa: f64, r: f64) -> f64 {
    if margins.is_empty() {
        return 0.0;
    }
    let ok = margins.iter().zip(x_norms).filter(|&(&m, &x)| m > kappa * r * x).count();
    ok as f64 / margins.len() as f64
}

/// Margins finite, norms ≥ 0, both non-empty and of one length.
pub(super) fn check_points(
    margins: &[f64],
    norms: &[f64],
    mname: &'static str,
    nname: &'static str,
) -> Result<()> {
    if margins.is_empty() {
        return Err(BoundError::Empty { name: mname });
    }
    if margins.len() != norms.len() {
        return Err(BoundError::LengthMismatch {
            a_name: mname,
            a: margins.len(),
            b_name: nname,
            b: norms.len(),
        });
    }
    for &m in margins {
        if !m.is_finite() {
            return Err(BoundError::InvalidParameter { name: mname, value: m, expected: "finite margins" });
        }
    }
    for &x in norms {
        check_nonneg(nname, x)?;
    }
    Ok(())
}

/// The convex DP-SGD lower bound with its radius (see the module doc).
pub fn convex_dpsgd_detail(inp: &ConvexDpsgdInputs) -> Result<DpsgdBound> {
    check_points(inp.theta_hat_margins, inp.x_norms, "theta_hat_margins", "x_norms")?;
    check_nonneg("theta0_dist", inp.theta0_dist)?;
    check_nonneg("theta_hat_error", inp.theta_hat_error)?;
    check_nonneg("smoothness", inp.smoothness)?;
    let s = Sgd {
        lambda: inp.lambda,
        lr: inp.lr,
        steps: inp.steps,
        sigma: inp.sigma,
        clip: inp.clip,
        l: inp.expected_batch,
        q: inp.q,
        dim: inp.dim,
        beta: inp.beta,
    };
    validate_sgd(&s)?;
    if let ConvexModel::Softmax { classes } = inp.model {
        if classes < 2 {
            return Err(BoundError::InvalidParameter {
                name: "classes",
                value: classes as f64,
                expected: "K >= 2",
            });
        }
    }
    let max_lr = 2.0 / (inp.smoothness + 2.0 * inp.lambda);
    if inp.lr > max_lr {
        return Err(BoundError::StepTooLarge { lr: inp.lr, max: max_lr });
    }
    let (bias, kind, assumptions) = match inp.reference {
        Reference::ClippedMinimiser => {
            if !inp.model.clipped_loss_is_convex() {
                return Err(BoundError::NotCovered(
                    "the clipped minimiser is a guarantee only for binary logistic regression and 2-class softmax; \
                     for K >= 3 use the unclipped minimiser with a clip-bias bound (guarantee) or the clipped fixed point (prediction)"
                        .into(),
                ));
            }
            (0.0, BoundKind::Guarantee, CONVEX_ASSUMPTIONS)
        }
        Reference::UnclippedMinimiser { clip_bias } => {
            (check_nonneg("clip_bias", clip_bias)?, BoundKind::Guarantee, CONVEX_ASSUMPTIONS)
        }
        Reference::ClippedFixedPoint => (0.0, BoundKind::Prediction, FIXED_POINT_ASSUMPTIONS),
    };
    let e = inp.theta_hat_error;
    let r = radius(&s, inp.theta0_dist + e, bias, e);
    let kappa = inp.model.margin_constant();
    let value = margin_success(inp.theta_hat_margins, inp.x_norms, kappa, r.total);
    let probability = if kind == BoundKind::Guarantee { Some(1.0 - inp.beta) } else { None };
    Ok(DpsgdBound {
        bound: BoundValue::new(value, kind, probability, assumptions),
        radius: r,
        margin_constant: kappa,
    })
}

/// The convex DP-SGD lower bound: with probability ≥ 1 − β (when a guarantee), the last DP-SGD
/// iterate classifies at least this fraction of the triggered test points as y*.
pub fn convex_dpsgd_bound(inp: &ConvexDpsgdInputs) -> Result<BoundValue> {
    Ok(convex_dpsgd_detail(inp)?.bound)
}

/// Inputs of the deep-model prediction: the same expression with effective quantities.
#[derive(Debug, Clone, Copy)]
pub struct DeepDpsgdInputs<'a> {
    /// Empirical margins of the triggered points at a reference model (e.g. trained clip-only, σ = 0,
    /// or non-privately): logit of y* minus the largest other logit.
    pub margins: &'a [f64],
    /// Norms of the features the margin is linear in (e.g. last-layer features with a 1 appended).
    pub feature_norms: &'a [f64],
    /// κ: √2 for a softmax last layer, 1 for a single logit.
    pub margin_constant: f64,
    /// Estimated distance from the initialisation to the reference point.
    pub theta0_dist: f64,
    /// Effective strong-convexity λ_eff > 0 (weight decay plus curvature estimate).
    pub lambda_eff: f64,
    /// Effective dimension D_eff (e.g. the last layer's parameter count).
    pub dim_eff: usize,
    /// Learning rate.
    pub lr: f64,
    /// Steps T.
    pub steps: u64,
    /// Noise multiplier σ.
    pub sigma: f64,
    /// Clipping norm C.
    pub clip: f64,
    /// Expected batch L = qN.
    pub expected_batch: f64,
    /// Sampling rate q.
    pub q: f64,
    /// β: the confidence level the expression is evaluated at.
    pub beta: f64,
}

/// The deep-model **prediction**: the convex expression with effective λ, D and margins.
pub fn deep_dpsgd_prediction(inp: &DeepDpsgdInputs) -> Result<DpsgdBound> {
    check_points(inp.margins, inp.feature_norms, "margins", "feature_norms")?;
    check_positive("margin_constant", inp.margin_constant)?;
    check_nonneg("theta0_dist", inp.theta0_dist)?;
    let s = Sgd {
        lambda: inp.lambda_eff,
        lr: inp.lr,
        steps: inp.steps,
        sigma: inp.sigma,
        clip: inp.clip,
        l: inp.expected_batch,
        q: inp.q,
        dim: inp.dim_eff,
        beta: inp.beta,
    };
    validate_sgd(&s).map_err(|e| match e {
        BoundError::InvalidParameter { name: "lambda", value, expected } => {
            BoundError::InvalidParameter { name: "lambda_eff", value, expected }
        }
        BoundError::InvalidParameter { name: "dim", value, expected } => {
            BoundError::InvalidParameter { name: "dim_eff", value, expected }
        }
        other => other,
    })?;
    let r = radius(&s, inp.theta0_dist, 0.0, 0.0);
    let value = margin_success(inp.margins, inp.feature_norms, inp.margin_constant, r.total);
    Ok(DpsgdBound {
        bound: BoundValue::new(value, BoundKind::Prediction, None, DEEP_ASSUMPTIONS),
        radius: r,
        margin_constant: inp.margin_constant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(m: &'a [f64], x: &'a [f64]) -> ConvexDpsgdInputs<'a> {
        ConvexDpsgdInputs {
            model: ConvexModel::Softmax { classes: 2 },
            reference: Reference::ClippedMinimiser,
            theta_hat_margins: m,
            x_norms: x,
            theta0_dist: 1.0,
            theta_hat_error: 0.0,
            lambda: 0.5,
            lr: 0.5,
            steps: 100,
            sigma: 1.0,
            clip: 1.0,
            expected_batch: 100.0,
            q: 1.0,
            dim: 6,
            beta: 0.05,
            smoothness: 1.0,
        }
    }

    #[test]
    fn hand_computed_radius() {
        // q = 1 (no sampling term). ρ = 1 − 0.25 = 0.75, T = 100: ρ^T ≈ 3.2e-13.
        // noise = (1·1/100)(√6 + √(2 ln(2·100/0.05))) ; geo = (1 − ρ^T)/0.5.
        let m = [1.0, 0.1];
        let x = [1.0, 1.0];
        let d = convex_dpsgd_detail(&base(&m, &x)).unwrap();
        let noise = 0.01 * (6f64.sqrt() + (2.0 * (4000f64).ln()).sqrt());
        let expect = 0.75f64.powi(100) * 1.0 + (1.0 - 0.75f64.powi(100)) / 0.5 * noise;
        assert!((d.radius.total - expect).abs() < 1e-12, "{} vs {}", d.radius.total, expect);
        // r ≈ 2·0.0652 = 0.130, κ r ≈ 0.184: the first point (margin 1) passes, the second (0.1) fails.
        assert_eq!(d.bound.value, 0.5);
        assert_eq!(d.bound.kind, BoundKind::Guarantee);
        assert_eq!(d.bound.probability, Some(0.95));
    }

    #[test]
    fn sampling_term_hand_computed() {
        let m = [1.0];
        let x = [1.0];
        let mut i = base(&m, &x);
        i.q = 0.5;
        i.sigma = 0.0;
        let d = convex_dpsgd_detail(&i).unwrap();
        let l = (4.0 * 100.0 / 0.05f64).ln();
        let per = (2.0 * 0.5 * l / 100.0).sqrt() + 2.0 * 0.5 / 300.0 * l;
        assert!((d.radius.sampling - (1.0 - 0.75f64.powi(100)) / 0.5 * per).abs() < 1e-12);
        assert_eq!(d.radius.noise, 0.0);
    }

    #[test]
    fn softmax_k3_clipped_minimiser_is_not_a_guarantee() {
        let m = [1.0];
        let x = [1.0];
        let mut i = base(&m, &x);
        i.model = ConvexModel::Softmax { classes: 3 };
        assert!(matches!(convex_dpsgd_bound(&i), Err(BoundError::NotCovered(_))));
        i.reference = Reference::ClippedFixedPoint;
        assert_eq!(convex_dpsgd_bound(&i).unwrap().kind, BoundKind::Prediction);
        i.reference = Reference::UnclippedMinimiser { clip_bias: 0.01 };
        assert_eq!(convex_dpsgd_bound(&i).unwrap().kind, BoundKind::Guarantee);
    }

    #[test]
    fn errors_name_the_field() {
        let m = [1.0];
        let x = [1.0];
        let mut i = base(&m, &x);
        i.lr = 1.5;
        assert!(matches!(convex_dpsgd_bound(&i), Err(BoundError::StepTooLarge { .. })));
        let mut i = base(&m, &x);
        i.sigma = -1.0;
        assert!(convex_dpsgd_bound(&i).unwrap_err().to_string().contains("sigma"));
        let mut i = base(&m, &x);
        i.q = 0.0;
        assert!(convex_dpsgd_bound(&i).unwrap_err().to_string().contains("q"));
        let x2 = [1.0, 2.0];
        let i = base(&m, &x2);
        assert!(convex_dpsgd_bound(&i).unwrap_err().to_string().contains("x_norms"));
    }
}

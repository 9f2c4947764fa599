//! A calibrated **prediction** (never a guarantee) of the success of deep models (CNN, MLP,
//! ResNet) under DP-SGD, from the clip-only run (σ = 0) of the same cell. Derivation, assumptions
//! and the calibration protocol: `docs/bounds.md` §2.8.
//!
//! # Model
//!
//! DP-SGD with noise is the clip-only run plus the injected noise (η/L)·σC·ζ_t at every step.
//! Linearised around the clip-only trajectory with an effective L2 pull λ_eff (an
//! Ornstein–Uhlenbeck walk; λ_eff = 0 is a pure random walk), the noise moves the parameters by a
//! Gaussian perturbation with per-coordinate variance
//!
//! ```text
//!   v = (η_eff·σ·C / L)² · Σ_{t<T} ρ^{2t},   η_eff = η/(1 − μ),   ρ = 1 − η_eff·λ_eff,
//! ```
//!
//! (`= T·(η_eff σC/L)²` for λ_eff = 0), μ the momentum. As in the margin argument of the convex
//! bound (§2.6), a triggered point is steered while its margin exceeds the size of that
//! perturbation in the direction that matters; the convex bound subtracts a worst-case radius,
//! this model subtracts the typical one, √v, times a constant k that absorbs the unknown feature
//! norm and the spread of the margins. With the margins of the steerable triggered points modelled
//! as Gaussian across points (a probit link), the clip-only fraction p_c fixes their standardised
//! mean Φ⁻¹(p_c), and
//!
//! ```text
//!   p_c    = clamp((S_clip − S₀)/(1 − S₀), ε, 1 − ε)
//!   S_pred = S₀ + (1 − S₀)·Φ(Φ⁻¹(p_c) − k·√v),       k ≥ 0 (one free constant),
//! ```
//!
//! S₀ the baseline success (no collective) of the DP cell — a floor: S_pred ≥ S₀, and
//! S_pred = S₀ when S_clip ≤ S₀ (up to ε). S_pred is non-increasing in σ, C·σ, T, η and μ, and
//! equals S_clip (floored at S₀, up to the clamp) at σ = 0.
//!
//! # Calibration
//!
//! [`calibrate`] fits k on the cells of one privacy level (e.g. the largest finite ε) by least
//! absolute (default) or squared error; [`evaluate`] applies the fitted model to the other levels
//! and reports the held-out mean absolute error. λ_eff is *not* fitted: within one sweep η and T
//! are fixed, so v is σ²C² times a constant and λ_eff cannot be told apart from k; it is an input
//! (the trainer's weight decay, 0 by default).

use super::error::{check_closed, check_positive, Result};
use super::{phi, phi_inv, BoundError, BoundKind, BoundValue};

/// What [`DeepNoiseModel::predict`] assumes, in one paragraph.
pub const ASSUMPTIONS: &str = "Prediction, never asserted: DP-SGD is modelled as the clip-only (sigma = 0) run of the \
same cell plus a linearised Ornstein-Uhlenbeck walk of the injected noise (per-coordinate variance \
v = (eta_eff sigma C / L)^2 sum_t rho^(2t), eta_eff = eta/(1-mu), rho = 1 - eta_eff lambda_eff); the margins of \
the steerable triggered points are Gaussian across points (probit link) and the noise shifts them by k sqrt(v), \
k calibrated on one privacy level of the sweep. Deep losses are not convex; nothing here is proven.";

/// Default clamp ε of the normalised clip-only success before the probit (Φ⁻¹(0) = −∞).
pub const DEFAULT_PROBIT_CLAMP: f64 = 1e-3;

/// The DP-SGD noise schedule of one cell: what the injected-noise variance depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseSchedule {
    /// Learning rate η (> 0).
    pub lr: f64,
    /// Heavy-ball momentum μ ∈ [0, 1); the effective step is η/(1 − μ).
    pub momentum: f64,
    /// Noise multiplier σ ≥ 0 (0 = clip only).
    pub sigma: f64,
    /// Clipping norm C > 0.
    pub clip: f64,
    /// Expected batch L = qN > 0 (the normaliser of the noisy sum).
    pub expected_batch: f64,
    /// Steps T.
    pub steps: u64,
    /// Effective L2 pull λ_eff ≥ 0 (weight decay plus local curvature; 0 = random walk).
    pub lambda_eff: f64,
}

/// Per-coordinate variance of the noise's contribution to the parameters after T steps:
/// v = (η_eff·σ·C/L)²·Σ_{t<T} ρ^{2t}, η_eff = η/(1−μ), ρ = 1 − η_eff·λ_eff (needs
/// 0 ≤ η_eff·λ_eff < 1). Σ_{t<T} ρ^{2t} = (1 − ρ^{2T})/(1 − ρ²), = T at ρ = 1.
pub fn noise_variance(s: &NoiseSchedule) -> Result<f64> {
    check_positive("lr", s.lr)?;
    check_closed("momentum", s.momentum, 0.0, 1.0 - f64::EPSILON, "a momentum in [0, 1)")?;
    check_closed("sigma", s.sigma, 0.0, f64::MAX, "a noise multiplier >= 0")?;
    check_positive("clip", s.clip)?;
    check_positive("expected_batch", s.expected_batch)?;
    check_closed("lambda_eff", s.lambda_eff, 0.0, f64::MAX, "an effective L2 pull >= 0")?;
    let eta_eff = s.lr / (1.0 - s.momentum);
    let shrink = eta_eff * s.lambda_eff;
    if shrink >= 1.0 {
        return Err(BoundError::InvalidParameter {
            name: "lambda_eff",
            value: s.lambda_eff,
            expected:
                "lr/(1 - momentum) * lambda_eff < 1 (a contraction rho = 1 - eta_eff*lambda_eff in (0, 1])",
        });
    }
    let per_step = eta_eff * s.sigma * s.clip / s.expected_batch;
    let t = s.steps as f64;
    let geometric = if shrink == 0.0 {
        t
    } else {
        // ln ρ² = 2·ln(1 − shrink); Σ ρ^{2t} = (1 − ρ^{2T})/(1 − ρ²), both by expm1 for accuracy.
        let ln_rho2 = 2.0 * (-shrink).ln_1p();
        (-(t * ln_rho2).exp_m1()) / (-ln_rho2.exp_m1())
    };
    Ok(per_step * per_step * geometric)
}

/// One DP cell's inputs to the prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellInput {
    /// The DP cell's noise schedule (σ > 0 for a DP cell).
    pub noise: NoiseSchedule,
    /// Measured success of the clip-only (σ = 0) run of the same cell (dataset, model,
    /// collective, α, C, seed, training settings).
    pub clip_only_success: f64,
    /// S₀: success of the same arm without a collective (the floor).
    pub baseline: f64,
}

/// A cell with its measured success, for calibration and evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub input: CellInput,
    /// Measured success of the DP run.
    pub success: f64,
}

/// The calibrated noise-shift model (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepNoiseModel {
    /// k ≥ 0: the probit shift per unit √v (the one free constant).
    pub k: f64,
    /// ε of the clamp of the normalised clip-only success (default [`DEFAULT_PROBIT_CLAMP`]).
    pub probit_clamp: f64,
}

impl DeepNoiseModel {
    /// The model with constant `k` and the default clamp.
    pub fn new(k: f64) -> Result<Self> {
        check_closed("k", k, 0.0, f64::MAX, "a shift constant >= 0")?;
        Ok(DeepNoiseModel { k, probit_clamp: DEFAULT_PROBIT_CLAMP })
    }

    /// S_pred from the variance `v` (see [`noise_variance`]), S_clip and S₀; no validation.
    fn value(&self, v: f64, clip_only: f64, baseline: f64) -> f64 {
        if baseline >= 1.0 {
            return 1.0;
        }
        let e = self.probit_clamp;
        let p = ((clip_only - baseline) / (1.0 - baseline)).clamp(e, 1.0 - e);
        let s = baseline + (1.0 - baseline) * phi(phi_inv(p) - self.k * v.sqrt());
        s.clamp(baseline, 1.0)
    }

    /// The predicted success of a DP cell, as a [`BoundKind::Prediction`].
    pub fn predict(&self, c: &CellInput) -> Result<BoundValue> {
        check_closed("k", self.k, 0.0, f64::MAX, "a shift constant >= 0")?;
        check_closed("probit_clamp", self.probit_clamp, f64::MIN_POSITIVE, 0.5, "a clamp in (0, 0.5]")?;
        check_closed("clip_only_success", c.clip_only_success, 0.0, 1.0, "a success rate in [0, 1]")?;
        check_closed("baseline", c.baseline, 0.0, 1.0, "a success rate in [0, 1]")?;
        let v = noise_variance(&c.noise)?;
        Ok(BoundValue::new(
            self.value(v, c.clip_only_success, c.baseline),
            BoundKind::Prediction,
            None,
            ASSUMPTIONS,
        ))
    }
}

/// The loss minimised by [`calibrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Mean absolute error (robust to the seed-bimodal cells near the critical mass).
    #[default]
    Absolute,
    /// Mean squared error.
    Squared,
}

/// The result of [`calibrate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub model: DeepNoiseModel,
    /// The minimised mean loss on the calibration cells.
    pub loss: f64,
    /// Mean absolute error on the calibration cells (in-sample).
    pub mae: f64,
    /// Number of calibration cells.
    pub n: usize,
}

/// Per-cell predictions and the mean absolute error of a model on a set of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `predictions[i]` for `cells[i]`.
    pub predictions: Vec<f64>,
    /// Mean |S_pred − S|; NaN for no cells.
    pub mae: f64,
}

fn variances(obs: &[Observation]) -> Result<Vec<f64>> {
    obs.iter()
        .map(|o| {
            check_closed("success", o.success, 0.0, 1.0, "a success rate in [0, 1]")?;
            check_closed(
                "clip_only_success",
                o.input.clip_only_success,
                0.0,
                1.0,
                "a success rate in [0, 1]",
            )?;
            check_closed("baseline", o.input.baseline, 0.0, 1.0, "a success rate in [0, 1]")?;
            noise_variance(&o.input.noise)
        })
        .collect()
}

/// Fits k ≥ 0 on `obs` (the cells of the calibration privacy level) by minimising the mean
/// `loss`: a log-spaced grid over k·median(√v) ∈ [1e-4, 1e4] plus k = 0, refined by golden-section
/// search between the best grid point's neighbours. Errors if `obs` is empty or has no noise
/// (every v = 0: k is then not identifiable).
pub fn calibrate(obs: &[Observation], loss: Loss) -> Result<Calibration> {
    if obs.is_empty() {
        return Err(BoundError::Empty { name: "calibration cells" });
    }
    let vs = variances(obs)?;
    let mut sd: Vec<f64> = vs.iter().map(|v| v.sqrt()).filter(|s| *s > 0.0).collect();
    if sd.is_empty() {
        return Err(BoundError::NotCovered(
            "the calibration cells have no noise (sigma = 0): k is not identifiable".into(),
        ));
    }
    sd.sort_by(f64::total_cmp);
    let scale = 1.0 / sd[sd.len() / 2];
    let objective = |k: f64| -> f64 {
        let m = DeepNoiseModel { k, probit_clamp: DEFAULT_PROBIT_CLAMP };
        let sum: f64 = obs
            .iter()
            .zip(&vs)
            .map(|(o, &v)| {
                let d = m.value(v, o.input.clip_only_success, o.input.baseline) - o.success;
                match loss {
                    Loss::Absolute => d.abs(),
                    Loss::Squared => d * d,
                }
            })
            .sum();
        sum / obs.len() as f64
    };
    // Grid: k = 0 and scale·10^(j/20), j = −80..=80.
    let mut grid: Vec<f64> = vec![0.0];
    grid.extend((-80..=80).map(|j| scale * 10f64.powf(j as f64 / 20.0)));
    let vals: Vec<f64> = grid.iter().map(|&k| objective(k)).collect();
    let best = (0..grid.len()).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    let (mut lo, mut hi) = (grid[best.saturating_sub(1)], grid[(best + 1).min(grid.len() - 1)]);
    // Golden-section search on [lo, hi].
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fa, mut fb) = (objective(a), objective(b));
    for _ in 0..200 {
        if hi - lo <= 1e-12 * hi.max(1e-300) {
            break;
        }
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - g * (hi - lo);
            fa = objective(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + g * (hi - lo);
            fb = objective(b);
        }
    }
    let mut k = 0.5 * (lo + hi);
    let mut f = objective(k);
    if vals[best] < f {
        k = grid[best];
        f = vals[best];
    }
    let model = DeepNoiseModel { k, probit_clamp: DEFAULT_PROBIT_CLAMP };
    let mae = evaluate(&model, obs)?.mae;
    Ok(Calibration { model, loss: f, mae, n: obs.len() })
}

/// Predictions of `model` on `obs` and their mean absolute error (NaN for no cells).
pub fn evaluate(model: &DeepNoiseModel, obs: &[Observation]) -> Result<Evaluation> {
    let predictions =
        obs.iter().map(|o| model.predict(&o.input).map(|b| b.value)).collect::<Result<Vec<f64>>>()?;
    let mae = if obs.is_empty() {
        f64::NAN
    } else {
        predictions.iter().zip(obs).map(|(p, o)| (p - o.success).abs()).sum::<f64>() / obs.len() as f64
    };
    Ok(Evaluation { predictions, mae })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(sigma: f64, clip: f64) -> NoiseSchedule {
        NoiseSchedule {
            lr: 0.5,
            momentum: 0.0,
            sigma,
            clip,
            expected_batch: 256.0,
            steps: 125,
            lambda_eff: 0.0,
        }
    }

    #[test]
    fn variance_by_hand() {
        // λ_eff = 0: v = T (ησC/L)² = 125·(0.5·1.2·5/256)² = 125·(3/256)².
        let v = noise_variance(&sched(1.2, 5.0)).unwrap();
        let expect = 125.0 * (3.0f64 / 256.0).powi(2);
        assert!((v - expect).abs() < 1e-15, "{v} vs {expect}");
        // Momentum 0.5 doubles the effective step: 4× the variance.
        let vm = noise_variance(&NoiseSchedule { momentum: 0.5, ..sched(1.2, 5.0) }).unwrap();
        assert!((vm - 4.0 * expect).abs() < 1e-14);
        // λ_eff = 0.4, η = 0.5: ρ = 0.8, T = 3: Σ ρ^{2t} = 1 + 0.64 + 0.4096 = 2.0496.
        let s = NoiseSchedule {
            lr: 0.5,
            momentum: 0.0,
            sigma: 2.0,
            clip: 1.0,
            expected_batch: 10.0,
            steps: 3,
            lambda_eff: 0.4,
        };
        let v = noise_variance(&s).unwrap();
        let expect = (0.5f64 * 2.0 / 10.0).powi(2) * 2.0496;
        assert!((v - expect).abs() < 1e-15, "{v} vs {expect}");
        // Long horizon: Σ → 1/(1 − ρ²) = 1/0.36.
        let v = noise_variance(&NoiseSchedule { steps: 10_000, ..s }).unwrap();
        assert!((v - 0.01 / 0.36).abs() < 1e-15);
        assert_eq!(noise_variance(&sched(0.0, 5.0)).unwrap(), 0.0);
    }

    #[test]
    fn variance_rejects_bad_input() {
        assert!(noise_variance(&NoiseSchedule { momentum: 1.0, ..sched(1.0, 1.0) }).is_err());
        assert!(noise_variance(&NoiseSchedule { lambda_eff: 2.0, ..sched(1.0, 1.0) }).is_err());
        assert!(noise_variance(&sched(f64::NAN, 1.0)).is_err());
        assert!(noise_variance(&sched(1.0, 0.0)).is_err());
    }

    fn cell(sigma: f64, clip: f64, sc: f64, s0: f64) -> CellInput {
        CellInput { noise: sched(sigma, clip), clip_only_success: sc, baseline: s0 }
    }

    #[test]
    fn predictions_in_unit_interval_and_monotone_in_sigma() {
        for &k in &[0.0, 0.5, 3.0, 40.0] {
            let m = DeepNoiseModel::new(k).unwrap();
            for &sc in &[0.0, 0.01, 0.2, 0.5, 0.9, 0.999, 1.0] {
                for &s0 in &[0.0, 0.05, 0.3, 0.99, 1.0] {
                    for &clip in &[1.0, 10.0] {
                        let mut prev = f64::INFINITY;
                        for i in 0..=40 {
                            let sigma = i as f64 * 0.1;
                            let b = m.predict(&cell(sigma, clip, sc, s0)).unwrap();
                            assert_eq!(b.kind, BoundKind::Prediction);
                            assert!((0.0..=1.0).contains(&b.value));
                            assert!(b.value >= s0 - 1e-12, "below the floor");
                            assert!(b.value <= prev + 1e-12, "increasing in sigma: k={k} sc={sc} s0={s0}");
                            prev = b.value;
                        }
                    }
                }
            }
        }
        // σ = 0 gives back the clip-only success (inside the clamp).
        let m = DeepNoiseModel::new(3.0).unwrap();
        let b = m.predict(&cell(0.0, 5.0, 0.6, 0.1)).unwrap();
        assert!((b.value - 0.6).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_prediction() {
        // v = 125 (3/256)², √v = 0.13101; k = 2: shift 0.26203. p_c = (0.55 − 0.1)/0.9 = 0.5: Φ⁻¹ = 0.
        let m = DeepNoiseModel::new(2.0).unwrap();
        let b = m.predict(&cell(1.2, 5.0, 0.55, 0.1)).unwrap();
        let shift = 2.0 * (125.0f64).sqrt() * 3.0 / 256.0;
        let expect = 0.1 + 0.9 * phi(-shift);
        assert!((b.value - expect).abs() < 1e-12);
        assert!((b.value - (0.1 + 0.9 * 0.39665)).abs() < 1e-4);
    }

    fn synthetic(k: f64) -> Vec<Observation> {
        let m = DeepNoiseModel::new(k).unwrap();
        let mut obs = Vec::new();
        for &clip in &[1.0, 5.0, 10.0] {
            for &sc in &[0.1, 0.3, 0.6, 0.85, 0.97] {
                for &sigma in &[0.6, 1.2] {
                    let input = cell(sigma, clip, sc, 0.02);
                    obs.push(Observation { input, success: m.predict(&input).unwrap().value });
                }
            }
        }
        obs
    }

    #[test]
    fn calibration_recovers_a_known_constant() {
        for &k in &[0.3, 2.5, 11.0] {
            for loss in [Loss::Absolute, Loss::Squared] {
                let c = calibrate(&synthetic(k), loss).unwrap();
                assert!((c.model.k - k).abs() < 1e-6 * k, "{loss:?}: {} vs {k}", c.model.k);
                assert!(c.mae < 1e-8);
            }
        }
        // k = 0 (noise does nothing) is recovered exactly.
        let c = calibrate(&synthetic(0.0), Loss::Absolute).unwrap();
        assert!(c.model.k < 1e-9, "{}", c.model.k);
    }

    #[test]
    fn calibrate_then_evaluate_held_out() {
        let k = 2.5;
        let all = synthetic(k);
        let (cal, held): (Vec<_>, Vec<_>) = all.iter().partition(|o| o.input.noise.sigma < 1.0);
        let c = calibrate(&cal, Loss::Absolute).unwrap();
        let e = evaluate(&c.model, &held).unwrap();
        assert_eq!(e.predictions.len(), held.len());
        assert!(e.mae < 1e-8);
        // A wrong k gives a visible held-out error.
        let e = evaluate(&DeepNoiseModel::new(0.0).unwrap(), &held).unwrap();
        assert!(e.mae > 0.05, "{}", e.mae);
    }

    #[test]
    fn calibrate_rejects_degenerate_input() {
        assert!(matches!(calibrate(&[], Loss::Absolute), Err(BoundError::Empty { .. })));
        let o = Observation { input: cell(0.0, 1.0, 0.5, 0.0), success: 0.5 };
        assert!(matches!(calibrate(&[o], Loss::Absolute), Err(BoundError::NotCovered(_))));
        let o = Observation { input: cell(1.0, 1.0, 0.5, 0.0), success: 1.5 };
        assert!(calibrate(&[o], Loss::Absolute).is_err());
        assert!(evaluate(&DeepNoiseModel::new(1.0).unwrap(), &[]).unwrap().mae.is_nan());
        assert!(DeepNoiseModel::new(-1.0).is_err());
    }
}

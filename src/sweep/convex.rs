//! The convex arm's DP-SGD guarantee for one sweep cell (docs/bounds.md §2.9): a cell qualifies
//! when it trains exactly what the derivation covers — a 2-class softmax (binary logistic)
//! model with DP-SGD, flat clipping, plain SGD (momentum 0), constant η, weight decay λ > 0 and
//! no input standardisation. The reference Θ̂_C (minimiser of the clipped objective on the exact
//! planted training set) is fitted once per (data, collective, α, seed, C, λ) and shared by every
//! privacy arm; the bound itself is [`crate::bounds::moment::moment_bound`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tch::{Device, Kind, Tensor};

use super::spec::Cell;
use crate::bounds::dpsgd::ConvexModel;
use crate::bounds::moment::{self, MomentBound, MomentInputs};
use crate::bounds::reference::{self, SoftmaxFit};
use crate::collective::{self, CollectiveSpec};
use crate::data::Split;
use crate::dpsgd::{Clipping, OptimizerKind};
use crate::models::{Model, ModelKind};
use crate::train::fit::{InputNorm, LrSchedule};
use crate::train::run::{RunConfig, RunRecord};

/// β of the per-run bound `dpsgd_lb_hp` (recorded in every row as `bound_beta`).
pub const BOUND_BETA: f64 = 0.05;
/// Certified accuracy asked of the reference: ‖Θ̃ − Θ̂_C‖ ≤ this (= ‖∇F_C(Θ̃)‖/λ).
const REFERENCE_TOL: f64 = 1e-4;
/// Iteration cap of the reference fit; the certificate is reported whatever it reaches.
const REFERENCE_MAX_ITER: usize = 200_000;

/// Why a cell is outside the convex guarantee (non-private cells included), or `None` when it
/// qualifies.
pub fn not_covered(cell: &Cell, cfg: &RunConfig, num_classes: i64) -> Option<String> {
    let t = &cell.train;
    let Some(dp) = cfg.fit.dp.as_ref() else {
        return Some("non-private (no clipping, no noise)".into());
    };
    let why = if cfg.model != ModelKind::Softmax {
        format!("model {} (needs softmax with 2 classes)", cell.model)
    } else if num_classes != 2 {
        format!("{num_classes} classes (needs 2: set one_vs_rest)")
    } else if t.optimizer != OptimizerKind::Sgd || t.momentum != 0.0 {
        "optimizer is not plain SGD with momentum 0".into()
    } else if t.weight_decay <= 0.0 {
        "weight_decay = 0 (needs λ > 0)".into()
    } else if dp.clipping != Clipping::Flat {
        "per-layer clipping (needs flat)".into()
    } else if t.lr_schedule != LrSchedule::default() {
        "a learning-rate schedule (needs constant η)".into()
    } else if t.input_norm != InputNorm::default() {
        "input standardisation inside the model".into()
    } else {
        return None;
    };
    Some(why)
}

/// Rows of a `[n, …]` tensor, flattened, as f64 with the bias coordinate 1 appended.
fn rows_with_bias(x: &Tensor) -> Vec<Vec<f64>> {
    let n = x.size()[0];
    let flat = x.to_kind(Kind::Double).reshape([n, -1]).contiguous();
    let d = flat.size()[1] as usize;
    let v: Vec<f64> = Vec::try_from(&flat.view([-1])).unwrap_or_default();
    v.chunks(d.max(1)).map(|r| r.iter().copied().chain(std::iter::once(1.0)).collect()).collect()
}

fn labels(y: &Tensor) -> Vec<usize> {
    Vec::<i64>::try_from(&y.to_kind(Kind::Int64).contiguous())
        .unwrap_or_default()
        .into_iter()
        .map(|l| l as usize)
        .collect()
}

/// A fitted reference and what the bound needs from the training set.
struct Reference {
    fit: SoftmaxFit,
    smoothness: f64,
    clipped_grad_sq_sum: f64,
    dim: usize,
}

type Slot = Arc<OnceLock<Result<Arc<Reference>, String>>>;
fn references() -> &'static Mutex<HashMap<String, Slot>> {
    static R: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Everything the planted training set depends on, plus C and λ.
fn reference_key(cell: &Cell) -> String {
    let t = &cell.train;
    format!(
        "{}|{:?}|{:?}|{:?}|{}|{}|{}|{:?}|{}",
        cell.dataset,
        t.train_subset,
        t.one_vs_rest,
        cell.collective.spec,
        cell.alpha,
        cell.seed,
        cell.model,
        cell.clip,
        t.weight_decay
    )
}

fn fit_reference(cfg: &RunConfig, split: &Split, clip: f64, lambda: f64) -> Result<Reference, String> {
    let planted = collective::plant(&split.train, &cfg.collectives, cfg.seed).map_err(|e| e.to_string())?;
    let xs = rows_with_bias(&planted.train.x);
    let ys = labels(&planted.train.y);
    let fit = reference::fit_two_class_reference(&xs, &ys, lambda, clip, REFERENCE_TOL, REFERENCE_MAX_ITER)
        .map_err(|e| e.to_string())?;
    let model = ConvexModel::Softmax { classes: 2 };
    Ok(Reference {
        smoothness: reference::softmax_smoothness_bound(&xs),
        clipped_grad_sq_sum: moment::clipped_grad_sq_sum(model, reference::x_norms(&xs), clip),
        dim: 2 * xs.first().map_or(0, Vec::len),
        fit,
    })
}

/// Θ₀ = [W | b] of the model the run started from (same seed, same init stream), 2×(d+1).
fn initial_theta(cfg: &RunConfig, split: &Split) -> Result<Vec<f64>, String> {
    let m = Model::new(&cfg.model, &split.train.example_shape(), 2, cfg.seed, Device::Cpu)
        .map_err(|e| e.to_string())?;
    let p = m.parameters();
    if p.len() != 2 {
        return Err("softmax model: expected one linear layer (weight, bias)".into());
    }
    let w: Vec<f64> = Vec::try_from(&p[0].detach().to_kind(Kind::Double).contiguous().view([-1]))
        .map_err(|e: tch::TchError| e.to_string())?;
    let b: Vec<f64> = Vec::try_from(&p[1].detach().to_kind(Kind::Double).contiguous().view([-1]))
        .map_err(|e: tch::TchError| e.to_string())?;
    let d = w.len() / 2;
    Ok((0..2)
        .flat_map(|c| w[c * d..(c + 1) * d].iter().copied().chain(std::iter::once(b[c])).collect::<Vec<_>>())
        .collect())
}

/// The bound for a qualifying cell, after its run `rec`.
pub fn bound_for(
    cell: &Cell,
    cfg: &RunConfig,
    split: &Split,
    rec: &RunRecord,
) -> Result<MomentBound, String> {
    let dp = rec.dp.as_ref().ok_or("not a DP run")?;
    let clip = dp.max_grad_norm;
    let lambda = cell.train.weight_decay;
    let slot = {
        let mut m = references().lock().map_err(|_| "reference cache poisoned".to_string())?;
        m.entry(reference_key(cell)).or_default().clone()
    };
    let r = slot.get_or_init(|| fit_reference(cfg, split, clip, lambda).map(Arc::new)).clone()?;
    let spec: &CollectiveSpec = cfg.collectives.first().ok_or("no collective")?;
    let (trig, _) = collective::triggered_test(&split.test, spec).map_err(|e| e.to_string())?;
    let trig_x = rows_with_bias(&trig);
    let target = usize::try_from(spec.target).map_err(|_| "negative target")?;
    let margins = reference::softmax_margins(&r.fit.theta, 2, &trig_x, target);
    let norms = reference::x_norms(&trig_x);
    let theta0 = initial_theta(cfg, split)?;
    let theta0_dist = theta0.iter().zip(&r.fit.theta).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let e_opt = r.fit.error_bound.ok_or("uncertified reference")?;
    moment::moment_bound(&MomentInputs {
        model: ConvexModel::Softmax { classes: 2 },
        margins: &margins,
        x_norms: &norms,
        theta0_dist,
        theta_hat_error: e_opt,
        lambda,
        lr: cell.train.lr,
        steps: rec.steps,
        sigma: dp.noise_multiplier,
        clip,
        expected_batch: dp.expected_batch_size,
        q: dp.sample_rate,
        dim: r.dim,
        clipped_grad_sq_sum: r.clipped_grad_sq_sum,
        smoothness: r.smoothness,
        beta: BOUND_BETA,
    })
    .map_err(|e| e.to_string())
}

//! The step/epoch loop: non-private mini-batch training or DP-SGD.
//!
//! - Non-private: each epoch shuffles the records (ChaCha20 `Stream::Shuffle`) and walks fixed
//!   batches of `batch_size` (the last one smaller); T = round(epochs · ⌈N/B⌉).
//! - DP-SGD: Poisson sampling with q = L/N (L = `batch_size`, the expected batch size),
//!   T = round(epochs / q) steps (round half away from zero, at least 1; Opacus uses ⌊epochs/q⌋),
//!   each step privatised by [`DpSgd`]. The accountant must be given [`FitOutcome::steps`] and
//!   [`FitOutcome::sample_rate`].

use crate::data::Dataset;
use crate::dpsgd::{DpError, DpSettings, DpSgd, Optimizer, PoissonSampler};
pub use crate::dpsgd::OptimizerKind;
use crate::models::Model;
use crate::rng::{self, Stream};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Training settings; `Default` is the one source of truth for defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    /// Passes over the data (fractional allowed).
    pub epochs: f64,
    /// Batch size B; under DP the expected batch size L, with q = L/N.
    pub batch_size: usize,
    /// Learning rate η.
    pub lr: f64,
    pub optimizer: OptimizerKind,
    /// SGD momentum μ (ignored by Adam).
    pub momentum: f64,
    /// L2 weight decay λ, applied after privatisation.
    pub weight_decay: f64,
    /// `None`: non-private training.
    pub dp: Option<DpSettings>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig { epochs: 1.0, batch_size: 256, lr: 0.1, optimizer: OptimizerKind::Sgd, momentum: 0.0, weight_decay: 0.0, dp: None }
    }
}

/// Reported after every step.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// 1-based step number.
    pub step: u64,
    pub total_steps: u64,
    /// Epochs done so far (step·q under DP).
    pub epoch: f64,
    /// Mean per-example loss of this step's batch (NaN for an empty batch).
    pub loss: f64,
    pub batch_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FitOutcome {
    /// Steps taken T.
    pub steps: u64,
    /// q = L/N under DP; B/N without.
    pub sample_rate: f64,
    /// Mean per-example loss over the batches of the last epoch's worth of steps.
    pub final_loss: f64,
    /// Mean realised batch size.
    pub mean_batch_size: f64,
    /// The DP settings used (None when non-private).
    pub dp: Option<DpSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("invalid training setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("the training set is empty")]
    EmptyData,
    #[error("the model expects examples of shape {model:?} but the data has {data:?}")]
    ShapeMismatch { model: Vec<i64>, data: Vec<i64> },
    #[error(transparent)]
    Dp(#[from] DpError),
    #[error("libtorch error: {0}")]
    Tch(#[from] tch::TchError),
}

impl FitConfig {
    /// Reject epochs ≤ 0, batch 0, lr ≤ 0, momentum ∉ [0, 1), weight decay < 0, bad DP settings.
    pub fn check(&self) -> Result<(), FitError> {
        let bad = |field, value: f64, reason| Err(FitError::Invalid { field, value: value.to_string(), reason });
        if !(self.epochs.is_finite() && self.epochs > 0.0) {
            return bad("epochs", self.epochs, "must be finite and > 0");
        }
        if self.batch_size == 0 {
            return bad("batch_size", 0.0, "must be ≥ 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr, "must be finite and > 0");
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("momentum", self.momentum, "must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay, "must be finite and ≥ 0");
        }
        if let Some(dp) = &self.dp {
            dp.check()?;
        }
        Ok(())
    }
}

/// Number of DP-SGD steps for `epochs` at sampling rate q: round(epochs/q), at least 1.
pub fn dp_steps(epochs: f64, q: f64) -> u64 {
    ((epochs / q).round() as u64).max(1)
}

/// The step schedule of `cfg` on `n` training records: the sampling rate q and the number of steps
/// T. DP: q = L/N and T = [`dp_steps`]; non-private: q = B/N with B = min(batch, N) and
/// T = round(epochs · ⌈N/B⌉), at least 1. The one place these are computed (the trainer, σ
/// calibration and progress bars all read it).
pub fn schedule(cfg: &FitConfig, n: usize) -> (f64, u64) {
    match &cfg.dp {
        Some(_) => {
            let q = cfg.batch_size as f64 / n as f64;
            (q, dp_steps(cfg.epochs, q))
        }
        None => {
            let b = cfg.batch_size.min(n).max(1);
            let per_epoch = n.div_ceil(b) as f64;
            (b as f64 / n as f64, ((cfg.epochs * per_epoch).round() as u64).max(1))
        }
    }
}

/// One non-private step on `(x, y)` (already on the model's device): mean cross-entropy,
/// backward to the parameters, optimizer update. Returns the mean loss.
pub fn nonprivate_step(model: &Model, opt: &mut Optimizer, x: &Tensor, y: &Tensor) -> f64 {
    let params = model.parameters();
    let loss = Model::per_example_loss(&model.forward(x, None), y).mean(Kind::Float);
    let grads = Tensor::run_backward(&[&loss], &params, false, false);
    opt.step(&params, &grads);
    loss.double_value(&[])
}

/// Train `model` on `train`. `seed` drives shuffling, Poisson sampling and noise (None: OS entropy).
pub fn fit(
    model: &mut Model,
    train: &Dataset,
    cfg: &FitConfig,
    seed: Option<u64>,
    device: Device,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<FitOutcome, FitError> {
    cfg.check()?;
    let n = train.len();
    if n == 0 {
        return Err(FitError::EmptyData);
    }
    if train.example_shape() != model.input_shape {
        return Err(FitError::ShapeMismatch { model: model.input_shape.clone(), data: train.example_shape() });
    }
    let params = model.parameters();
    let mut opt = Optimizer::new(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, &params);
    let nu = n as usize;
    let mut losses: Vec<(f64, usize)> = Vec::new();
    let (q, steps) = schedule(cfg, nu);
    let per_epoch = match &cfg.dp {
        None => {
            let b = cfg.batch_size.min(nu);
            let per_epoch = nu.div_ceil(b) as u64;
            let mut rng = rng::stream(seed, Stream::Shuffle);
            let mut order: Vec<i64> = (0..n).collect();
            let mut step = 0u64;
            'outer: loop {
                order.shuffle(&mut rng);
                for chunk in order.chunks(b) {
                    if step == steps {
                        break 'outer;
                    }
                    step += 1;
                    let idx = Tensor::from_slice(chunk);
                    let x = train.x.index_select(0, &idx).to_device(device);
                    let y = train.y.index_select(0, &idx).to_device(device);
                    let loss = nonprivate_step(model, &mut opt, &x, &y);
                    losses.push((loss * chunk.len() as f64, chunk.len()));
                    on_step(&StepInfo { step, total_steps: steps, epoch: step as f64 / per_epoch as f64, loss, batch_size: chunk.len() });
                }
            }
            per_epoch
        }
        Some(dp) => {
            if cfg.batch_size > nu {
                return Err(FitError::Invalid { field: "batch_size", value: cfg.batch_size.to_string(), reason: "under DP the expected batch size must not exceed the number of training records" });
            }
            let mut sampler = PoissonSampler::new(nu, q, seed)?;
            let mut dpsgd = DpSgd::new(model, dp.clone(), q * n as f64, seed)?;
            for step in 1..=steps {
                let idx = sampler.sample();
                let it = Tensor::from_slice(&idx);
                let x = train.x.index_select(0, &it);
                let y = train.y.index_select(0, &it);
                let st = dpsgd.privatise(model, &x, &y);
                opt.step(&params, dpsgd.grads());
                let loss = if st.n > 0 { st.loss_sum / st.n as f64 } else { f64::NAN };
                losses.push((st.loss_sum, st.n));
                on_step(&StepInfo { step, total_steps: steps, epoch: step as f64 * q, loss, batch_size: st.n });
            }
            (1.0 / q).ceil() as u64
        }
    };
    let last = &losses[losses.len().saturating_sub(per_epoch.max(1) as usize)..];
    let (ls, cnt) = last.iter().fold((0.0, 0usize), |(a, b), (l, c)| (a + l, b + c));
    let total: usize = losses.iter().map(|(_, c)| c).sum();
    Ok(FitOutcome {
        steps,
        sample_rate: q,
        final_loss: if cnt > 0 { ls / cnt as f64 } else { f64::NAN },
        mean_batch_size: total as f64 / steps as f64,
        dp: cfg.dp.clone(),
    })
}

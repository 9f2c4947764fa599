//! The step/epoch loop: non-private mini-batch training or DP-SGD.
//!
//! - Non-private: each epoch shuffles the records (ChaCha20 `Stream::Shuffle`) and walks fixed
//!   batches of `batch_size` (the last one smaller); T = round(epochs · ⌈N/B⌉).
//! - DP-SGD: Poisson sampling with q = L/N (L = `batch_size`, the expected batch size),
//!   T = round(epochs / q) steps (round half away from zero, at least 1; Opacus uses ⌊epochs/q⌋),
//!   each step privatised by [`DpSgd`]. The accountant must be given [`FitOutcome::steps`] and
//!   [`FitOutcome::sample_rate`].

use crate::data::Dataset;
pub use crate::dpsgd::OptimizerKind;
use crate::dpsgd::{DpError, DpSettings, DpSgd, Optimizer, PoissonSampler};
use crate::models::Model;
use crate::params::{Checked, ParamGuard};
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
    /// How η changes over the T steps.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Input standardisation inside the model.
    #[serde(default)]
    pub input_norm: InputNorm,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 1.0,
            batch_size: 256,
            lr: 0.1,
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            dp: None,
            lr_schedule: LrSchedule::default(),
            input_norm: InputNorm::default(),
        }
    }
}

/// Learning-rate schedule over the T steps of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// η at every step.
    #[default]
    Constant,
    /// Cosine decay to 0 without restarts (Loshchilov & Hutter 2017, SGDR):
    /// η_t = η · ½(1 + cos(π (t−1)/T)) for steps t = 1..T.
    Cosine,
}

impl LrSchedule {
    /// η at 1-based step `t` of `total`.
    pub fn lr_at(self, lr: f64, t: u64, total: u64) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                lr * 0.5 * (1.0 + (std::f64::consts::PI * (t - 1) as f64 / total.max(1) as f64).cos())
            }
        }
    }
}

/// Input standardisation x ↦ (x − μ_c)/s_c inside the model ([`Model::set_input_standardization`]).
/// Triggers are applied to the data before it, in the data's own units.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InputNorm {
    /// The input as loaded (images in [0, 1]; tabular data as its loader standardised it).
    #[default]
    None,
    /// μ_c and s_c (population std) fitted on the training set as trained on, collective records
    /// included. Refused under DP: these statistics of private records are not covered by the
    /// accountant.
    Fit,
    /// Given constants (e.g. published statistics of a public data set); fine under DP.
    Fixed { mean: Vec<f64>, std: Vec<f64> },
}

/// Grammar of `--input-norm`.
pub const INPUT_NORM_HELP: &str = "none | fit | MEAN/STD with comma-separated per-channel lists, e.g. 0.286/0.353 or 0.49,0.48,0.45/0.25,0.24,0.26";

impl std::str::FromStr for InputNorm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "none" => Ok(InputNorm::None),
            "fit" => Ok(InputNorm::Fit),
            t => {
                let (m, sd) = t.split_once('/').ok_or_else(|| format!("{s:?} is not {INPUT_NORM_HELP}"))?;
                let list = |v: &str| -> Result<Vec<f64>, String> {
                    v.split(',')
                        .map(|x| {
                            x.trim()
                                .parse::<f64>()
                                .map_err(|_| format!("{x:?} in {s:?} is not a number ({INPUT_NORM_HELP})"))
                        })
                        .collect()
                };
                Ok(InputNorm::Fixed { mean: list(m)?, std: list(sd)? })
            }
        }
    }
}

impl std::fmt::Display for InputNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        match self {
            InputNorm::None => write!(f, "none"),
            InputNorm::Fit => write!(f, "fit"),
            InputNorm::Fixed { mean, std } => write!(f, "{}/{}", list(mean), list(std)),
        }
    }
}

/// Per-channel mean and population standard deviation of `x` `[N, C, H, W]` (channels) or `[N, D]`
/// (features); a constant channel gets s = 1 so it maps to 0 instead of dividing by zero.
pub fn channel_stats(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let dims: Vec<i64> = if x.dim() == 4 { vec![0, 2, 3] } else { vec![0] };
    let x = x.to_kind(Kind::Double);
    let mean = x.mean_dim(dims.as_slice(), false, Kind::Double);
    let std = x.std_dim(dims.as_slice(), false, false);
    let v = |t: Tensor| Vec::<f64>::try_from(t.flatten(0, -1)).unwrap_or_default();
    let std = v(std).into_iter().map(|s| if s > 0.0 && s.is_finite() { s } else { 1.0 }).collect();
    (v(mean), std)
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
    /// The input standardisation applied (μ, s), fitted or given; None without one.
    pub input_norm: Option<(Vec<f64>, Vec<f64>)>,
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
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error("libtorch error: {0}")]
    Tch(#[from] tch::TchError),
}

impl ParamGuard for FitConfig {
    type Error = FitError;

    /// Reject epochs ≤ 0, batch 0, lr ≤ 0, momentum ∉ [0, 1), weight decay < 0, bad DP settings.
    fn validate(&self) -> Result<(), FitError> {
        let bad = |field, value: f64, reason| {
            let value = if value.abs() >= 1e15 { format!("{value:e}") } else { value.to_string() };
            Err(FitError::Invalid { field, value, reason })
        };
        if !(self.epochs.is_finite() && self.epochs > 0.0) {
            return bad("epochs", self.epochs, "must be finite and > 0");
        }
        if self.epochs > MAX_EPOCHS {
            return bad("epochs", self.epochs, "is more than 10⁹ passes over the data; no run could finish");
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
            dp.validate()?;
            if self.input_norm == InputNorm::Fit {
                return Err(FitError::Invalid {
                    field: "input_norm",
                    value: "fit".into(),
                    reason: "under DP the statistics of the private training set are not covered by the accountant; give public constants MEAN/STD instead",
                });
            }
        }
        Ok(())
    }
}

impl Checked<FitConfig> {
    /// The DP settings, checked as part of the whole (what `fit` hands to [`DpSgd::new`]).
    pub fn dp_checked(&self) -> Option<Checked<DpSettings>> {
        self.dp.clone().map(Checked::assume_checked)
    }
}

/// Upper limit on `epochs`: beyond it T overflows or the run could never finish.
pub const MAX_EPOCHS: f64 = 1e9;

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
    cfg: &Checked<FitConfig>,
    seed: Option<u64>,
    device: Device,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<FitOutcome, FitError> {
    let n = train.len();
    if n == 0 {
        return Err(FitError::EmptyData);
    }
    if train.example_shape() != model.input_shape {
        return Err(FitError::ShapeMismatch {
            model: model.input_shape.clone(),
            data: train.example_shape(),
        });
    }
    let input_norm = match &cfg.input_norm {
        InputNorm::None => None,
        InputNorm::Fit => Some(channel_stats(&train.x)),
        InputNorm::Fixed { mean, std } => Some((mean.clone(), std.clone())),
    };
    if let Some((m, s)) = &input_norm {
        model.set_input_standardization(m, s)?;
    }
    let params = model.parameters();
    let mut opt = Optimizer::new(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, &params);
    let nu = n as usize;
    let mut losses: Vec<(f64, usize)> = Vec::new();
    let (q, steps) = schedule(cfg, nu);
    let per_epoch = match cfg.dp_checked() {
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
                    opt.set_lr(cfg.lr_schedule.lr_at(cfg.lr, step, steps));
                    let idx = Tensor::from_slice(chunk);
                    let x = train.x.index_select(0, &idx).to_device(device);
                    let y = train.y.index_select(0, &idx).to_device(device);
                    let loss = nonprivate_step(model, &mut opt, &x, &y);
                    losses.push((loss * chunk.len() as f64, chunk.len()));
                    on_step(&StepInfo {
                        step,
                        total_steps: steps,
                        epoch: step as f64 / per_epoch as f64,
                        loss,
                        batch_size: chunk.len(),
                    });
                }
            }
            per_epoch
        }
        Some(dp) => {
            if cfg.batch_size > nu {
                return Err(FitError::Invalid {
                    field: "batch_size",
                    value: cfg.batch_size.to_string(),
                    reason: "under DP the expected batch size must not exceed the number of training records",
                });
            }
            let mut sampler = PoissonSampler::new(nu, q, seed)?;
            let mut dpsgd = DpSgd::new(model, dp, q * n as f64, seed)?;
            for step in 1..=steps {
                opt.set_lr(cfg.lr_schedule.lr_at(cfg.lr, step, steps));
                let idx = sampler.sample();
                let it = Tensor::from_slice(&idx);
                let x = train.x.index_select(0, &it);
                let y = train.y.index_select(0, &it);
                let st = dpsgd.privatise(model, &x, &y);
                opt.step(&params, dpsgd.grads());
                let loss = if st.n > 0 { st.loss_sum / st.n as f64 } else { f64::NAN };
                losses.push((st.loss_sum, st.n));
                on_step(&StepInfo {
                    step,
                    total_steps: steps,
                    epoch: step as f64 * q,
                    loss,
                    batch_size: st.n,
                });
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
        input_norm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpsgd::DpSettings;

    #[test]
    fn cosine_schedule_starts_at_lr_and_decays_monotonically_towards_zero() {
        let t = 100;
        let lrs: Vec<f64> = (1..=t).map(|s| LrSchedule::Cosine.lr_at(0.5, s, t)).collect();
        assert_eq!(lrs[0], 0.5);
        assert!(lrs.windows(2).all(|w| w[1] < w[0]));
        assert!(lrs[t as usize - 1] > 0.0 && lrs[t as usize - 1] < 0.5 * 1e-3);
        assert!((LrSchedule::Cosine.lr_at(0.5, 51, t) - 0.25).abs() < 1e-12, "half way is η/2");
        assert!((1..=t).all(|s| LrSchedule::Constant.lr_at(0.5, s, t) == 0.5));
    }

    #[test]
    fn input_norm_parses_its_grammar() {
        assert_eq!("none".parse::<InputNorm>().unwrap(), InputNorm::None);
        assert_eq!("fit".parse::<InputNorm>().unwrap(), InputNorm::Fit);
        assert_eq!(
            "0.49,0.48/0.25, 0.24".parse::<InputNorm>().unwrap(),
            InputNorm::Fixed { mean: vec![0.49, 0.48], std: vec![0.25, 0.24] }
        );
        assert!("0.3".parse::<InputNorm>().is_err());
        for s in ["none", "fit", "0.49,0.48/0.25,0.24"] {
            assert_eq!(s.parse::<InputNorm>().unwrap().to_string(), s, "Display round-trips");
        }
        assert!("a/0.3".parse::<InputNorm>().unwrap_err().contains("\"a\""));
    }

    #[test]
    fn channel_stats_are_per_channel_and_guard_constant_channels() {
        // Two channels: channel 0 holds 0..8 over 2 examples × 2×2 pixels, channel 1 is constant 3.
        let c0 = Tensor::arange(8, (Kind::Float, Device::Cpu)).reshape([2, 1, 2, 2]);
        let c1 = Tensor::full([2, 1, 2, 2], 3.0, (Kind::Float, Device::Cpu));
        let (m, s) = channel_stats(&Tensor::cat(&[c0, c1], 1));
        assert!((m[0] - 3.5).abs() < 1e-12 && (m[1] - 3.0).abs() < 1e-12, "{m:?}");
        assert!((s[0] - 5.25f64.sqrt()).abs() < 1e-9 && s[1] == 1.0, "{s:?}");
    }

    #[test]
    fn fitted_standardisation_is_applied_inside_the_model_and_recorded() {
        let x = (Tensor::arange(40 * 144, (Kind::Float, Device::Cpu)).remainder(17.0) / 40.0 + 0.2)
            .reshape([40, 1, 12, 12]);
        let y = Tensor::arange(40, (Kind::Int64, Device::Cpu)).remainder(2);
        let data = Dataset { x: x.shallow_clone(), y, num_classes: 2 };
        let mut model =
            Model::new(&crate::models::ModelKind::Softmax, &[1, 12, 12], 2, Some(1), Device::Cpu).unwrap();
        let cfg =
            FitConfig { epochs: 1.0, batch_size: 40, input_norm: InputNorm::Fit, ..FitConfig::default() };
        let out =
            fit(&mut model, &data, &cfg.check_ref().unwrap(), Some(1), Device::Cpu, &mut |_| {}).unwrap();
        let (m, s) = out.input_norm.expect("recorded");
        assert!((m[0] - x.mean(Kind::Double).double_value(&[])).abs() < 1e-6);
        // The model maps the training mean to 0: its logits there equal the bias.
        let at_mean = Tensor::full([1, 1, 12, 12], m[0], (Kind::Float, Device::Cpu));
        let logits = model.logits(&at_mean);
        let bias = model.parameters()[1].detach();
        assert!((logits.squeeze_dim(0) - bias).abs().max().double_value(&[]) < 1e-5);
        assert!(s[0] > 0.0);
        // Under DP, fitting on private data is refused.
        let dp = FitConfig { dp: Some(DpSettings::default()), ..cfg };
        assert!(matches!(dp.check(), Err(FitError::Invalid { field: "input_norm", .. })));
    }
}

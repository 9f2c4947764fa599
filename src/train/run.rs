//! One training run, end to end: load data → plant collectives → (calibrate σ) → fit → evaluate
//! clean accuracy and collective success → account ε → a JSON run record.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::accountant::{self, Method, Phase};
use crate::collective::{self, CollectiveInfo, CollectiveSpec, MultiSuccessReport, Rate};
use crate::data::{self, DataDir, Dataset, DatasetSpec, Limits, Split};
use crate::device::{self, DeviceChoice};
use crate::models::{Model, ModelKind};
use crate::params::{Checked, ParamGuard};
use crate::provenance::Provenance;
use crate::train::fit::{self, FitConfig, FitOutcome, StepInfo};

/// δ used when none is given: the conventional 1e-5 (≤ 1/N for every bundled data set except the
/// fixtures, where the run record's warning says so).
pub const DEFAULT_DELTA: f64 = 1e-5;
/// Test examples evaluated per forward pass.
const EVAL_BATCH: i64 = 1000;

/// Everything that defines a run. Shared by `crowdout train` and sweep cells; serialised whole into
/// the run record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub limits: Limits,
    pub model: ModelKind,
    pub fit: FitConfig,
    /// Calibrate σ to this ε (at `delta`, with `accountant`) before training; then
    /// `fit.dp.noise_multiplier` is replaced by the calibrated σ.
    #[serde(default)]
    pub target_epsilon: Option<f64>,
    /// δ for reporting ε and for calibration.
    pub delta: f64,
    /// Accountant used to calibrate σ (ε is always reported by both RDP and PLD).
    pub accountant: Method,
    #[serde(default)]
    pub collectives: Vec<CollectiveSpec>,
    /// Seeds every ChaCha20 stream (init, shuffling, membership, sampling, noise). `None`: OS
    /// entropy, as privacy noise for real deployments must be.
    pub seed: Option<u64>,
    pub device: DeviceChoice,
}

/// What the DP part of a run did, for the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DpRecord {
    pub noise_multiplier: f64,
    pub max_grad_norm: f64,
    pub sample_rate: f64,
    pub expected_batch_size: f64,
    pub steps: u64,
    pub delta: f64,
    /// ε by RDP (Opacus's orders and conversion) and the optimal order.
    pub epsilon_rdp: f64,
    pub rdp_order: Option<f64>,
    /// ε by the PLD accountant (an upper bound).
    pub epsilon_pld: f64,
    /// μ of the CLT Gaussian-DP approximation.
    pub gdp_mu: f64,
    /// Set when σ was calibrated to a target ε.
    pub calibrated_for_epsilon: Option<f64>,
    pub clipping: String,
    pub grad_mode: String,
    /// True when `--seed` fixed the noise: reproducible, therefore for experiments only.
    pub noise_reproducible: bool,
}

/// Data set facts for the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataRecord {
    pub name: String,
    pub n_train: i64,
    pub n_test: i64,
    pub example_shape: Vec<i64>,
    pub num_classes: i64,
}

/// A collective as recorded (without the member index lists).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CollectiveRecord {
    pub spec: String,
    pub target: i64,
    pub eligible: u64,
    pub members: u64,
    pub deviators: u64,
}

impl From<&CollectiveInfo> for CollectiveRecord {
    fn from(c: &CollectiveInfo) -> Self {
        CollectiveRecord {
            spec: c.spec_string.clone(),
            target: c.target,
            eligible: c.eligible,
            members: c.members,
            deviators: c.deviators,
        }
    }
}

/// The JSON run record: config, provenance, what happened, metrics, wall time.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub config: RunConfig,
    pub provenance: Provenance,
    pub device: String,
    pub data: DataRecord,
    pub model_params: i64,
    pub collectives: Vec<CollectiveRecord>,
    pub steps: u64,
    pub final_train_loss: f64,
    /// The input standardisation (per-channel mean, std) the model applied, fitted or given.
    pub input_norm: Option<(Vec<f64>, Vec<f64>)>,
    pub dp: Option<DpRecord>,
    pub clean_accuracy: Rate,
    pub success: Option<MultiSuccessReport>,
    pub warnings: Vec<String>,
    pub wall_seconds: f64,
    /// Where `wall_seconds` went (and the data loading before it, when this run loaded the data).
    pub phases: PhaseTimes,
}

/// Seconds spent in each phase of a run, measured with [`Instant`] around each: what a cell
/// costs besides its training steps (issue 19: measure the loop's overhead, don't guess it).
/// `load` is outside `wall_seconds`; the others add up to it up to the few checks between them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PhaseTimes {
    /// Loading (and tokenising) the data set; `None` when the caller passed a loaded split (the
    /// sweep runner caches splits per process).
    pub load: Option<f64>,
    /// Planting the collectives in a copy of the training set, and their checks.
    pub plant: f64,
    /// σ calibration for a target ε (zero without one).
    pub calibrate: f64,
    /// Building the model.
    pub build: f64,
    /// The training loop: sampling, per-sample gradients, clipping, noise, optimizer steps.
    pub train: f64,
    /// Accounting the finished run (ε by RDP and PLD, μ).
    pub account: f64,
    /// Clean accuracy and the collectives' success on the test set.
    pub evaluate: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Collective(#[from] collective::CollectiveError),
    #[error(transparent)]
    Fit(#[from] fit::FitError),
    #[error(transparent)]
    Accountant(#[from] accountant::AccountantError),
    #[error("invalid setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
}

impl TrainError {
    /// For an invalid setting, however deep it was found (run, fit or DP settings): the field (its
    /// name in the structs and TOML specs; the CLI flag is `--` and the name with dashes), the
    /// value and the reason. `None` for other errors.
    pub fn invalid_setting(&self) -> Option<(&'static str, &str, &'static str)> {
        match self {
            TrainError::Invalid { field, value, reason }
            | TrainError::Fit(fit::FitError::Invalid { field, value, reason })
            | TrainError::Fit(fit::FitError::Dp(crate::dpsgd::DpError::Invalid { field, value, reason })) => {
                Some((field, value, reason))
            }
            _ => None,
        }
    }
}

/// Progress callbacks of a run.
pub trait Progress {
    /// Called once the number of steps is known.
    fn start(&mut self, _total_steps: u64, _sigma: Option<f64>, _q: f64) {}
    fn step(&mut self, _info: &StepInfo) {}
    fn finish(&mut self) {}
}

/// No progress output (sweeps draw their own bar).
pub struct Silent;
impl Progress for Silent {}

impl ParamGuard for RunConfig {
    type Error = TrainError;

    /// Reject δ ∉ (0, 1), ε ≤ 0, a target ε without DP, and bad training settings (σ of a target-ε
    /// run is calibrated later and not checked here), before anything is loaded.
    fn validate(&self) -> Result<(), TrainError> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(TrainError::Invalid {
                field: "delta",
                value: self.delta.to_string(),
                reason: "must be in (0, 1)",
            });
        }
        if let Some(e) = self.target_epsilon {
            if !(e.is_finite() && e > 0.0) {
                return Err(TrainError::Invalid {
                    field: "target_epsilon",
                    value: e.to_string(),
                    reason: "must be finite and > 0",
                });
            }
            if self.fit.dp.is_none() {
                return Err(TrainError::Invalid {
                    field: "target_epsilon",
                    value: e.to_string(),
                    reason: "needs DP training (--dp)",
                });
            }
        }
        // With a target ε, σ is not known until calibration: check the rest.
        let mut fit = self.fit.clone();
        if let (Some(_), Some(dp)) = (self.target_epsilon, fit.dp.as_mut()) {
            dp.noise_multiplier = 0.0;
        }
        fit.validate()?;
        Ok(())
    }
}

/// `per_batch(logits)` for `x` in evaluation batches on `device`, concatenated on the CPU
/// (`[0]` of `empty` when `x` is empty).
fn eval_batches(
    model: &Model,
    x: &Tensor,
    device: Device,
    empty: tch::Kind,
    per_batch: impl Fn(Tensor) -> Tensor,
) -> Tensor {
    let n = x.size()[0];
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = EVAL_BATCH.min(n - start);
        let xb = x.narrow(0, start, len).to_device(device);
        parts.push(per_batch(model.logits(&xb)).to_device(Device::Cpu));
        start += len;
    }
    if parts.is_empty() {
        Tensor::zeros([0], (empty, Device::Cpu))
    } else {
        Tensor::cat(&parts, 0)
    }
}

/// Predicted labels for `x`, evaluated in batches on `device`.
pub fn predict(model: &Model, x: &Tensor, device: Device) -> Tensor {
    eval_batches(model, x, device, tch::Kind::Int64, |z| z.argmax(-1, false))
}

/// Logits for `x` (`[n, K]` on the CPU), evaluated in batches on `device`.
pub fn logits(model: &Model, x: &Tensor, device: Device) -> Tensor {
    eval_batches(model, x, device, tch::Kind::Float, |z| z)
}

/// Clean accuracy of `model` on `test`, with its Clopper–Pearson interval.
pub fn accuracy(model: &Model, test: &Dataset, device: Device) -> Rate {
    let p = predict(model, &test.x, device);
    let correct = p.eq_tensor(&test.y).sum(tch::Kind::Int64).int64_value(&[]) as u64;
    Rate::new(correct, test.len() as u64)
}

/// ε by both accountants (and μ) for T steps at rate q and noise σ.
pub fn account(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
) -> Result<(f64, Option<f64>, f64, f64), TrainError> {
    let phases = [Phase { q, sigma, steps }];
    let rdp = accountant::epsilon(Method::Rdp, &phases, delta)?;
    let pld = accountant::epsilon(Method::Pld, &phases, delta)?;
    Ok((rdp.epsilon, rdp.optimal_order, pld.epsilon, accountant::gdp_mu(q, sigma, steps)))
}

/// Execute a run on an already loaded split (sweeps load once and reuse).
pub fn execute_on(
    cfg: &Checked<RunConfig>,
    split: &Split,
    progress: &mut dyn Progress,
) -> Result<RunRecord, TrainError> {
    Ok(train_on(cfg, split, progress)?.record)
}

/// A finished run with its trained model, for further measurements (baselines, audits).
pub struct Trained {
    pub record: RunRecord,
    pub model: Model,
    pub device: Device,
}

impl Trained {
    /// Success of collectives' triggers on this model (e.g. the no-collective baseline S₀).
    pub fn measure(
        &self,
        test: &Dataset,
        specs: &[CollectiveSpec],
    ) -> Result<MultiSuccessReport, TrainError> {
        let pred = |x: &Tensor| predict(&self.model, x, self.device);
        Ok(collective::success_many(&pred, test, specs)?)
    }
}

/// [`execute_on`], keeping the model.
pub fn train_on(
    cfg: &Checked<RunConfig>,
    split: &Split,
    progress: &mut dyn Progress,
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    // An empty part would divide by zero below (train) or report a NaN accuracy (test).
    if split.train.is_empty() {
        return Err(TrainError::Invalid {
            field: "training set",
            value: "0 examples".into(),
            reason: "is empty (check --train-limit / train_subset and the data)",
        });
    }
    if split.test.is_empty() {
        return Err(TrainError::Invalid {
            field: "test set",
            value: "0 examples".into(),
            reason: "is empty (check --test-limit / test_subset and the data)",
        });
    }
    let device = device::resolve(cfg.device)?;
    let mut warnings = Vec::new();
    let n = split.train.len();
    let mut phases = PhaseTimes::default();
    let mut clock = Instant::now();
    // Seconds since the previous call (or the start), restarting the clock.
    let mut lap = || {
        let t = clock.elapsed().as_secs_f64();
        clock = Instant::now();
        t
    };

    // The collective rewrites its members' records in a copy of the train set.
    let (train, infos) = if cfg.collectives.is_empty() {
        (split.train.shallow_clone(), Vec::new())
    } else {
        collective::validate_against(
            &cfg.collectives,
            &split.train.example_shape(),
            n,
            split.train.num_classes,
        )?;
        if let Some(vocab) = &split.vocab {
            collective::check_tokens(&cfg.collectives, vocab)?;
        }
        let planted = collective::plant(&split.train, &cfg.collectives, cfg.seed)?;
        (planted.train, planted.collectives)
    };
    phases.plant = lap();

    // σ calibration for a target ε.
    let mut fit_cfg = cfg.fit.clone();
    let mut calibrated = None;
    let (q, total) = fit::schedule(&fit_cfg, n as usize);
    if let (Some(target), Some(dp)) = (cfg.target_epsilon, fit_cfg.dp.as_mut()) {
        dp.noise_multiplier = accountant::calibrate_sigma(cfg.accountant, target, cfg.delta, q, total)?;
        calibrated = Some(target);
    }
    phases.calibrate = lap();
    if fit_cfg.dp.is_some() && cfg.delta > 1.0 / n as f64 {
        warnings.push(format!(
            "delta = {} is larger than 1/N = {:.3e}: a mechanism that publishes one random record outright satisfies this guarantee",
            cfg.delta,
            1.0 / n as f64
        ));
    }

    // Checked with `cfg`, except a calibrated σ, which calibration returns finite and > 0.
    debug_assert!(fit_cfg.validate().is_ok());
    let fit_cfg = Checked::assume_checked(fit_cfg);
    // Text: the token models get one embedding row per fitted id plus the unseen (plantable) ids.
    let vocab = split.vocab.as_ref().map(|v| v.model_vocab());
    let mut model =
        Model::for_data(&cfg.model, &train.example_shape(), train.num_classes, vocab, cfg.seed, device)?;
    phases.build = lap();
    progress.start(total, fit_cfg.dp.as_ref().map(|d| d.noise_multiplier), q);
    let outcome: FitOutcome =
        fit::fit(&mut model, &train, &fit_cfg, cfg.seed, device, &mut |s| progress.step(s))?;
    progress.finish();
    phases.train = lap();

    let dp = match &fit_cfg.dp {
        Some(d) => {
            let (eps_rdp, order, eps_pld, mu) =
                account(outcome.sample_rate, d.noise_multiplier, outcome.steps, cfg.delta)?;
            Some(DpRecord {
                noise_multiplier: d.noise_multiplier,
                max_grad_norm: d.max_grad_norm,
                sample_rate: outcome.sample_rate,
                expected_batch_size: outcome.sample_rate * n as f64,
                steps: outcome.steps,
                delta: cfg.delta,
                epsilon_rdp: eps_rdp,
                rdp_order: order,
                epsilon_pld: eps_pld,
                gdp_mu: mu,
                calibrated_for_epsilon: calibrated,
                clipping: format!("{:?}", d.clipping).to_lowercase(),
                grad_mode: format!("{:?}", d.grad_mode).to_lowercase(),
                noise_reproducible: cfg.seed.is_some(),
            })
        }
        None => None,
    };
    phases.account = lap();

    let success = if cfg.collectives.is_empty() {
        None
    } else {
        let pred = |x: &Tensor| predict(&model, x, device);
        Some(collective::success_many(&pred, &split.test, &cfg.collectives)?)
    };
    // The success report already holds the clean accuracy on the same test set (from the same
    // clean predictions): reuse it rather than a third pass over the test set.
    let clean_accuracy = match &success {
        Some(s) if !s.per_collective.is_empty() => s.per_collective[0].clean_accuracy,
        _ => accuracy(&model, &split.test, device),
    };
    phases.evaluate = lap();

    let record = RunRecord {
        config: RunConfig { fit: fit_cfg.into_inner(), ..(**cfg).clone() },
        provenance: Provenance::collect(),
        device: format!("{device:?}"),
        data: DataRecord {
            name: split.name.clone(),
            n_train: n,
            n_test: split.test.len(),
            example_shape: split.train.example_shape(),
            num_classes: split.train.num_classes,
        },
        model_params: model.num_params(),
        collectives: infos.iter().map(CollectiveRecord::from).collect(),
        steps: outcome.steps,
        final_train_loss: outcome.final_loss,
        input_norm: outcome.input_norm.clone(),
        dp,
        clean_accuracy,
        success,
        warnings,
        wall_seconds: started.elapsed().as_secs_f64(),
        phases,
    };
    Ok(Trained { record, model, device })
}

/// Load the data set named in `cfg` and execute the run.
pub fn execute(cfg: &Checked<RunConfig>, progress: &mut dyn Progress) -> Result<RunRecord, TrainError> {
    let t = Instant::now();
    let split = data::load(&cfg.dataset, &DataDir::from_env(), &cfg.limits)?;
    let load = t.elapsed().as_secs_f64();
    let mut record = execute_on(cfg, &split, progress)?;
    record.phases.load = Some(load);
    Ok(record)
}

//! Canary audits of DP-SGD: the collective's own trigger as the canary.
//!
//! A canary is a held-out record x (never in the base training set) turned into (g(x), y*): the
//! trigger g applied and the label set to the collective's target y* ([`CanaryLabel::Target`]),
//! or to a uniformly random label other than x's own ([`CanaryLabel::Random`], the mislabelled
//! canaries of Steinke et al. 2023, which are easier to detect one by one).
//!
//! # The trained mechanism
//! [`train_fixed_rate`] runs DP-SGD with Poisson rate q **and a normaliser fixed in advance**
//! (L = q·N_base, N_base = size of the base set without canaries). Adding a canary therefore
//! changes the mechanism exactly as an add/remove neighbour does in the accountant's analysis of
//! `Phase { q, sigma, steps }`: the same q, σ, T, clipping norm C, and one more record. (The
//! `train::fit` loop instead sets q = L/N from the data it is given, so q would differ between
//! the runs with and without a canary.)
//!
//! # Multi-run audit (Jagielski, Ullman & Oprea 2020)
//! R runs with the canary group (k records) and R without, each from its own seed; the score of a
//! run is the mean logit margin z_{y_c} − max_{j≠y_c} z_j of the canaries under their canary
//! labels. The threshold test and its Clopper–Pearson bounds are in
//! [`super::stats::multi_run_bound`]; with k > 1 the bound is per record through group privacy.
//!
//! # One-run audit (Steinke, Nasr & Jagielski 2023)
//! m canaries, each included independently with probability ½ (bits from the audit stream); one
//! training; canaries ranked by margin; for each guess count g in `guesses` the top g are
//! guessed "in" and the bottom g "out"; the number right gives ε_lb through
//! [`super::stats::one_run_eps_lb`] (their Thm 5.2 with δ, computed as in their Appendix D).
//! Several guess counts are a multiple comparison: each is evaluated at level β/|guesses|
//! (union bound), and the best of them is reported.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::stats::{multi_run_bound, one_run_eps_lb, RateBound, ThresholdRule};
use super::{run_seeds, AuditError, Result};
use crate::collective::Trigger;
use crate::data::Dataset;
use crate::dpsgd::{DpSettings, DpSgd, Optimizer, OptimizerKind, PoissonSampler};
use crate::models::{Model, ModelKind};
use crate::params::{Checked, ParamGuard};

/// Which label a canary carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryLabel {
    /// The collective's target y* (the canary *is* a collective member's record).
    #[default]
    Target,
    /// A uniformly random label different from the record's true label.
    Random,
}

/// The training each audit run performs. `Default` is the one source of truth for defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub model: ModelKind,
    /// Hidden sizes when `model` is an MLP (empty: the model module's default).
    #[serde(default)]
    pub hidden: Vec<i64>,
    /// DP-SGD steps T.
    pub steps: u64,
    /// Poisson sampling rate q ∈ (0, 1] (1 = full batch).
    pub sample_rate: f64,
    /// SGD learning rate.
    pub lr: f64,
    /// σ and C (and clipping mode).
    pub dp: DpSettings,
}

impl Default for TrainSpec {
    fn default() -> Self {
        TrainSpec {
            model: ModelKind::Softmax,
            hidden: Vec::new(),
            steps: 50,
            sample_rate: 1.0,
            lr: 1.0,
            dp: DpSettings::default(),
        }
    }
}

impl ParamGuard for TrainSpec {
    type Error = AuditError;

    /// Reject T = 0, q ∉ (0, 1], lr ≤ 0 and bad DP settings.
    fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(AuditError::Invalid { field: "steps", value: "0".into(), reason: "must be ≥ 1" });
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err(AuditError::Invalid {
                field: "sample_rate",
                value: self.sample_rate.to_string(),
                reason: "must be in (0, 1]",
            });
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(AuditError::Invalid {
                field: "lr",
                value: self.lr.to_string(),
                reason: "must be finite and > 0",
            });
        }
        self.dp.validate()?;
        Ok(())
    }
}

impl Checked<TrainSpec> {
    /// The DP settings, checked as part of the spec.
    pub fn dp_checked(&self) -> Checked<DpSettings> {
        Checked::assume_checked(self.dp.clone())
    }
}

impl TrainSpec {
    /// A fresh model for `data`, initialised from `seed`.
    pub fn build(&self, data: &Dataset, seed: u64, device: Device) -> Result<Model> {
        let shape = data.example_shape();
        Ok(match (&self.model, self.hidden.is_empty()) {
            (ModelKind::Mlp, false) => {
                Model::mlp(&shape, &self.hidden, data.num_classes, Some(seed), device)?
            }
            // Token models get a table for every id in the data (audits have no vocabulary).
            (kind, _) => {
                let vocab = Model::vocab_needed(kind, &data.x);
                Model::for_data(kind, &shape, data.num_classes, vocab, Some(seed), device)?
            }
        })
    }
}

/// Trains a fresh model on `data` with DP-SGD at the fixed rate `spec.sample_rate` and the fixed
/// normaliser `normaliser` (see the module docs); all randomness from `seed`'s streams.
pub fn train_fixed_rate(
    spec: &Checked<TrainSpec>,
    data: &Dataset,
    normaliser: f64,
    seed: u64,
    device: Device,
) -> Result<Model> {
    if data.is_empty() {
        return Err(AuditError::Data("the training set is empty".into()));
    }
    let model = spec.build(data, seed, device)?;
    let params = model.parameters();
    let mut opt = Optimizer::new(OptimizerKind::Sgd, spec.lr, 0.0, 0.0, &params);
    let mut sampler = PoissonSampler::new(data.len() as usize, spec.sample_rate, Some(seed))?;
    let mut dp = DpSgd::new(&model, spec.dp_checked(), normaliser, Some(seed))?;
    for _ in 0..spec.steps {
        let idx = Tensor::from_slice(&sampler.sample());
        let x = data.x.f_index_select(0, &idx)?;
        let y = data.y.f_index_select(0, &idx)?;
        dp.privatise(&model, &x, &y);
        opt.step(&params, dp.grads());
    }
    Ok(model)
}

/// Logit margins z_y − max_{j≠y} z_j (f64) of `model` on `(x, y)`: the audit's score, higher =
/// the model fits label y better.
pub fn margin_scores(model: &Model, x: &Tensor, y: &Tensor) -> Result<Vec<f64>> {
    let z = model.logits(&x.to_device(model.device)).f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
    let yi = y.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
    let zy = z.f_gather(1, &yi, false)?.f_squeeze_dim(1)?;
    let other = z.f_scatter_value(1, &yi, f64::NEG_INFINITY)?.f_amax(1, false)?;
    Ok(Vec::<f64>::try_from(&(zy - other))?)
}

/// `m` canaries from `pool` (held-out records): records whose label ≠ `target`, chosen uniformly
/// at random without replacement (audit stream of `seed`), with the trigger applied and the label
/// given by `label`.
pub fn make_canaries(
    pool: &Dataset,
    m: usize,
    trigger: &Trigger,
    target: i64,
    label: CanaryLabel,
    seed: Option<u64>,
) -> Result<Dataset> {
    use rand::RngExt;
    if target < 0 || target >= pool.num_classes {
        return Err(AuditError::Invalid {
            field: "target",
            value: target.to_string(),
            reason: "must be a class of the data set",
        });
    }
    if m == 0 {
        return Err(AuditError::Invalid { field: "canaries", value: "0".into(), reason: "must be ≥ 1" });
    }
    let y = Vec::<i64>::try_from(&pool.y.f_to_kind(Kind::Int64)?)?;
    let mut eligible: Vec<i64> = (0..y.len() as i64).filter(|&i| y[i as usize] != target).collect();
    if eligible.len() < m {
        return Err(AuditError::Data(format!(
            "{m} canaries requested but the held-out pool has only {} records with a label other than the target {target}",
            eligible.len()
        )));
    }
    let mut rng = crate::rng::stream(seed, crate::rng::Stream::Audit);
    rng.set_stream((1 << 8) | crate::rng::Stream::Audit as u64);
    for i in 0..m {
        let j = rng.random_range(i..eligible.len());
        eligible.swap(i, j);
    }
    let chosen = &eligible[..m];
    let x = trigger.apply(&pool.x.f_index_select(0, &Tensor::from_slice(chosen))?)?;
    let labels: Vec<i64> = chosen
        .iter()
        .map(|&i| match label {
            CanaryLabel::Target => target,
            CanaryLabel::Random => {
                let own = y[i as usize];
                let r = rng.random_range(0..pool.num_classes - 1);
                if r >= own {
                    r + 1
                } else {
                    r
                }
            }
        })
        .collect();
    Ok(Dataset { x, y: Tensor::from_slice(&labels), num_classes: pool.num_classes })
}

fn concat(a: &Dataset, b: &Dataset) -> Result<Dataset> {
    Ok(Dataset {
        x: Tensor::f_cat(&[&a.x, &b.x.to_kind(a.x.kind())], 0)?,
        y: Tensor::f_cat(&[&a.y, &b.y], 0)?,
        num_classes: a.num_classes,
    })
}

fn check_level(delta: f64, beta: f64) -> Result<()> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(AuditError::Invalid {
            field: "delta",
            value: delta.to_string(),
            reason: "must be in (0, 1)",
        });
    }
    if !(beta > 0.0 && beta < 1.0) {
        return Err(AuditError::Invalid {
            field: "confidence",
            value: (1.0 - beta).to_string(),
            reason: "must be in (0, 1)",
        });
    }
    Ok(())
}

/// Settings of the multi-run audit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultiRunConfig {
    /// Runs on each side (R with the canaries, R without).
    pub runs: usize,
    pub train: TrainSpec,
    /// δ of the claim being audited.
    pub delta: f64,
    /// 1 − confidence.
    pub beta: f64,
    pub rule: ThresholdRule,
    /// Master seed (None: OS entropy).
    pub seed: Option<u64>,
}

impl Default for MultiRunConfig {
    fn default() -> Self {
        MultiRunConfig {
            runs: 100,
            train: TrainSpec::default(),
            delta: 1e-5,
            beta: 0.05,
            rule: ThresholdRule::Split,
            seed: Some(0),
        }
    }
}

/// The outcome of a multi-run audit.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MultiRunReport {
    /// Canaries inserted together (k).
    pub canaries: usize,
    pub runs_per_side: usize,
    /// N_base (without canaries).
    pub n_base: usize,
    pub sample_rate: f64,
    pub noise_multiplier: f64,
    pub max_grad_norm: f64,
    pub steps: u64,
    pub delta: f64,
    pub confidence: f64,
    pub rule: ThresholdRule,
    /// The threshold test and the per-record ε lower bound.
    pub bound: RateBound,
    /// Filled in by the caller (the accountant's ε for the same q, σ, T, δ); None: not computed.
    pub accountant_epsilon: Option<f64>,
    /// Scores of the runs with and without the canaries, in run order.
    pub scores_in: Vec<f64>,
    pub scores_out: Vec<f64>,
}

/// The multi-run audit: `cfg.runs` trainings on `base ∪ canaries` and as many on `base`; see the
/// module docs. `progress(done, total)` is called after every training.
pub fn multi_run(
    base: &Dataset,
    canaries: &Dataset,
    cfg: &MultiRunConfig,
    device: Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MultiRunReport> {
    let train = cfg.train.check_ref()?;
    check_level(cfg.delta, cfg.beta)?;
    if cfg.runs < 2 {
        return Err(AuditError::Invalid {
            field: "runs",
            value: cfg.runs.to_string(),
            reason: "need at least 2 runs on each side",
        });
    }
    if canaries.is_empty() {
        return Err(AuditError::Invalid { field: "canaries", value: "0".into(), reason: "must be ≥ 1" });
    }
    let n_base = base.len() as usize;
    let normaliser = cfg.train.sample_rate * n_base as f64;
    let with = concat(base, canaries)?;
    let seeds = run_seeds(cfg.seed, 2, 2 * cfg.runs);
    let total = 2 * cfg.runs as u64;
    let (mut scores_in, mut scores_out) = (Vec::with_capacity(cfg.runs), Vec::with_capacity(cfg.runs));
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    for i in 0..cfg.runs {
        let m_in = train_fixed_rate(&train, &with, normaliser, seeds[2 * i], device)?;
        scores_in.push(mean(margin_scores(&m_in, &canaries.x, &canaries.y)?));
        progress(2 * i as u64 + 1, total);
        let m_out = train_fixed_rate(&train, base, normaliser, seeds[2 * i + 1], device)?;
        scores_out.push(mean(margin_scores(&m_out, &canaries.x, &canaries.y)?));
        progress(2 * i as u64 + 2, total);
    }
    let k = canaries.len() as u64;
    let bound = multi_run_bound(&scores_in, &scores_out, cfg.delta, cfg.beta, k, cfg.rule)?;
    Ok(MultiRunReport {
        canaries: k as usize,
        runs_per_side: cfg.runs,
        n_base,
        sample_rate: cfg.train.sample_rate,
        noise_multiplier: cfg.train.dp.noise_multiplier,
        max_grad_norm: cfg.train.dp.max_grad_norm,
        steps: cfg.train.steps,
        delta: cfg.delta,
        confidence: 1.0 - cfg.beta,
        rule: cfg.rule,
        bound,
        accountant_epsilon: None,
        scores_in,
        scores_out,
    })
}

/// Settings of the one-run audit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OneRunConfig {
    pub train: TrainSpec,
    /// Guess counts g to try (g "in" guesses and g "out" guesses each; 2g ≤ m); Bonferroni over
    /// them. Empty: m/20, m/10, m/4, m/2 (those ≥ 1).
    #[serde(default)]
    pub guesses: Vec<usize>,
    pub delta: f64,
    pub beta: f64,
    pub seed: Option<u64>,
}

impl Default for OneRunConfig {
    fn default() -> Self {
        OneRunConfig {
            train: TrainSpec::default(),
            guesses: Vec::new(),
            delta: 1e-5,
            beta: 0.05,
            seed: Some(0),
        }
    }
}

/// One guess count's result.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct OneRunChoice {
    /// Guesses "in" (top) and "out" (bottom): g each.
    pub guesses_each: usize,
    /// r = 2g guesses, v of them right.
    pub r: u64,
    pub v: u64,
    /// ε lower bound at level 1 − β/|choices|.
    pub epsilon_lb: f64,
}

/// The outcome of a one-run audit.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct OneRunReport {
    /// m canaries.
    pub canaries: usize,
    /// How many were included.
    pub included: usize,
    pub n_base: usize,
    pub sample_rate: f64,
    pub noise_multiplier: f64,
    pub max_grad_norm: f64,
    pub steps: u64,
    pub delta: f64,
    pub confidence: f64,
    pub choices: Vec<OneRunChoice>,
    /// max over `choices`: the ε lower bound at confidence 1 − β overall.
    pub epsilon_lb: f64,
    pub accountant_epsilon: Option<f64>,
    /// Per canary: included?, score.
    pub inclusion: Vec<bool>,
    pub scores: Vec<f64>,
}

/// The one-run audit; see the module docs. `progress(done, total)` is called after the training.
pub fn one_run(
    base: &Dataset,
    canaries: &Dataset,
    cfg: &OneRunConfig,
    device: Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<OneRunReport> {
    let train = cfg.train.check_ref()?;
    check_level(cfg.delta, cfg.beta)?;
    let m = canaries.len() as usize;
    if m < 2 {
        return Err(AuditError::Invalid {
            field: "canaries",
            value: m.to_string(),
            reason: "the one-run audit needs at least 2 canaries",
        });
    }
    let guesses: Vec<usize> = if cfg.guesses.is_empty() {
        let mut g: Vec<usize> = [m / 20, m / 10, m / 4, m / 2].into_iter().filter(|&g| g >= 1).collect();
        g.dedup();
        g
    } else {
        cfg.guesses.clone()
    };
    if let Some(&g) = guesses.iter().find(|&&g| g == 0 || 2 * g > m) {
        return Err(AuditError::Invalid {
            field: "guesses",
            value: g.to_string(),
            reason: "each guess count g needs 1 ≤ g and 2g ≤ the number of canaries",
        });
    }
    let bits = run_seeds(cfg.seed, 3, m);
    let inclusion: Vec<bool> = bits.iter().map(|b| b & 1 == 1).collect();
    let included: Vec<i64> = (0..m as i64).filter(|&i| inclusion[i as usize]).collect();
    let n_base = base.len() as usize;
    let data = if included.is_empty() {
        base.shallow_clone()
    } else {
        let idx = Tensor::from_slice(&included);
        concat(
            base,
            &Dataset {
                x: canaries.x.f_index_select(0, &idx)?,
                y: canaries.y.f_index_select(0, &idx)?,
                num_classes: canaries.num_classes,
            },
        )?
    };
    let seed = run_seeds(cfg.seed, 4, 1)[0];
    let model = train_fixed_rate(&train, &data, cfg.train.sample_rate * n_base as f64, seed, device)?;
    progress(1, 1);
    let scores = margin_scores(&model, &canaries.x, &canaries.y)?;
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let b_each = cfg.beta / guesses.len() as f64;
    let mut choices = Vec::new();
    for &g in &guesses {
        let right_in = order[..g].iter().filter(|&&i| inclusion[i]).count();
        let right_out = order[m - g..].iter().filter(|&&i| !inclusion[i]).count();
        let (r, v) = (2 * g as u64, (right_in + right_out) as u64);
        choices.push(OneRunChoice {
            guesses_each: g,
            r,
            v,
            epsilon_lb: one_run_eps_lb(m as u64, r, v, cfg.delta, b_each)?,
        });
    }
    let epsilon_lb = choices.iter().map(|c| c.epsilon_lb).fold(0.0, f64::max);
    Ok(OneRunReport {
        canaries: m,
        included: included.len(),
        n_base,
        sample_rate: cfg.train.sample_rate,
        noise_multiplier: cfg.train.dp.noise_multiplier,
        max_grad_norm: cfg.train.dp.max_grad_norm,
        steps: cfg.train.steps,
        delta: cfg.delta,
        confidence: 1.0 - cfg.beta,
        choices,
        epsilon_lb,
        accountant_epsilon: None,
        inclusion,
        scores,
    })
}

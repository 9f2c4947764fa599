//! `crowdout audit`: empirical privacy audits (`canary`, `one-run`) and membership inference
//! (`mia`), as text or `--json`.
//!
//! The accountant's ε (and σ for `--epsilon`) comes from `crowdout::accountant` (PLD by default,
//! RDP with `--accountant rdp`) for the same (q, σ, T, δ) as the audited training.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use crowdout::accountant::{self as acct, Method};
use crowdout::audit::mia::Triple;
use crowdout::audit::{self, CanaryLabel, MiaConfig, MultiRunConfig, OneRunConfig, ThresholdRule, TrainSpec};
use crowdout::collective::{CollectiveSpec, Trigger};
use crowdout::data::{self, DataDir, DatasetSpec, Limits};
use crowdout::device::{self, DeviceChoice};
use crowdout::dpsgd::{DpSettings, OptimizerKind};
use crowdout::models::ModelKind;
use crowdout::train::fit::{dp_steps, FitConfig, InputNorm, LrSchedule};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub which: Which,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// libtorch intra-op threads (the audit's models are small: one thread avoids contention).
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: i32,
}

#[derive(Subcommand, Debug)]
pub enum Which {
    /// Multi-run audit (Jagielski et al. 2020): R trainings with the canary group and R without.
    Canary(CanaryArgs),
    /// One-run audit (Steinke, Nasr & Jagielski 2023): m canaries, each in with probability ½.
    OneRun(OneRunArgs),
    /// Membership inference (loss threshold and LiRA), optionally with a collective planted.
    Mia(MiaArgs),
    /// Steerability audit: per privacy arm, the critical mass α*(S*) and α₅₀ with 95% intervals,
    /// from an adaptive design on log α (resumable; the rows of a sweep).
    Steerability(super::steer::SteerArgs),
}

/// Data, model, DP-SGD and confidence flags shared by `canary` and `one-run`.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Dataset (fashion-mnist-mini, adult-mini, synthetic-tabular, … see `crowdout data`).
    #[arg(long, default_value = "fashion-mnist-mini")]
    pub dataset: DatasetSpec,
    /// Base training records N (the first N of the training split); canaries come from the test split.
    #[arg(long, default_value_t = 250)]
    pub n_train: usize,
    #[arg(long, value_enum, default_value = "softmax")]
    pub model: ModelKind,
    /// Hidden sizes for --model mlp, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Vec<i64>,
    /// DP-SGD steps T.
    #[arg(long, default_value_t = TrainSpec::default().steps)]
    pub steps: u64,
    /// Poisson sampling rate q in (0, 1] (1 = full batch).
    #[arg(long, default_value_t = TrainSpec::default().sample_rate)]
    pub sample_rate: f64,
    /// SGD learning rate.
    #[arg(long, default_value_t = TrainSpec::default().lr)]
    pub lr: f64,
    /// Clipping norm C.
    #[arg(long, default_value_t = DpSettings::default().max_grad_norm)]
    pub max_grad_norm: f64,
    /// Noise multiplier σ (give this or --epsilon).
    #[arg(long, conflicts_with = "epsilon")]
    pub noise_multiplier: Option<f64>,
    /// Target ε: σ is calibrated by the accountant for (q, T, δ).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// δ of the DP claim.
    #[arg(long, default_value_t = 1e-5)]
    pub delta: f64,
    /// Confidence 1 − β of the lower bound.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    #[arg(long, value_enum, default_value = "pld")]
    pub accountant: Method,
    /// The canary's trigger (the collective's g; grammar as in --collective's trigger=).
    #[arg(long, default_value = "patch:size=4:pos=br:value=1")]
    pub trigger: Trigger,
    /// The collective's target label y*.
    #[arg(long, default_value_t = 0)]
    pub target: i64,
    /// Master seed: every run's seed, the canary choice and inclusion derive from it (reproducible).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

#[derive(Args, Debug)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Runs per side R (R with the canaries, R without).
    #[arg(long, default_value_t = MultiRunConfig::default().runs)]
    pub runs: usize,
    /// Canaries inserted together, k (1: the per-record claim directly; k > 1: via group privacy).
    #[arg(long, default_value_t = 1)]
    pub canaries: usize,
    /// How the threshold is chosen.
    #[arg(long, value_enum, default_value = "split")]
    pub rule: ThresholdRule,
    #[arg(long, value_enum, default_value = "target")]
    pub canary_label: CanaryLabel,
}

#[derive(Args, Debug)]
pub struct OneRunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Canaries m, each included with probability ½.
    #[arg(long, default_value_t = 200)]
    pub canaries: usize,
    /// Guess counts g (g in, g out each), comma-separated; Bonferroni over them. Default m/20, m/10, m/4, m/2.
    #[arg(long, value_delimiter = ',')]
    pub guesses: Vec<usize>,
    #[arg(long, value_enum, default_value = "random")]
    pub canary_label: CanaryLabel,
}

#[derive(Args, Debug)]
pub struct MiaArgs {
    #[arg(long, default_value = "fashion-mnist-mini")]
    pub dataset: DatasetSpec,
    /// Members (first records of the training split).
    #[arg(long, default_value_t = MiaConfig::default().members)]
    pub members: usize,
    /// Non-members (first records of the test split).
    #[arg(long, default_value_t = MiaConfig::default().non_members)]
    pub non_members: usize,
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelKind,
    /// Hidden sizes for --model mlp, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub hidden: Vec<i64>,
    #[arg(long, default_value_t = MiaConfig::default().fit.epochs)]
    pub epochs: f64,
    /// Batch size (under DP the expected batch size; q = B / members).
    #[arg(long, default_value_t = MiaConfig::default().fit.batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = MiaConfig::default().fit.lr)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = MiaConfig::default().fit.optimizer)]
    pub optimizer: OptimizerKind,
    /// SGD momentum μ (ignored by Adam).
    #[arg(long, default_value_t = MiaConfig::default().fit.momentum)]
    pub momentum: f64,
    /// L2 weight decay, applied after privatisation.
    #[arg(long, default_value_t = MiaConfig::default().fit.weight_decay)]
    pub weight_decay: f64,
    /// Learning-rate schedule over the run's steps.
    #[arg(long, value_enum, default_value_t = MiaConfig::default().fit.lr_schedule)]
    pub lr_schedule: LrSchedule,
    /// Input standardisation inside the model (target and shadows alike):
    /// none | fit (refused under DP) | MEAN/STD per channel, e.g. 0.286/0.353.
    #[arg(long, default_value_t = MiaConfig::default().fit.input_norm)]
    pub input_norm: InputNorm,
    /// LiRA shadow models (0: loss-threshold attack only).
    #[arg(long, default_value_t = MiaConfig::default().shadows)]
    pub shadows: usize,
    /// A collective planted among the members (see `crowdout train --help` for the grammar).
    #[arg(long)]
    pub collective: Option<CollectiveSpec>,
    /// DP-SGD with this noise multiplier (omit both this and --epsilon for non-private training).
    #[arg(long, conflicts_with = "epsilon")]
    pub noise_multiplier: Option<f64>,
    /// DP-SGD calibrated to this ε.
    #[arg(long)]
    pub epsilon: Option<f64>,
    #[arg(long, default_value_t = DpSettings::default().max_grad_norm)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub delta: f64,
    #[arg(long, value_enum, default_value = "pld")]
    pub accountant: Method,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    if args.threads < 1 {
        bail!("--threads {} must be ≥ 1", args.threads);
    }
    tch::set_num_threads(args.threads);
    match args.which {
        Which::Canary(a) => canary(a, args.json),
        Which::OneRun(a) => one_run(a, args.json),
        Which::Mia(a) => mia(a, args.json),
        Which::Steerability(a) => super::steer::run(a, args.json, args.threads),
    }
}

fn check_unit(flag: &str, v: f64) -> anyhow::Result<()> {
    if !(v > 0.0 && v < 1.0) {
        bail!("{flag} = {v} must be in (0, 1)");
    }
    Ok(())
}

fn positive(flag: &str, v: f64) -> anyhow::Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} = {v} must be finite and > 0");
    }
    Ok(())
}

/// σ from --noise-multiplier or --epsilon (calibrated), and the accountant's ε for it.
fn privacy(
    method: Method,
    sigma: Option<f64>,
    eps: Option<f64>,
    q: f64,
    steps: u64,
    delta: f64,
) -> anyhow::Result<(f64, f64)> {
    let sigma = match (sigma, eps) {
        (Some(s), None) => {
            if !(s.is_finite() && s >= 0.0) {
                bail!("--noise-multiplier = {s} must be finite and ≥ 0");
            }
            s
        }
        (None, Some(e)) => {
            positive("--epsilon", e)?;
            acct::calibrate_sigma(method, e, delta, q, steps)
                .with_context(|| format!("calibrating σ for --epsilon {e}"))?
        }
        _ => bail!("give --noise-multiplier or --epsilon"),
    };
    let eps = if sigma == 0.0 {
        f64::INFINITY
    } else {
        acct::epsilon(method, &[acct::Phase { q, sigma, steps }], delta)?.epsilon
    };
    Ok((sigma, eps))
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

struct Prepared {
    base: data::Dataset,
    pool: data::Dataset,
    train: TrainSpec,
    accountant_eps: f64,
    device: tch::Device,
}

fn prepare(c: &CommonArgs) -> anyhow::Result<Prepared> {
    check_unit("--delta", c.delta)?;
    check_unit("--confidence", c.confidence)?;
    positive("--lr", c.lr)?;
    positive("--max-grad-norm", c.max_grad_norm)?;
    if !(c.sample_rate > 0.0 && c.sample_rate <= 1.0) {
        bail!("--sample-rate = {} must be in (0, 1]", c.sample_rate);
    }
    if c.steps == 0 {
        bail!("--steps must be ≥ 1");
    }
    if c.n_train == 0 {
        bail!("--n-train must be ≥ 1");
    }
    if !c.hidden.is_empty() && c.model != ModelKind::Mlp {
        bail!("--hidden applies to --model mlp only");
    }
    let (sigma, accountant_eps) =
        privacy(c.accountant, c.noise_multiplier, c.epsilon, c.sample_rate, c.steps, c.delta)?;
    let split = data::load(&c.dataset, &DataDir::from_env(), &Limits { train: Some(c.n_train), test: None })
        .with_context(|| format!("loading --dataset {}", c.dataset.name()))?;
    if (split.train.len() as usize) < c.n_train {
        bail!(
            "--n-train {} but {} has only {} training records",
            c.n_train,
            c.dataset.name(),
            split.train.len()
        );
    }
    c.trigger.validate(&split.train.example_shape()).context("--trigger does not fit the data")?;
    if c.target < 0 || c.target >= split.train.num_classes {
        bail!(
            "--target {} is not a class of {} (0..{})",
            c.target,
            c.dataset.name(),
            split.train.num_classes
        );
    }
    let device = device::resolve(c.device)?;
    let train = TrainSpec {
        model: c.model.clone(),
        hidden: c.hidden.clone(),
        steps: c.steps,
        sample_rate: c.sample_rate,
        lr: c.lr,
        dp: DpSettings { noise_multiplier: sigma, max_grad_norm: c.max_grad_norm, ..DpSettings::default() },
    };
    Ok(Prepared { base: split.train, pool: split.test, train, accountant_eps, device })
}

fn fmt_eps(e: f64) -> String {
    if e.is_infinite() {
        "∞".into()
    } else {
        format!("{e:.3}")
    }
}

fn canary(a: CanaryArgs, json: bool) -> anyhow::Result<()> {
    let p = prepare(&a.common)?;
    if a.runs < 2 {
        bail!("--runs must be ≥ 2");
    }
    if a.canaries == 0 {
        bail!("--canaries must be ≥ 1");
    }
    let c = &a.common;
    let canaries =
        audit::make_canaries(&p.pool, a.canaries, &c.trigger, c.target, a.canary_label, Some(c.seed))
            .context("--canaries")?;
    let cfg = MultiRunConfig {
        runs: a.runs,
        train: p.train,
        delta: c.delta,
        beta: 1.0 - c.confidence,
        rule: a.rule,
        seed: Some(c.seed),
    };
    let pb = bar(2 * a.runs as u64, "training");
    let mut report = audit::multi_run(&p.base, &canaries, &cfg, p.device, &mut |d, _| pb.set_position(d))?;
    pb.finish_and_clear();
    report.accountant_epsilon = Some(p.accountant_eps);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let b = &report.bound;
        println!(
            "multi-run audit: {} canar{} ({:?} label), {} runs per side, N = {}",
            report.canaries,
            if report.canaries == 1 { "y" } else { "ies" },
            a.canary_label,
            report.runs_per_side,
            report.n_base
        );
        println!(
            "  DP-SGD: q = {}, σ = {:.4}, C = {}, T = {}, δ = {}",
            report.sample_rate, report.noise_multiplier, report.max_grad_norm, report.steps, report.delta
        );
        println!(
            "  threshold {:.4} ({:?}): FP {}/{} (FPR ≤ {:.4}), FN {}/{} (FNR ≤ {:.4})",
            b.threshold, report.rule, b.false_pos, b.n_out, b.fpr_ub, b.false_neg, b.n_in, b.fnr_ub
        );
        println!(
            "  audited ε lower bound ({:.0}% confidence): {}",
            100.0 * report.confidence,
            fmt_eps(b.epsilon_lb)
        );
        println!("  accountant ε ({}): {}", c.accountant, fmt_eps(p.accountant_eps));
        verdict(b.epsilon_lb, p.accountant_eps);
    }
    Ok(())
}

fn verdict(lb: f64, eps: f64) {
    if lb > eps {
        println!("  VIOLATION: the audited lower bound exceeds the accountant's ε: a bug in the trainer or the accountant (or an event of probability ≤ 1 − confidence)");
    } else {
        println!("  consistent: audited lower bound ≤ accountant ε");
    }
}

fn one_run(a: OneRunArgs, json: bool) -> anyhow::Result<()> {
    let p = prepare(&a.common)?;
    let c = &a.common;
    if a.canaries < 2 {
        bail!("--canaries must be ≥ 2");
    }
    if let Some(g) = a.guesses.iter().find(|&&g| g == 0 || 2 * g > a.canaries) {
        bail!("--guesses {g}: each guess count g needs 1 ≤ g and 2g ≤ --canaries ({})", a.canaries);
    }
    let canaries =
        audit::make_canaries(&p.pool, a.canaries, &c.trigger, c.target, a.canary_label, Some(c.seed))
            .context("--canaries")?;
    let cfg = OneRunConfig {
        train: p.train,
        guesses: a.guesses.clone(),
        delta: c.delta,
        beta: 1.0 - c.confidence,
        seed: Some(c.seed),
    };
    let mut report = audit::one_run(&p.base, &canaries, &cfg, p.device, &mut |_, _| {})?;
    report.accountant_epsilon = Some(p.accountant_eps);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "one-run audit: {} canaries ({:?} label), {} included, N = {}",
            report.canaries, a.canary_label, report.included, report.n_base
        );
        println!(
            "  DP-SGD: q = {}, σ = {:.4}, C = {}, T = {}, δ = {}",
            report.sample_rate, report.noise_multiplier, report.max_grad_norm, report.steps, report.delta
        );
        for ch in &report.choices {
            println!(
                "  g = {:>4}: {}/{} guesses right → ε ≥ {}",
                ch.guesses_each,
                ch.v,
                ch.r,
                fmt_eps(ch.epsilon_lb)
            );
        }
        println!(
            "  audited ε lower bound ({:.0}% confidence, Bonferroni over {} guess counts): {}",
            100.0 * report.confidence,
            report.choices.len(),
            fmt_eps(report.epsilon_lb)
        );
        println!("  accountant ε ({}): {}", c.accountant, fmt_eps(p.accountant_eps));
        verdict(report.epsilon_lb, p.accountant_eps);
    }
    Ok(())
}

fn mia(a: MiaArgs, json: bool) -> anyhow::Result<()> {
    check_unit("--delta", a.delta)?;
    positive("--lr", a.lr)?;
    positive("--epochs", a.epochs)?;
    positive("--max-grad-norm", a.max_grad_norm)?;
    if a.batch_size == 0 || a.batch_size > a.members {
        bail!("--batch-size {} must be in 1..=--members ({})", a.batch_size, a.members);
    }
    if a.model != ModelKind::Mlp && a.hidden != vec![128] {
        bail!("--hidden applies to --model mlp only");
    }
    if a.input_norm == InputNorm::Fit && (a.noise_multiplier.is_some() || a.epsilon.is_some()) {
        bail!(
            "--input-norm fit is refused with DP-SGD (--epsilon / --noise-multiplier): statistics fitted \
             on the members are not private; give fixed values, e.g. --input-norm 0.286/0.353"
        );
    }
    let q = a.batch_size as f64 / a.members as f64;
    let (dp, eps) = if a.noise_multiplier.is_none() && a.epsilon.is_none() {
        (None, None)
    } else {
        let steps = dp_steps(a.epochs, q);
        let (sigma, eps) = privacy(a.accountant, a.noise_multiplier, a.epsilon, q, steps, a.delta)?;
        (
            Some(DpSettings {
                noise_multiplier: sigma,
                max_grad_norm: a.max_grad_norm,
                ..DpSettings::default()
            }),
            Some(eps),
        )
    };
    let cfg = MiaConfig {
        members: a.members,
        non_members: a.non_members,
        model: a.model.clone(),
        hidden: if a.model == ModelKind::Mlp { a.hidden.clone() } else { Vec::new() },
        fit: FitConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            optimizer: a.optimizer,
            momentum: a.momentum,
            weight_decay: a.weight_decay,
            lr_schedule: a.lr_schedule,
            input_norm: a.input_norm.clone(),
            dp,
        },
        shadows: a.shadows,
        collective: a.collective.clone(),
        seed: Some(a.seed),
    };
    let split = data::load(
        &a.dataset,
        &DataDir::from_env(),
        &Limits { train: Some(a.members), test: Some(a.non_members) },
    )
    .with_context(|| format!("loading --dataset {}", a.dataset.name()))?;
    let device = device::resolve(a.device)?;
    let pb = bar(1 + a.shadows as u64, "training target + shadows");
    let mut report = audit::mia(&split.train, &split.test, &cfg, device, &mut |d, _| pb.set_position(d))?;
    pb.finish_and_clear();
    report.accountant_epsilon = eps;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "membership inference: {} members, {} non-members, {} steps (q = {:.3})",
            report.members, report.non_members, report.steps, report.sample_rate
        );
        match (&report.noise_multiplier, eps) {
            (Some(s), Some(e)) => println!(
                "  DP-SGD: σ = {s:.4}, C = {}, ε = {} at δ = {}",
                a.max_grad_norm,
                fmt_eps(e),
                a.delta
            ),
            _ => println!("  non-private training"),
        }
        if let Some(c) = &report.collective {
            println!(
                "  collective: {c} ({} members), success {:.3}",
                report.collective_members,
                report.collective_success.unwrap_or(f64::NAN)
            );
        }
        println!(
            "  accuracy: members {:.3}, non-members {:.3}",
            report.train_accuracy, report.heldout_accuracy
        );
        println!("  AUC [95% DeLong interval over target records], members vs non-members:");
        println!(
            "    {:<22}{:<26}{:<26}{:<26}",
            "attack", "all members", "collective only", "non-collective only"
        );
        let cell = |t: &Triple| match t {
            (Some(a), Some(lo), Some(hi)) => format!("{a:.4} [{lo:.4}, {hi:.4}]"),
            _ => "—".to_string(),
        };
        let row = |name: String, g: [Triple; 3]| {
            println!("    {:<22}{:<26}{:<26}{:<26}", name, cell(&g[0]), cell(&g[1]), cell(&g[2]));
        };
        row("loss threshold".into(), report.loss_aucs());
        if report.auc_lira_offline.is_some() {
            row(format!("LiRA offline (K = {})", report.shadows), report.lira_aucs(false));
            row(format!("LiRA online (K = {})", report.shadows), report.lira_aucs(true));
        }
    }
    Ok(())
}

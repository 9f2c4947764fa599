//! `crowdout train`: one training run (non-private or DP-SGD, optionally with collectives) and its
//! JSON run record.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crowdout::accountant::{self, Method, Phase};
use crowdout::collective::{CollectiveSpec, COLLECTIVE_SPEC_HELP};
use crowdout::data::{DatasetSpec, Limits};
use crowdout::device::DeviceChoice;
use crowdout::dpsgd::{Clipping, DpSettings, GradMode};
use crowdout::models::ModelKind;
use crowdout::params::ParamGuard;
use crowdout::train::fit::{FitConfig, InputNorm, LrSchedule, OptimizerKind, StepInfo};
use crowdout::train::run::{self, Progress, RunConfig, TrainError, DEFAULT_DELTA};

fn fit_default() -> FitConfig {
    FitConfig::default()
}
fn dp_default() -> DpSettings {
    DpSettings::default()
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = COLLECTIVE_SPEC_HELP)]
pub struct TrainArgs {
    /// Data set: fashion-mnist, mnist, adult, spamassassin[:OPTIONS], fashion-mnist-mini,
    /// adult-mini, spamassassin-mini[:OPTIONS], synthetic-images, synthetic-tabular, csv:PATH,
    /// cifar10:DIR (see `crowdout data --help`).
    #[arg(long)]
    dataset: DatasetSpec,
    /// Model architecture.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Passes over the training data (fractional allowed).
    #[arg(long, default_value_t = fit_default().epochs)]
    epochs: f64,
    /// Batch size; under --dp the expected batch size L of Poisson sampling (q = L/N).
    #[arg(long, default_value_t = fit_default().batch_size, conflicts_with = "sample_rate")]
    batch_size: usize,
    /// Under --dp: the Poisson sampling rate q instead of --batch-size (L = qN).
    #[arg(long)]
    sample_rate: Option<f64>,
    /// Learning rate.
    #[arg(long, default_value_t = fit_default().lr)]
    lr: f64,
    #[arg(long, value_enum, default_value_t = fit_default().optimizer)]
    optimizer: OptimizerKind,
    /// SGD momentum (ignored by Adam).
    #[arg(long, default_value_t = fit_default().momentum)]
    momentum: f64,
    /// L2 weight decay, applied after privatisation.
    #[arg(long, default_value_t = fit_default().weight_decay)]
    weight_decay: f64,
    /// Learning-rate schedule over the run's steps.
    #[arg(long, value_enum, default_value_t = fit_default().lr_schedule)]
    lr_schedule: LrSchedule,
    /// Input standardisation x ↦ (x − mean)/std per channel inside the model, after any trigger:
    /// none | fit (from the training set; refused with --dp) | MEAN/STD (comma lists per channel,
    /// e.g. 0.286/0.353).
    #[arg(long, default_value_t = fit_default().input_norm)]
    input_norm: InputNorm,
    /// Seed for every random stream (init, shuffling, members, sampling, noise). Without it the
    /// streams are seeded from OS entropy; with it the noise is reproducible and the run is for
    /// experiments only.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Use only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test examples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Train with DP-SGD (per-sample clipping, Poisson sampling, Gaussian noise).
    #[arg(long)]
    dp: bool,
    /// σ: noise standard deviation in units of C (needs --dp; or use --target-epsilon).
    #[arg(long, requires = "dp", conflicts_with = "target_epsilon")]
    noise_multiplier: Option<f64>,
    /// Calibrate σ so that the run spends this ε at --delta (needs --dp).
    #[arg(long, requires = "dp")]
    target_epsilon: Option<f64>,
    /// C: per-sample clipping norm.
    #[arg(long, default_value_t = dp_default().max_grad_norm)]
    max_grad_norm: f64,
    #[arg(long, value_enum, default_value_t = dp_default().clipping)]
    clipping: Clipping,
    #[arg(long, value_enum, default_value_t = dp_default().grad_mode)]
    grad_mode: GradMode,
    /// Largest physical batch; larger logical batches are split and noised once (virtual steps).
    #[arg(long)]
    max_physical_batch: Option<usize>,
    /// δ of the (ε, δ) guarantee.
    #[arg(long, default_value_t = DEFAULT_DELTA)]
    delta: f64,
    /// Accountant for --target-epsilon calibration (ε is reported by both).
    #[arg(long, value_enum, default_value_t = Method::Rdp)]
    accountant: Method,
    /// A collective (repeatable): see the grammar below.
    #[arg(long = "collective")]
    collectives: Vec<CollectiveSpec>,
    /// Where to write the JSON run record (default: print it to stdout only). For text data the
    /// fitted vocabulary is written beside it, as `<out without extension>.vocab.json`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// libtorch intra-op threads (default: libtorch's own choice).
    #[arg(long)]
    threads: Option<i32>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Progress bar with loss and the running ε (RDP, cheap per update).
struct Bar {
    bar: Option<ProgressBar>,
    q: f64,
    sigma: Option<f64>,
    delta: f64,
    every: u64,
}

impl Progress for Bar {
    fn start(&mut self, total: u64, sigma: Option<f64>, q: f64) {
        self.q = q;
        self.sigma = sigma;
        self.every = (total / 200).max(1);
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}<{eta_precise}] {bar:30} {pos}/{len} steps {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
    }
    fn step(&mut self, s: &StepInfo) {
        let Some(b) = &self.bar else { return };
        b.set_position(s.step);
        if s.step.is_multiple_of(self.every) || s.step == s.total_steps {
            let eps = match self.sigma {
                Some(sigma) => {
                    accountant::epsilon(Method::Rdp, &[Phase { q: self.q, sigma, steps: s.step }], self.delta)
                        .map(|r| format!(" ε={:.3}", r.epsilon))
                        .unwrap_or_default()
                }
                None => String::new(),
            };
            b.set_message(format!("epoch {:.2} loss {:.4}{eps}", s.epoch, s.loss));
        }
    }
    fn finish(&mut self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    if let Some(t) = a.threads {
        anyhow::ensure!(t >= 1, "--threads must be ≥ 1, got {t}");
        tch::set_num_threads(t);
    }
    let limits = Limits { train: a.train_limit, test: a.test_limit };
    let loading = std::time::Instant::now();
    let split = crowdout::data::load(&a.dataset, &crowdout::data::DataDir::from_env(), &limits)
        .with_context(|| format!("loading --dataset {}", a.dataset.name()))?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let n = split.train.len() as f64;
    let batch_size = match a.sample_rate {
        Some(q) => {
            anyhow::ensure!(a.dp, "--sample-rate needs --dp (non-private training uses --batch-size)");
            anyhow::ensure!(q > 0.0 && q <= 1.0, "--sample-rate must be in (0, 1], got {q}");
            ((q * n).round() as usize).max(1)
        }
        None => a.batch_size,
    };
    let dp = if a.dp {
        let sigma = match (a.noise_multiplier, a.target_epsilon) {
            (Some(s), _) => s,
            (None, Some(_)) => f64::NAN, // replaced by calibration
            (None, None) => anyhow::bail!("--dp needs --noise-multiplier σ or --target-epsilon ε"),
        };
        Some(DpSettings {
            noise_multiplier: sigma,
            max_grad_norm: a.max_grad_norm,
            clipping: a.clipping,
            grad_mode: a.grad_mode,
            max_physical_batch: a.max_physical_batch,
        })
    } else {
        None
    };
    let cfg = RunConfig {
        dataset: a.dataset.clone(),
        limits,
        model: a.model.clone(),
        fit: FitConfig {
            epochs: a.epochs,
            batch_size,
            lr: a.lr,
            optimizer: a.optimizer,
            momentum: a.momentum,
            weight_decay: a.weight_decay,
            dp,
            lr_schedule: a.lr_schedule,
            input_norm: a.input_norm.clone(),
        },
        target_epsilon: a.target_epsilon,
        delta: a.delta,
        accountant: a.accountant,
        collectives: a.collectives.clone(),
        seed: a.seed,
        device: a.device,
    }
    .check()
    .map_err(name_flag)?;
    if let Some(out) = &a.out {
        // Fail before training, not after, if the record cannot be written.
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!("--out {}: {} is a file, not a directory", out.display(), dir.display());
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of --out {}", out.display()))?;
        }
    }
    let bar = if a.quiet { None } else { Some(ProgressBar::new(0)) };
    let mut progress = Bar { bar, q: 0.0, sigma: None, delta: a.delta, every: 1 };
    let mut record = run::execute_on(&cfg, &split, &mut progress)?;
    record.phases.load = Some(load_seconds);
    for w in &record.warnings {
        eprintln!("warning: {w}");
    }
    let json = serde_json::to_string_pretty(&record)?;
    match &a.out {
        Some(out) => {
            std::fs::write(out, &json)
                .with_context(|| format!("writing the run record to --out {}", out.display()))?;
            eprintln!("run record: {}", out.display());
            // Text: the vocabulary the data was encoded with, so the run can be re-scored.
            if let Some(vocab) = &split.vocab {
                let path = out.with_extension("vocab.json");
                std::fs::write(&path, vocab.to_json())
                    .with_context(|| format!("writing the vocabulary beside --out: {}", path.display()))?;
                eprintln!("vocabulary: {}", path.display());
            }
        }
        None => println!("{json}"),
    }
    eprintln!("{}", summary_line(&record));
    eprintln!("{}", phases_line(&record.phases));
    Ok(())
}

/// `time: load 0.6 s, plant 0.0 s, …`: where the run's time went (the record's `phases`).
fn phases_line(p: &run::PhaseTimes) -> String {
    let mut parts = Vec::new();
    if let Some(load) = p.load {
        parts.push(format!("load {load:.2} s"));
    }
    for (name, t) in [
        ("plant", p.plant),
        ("calibrate", p.calibrate),
        ("build", p.build),
        ("train", p.train),
        ("account", p.account),
        ("evaluate", p.evaluate),
    ] {
        parts.push(format!("{name} {t:.2} s"));
    }
    format!("time: {}", parts.join(", "))
}

fn summary_line(r: &run::RunRecord) -> String {
    let mut s = format!(
        "clean accuracy {:.2}% [{:.2}, {:.2}] on {} test examples, {} steps, {:.1}s",
        100.0 * r.clean_accuracy.rate,
        100.0 * r.clean_accuracy.lo,
        100.0 * r.clean_accuracy.hi,
        r.clean_accuracy.n,
        r.steps,
        r.wall_seconds
    );
    if let Some(dp) = &r.dp {
        s += &format!(
            "; σ={:.4} C={} q={:.5} ε={:.3} (RDP) / {:.3} (PLD) at δ={}",
            dp.noise_multiplier, dp.max_grad_norm, dp.sample_rate, dp.epsilon_rdp, dp.epsilon_pld, dp.delta
        );
    }
    if let Some(sr) = &r.success {
        for (c, rep) in r.collectives.iter().zip(&sr.per_collective) {
            s += &format!(
                "\ncollective {} ({} members): success {:.2}% [{:.2}, {:.2}]",
                c.spec,
                c.members,
                100.0 * rep.non_target.rate,
                100.0 * rep.non_target.lo,
                100.0 * rep.non_target.hi
            );
        }
    }
    s
}

/// A run's error worded for the command line: an invalid setting names its flag
/// (`batch_size` → `--batch-size`); others as they are.
fn name_flag(e: TrainError) -> anyhow::Error {
    match e.invalid_setting() {
        Some((field, value, reason)) if !field.contains(' ') => {
            anyhow::anyhow!("invalid --{} = {value}: {reason}", field.replace('_', "-"))
        }
        _ => e.into(),
    }
}

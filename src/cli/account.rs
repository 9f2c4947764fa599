//! `crowdout account`: ε (RDP and/or PLD, plus the GDP summary μ) for given (q, σ, T, δ), or the
//! σ that reaches a target ε. Formulas and sources: docs/accountant.md.

use anyhow::{bail, Context};
use crowdout::accountant::{self, gdp, Method, Phase};
use serde_json::json;

/// Which accountant(s) to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodChoice {
    Rdp,
    Pld,
    Both,
}

impl MethodChoice {
    fn methods(self) -> Vec<Method> {
        match self {
            MethodChoice::Rdp => vec![Method::Rdp],
            MethodChoice::Pld => vec![Method::Pld],
            MethodChoice::Both => vec![Method::Rdp, Method::Pld],
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct AccountArgs {
    /// Poisson sampling rate q ∈ (0, 1] (expected batch size / dataset size).
    #[arg(long, conflicts_with_all = ["batch_size", "dataset_size"])]
    pub sample_rate: Option<f64>,
    /// Expected batch size L (with --dataset-size N: q = L/N).
    #[arg(long, requires = "dataset_size")]
    pub batch_size: Option<u64>,
    /// Dataset size N (with --batch-size L: q = L/N).
    #[arg(long, requires = "batch_size")]
    pub dataset_size: Option<u64>,
    /// Noise multiplier σ (noise std / clipping norm).
    #[arg(long, conflicts_with = "target_epsilon")]
    pub noise_multiplier: Option<f64>,
    /// Target ε: print the σ that reaches it (Opacus's search, tolerance 0.01).
    #[arg(long)]
    pub target_epsilon: Option<f64>,
    /// Number of DP-SGD steps T.
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Number of epochs E (T = int(E / q), as Opacus).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Target δ ∈ (0, 1).
    #[arg(long)]
    pub delta: f64,
    /// Accountant: rdp, pld or both.
    #[arg(long, value_enum, default_value = "both")]
    pub method: MethodChoice,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Repeat the computation this many times and report the fastest run's time (for benchmarks).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(if x > 0.0 { "inf" } else { "nan" })
    }
}

pub fn run(args: AccountArgs) -> anyhow::Result<()> {
    let q = match (args.sample_rate, args.batch_size, args.dataset_size) {
        (Some(q), _, _) => q,
        (None, Some(l), Some(n)) => {
            if n == 0 {
                bail!("--dataset-size must be >= 1, got 0");
            }
            if l == 0 || l > n {
                bail!("--batch-size must be in [1, --dataset-size = {n}], got {l}");
            }
            l as f64 / n as f64
        }
        _ => bail!("give either --sample-rate q or both --batch-size L and --dataset-size N"),
    };
    if !(q.is_finite() && q > 0.0 && q <= 1.0) {
        bail!("--sample-rate must be in (0, 1], got {q}");
    }
    if !(args.delta.is_finite() && args.delta > 0.0 && args.delta < 1.0) {
        bail!("--delta must be in (0, 1), got {}", args.delta);
    }
    let steps = match (args.steps, args.epochs) {
        (Some(0), _) => bail!("--steps must be >= 1, got 0"),
        (Some(t), _) => t,
        (None, Some(e)) => {
            if !(e.is_finite() && e > 0.0) {
                bail!("--epochs must be finite and > 0, got {e}");
            }
            if e / q >= u64::MAX as f64 {
                bail!("--epochs {e:e} at sample rate {q} gives E/q = {:e} steps, more than a step counter holds (2^64)", e / q);
            }
            let t = accountant::steps_for_epochs(q, e);
            if t == 0 {
                bail!("--epochs {e} at sample rate {q} gives int(E/q) = 0 steps");
            }
            t
        }
        (None, None) => bail!("give either --steps T or --epochs E"),
    };
    let repeat = args.repeat.max(1);
    let methods = args.method.methods();
    let delta = args.delta;

    match (args.noise_multiplier, args.target_epsilon) {
        (Some(sigma), None) => {
            if !(sigma.is_finite() && sigma >= 0.0) {
                bail!("--noise-multiplier must be finite and >= 0, got {sigma}");
            }
            let phase = Phase { q, sigma, steps };
            let mut results = Vec::new();
            for m in &methods {
                let mut best = f64::INFINITY;
                let mut rep = None;
                for _ in 0..repeat {
                    let t0 = std::time::Instant::now();
                    let r = accountant::epsilon(*m, &[phase], delta)
                        .with_context(|| format!("{m} accountant"))?;
                    best = best.min(t0.elapsed().as_secs_f64());
                    rep = Some(r);
                }
                let rep = rep.context("no repetition ran")?;
                results.push((*m, rep, best));
            }
            let mu = accountant::gdp_mu(q, sigma, steps);
            let gdp_eps = gdp::gdp_epsilon(mu, delta);
            if args.json {
                let mut obj = json!({
                    "sample_rate": q, "noise_multiplier": sigma, "steps": steps, "delta": delta,
                    "gdp_mu": num(mu), "gdp_epsilon_clt": num(gdp_eps),
                });
                for (m, rep, secs) in &results {
                    let key = m.to_string();
                    obj[format!("epsilon_{key}")] = num(rep.epsilon);
                    obj[format!("elapsed_s_{key}")] = json!(secs);
                    if let Some(o) = rep.optimal_order {
                        obj["optimal_order"] = json!(o);
                    }
                }
                println!("{obj}");
            } else {
                println!("q = {q}, σ = {sigma}, T = {steps} steps, δ = {delta}");
                if sigma == 0.0 {
                    println!("σ = 0: no noise, so no finite ε: ε = ∞");
                }
                for (m, rep, _) in &results {
                    match (m, rep.optimal_order) {
                        (Method::Rdp, Some(o)) => {
                            println!("RDP: ε = {} (optimal order α = {o})", rep.epsilon)
                        }
                        (Method::Rdp, None) => println!("RDP: ε = {}", rep.epsilon),
                        (Method::Pld, _) => println!("PLD: ε = {} (upper bound)", rep.epsilon),
                    }
                }
                println!("GDP (CLT approximation, not a bound): μ = {mu}, ε ≈ {gdp_eps}");
            }
        }
        (None, Some(target)) => {
            if !(target.is_finite() && target > 0.0) {
                bail!("--target-epsilon must be finite and > 0, got {target}");
            }
            let mut out =
                json!({ "sample_rate": q, "steps": steps, "delta": delta, "target_epsilon": target });
            let mut lines = vec![format!("q = {q}, T = {steps} steps, δ = {delta}, target ε = {target}")];
            for m in &methods {
                let sigma = accountant::calibrate_sigma(*m, target, delta, q, steps)
                    .with_context(|| format!("calibrating σ with {m}"))?;
                let eps = accountant::epsilon(*m, &[Phase { q, sigma, steps }], delta)?.epsilon;
                out[format!("noise_multiplier_{m}")] = json!(sigma);
                out[format!("epsilon_{m}")] = num(eps);
                lines.push(format!("{}: σ = {sigma} (ε at that σ: {eps})", m.to_string().to_uppercase()));
            }
            if args.json {
                println!("{out}");
            } else {
                println!("{}", lines.join("\n"));
            }
        }
        (None, None) => bail!("give either --noise-multiplier σ or --target-epsilon ε"),
        (Some(_), Some(_)) => bail!("give only one of --noise-multiplier and --target-epsilon"),
    }
    Ok(())
}

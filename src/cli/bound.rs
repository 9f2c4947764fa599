//! `crowdout bound`: every bound of `crowdout::bounds` from the command line, as text or `--json`.
//! Numeric flags are validated by the library; its errors are re-worded to name the flag.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use crowdout::bounds::ceiling::{self, Adjacency};
use crowdout::bounds::dpsgd::{self, ConvexDpsgdInputs, ConvexModel, DeepDpsgdInputs, Reference};
use crowdout::bounds::hardt::{self, Suboptimality};
use crowdout::bounds::multi::{self, Collective, CoordinationNoise};
use crowdout::bounds::{BoundError, BoundValue};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BoundArgs {
    #[command(subcommand)]
    pub which: Which,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Which {
    /// Hardt et al. 2023 feature-label bound S ≥ 1 − ((1−α)/α)Δξ − ε-term.
    Hardt(HardtArgs),
    /// Critical mass α*(S*) from Hardt's bound and, with --n-train and privacy flags, the
    /// privacy-side minimum collective size from the group-privacy ceiling.
    CriticalMass(CriticalArgs),
    /// Several collectives (mixture framing): bound for collective --index.
    Multi(MultiArgs),
    /// One collective with coordination noise.
    Noise(NoiseArgs),
    /// DP-SGD lower bound: convex guarantee (softmax / logistic) or deep-model prediction.
    Dpsgd(DpsgdArgs),
    /// Group-privacy ceiling: the most a collective of k records can raise expected success above S₀.
    Ceiling(CeilingArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SubArgs {
    /// ε-term: learner Bayes-optimal for a law within total variation EPS of the training law (subtracts 2ε/α).
    #[arg(long, conflicts_with = "abs_term")]
    pub tv_eps: Option<f64>,
    /// ε-term: subtract this absolute amount (user-supplied; the bound becomes a prediction).
    #[arg(long)]
    pub abs_term: Option<f64>,
}

impl SubArgs {
    fn get(&self) -> Suboptimality {
        match (self.tv_eps, self.abs_term) {
            (Some(e), _) => Suboptimality::TotalVariation(e),
            (None, Some(a)) => Suboptimality::Absolute(a),
            _ => Suboptimality::None,
        }
    }
}

#[derive(Args, Debug)]
pub struct HardtArgs {
    /// Collective fraction α in (0, 1].
    #[arg(long)]
    pub alpha: f64,
    /// Δ: suboptimality gap of the target on the signal set, in [0, 1].
    #[arg(long)]
    pub delta_gap: f64,
    /// ξ = P₀(g(X)): clean mass on the signal set, in [0, 1] (from the collective module).
    #[arg(long)]
    pub xi: f64,
    #[command(flatten)]
    pub sub: SubArgs,
}

#[derive(Args, Debug)]
pub struct CriticalArgs {
    /// Target success S* in (0, 1].
    #[arg(long)]
    pub target: f64,
    /// Δ in [0, 1].
    #[arg(long)]
    pub delta_gap: f64,
    /// ξ in [0, 1].
    #[arg(long)]
    pub xi: f64,
    #[command(flatten)]
    pub sub: SubArgs,
    /// Training-set size N (enables the privacy-side minimum collective size).
    #[arg(long)]
    pub n_train: Option<u64>,
    /// No-collective success S₀ (expected, on the same triggered test points).
    #[arg(long)]
    pub s0: Option<f64>,
    /// Per-record ε of the training (add/remove unless --adjacency replace-one).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Per-record δ of the training.
    #[arg(long)]
    pub delta: Option<f64>,
    /// Neighbouring relation of --epsilon/--delta.
    #[arg(long, value_enum, default_value = "add-remove")]
    pub adjacency: Adjacency,
}

#[derive(Args, Debug)]
pub struct MultiArgs {
    /// A collective as ALPHA,TARGET,DELTA_GAP,XI (repeat for each collective).
    #[arg(long = "collective", required = true)]
    pub collectives: Vec<String>,
    /// Overlap ω_ji as J,I,W: fraction of collective j's planted points on collective i's signal set (default 0).
    #[arg(long = "overlap")]
    pub overlaps: Vec<String>,
    /// Which collective to bound (0-based).
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    #[command(flatten)]
    pub sub: SubArgs,
}

#[derive(Args, Debug)]
pub struct NoiseArgs {
    /// Collective fraction α in (0, 1].
    #[arg(long)]
    pub alpha: f64,
    /// Fraction of members using a wrong label.
    #[arg(long, default_value_t = 0.0)]
    pub nu_wrong_label: f64,
    /// Fraction of members whose trigger misses the signal set.
    #[arg(long, default_value_t = 0.0)]
    pub nu_wrong_trigger: f64,
    /// Fraction of wrong-label members' points on the signal set.
    #[arg(long, default_value_t = 1.0)]
    pub wrong_label_overlap: f64,
    /// Δ in [0, 1].
    #[arg(long)]
    pub delta_gap: f64,
    /// ξ in [0, 1].
    #[arg(long)]
    pub xi: f64,
    #[command(flatten)]
    pub sub: SubArgs,
}

#[derive(Args, Debug)]
pub struct DpsgdArgs {
    /// CSV with header `margin,x_norm`: each triggered test point's reference margin and ‖x̃‖.
    #[arg(long)]
    pub margins: PathBuf,
    /// Number of classes K (1 = binary logistic regression with one weight vector).
    #[arg(long, default_value_t = 2)]
    pub classes: usize,
    /// Reference point: clipped-minimiser | unclipped-minimiser | clipped-fixed-point.
    #[arg(long, default_value = "clipped-minimiser")]
    pub reference: String,
    /// Clip-bias bound (for --reference unclipped-minimiser).
    #[arg(long, default_value_t = 0.0)]
    pub clip_bias: f64,
    /// ‖Θ₀ − Θ̃‖.
    #[arg(long)]
    pub theta0_dist: f64,
    /// Optimisation error bound ‖Θ̃ − Θ̂‖.
    #[arg(long, default_value_t = 0.0)]
    pub theta_hat_error: f64,
    /// λ (effective λ with --deep).
    #[arg(long)]
    pub lambda: f64,
    /// Learning rate η.
    #[arg(long)]
    pub lr: f64,
    /// Steps T.
    #[arg(long)]
    pub steps: u64,
    /// Noise multiplier σ.
    #[arg(long)]
    pub sigma: f64,
    /// Clipping norm C.
    #[arg(long)]
    pub clip: f64,
    /// Training-set size N (the expected batch is qN).
    #[arg(long)]
    pub n_train: u64,
    /// Poisson sampling rate q.
    #[arg(long)]
    pub q: f64,
    /// Parameter count D (effective D with --deep).
    #[arg(long)]
    pub dim: usize,
    /// Failure probability β.
    #[arg(long, default_value_t = 0.05)]
    pub beta: f64,
    /// Smoothness bound of the data term (ignored with --deep).
    #[arg(long, default_value_t = 0.0)]
    pub smoothness: f64,
    /// Deep model: report the same expression as a labelled prediction with effective λ and D.
    #[arg(long)]
    pub deep: bool,
    /// The second-moment guarantee (docs/bounds.md §2.9; what sweeps record): a bound on E[S]
    /// and one per run at 1 − β, instead of the worst-case radius of §2.6. Binary logistic or
    /// 2-class softmax with the clipped minimiser only.
    #[arg(long, conflicts_with = "deep")]
    pub second_moment: bool,
    /// Σ_i min(C, κ‖x̃_i‖)² over the training records (with --second-moment); default N·C², its
    /// largest value.
    #[arg(long, requires = "second_moment")]
    pub grad_sq_sum: Option<f64>,
}

#[derive(Args, Debug)]
pub struct CeilingArgs {
    /// No-collective success S₀ in [0, 1] (expected over training randomness).
    #[arg(long)]
    pub s0: f64,
    /// Number of records the collective substitutes.
    #[arg(long)]
    pub k: u64,
    /// Per-record ε of the training.
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Per-record δ of the training.
    #[arg(long)]
    pub delta: Option<f64>,
    /// Neighbouring relation of --epsilon/--delta (add-remove: a substitution of k is a group of 2k).
    #[arg(long, value_enum, default_value = "add-remove")]
    pub adjacency: Adjacency,
    /// GDP variant (approximate): μ of the training; the group is mμ-GDP.
    #[arg(long)]
    pub gdp_mu: Option<f64>,
    /// JSON file `[[eps, delta], ...]`: the privacy profile of a group of k records (both
    /// directions); under add-remove it is chained twice (remove k, add k).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Tight ceiling from the accountant's group privacy profile of DP-SGD (PLD of the Binomial
    /// mixture; needs --sample-rate, --noise-multiplier, --steps). Add/remove only: Poisson-sampled
    /// DP-SGD is add/remove DP, so a substitution of k records is a group of 2k (remove k, add k);
    /// refused with --adjacency replace-one.
    #[arg(long, requires_all = ["sample_rate", "noise_multiplier", "steps"])]
    pub tight: bool,
    /// DP-SGD Poisson sampling rate q (for --tight).
    #[arg(long)]
    pub sample_rate: Option<f64>,
    /// DP-SGD noise multiplier σ (for --tight).
    #[arg(long)]
    pub noise_multiplier: Option<f64>,
    /// DP-SGD steps T (for --tight).
    #[arg(long)]
    pub steps: Option<u64>,
}

/// Library parameter names whose flag is not `--<name with dashes>`, with the flag (or the
/// column of a flag's file) a user sets them by. Looked up on the typed error's `name`, never by
/// rewriting its text.
const FLAG_OF_PARAM: &[(&str, &str)] = &[
    ("suboptimality_tv", "--tv-eps"),
    ("suboptimality_abs", "--abs-term"),
    ("lambda_eff", "--lambda"),
    ("dim_eff", "--dim"),
    ("feature_norms", "--margins (x_norm)"),
    ("x_norms", "--margins (x_norm)"),
    ("theta_hat_margins", "--margins (margin)"),
    ("margins", "--margins (margin)"),
    ("expected_batch", "--q/--n-train"),
    ("clipped_grad_sq_sum", "--grad-sq-sum"),
    ("mu", "--gdp-mu"),
];

/// The flag that sets library parameter `name` ([`FLAG_OF_PARAM`], else `--name-with-dashes`).
fn flag_of(name: &str) -> String {
    FLAG_OF_PARAM
        .iter()
        .find(|(param, _)| *param == name)
        .map(|(_, flag)| flag.to_string())
        .unwrap_or_else(|| format!("--{}", name.replace('_', "-")))
}

/// A library error worded for the command line: an invalid parameter names its flag.
fn flag_err(e: BoundError) -> anyhow::Error {
    match e {
        BoundError::InvalidParameter { name, value, expected } => {
            anyhow::anyhow!("invalid {} = {value}: expected {expected}", flag_of(name))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn print_bound(
    json: bool,
    name: &str,
    inputs: serde_json::Value,
    b: &BoundValue,
    extra: serde_json::Value,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"bound": name, "inputs": inputs, "result": b, "details": extra})
            )?
        );
    } else {
        let p = b.probability.map(|p| format!(" with probability >= {p}")).unwrap_or_default();
        println!("{name}: {:.6} ({:?}{p})", b.value, b.kind);
        if !extra.is_null() {
            println!("details: {extra}");
        }
        println!("assumptions: {}", b.assumptions);
    }
    Ok(())
}

pub fn run(args: BoundArgs) -> anyhow::Result<()> {
    let json = args.json;
    match args.which {
        Which::Hardt(a) => {
            let b = hardt::hardt_bound(a.alpha, a.delta_gap, a.xi, a.sub.get()).map_err(flag_err)?;
            print_bound(
                json,
                "hardt",
                json!({"alpha": a.alpha, "delta_gap": a.delta_gap, "xi": a.xi, "suboptimality": a.sub.get()}),
                &b,
                serde_json::Value::Null,
            )
        }
        Which::CriticalMass(a) => critical(json, a),
        Which::Multi(a) => {
            let cols =
                a.collectives.iter().map(|s| parse_collective(s)).collect::<anyhow::Result<Vec<_>>>()?;
            let m = cols.len();
            let mut ov = vec![vec![0.0; m]; m];
            for s in &a.overlaps {
                let (j, i, w) = parse_overlap(s)?;
                if j >= m || i >= m {
                    bail!("--overlap {s}: indices must be < {m} (the number of --collective flags)");
                }
                ov[j][i] = w;
            }
            let b = multi::multi_collective_bound(&cols, &ov, a.index, a.sub.get()).map_err(flag_err)?;
            let cm = multi::multi_critical_mass(&cols, &ov, a.index, 0.9, a.sub.get()).map_err(flag_err)?;
            print_bound(
                json,
                "multi",
                json!({"collectives": cols, "overlap": ov, "index": a.index}),
                &b,
                json!({"critical_mass_at_0.9": cm}),
            )
        }
        Which::Noise(a) => {
            let n = CoordinationNoise {
                alpha: a.alpha,
                nu_wrong_label: a.nu_wrong_label,
                nu_wrong_trigger: a.nu_wrong_trigger,
                wrong_label_overlap: a.wrong_label_overlap,
                delta_gap: a.delta_gap,
                xi: a.xi,
            };
            let b = multi::noise_bound(&n, a.sub.get()).map_err(flag_err)?;
            print_bound(json, "noise", json!(n), &b, serde_json::Value::Null)
        }
        Which::Dpsgd(a) => dpsgd_cmd(json, a),
        Which::Ceiling(a) => ceiling_cmd(json, a),
    }
}

fn parse_f(s: &str, what: &str, flag: &str) -> anyhow::Result<f64> {
    s.trim().parse::<f64>().with_context(|| format!("{flag}: cannot read {what} from {s:?}"))
}

fn parse_collective(s: &str) -> anyhow::Result<Collective> {
    let p: Vec<&str> = s.split(',').collect();
    if p.len() != 4 {
        bail!("--collective {s:?}: expected ALPHA,TARGET,DELTA_GAP,XI");
    }
    let target = p[1]
        .trim()
        .parse::<usize>()
        .with_context(|| format!("--collective {s:?}: TARGET must be a class index"))?;
    Ok(Collective {
        alpha: parse_f(p[0], "ALPHA", "--collective")?,
        target,
        delta_gap: parse_f(p[2], "DELTA_GAP", "--collective")?,
        xi: parse_f(p[3], "XI", "--collective")?,
    })
}

fn parse_overlap(s: &str) -> anyhow::Result<(usize, usize, f64)> {
    let p: Vec<&str> = s.split(',').collect();
    if p.len() != 3 {
        bail!("--overlap {s:?}: expected J,I,W");
    }
    let j = p[0].trim().parse::<usize>().with_context(|| format!("--overlap {s:?}: J must be an index"))?;
    let i = p[1].trim().parse::<usize>().with_context(|| format!("--overlap {s:?}: I must be an index"))?;
    Ok((j, i, parse_f(p[2], "W", "--overlap")?))
}

fn critical(json: bool, a: CriticalArgs) -> anyhow::Result<()> {
    let alpha = hardt::hardt_critical_mass(a.target, a.delta_gap, a.xi, a.sub.get()).map_err(flag_err)?;
    // Privacy side: the smallest k whose ceiling reaches the target (a lower bound on the critical mass).
    let privacy = match (a.n_train, a.s0, a.epsilon, a.delta) {
        (Some(n), Some(s0), Some(e), Some(d)) => {
            if n == 0 {
                bail!("invalid --n-train = 0: expected at least one record");
            }
            let f = |k: u64| ceiling::ceiling_generic(s0, e, d, k, a.adjacency).map(|b| b.value);
            f(0).map_err(flag_err)?;
            let k = ceiling::min_group_for_target(a.target, n, &f).map_err(flag_err)?;
            Some(
                json!({"min_k": k, "min_alpha": k.map(|k| k as f64 / n as f64), "adjacency": a.adjacency, "conversion": "generic group privacy (`bound ceiling --tight` gives the tight per-k value)"}),
            )
        }
        (None, None, None, None) => None,
        _ => bail!("the privacy-side critical mass needs all of --n-train, --s0, --epsilon, --delta"),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "bound": "critical-mass",
                "inputs": {"target": a.target, "delta_gap": a.delta_gap, "xi": a.xi, "suboptimality": a.sub.get()},
                "hardt_alpha_star": alpha,
                "privacy_lower_bound": privacy,
            }))?
        );
    } else {
        match alpha {
            Some(x) => println!("Hardt critical mass α*({}) = {x:.6}", a.target),
            None => println!("Hardt bound never reaches {} for α ≤ 1", a.target),
        }
        if let Some(p) = privacy {
            println!(
                "privacy ceiling: no collective smaller than {} (α = {}) can reach expected success {}",
                p["min_k"], p["min_alpha"], a.target
            );
        }
    }
    Ok(())
}

fn read_margins(path: &PathBuf) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("cannot open --margins {}", path.display()))?;
    let headers =
        rdr.headers().with_context(|| format!("{}: cannot read the header", path.display()))?.clone();
    let mi = headers.iter().position(|h| h == "margin");
    let xi = headers.iter().position(|h| h == "x_norm");
    let (Some(mi), Some(xi)) = (mi, xi) else {
        bail!("{}: expected columns `margin` and `x_norm`", path.display())
    };
    let (mut m, mut x) = (Vec::new(), Vec::new());
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let get = |i: usize, name: &str| -> anyhow::Result<f64> {
            rec.get(i)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("{}: line {}: `{name}` is not a number", path.display(), line + 2))
        };
        m.push(get(mi, "margin")?);
        x.push(get(xi, "x_norm")?);
    }
    Ok((m, x))
}

fn dpsgd_cmd(json: bool, a: DpsgdArgs) -> anyhow::Result<()> {
    let (margins, norms) = read_margins(&a.margins)?;
    if !(a.q > 0.0 && a.q <= 1.0) {
        bail!("invalid --q = {}: expected a sampling rate in (0, 1]", a.q);
    }
    if a.n_train == 0 {
        bail!("invalid --n-train = 0: expected at least one record");
    }
    let l = a.q * a.n_train as f64;
    if a.second_moment {
        return second_moment_cmd(json, &a, &margins, &norms, l);
    }
    let d = if a.deep {
        let kappa = if a.classes == 1 { 1.0 } else { std::f64::consts::SQRT_2 };
        dpsgd::deep_dpsgd_prediction(&DeepDpsgdInputs {
            margins: &margins,
            feature_norms: &norms,
            margin_constant: kappa,
            theta0_dist: a.theta0_dist,
            lambda_eff: a.lambda,
            dim_eff: a.dim,
            lr: a.lr,
            steps: a.steps,
            sigma: a.sigma,
            clip: a.clip,
            expected_batch: l,
            q: a.q,
            beta: a.beta,
        })
        .map_err(flag_err)?
    } else {
        let model = match a.classes {
            0 => bail!("invalid --classes = 0: expected 1 (binary logistic) or K >= 2 (softmax)"),
            1 => ConvexModel::BinaryLogistic,
            k => ConvexModel::Softmax { classes: k },
        };
        let reference = match a.reference.as_str() {
            "clipped-minimiser" => Reference::ClippedMinimiser,
            "unclipped-minimiser" => Reference::UnclippedMinimiser { clip_bias: a.clip_bias },
            "clipped-fixed-point" => Reference::ClippedFixedPoint,
            other => bail!("invalid --reference {other:?}: expected clipped-minimiser, unclipped-minimiser or clipped-fixed-point"),
        };
        dpsgd::convex_dpsgd_detail(&ConvexDpsgdInputs {
            model,
            reference,
            theta_hat_margins: &margins,
            x_norms: &norms,
            theta0_dist: a.theta0_dist,
            theta_hat_error: a.theta_hat_error,
            lambda: a.lambda,
            lr: a.lr,
            steps: a.steps,
            sigma: a.sigma,
            clip: a.clip,
            expected_batch: l,
            q: a.q,
            dim: a.dim,
            beta: a.beta,
            smoothness: a.smoothness,
        })
        .map_err(flag_err)?
    };
    print_bound(
        json,
        "dpsgd",
        json!({"points": margins.len(), "classes": a.classes, "deep": a.deep, "lambda": a.lambda, "lr": a.lr, "steps": a.steps, "sigma": a.sigma, "clip": a.clip, "q": a.q, "n_train": a.n_train, "dim": a.dim, "beta": a.beta}),
        &d.bound,
        json!({"radius": d.radius, "margin_constant": d.margin_constant}),
    )
}

fn second_moment_cmd(
    json: bool,
    a: &DpsgdArgs,
    margins: &[f64],
    norms: &[f64],
    l: f64,
) -> anyhow::Result<()> {
    let model = match a.classes {
        1 => ConvexModel::BinaryLogistic,
        2 => ConvexModel::Softmax { classes: 2 },
        k => bail!("invalid --classes = {k} with --second-moment: the clipped loss is convex only for 1 (binary logistic) or 2 classes"),
    };
    if a.reference != "clipped-minimiser" {
        bail!("--second-moment uses the clipped minimiser; --reference {:?} is not covered", a.reference);
    }
    let b = crowdout::bounds::moment::moment_bound(&crowdout::bounds::moment::MomentInputs {
        model,
        margins,
        x_norms: norms,
        theta0_dist: a.theta0_dist,
        theta_hat_error: a.theta_hat_error,
        lambda: a.lambda,
        lr: a.lr,
        steps: a.steps,
        sigma: a.sigma,
        clip: a.clip,
        expected_batch: l,
        q: a.q,
        dim: a.dim,
        clipped_grad_sq_sum: a.grad_sq_sum.unwrap_or(a.n_train as f64 * a.clip * a.clip),
        smoothness: a.smoothness,
        beta: a.beta,
    })
    .map_err(flag_err)?;
    let inputs = json!({"points": margins.len(), "classes": a.classes, "lambda": a.lambda, "lr": a.lr, "steps": a.steps, "sigma": a.sigma, "clip": a.clip, "q": a.q, "n_train": a.n_train, "dim": a.dim, "beta": a.beta});
    let extra = json!({"second_moment": b.parts, "dominant": b.parts.dominant(), "reference_success": b.reference_success, "margin_constant": b.margin_constant});
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"bound": "dpsgd-second-moment", "inputs": inputs, "result": b.mean, "per_run": b.high_prob, "details": extra})
            )?
        );
        return Ok(());
    }
    println!(
        "dpsgd (second moment): E[S] >= {:.6} (Guarantee on the expectation over sampling and noise)",
        b.mean.value
    );
    println!(
        "dpsgd (second moment): S >= {:.6} for one run with probability >= {}",
        b.high_prob.value,
        1.0 - a.beta
    );
    println!("details: {extra}");
    println!("assumptions: {}", b.mean.assumptions);
    Ok(())
}

fn ceiling_cmd(json: bool, a: CeilingArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    if a.tight {
        // The tight profile is the accountant's: Poisson-subsampled DP-SGD is add/remove DP, so a
        // substitution of k records is a group of 2k whatever --adjacency says. Applying the
        // k-group add/remove profile once (as a replace-one group of k) is NOT a guarantee
        // (docs/bounds.md §3); refuse instead of printing a number that looks like one.
        if a.adjacency == Adjacency::ReplaceOne {
            bail!(
                "--tight cannot be combined with --adjacency replace-one: the tight profile is the accountant's group \
                 profile of Poisson-subsampled DP-SGD, which is add/remove DP, so a substitution of k records is a group \
                 of 2k add/remove records whatever the adjacency of --epsilon/--delta; drop --adjacency replace-one \
                 (the tight ceiling is then the add/remove one: remove k, add k)"
            );
        }
        let (q, sigma, steps) =
            (a.sample_rate.unwrap_or(f64::NAN), a.noise_multiplier.unwrap_or(f64::NAN), a.steps.unwrap_or(0));
        let grid = ceiling::default_eps_grid();
        let prof = crowdout::accountant::group::group_profile(a.k, q, sigma, steps, &grid).map_err(|e| {
            anyhow::anyhow!("--tight (--sample-rate {q}, --noise-multiplier {sigma}, --steps {steps}): {e}")
        })?;
        let b = ceiling::ceiling_two_stage(a.s0, &prof).map_err(flag_err)?;
        results.push(("tight group profile (PLD)", b));
    }
    if let (Some(e), Some(d)) = (a.epsilon, a.delta) {
        let b = ceiling::ceiling_generic(a.s0, e, d, a.k, a.adjacency).map_err(flag_err)?;
        results.push(("generic group conversion", b));
    } else if a.epsilon.is_some() || a.delta.is_some() {
        bail!("--epsilon and --delta go together");
    }
    if let Some(p) = &a.profile {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read --profile {}", p.display()))?;
        let prof: Vec<(f64, f64)> = serde_json::from_str(&text)
            .with_context(|| format!("--profile {}: expected [[eps, delta], ...]", p.display()))?;
        let b = match a.adjacency {
            Adjacency::AddRemove => ceiling::ceiling_two_stage(a.s0, &prof),
            Adjacency::ReplaceOne => ceiling::ceiling_from_profile(a.s0, &prof),
        }
        .map_err(|e| anyhow::anyhow!("--profile {}: {}", p.display(), flag_err(e)))?;
        results.push(("profile", b));
    }
    if let Some(mu) = a.gdp_mu {
        let b = ceiling::ceiling_gdp(a.s0, mu, a.adjacency.group_size(a.k)).map_err(flag_err)?;
        results.push(("gdp (approximate)", b));
    }
    if results.is_empty() {
        bail!("give --tight (with --sample-rate/--noise-multiplier/--steps), --epsilon/--delta, --profile or --gdp-mu");
    }
    let m = a.adjacency.group_size(a.k);
    if json {
        let rs: Vec<_> = results.iter().map(|(n, b)| json!({"method": n, "result": b})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"bound": "ceiling", "inputs": {"s0": a.s0, "k": a.k, "group_size": m, "adjacency": a.adjacency, "epsilon": a.epsilon, "delta": a.delta, "gdp_mu": a.gdp_mu}, "results": rs})
            )?
        );
    } else {
        println!("collective of k = {} records, group size m = {m} ({:?}), S₀ = {}", a.k, a.adjacency, a.s0);
        for (n, b) in &results {
            println!("  ceiling ({n}): E[S] <= {:.6} ({:?})", b.value, b.kind);
        }
        println!("assumptions: {}", results[0].1.assumptions);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_flag_not_the_library_parameter() {
        assert_eq!(flag_of("lambda_eff"), "--lambda");
        assert_eq!(flag_of("suboptimality_tv"), "--tv-eps");
        assert_eq!(flag_of("delta_gap"), "--delta-gap");
        let e = flag_err(BoundError::InvalidParameter { name: "dim_eff", value: -1.0, expected: "≥ 1" });
        assert_eq!(e.to_string(), "invalid --dim = -1: expected ≥ 1");
    }
}

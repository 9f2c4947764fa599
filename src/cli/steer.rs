//! `crowdout audit steerability SPEC`: the adaptive critical-mass audit (see
//! `crowdout::audit::steer` and docs/steerability.md).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crowdout::audit::steer::{plan_path, run_steer, ArmEstimate, Crossing, SteerOptions, SteerSpec};
use crowdout::device::DeviceChoice;
use crowdout::report::critical::STEER_SETTINGS_FILE;
use crowdout::sweep::fake::{FakeRunner, FAKE_RUNNER_ENV};
use crowdout::sweep::{cell, parse_shard, ResultStore};

#[derive(clap::Args, Debug)]
pub struct SteerArgs {
    /// The steerability spec (TOML): a sweep spec without grid.alpha and grid.seed, plus a
    /// [steer] section (alpha_range, targets, threshold, init, init_seeds, batch, max_cells,
    /// max_width_ratio, seed_offset); see docs/steerability.md.
    pub spec: PathBuf,
    /// Output folder [default: the spec's [output] dir, else results/<name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs trained in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// libtorch threads per worker [default: the audit's --threads].
    #[arg(long)]
    pub torch_threads: Option<i32>,
    /// Run only the privacy arms whose index % n == i-1 (1-based), into
    /// results.shard-<i>-of-<n>.csv and steer_plan.shard-<i>-of-<n>.jsonl; merge the results files
    /// with `crowdout report --merge`, then `crowdout report` on the merged file (beside a
    /// steer.json) writes critical_mass.csv.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Where the runs train (not part of a cell's hash).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Skip the report (summary.md, plots, critical_mass.csv) at the end.
    #[arg(long)]
    pub no_report: bool,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn fmt_crossing(c: &Result<Crossing, String>) -> String {
    match c {
        Ok(c) => {
            let hi = if c.hi.is_finite() { format!("{:.4}", c.hi) } else { "∞".into() };
            format!("{:.4} [{:.4}, {hi}]", c.alpha, c.lo)
        }
        Err(e) => format!("n/a ({e})"),
    }
}

fn crossing_json(c: &Result<Crossing, String>) -> serde_json::Value {
    match c {
        Ok(c) => serde_json::json!({
            "alpha": c.alpha,
            "lo": c.lo,
            "hi": if c.hi.is_finite() { serde_json::json!(c.hi) } else { serde_json::json!("inf") },
        }),
        Err(e) => serde_json::json!({ "error": e }),
    }
}

fn arm_json(a: &ArmEstimate) -> serde_json::Value {
    serde_json::json!({
        "arm": a.key.label(),
        "epsilon": if a.epsilon.is_finite() { serde_json::json!(a.epsilon) } else { serde_json::json!("inf") },
        "threshold": a.threshold.as_ref().ok(),
        "cells_used": a.cells,
        "steered": a.steered,
        "alpha50": crossing_json(&a.alpha50),
        "alpha_star": a.alpha_star.iter().map(|(t, c)| serde_json::json!({ "target": t, "estimate": crossing_json(c) })).collect::<Vec<_>>(),
    })
}

pub fn run(args: SteerArgs, json: bool, threads: i32) -> anyhow::Result<()> {
    let spec = SteerSpec::from_path(&args.spec)?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    // TEST HOOK (see crowdout::sweep::fake): a deterministic fake runner instead of training.
    let fake: Option<FakeRunner> = match std::env::var(FAKE_RUNNER_ENV) {
        Ok(v) => Some(v.parse().map_err(anyhow::Error::msg)?),
        Err(_) => None,
    };
    if fake.is_none() {
        let text = std::fs::read_to_string(&args.spec)
            .with_context(|| format!("reading {}", args.spec.display()))?;
        spec.check_runnable(&text, &args.spec)?;
    }
    let out = args.out.clone().unwrap_or_else(|| spec.output_dir());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let results = match shard {
        None => out.join("results.csv"),
        Some((i, n)) => out.join(format!("results.shard-{i}-of-{n}.csv")),
    };
    let spec_text = std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    write_atomic(&out.join("spec.toml"), &spec_text)?;
    write_atomic(&out.join(STEER_SETTINGS_FILE), serde_json::to_string_pretty(&spec.steer)?.as_bytes())?;
    let prov = crowdout::provenance::Provenance::collect();
    write_atomic(&out.join("provenance.json"), serde_json::to_string_pretty(&prov)?.as_bytes())?;

    cell::set_device(args.device);
    let store = ResultStore::open(&results)?;
    let plan = plan_path(&results);
    let opts = SteerOptions {
        jobs: args.jobs,
        torch_threads: Some(args.torch_threads.unwrap_or(threads)),
        shard,
        progress: !args.no_progress,
    };
    let summary = match &fake {
        Some(f) => {
            eprintln!("warning: {FAKE_RUNNER_ENV} is set: using the FAKE test runner, no training");
            run_steer(&spec, &store, &plan, &opts, &|c| f.run(c))?
        }
        None => run_steer(&spec, &store, &plan, &opts, &cell::run_cell)?,
    };
    drop(store);
    eprintln!(
        "{}: {} rounds, {} runs in all ({} run now) in {:.1} s; plan in {}",
        results.display(),
        summary.rounds,
        summary.cells,
        summary.ran,
        summary.wall_s,
        plan.display()
    );
    if !args.no_report && shard.is_none() {
        let target = spec.steer.targets.iter().cloned().fold(0.0, f64::max);
        let files = crowdout::report::build_report(std::slice::from_ref(&results), &out, target, true)?;
        eprintln!("report: {} and {}", files.summary.display(), out.join("critical_mass.csv").display());
    }
    if json {
        let arms: Vec<serde_json::Value> = summary.arms.iter().map(arm_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "arms": arms, "cells": summary.cells }))?
        );
        return Ok(());
    }
    println!("Steerability audit (95% profile-likelihood intervals; α as a fraction of the training set)");
    for a in &summary.arms {
        let eps = if a.epsilon.is_finite() { format!("ε = {:.2}", a.epsilon) } else { "ε = ∞".into() };
        let tau = a.threshold.as_ref().map(|t| format!("{t:.3}")).unwrap_or_else(|e| e.clone());
        println!("{} ({eps}): {} runs, {} steered (success > τ = {tau})", a.key.label(), a.cells, a.steered);
        println!("  α₅₀ (half steered):   {}", fmt_crossing(&a.alpha50));
        for (t, c) in &a.alpha_star {
            println!(
                "  α* (E[S] ≥ {t}):{}{}",
                " ".repeat(6usize.saturating_sub(t.to_string().len())),
                fmt_crossing(c)
            );
        }
    }
    Ok(())
}

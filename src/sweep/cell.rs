//! Running one sweep cell: the cell's settings → [`RunConfig`] → train and measure
//! ([`crate::train::run`]) → account → bounds → one [`ResultRow`].
//!
//! - Data are loaded once per worker thread and data set (tensors are not `Sync`).
//! - The no-collective baseline S₀ (the same success measure on a model trained without the
//!   collective, all else equal) is trained once per (data, model, privacy, C, seed, training)
//!   and shared by every α of that line; an α = 0 cell *is* that baseline.
//! - Bounds per row: Hardt et al.'s feature-label bound for a Bayes-optimal learner (Δ = 1, ξ
//!   estimated on the clean training data: a prediction for a trained network), and the
//!   group-privacy ceiling (a guarantee on the *expected* success; see docs/bounds.md §3). The
//!   DP-SGD lower bound needs the convex model's reference solution and is computed only by
//!   `crowdout bound dpsgd` and the convex-model test, so its column stays empty here.
//! - Flags: `ABOVE_CEILING` when the lower end of the success interval lies above the ceiling.

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use clap::ValueEnum;

use super::spec::{Cell, Privacy};
use super::store::ResultRow;
use crate::accountant;
use crate::bounds::{ceiling, hardt};
use crate::collective::{self, CollectiveSpec};
use crate::data::{self, DataDir, DatasetSpec, Limits, Split};
use crate::device::DeviceChoice;
use crate::dpsgd::DpSettings;
use crate::models::ModelKind;
use crate::train::fit::FitConfig;
use crate::train::run::{self, RunConfig, RunRecord, Silent};

/// Largest collective for which the tight (PLD) group profile is computed; beyond it the ceiling
/// is vacuous (= 1) at every privacy level the tool sweeps, and the PLD of the Binomial mixture
/// grows with k.
const TIGHT_CEILING_MAX_K: u64 = 16;
/// Tolerance for ξ = P₀(g(X)) = share of clean training points already equal to their triggered
/// version.
const XI_TOLERANCE: f64 = 1e-6;

thread_local! {
    static SPLITS: RefCell<HashMap<String, Split>> = RefCell::new(HashMap::new());
}

/// What a no-collective baseline run yields for its line.
#[derive(Debug, Clone)]
struct Baseline {
    s0: f64,
    s0_lo: f64,
    s0_hi: f64,
    s0_all: f64,
    record: RunRecord,
}

type BaselineSlot = Arc<OnceLock<Result<Baseline, String>>>;
fn baselines() -> &'static Mutex<HashMap<String, BaselineSlot>> {
    static B: OnceLock<Mutex<HashMap<String, BaselineSlot>>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Run `f` on the data set of `cfg`, loaded once per worker thread.
fn with_split<T>(cfg: &RunConfig, f: impl FnOnce(&Split) -> Result<T, String>) -> Result<T, String> {
    let key = format!("{:?}|{:?}", cfg.dataset, cfg.limits);
    SPLITS.with(|s| {
        let mut s = s.borrow_mut();
        if !s.contains_key(&key) {
            let split = data::load(&cfg.dataset, &DataDir::from_env(), &cfg.limits).map_err(|e| e.to_string())?;
            s.insert(key.clone(), split);
        }
        f(&s[&key])
    })
}

/// The run configuration of a cell, with `alpha` planted (none when `alpha` is 0).
pub fn run_config(cell: &Cell, alpha: f64) -> Result<RunConfig, String> {
    let t = &cell.train;
    let dataset = DatasetSpec::from_str(&cell.dataset).map_err(|e| format!("dataset {:?}: {e}", cell.dataset))?;
    let model = ModelKind::from_str(&cell.model, true).map_err(|_| format!("unknown model {:?}", cell.model))?;
    // σ of an `eps=` arm is calibrated by the run (NaN until then).
    let sigma = match cell.privacy {
        Privacy::NonPrivate => None,
        Privacy::Epsilon(_) => Some(f64::NAN),
        Privacy::Sigma(s) => Some(s),
    };
    let dp = match sigma {
        Some(sigma) => Some(DpSettings {
            noise_multiplier: sigma,
            max_grad_norm: cell.clip.ok_or("a DP cell needs a clip value")?,
            clipping: t.clipping,
            grad_mode: t.grad_mode,
            max_physical_batch: t.max_physical_batch,
        }),
        None => None,
    };
    let collectives = if alpha > 0.0 {
        vec![CollectiveSpec::from_str(&format!("{},alpha={alpha}", cell.collective.spec))
            .map_err(|e| format!("collective {:?}: {e}", cell.collective.spec))?]
    } else {
        Vec::new()
    };
    Ok(RunConfig {
        dataset,
        limits: Limits { train: t.train_subset, test: t.test_subset },
        model,
        fit: FitConfig {
            epochs: t.epochs as f64,
            batch_size: t.batch_size,
            lr: t.lr,
            optimizer: t.optimizer,
            momentum: t.momentum,
            weight_decay: 0.0,
            dp,
            lr_schedule: t.lr_schedule,
            input_norm: t.input_norm.clone(),
        },
        target_epsilon: cell.target_epsilon(),
        delta: t.delta,
        accountant: t.accountant,
        collectives,
        seed: Some(cell.seed),
        device: DeviceChoice::Cpu,
    })
}

/// The collective spec used to *measure* success on a model (α is irrelevant to measuring).
fn measuring_spec(cell: &Cell) -> Result<CollectiveSpec, String> {
    CollectiveSpec::from_str(&format!("{},alpha=0.5", cell.collective.spec)).map_err(|e| format!("collective {:?}: {e}", cell.collective.spec))
}

fn baseline_key(cell: &Cell) -> String {
    let mut c = cell.clone();
    c.alpha = 0.0;
    c.config_hash()
}

/// Train without the collective and measure the trigger's success rate S₀ on that model.
fn train_baseline(cell: &Cell) -> Result<Baseline, String> {
    let cfg = run_config(cell, 0.0)?;
    let spec = measuring_spec(cell)?;
    with_split(&cfg, |split| {
        let trained = run::train_on(&cfg, split, &mut Silent).map_err(|e| e.to_string())?;
        let rep = trained.measure(&split.test, &[spec]).map_err(|e| e.to_string())?;
        let r = &rep.per_collective[0];
        Ok(Baseline { s0: r.non_target.rate, s0_lo: r.non_target.lo, s0_hi: r.non_target.hi, s0_all: r.all.rate, record: trained.record })
    })
}

/// The baseline of `cell`'s line: trained once, shared by every α of the line.
fn baseline(cell: &Cell) -> Result<Baseline, String> {
    let slot = {
        let mut m = baselines().lock().map_err(|_| "baseline cache poisoned".to_string())?;
        m.entry(baseline_key(cell)).or_default().clone()
    };
    slot.get_or_init(|| train_baseline(cell)).clone()
}

/// Fill the privacy columns from a run record.
fn fill_privacy(row: &mut ResultRow, rec: &RunRecord) {
    row.steps = Some(rec.steps);
    if let Some(dp) = &rec.dp {
        row.sigma = Some(dp.noise_multiplier);
        row.q = Some(dp.sample_rate);
        row.eps_rdp = Some(dp.epsilon_rdp);
        row.eps_pld = Some(dp.epsilon_pld);
    }
}

/// Group-privacy ceiling on the expected success of a collective of `k` records (add/remove
/// adjacency: remove k, add k): from the tight group profile (PLD of the Binomial mixture) when
/// k ≤ [`TIGHT_CEILING_MAX_K`], else from the generic group conversion of the run's (ε, δ).
fn ceiling_for(k: u64, s0: f64, dp: &crate::train::run::DpRecord) -> Result<f64, String> {
    let (q, sigma, steps) = (dp.sample_rate, dp.noise_multiplier, dp.steps);
    if sigma == 0.0 || k == 0 {
        return Ok(1.0);
    }
    if k > TIGHT_CEILING_MAX_K {
        let b = ceiling::ceiling_generic(s0, dp.epsilon_pld, dp.delta, k, ceiling::Adjacency::AddRemove).map_err(|e| e.to_string())?;
        return Ok(b.value);
    }
    let profile = accountant::group::group_profile(k, q, sigma, steps, &ceiling::default_eps_grid()).map_err(|e| e.to_string())?;
    let b = ceiling::ceiling_two_stage(s0, &profile).map_err(|e| e.to_string())?;
    Ok(b.value)
}

/// Runs one cell and returns its results row.
pub fn run_cell(cell: &Cell) -> Result<ResultRow, String> {
    let mut row = ResultRow::from_cell(cell);
    if cell.alpha == 0.0 {
        // The no-collective cell is its line's baseline: success is the trigger's rate S₀.
        let b = baseline(cell)?;
        fill_privacy(&mut row, &b.record);
        row.clean_acc = Some(b.record.clean_accuracy.rate);
        row.success = Some(b.s0);
        row.success_lo = Some(b.s0_lo);
        row.success_hi = Some(b.s0_hi);
        row.success_all = Some(b.s0_all);
        row.baseline_success = Some(b.s0);
        row.wall_s = Some(b.record.wall_seconds);
        return Ok(row);
    }
    let cfg = run_config(cell, cell.alpha)?;
    let (rec, xi) = with_split(&cfg, |split| {
        let rec = run::execute_on(&cfg, split, &mut Silent).map_err(|e| e.to_string())?;
        let xi = collective::xi_estimate(&split.train, &cfg.collectives[0].trigger, XI_TOLERANCE).map_err(|e| e.to_string())?;
        Ok((rec, xi))
    })?;
    fill_privacy(&mut row, &rec);
    row.clean_acc = Some(rec.clean_accuracy.rate);
    let rep = rec.success.as_ref().ok_or("no success report")?;
    let s = &rep.per_collective[0];
    row.success = Some(s.non_target.rate);
    row.success_lo = Some(s.non_target.lo);
    row.success_hi = Some(s.non_target.hi);
    row.success_all = Some(s.all.rate);
    row.hardt_lb = Some(hardt::hardt_bound(cell.alpha, 1.0, xi, hardt::Suboptimality::None).map_err(|e| e.to_string())?.value);
    let s0 = baseline(cell)?.s0;
    row.baseline_success = Some(s0);
    if let Some(dp) = &rec.dp {
        let k = rec.collectives[0].members;
        let c = ceiling_for(k, s0, dp)?;
        row.ceiling_ub = Some(c);
        if s.non_target.lo > c {
            row.flag = "ABOVE_CEILING".into();
        }
    }
    row.wall_s = Some(rec.wall_seconds);
    Ok(row)
}

//! Running one sweep cell: the cell's settings → [`RunConfig`] → train and measure
//! ([`crate::train::run`]) → account → bounds → one [`ResultRow`].
//!
//! - Data are loaded once per worker thread and data set (tensors are not `Sync`).
//! - The no-collective baseline S₀ (the same success measure on a model trained without the
//!   collective, all else equal) is trained once per (data, model, privacy, C, seed, training)
//!   and shared by every α of that line; an α = 0 cell *is* that baseline.
//! - Bounds per row: Hardt et al.'s feature-label bound for a Bayes-optimal learner (Δ = 1, its
//!   largest value; ξ̂ = clean mass within τ of the signal set, n/a for additive triggers;
//!   coordination noise as a mixture, docs/bounds.md §4) with the implied suboptimality ε̂_TV;
//!   the convex DP-SGD guarantee on E[S] and per run at 1 − β for cells that train what it
//!   covers ([`super::convex`]; otherwise `dpsgd_lb_kind` says why not); and the group-privacy
//!   ceiling at this line's single-run S₀ (the report redoes it soundly over seeds).
//! - Flags: `BELOW_HP_GUARANTEE` (success below the per-run guarantee: allowed in a β share of
//!   seeds, the report tests it), `ABOVE_CEILING_ONE_RUN` (one run's interval above the
//!   ceiling at one run's S₀: a hint only, the ceiling bounds E[S]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use clap::ValueEnum;

use super::spec::{Cell, Privacy};
use super::store::ResultRow;
use super::{convex, hardt};
use crate::accountant;
use crate::bounds::ceiling;
use crate::collective::CollectiveSpec;
use crate::data::{self, DataDir, DatasetSpec, Limits, Split};
use crate::device::DeviceChoice;
use crate::dpsgd::DpSettings;
use crate::models::ModelKind;
use crate::params::ParamGuard;
use crate::train::fit::FitConfig;
use crate::train::run::{self, RunConfig, RunRecord, Silent};

/// Largest collective for which the tight (PLD) group profile is computed; beyond it the ceiling
/// is vacuous (= 1) at every privacy level the tool sweeps, and the PLD of the Binomial mixture
/// grows with k.
const TIGHT_CEILING_MAX_K: u64 = 16;

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
    /// Hardt's Δ̂ from this (clean) model, when the signal set holds clean points.
    delta_hat: Option<f64>,
    record: RunRecord,
}

type BaselineSlot = Arc<OnceLock<Result<Baseline, String>>>;
fn baselines() -> &'static Mutex<HashMap<String, BaselineSlot>> {
    static B: OnceLock<Mutex<HashMap<String, BaselineSlot>>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Run `f` on the data set of `cfg` (relabelled one-vs-rest when the cell asks), loaded once per
/// worker thread.
fn with_split<T>(
    cfg: &RunConfig,
    one_vs_rest: Option<i64>,
    f: impl FnOnce(&Split) -> Result<T, String>,
) -> Result<T, String> {
    let key = format!("{:?}|{:?}|{:?}", cfg.dataset, cfg.limits, one_vs_rest);
    SPLITS.with(|s| {
        let mut s = s.borrow_mut();
        if !s.contains_key(&key) {
            let mut split =
                data::load(&cfg.dataset, &DataDir::from_env(), &cfg.limits).map_err(|e| e.to_string())?;
            if let Some(c) = one_vs_rest {
                split = data::relabel::one_vs_rest(split, c).map_err(|e| e.to_string())?;
            }
            s.insert(key.clone(), split);
        }
        f(&s[&key])
    })
}

/// The run configuration of a cell, with `alpha` planted (none when `alpha` is 0).
pub fn run_config(cell: &Cell, alpha: f64) -> Result<RunConfig, String> {
    let t = &cell.train;
    let dataset =
        DatasetSpec::from_str(&cell.dataset).map_err(|e| format!("dataset {:?}: {e}", cell.dataset))?;
    let model =
        ModelKind::from_str(&cell.model, true).map_err(|_| format!("unknown model {:?}", cell.model))?;
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
            weight_decay: t.weight_decay,
            dp,
            lr_schedule: t.lr_schedule,
            input_norm: t.input_norm.clone(),
        },
        target_epsilon: cell.target_epsilon(),
        delta: t.delta,
        accountant: t.accountant,
        collectives,
        seed: Some(cell.seed),
        device: device(),
    })
}

static DEVICE: OnceLock<DeviceChoice> = OnceLock::new();

/// Sets the device every cell of this process trains on (`crowdout sweep --device`); only the
/// first call counts (false after that). Without a call: the CPU. The device is not part of a
/// cell's hash: like the thread count, it can change the low bits of the results, not the cell.
pub fn set_device(choice: DeviceChoice) -> bool {
    DEVICE.set(choice).is_ok()
}

fn device() -> DeviceChoice {
    DEVICE.get().copied().unwrap_or(DeviceChoice::Cpu)
}

/// The collective spec used to *measure* success on a model (α is irrelevant to measuring).
fn measuring_spec(cell: &Cell) -> Result<CollectiveSpec, String> {
    CollectiveSpec::from_str(&format!("{},alpha=0.5", cell.collective.spec))
        .map_err(|e| format!("collective {:?}: {e}", cell.collective.spec))
}

fn baseline_key(cell: &Cell) -> String {
    let mut c = cell.clone();
    c.alpha = 0.0;
    c.config_hash()
}

/// Train without the collective and measure the trigger's success rate S₀ on that model.
fn train_baseline(cell: &Cell) -> Result<Baseline, String> {
    let cfg = run_config(cell, 0.0)?.check().map_err(|e| e.to_string())?;
    let spec = measuring_spec(cell)?;
    with_split(&cfg, cell.train.one_vs_rest, |split| {
        // The baseline plants nothing in training but measures with the trigger: a token trigger
        // must fit the vocabulary here too (an id past the table would fail inside libtorch).
        if let Some(vocab) = &split.vocab {
            crate::collective::check_tokens(std::slice::from_ref(&spec), vocab).map_err(|e| e.to_string())?;
        }
        let trained = run::train_on(&cfg, split, &mut Silent).map_err(|e| e.to_string())?;
        let rep = trained.measure(&split.test, std::slice::from_ref(&spec)).map_err(|e| e.to_string())?;
        let r = &rep.per_collective[0];
        let delta_hat = hardt::delta_hat(&trained.model, trained.device, split, &spec)?;
        Ok(Baseline {
            s0: r.non_target.rate,
            s0_lo: r.non_target.lo,
            s0_hi: r.non_target.hi,
            s0_all: r.all.rate,
            delta_hat,
            record: trained.record,
        })
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
        let b = ceiling::ceiling_generic(s0, dp.epsilon_pld, dp.delta, k, ceiling::Adjacency::AddRemove)
            .map_err(|e| e.to_string())?;
        return Ok(b.value);
    }
    let profile = accountant::group::group_profile(k, q, sigma, steps, &ceiling::default_eps_grid())
        .map_err(|e| e.to_string())?;
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
        row.n_train = Some(b.record.data.n_train as u64);
        row.members = Some(0);
        row.clean_acc = Some(b.record.clean_accuracy.rate);
        row.success = Some(b.s0);
        row.success_lo = Some(b.s0_lo);
        row.success_hi = Some(b.s0_hi);
        row.success_all = Some(b.s0_all);
        row.baseline_success = Some(b.s0);
        row.wall_s = Some(b.record.wall_seconds);
        return Ok(row);
    }
    let cfg = run_config(cell, cell.alpha)?.check().map_err(|e| e.to_string())?;
    let (rec, xi, convex) = with_split(&cfg, cell.train.one_vs_rest, |split| {
        let rec = run::execute_on(&cfg, split, &mut Silent).map_err(|e| e.to_string())?;
        let xi = hardt::xi_hat(&split.train, &cfg.collectives[0].trigger)?;
        let convex = match convex::not_covered(cell, &cfg, split.train.num_classes) {
            None => convex::bound_for(cell, &cfg, split, &rec),
            Some(why) => Err(why),
        };
        Ok((rec, xi, convex))
    })?;
    fill_privacy(&mut row, &rec);
    row.n_train = Some(rec.data.n_train as u64);
    row.clean_acc = Some(rec.clean_accuracy.rate);
    let rep = rec.success.as_ref().ok_or("no success report")?;
    let s = &rep.per_collective[0];
    row.success = Some(s.non_target.rate);
    row.success_lo = Some(s.non_target.lo);
    row.success_hi = Some(s.non_target.hi);
    row.success_all = Some(s.all.rate);
    let info = &rec.collectives[0];
    row.members = Some(info.members);
    let n = rec.data.n_train as f64;
    row.alpha_eff = Some((info.members - info.deviators) as f64 / n);
    let mut flags = Vec::new();
    // Hardt et al. for a Bayes-optimal learner: ξ̂ measured (n/a for additive triggers), Δ̂ from the
    // line's calibrated clean model where the signal set holds clean points (else Δ = 1, immaterial
    // at ξ̂ = 0), coordination noise as a mixture (docs/bounds.md §1, §4; `super::hardt`).
    row.xi_hat = xi;
    let base = baseline(cell)?;
    row.delta_hat = base.delta_hat;
    if let Some(xi) = xi {
        let spec = &cfg.collectives[0];
        let (a, nu) = (info.members as f64 / n, info.deviators as f64 / info.members.max(1) as f64);
        let delta = base.delta_hat.unwrap_or(1.0);
        row.hardt_lb = Some(hardt::bound(spec, a, nu, delta, xi, 0.0)?);
        row.eps_tv_hat = Some(hardt::implied_tv(spec, a, nu, delta, xi, s.non_target.rate)?);
    }
    match convex {
        Ok(b) => {
            row.dpsgd_lb = Some(b.mean.value);
            row.dpsgd_lb_kind = "guarantee".into();
            row.dpsgd_lb_hp = Some(b.high_prob.value);
            row.bound_beta = Some(convex::BOUND_BETA);
            row.clip_ref_success = Some(b.reference_success);
            row.dpsgd_dominant = b.parts.dominant().into();
            if s.non_target.rate < b.high_prob.value {
                // Expected in at most a β share of seeds: the report's binomial test decides.
                flags.push("BELOW_HP_GUARANTEE".to_string());
            }
        }
        Err(why) if rec.dp.is_some() => row.dpsgd_lb_kind = format!("n/a: {why}"),
        Err(_) => {}
    }
    let s0 = base.s0;
    row.baseline_success = Some(s0);
    if let Some(dp) = &rec.dp {
        let c = ceiling_for(info.members, s0, dp)?;
        row.ceiling_ub = Some(c);
        if s.non_target.lo > c {
            flags.push("ABOVE_CEILING_ONE_RUN".into());
        }
    }
    row.flag = flags.join(";");
    row.wall_s = Some(rec.wall_seconds);
    Ok(row)
}

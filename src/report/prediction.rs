//! The calibrated deep-model **prediction** of DP success (`prediction.csv`, `prediction.md`):
//! the glue between results rows and [`crate::bounds::prediction`] (model, assumptions and
//! calibration are documented there and in `docs/bounds.md` §2.8).
//!
//! Per group of cells that differ only in (privacy, α, C, seed) — same dataset, model,
//! collective and training settings — every DP cell (σ > 0, α > 0) is paired with the clip-only
//! cell (σ = 0) of the same α, C and seed; its floor S₀ is its own `baseline_success` (else the
//! α = 0 cell of the same arm, C and seed). The constant k is fitted on the DP arm with the
//! smallest σ (the largest finite ε) by least absolute error, and evaluated on every other DP
//! arm: the held-out mean absolute error. Beside it, the error of the naive prediction
//! "DP success = clip-only success" (k = 0, same floor), so a reader sees what the noise term buys.
//! α = 0 cells (no collective: success is the baseline by definition) are listed but not scored;
//! DP cells without a clip-only partner, a step count or a baseline are listed with no prediction.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::ReportError;
use crate::bounds::prediction::{
    calibrate, evaluate, noise_variance, Calibration, CellInput, DeepNoiseModel, Loss, NoiseSchedule,
    Observation,
};
use crate::sweep::store::ResultRow;

/// The part a DP cell plays in the prediction report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A cell of the calibration arm (its prediction is in-sample).
    Calibration,
    /// A cell of another DP arm (its prediction is out-of-sample).
    HeldOut,
    /// α = 0: no collective; predicted but not scored.
    NoCollective,
    /// No clip-only partner, step count or baseline (or the calibration failed): no prediction.
    NoReference,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Calibration => "calibration",
            Role::HeldOut => "held-out",
            Role::NoCollective => "alpha=0",
            Role::NoReference => "no-reference",
        }
    }
}

/// One DP cell of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedCell {
    pub config_hash: String,
    /// Index into [`PredictionReport::groups`].
    pub group: usize,
    pub privacy: String,
    pub sigma: f64,
    pub alpha: f64,
    pub clip: Option<f64>,
    pub seed: u64,
    /// Measured DP success.
    pub success: f64,
    /// Measured success of the clip-only partner.
    pub clip_only_success: Option<f64>,
    /// S₀ used as the floor.
    pub baseline: Option<f64>,
    /// √v, the typical size of the noise's perturbation of one parameter.
    pub noise_sd: Option<f64>,
    pub predicted: Option<f64>,
    pub role: Role,
}

/// Error of the model and of the naive k = 0 prediction on one DP arm of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    pub privacy: String,
    /// Mean σ over the arm's scored cells.
    pub sigma: f64,
    pub role: Role,
    /// Scored cells (α > 0 with a prediction).
    pub n: usize,
    pub mae: f64,
    /// MAE of S_pred = max(S_clip, S₀) (k = 0).
    pub naive_mae: f64,
    /// The same errors after averaging predictions and measurements over seeds per (α, C): the
    /// model predicts an expectation over training randomness. `(points, model, naive)`.
    pub seed_mean_mae: (usize, f64, f64),
    /// Cells whose measured DP success exceeds the clip-only success by more than 0.1: a
    /// prediction that is non-increasing in σ cannot follow them.
    pub above_clip: usize,
}

/// MAE of the seed means of `pred` and of the measurements, per (α, C).
fn seed_mean_mae(cells: &[&PredictedCell], pred: &[f64]) -> (usize, f64) {
    // (α, C) bits → (Σ prediction, Σ measurement, count).
    let mut by: BTreeMap<(u64, Option<u64>), (f64, f64, usize)> = BTreeMap::new();
    for (c, p) in cells.iter().zip(pred) {
        let b = by.entry((c.alpha.to_bits(), c.clip.map(f64::to_bits))).or_insert((0.0, 0.0, 0));
        b.0 += p;
        b.1 += c.success;
        b.2 += 1;
    }
    let n = by.len();
    let mae = if n == 0 {
        f64::NAN
    } else {
        by.values().map(|b| ((b.0 - b.1) / b.2 as f64).abs()).sum::<f64>() / n as f64
    };
    (n, mae)
}

/// One group of cells sharing dataset, model, collective and training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPrediction {
    /// `dataset / model / collective`.
    pub title: String,
    /// Training settings that define the group besides the title.
    pub settings: String,
    /// The privacy arm k was fitted on, if any.
    pub calibration_arm: Option<String>,
    pub calibration: Option<Calibration>,
    /// Why there is no calibration, if there is none.
    pub note: Option<String>,
    /// Calibration arm first (in-sample), then the held-out arms by increasing σ.
    pub arms: Vec<ArmError>,
}

impl GroupPrediction {
    /// Mean absolute error over all held-out cells of the group (NaN if none).
    pub fn held_out_mae(&self) -> (usize, f64) {
        let held: Vec<&ArmError> = self.arms.iter().filter(|a| a.role == Role::HeldOut).collect();
        let n: usize = held.iter().map(|a| a.n).sum();
        let mae =
            if n == 0 { f64::NAN } else { held.iter().map(|a| a.mae * a.n as f64).sum::<f64>() / n as f64 };
        (n, mae)
    }
}

/// All groups and DP cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PredictionReport {
    pub groups: Vec<GroupPrediction>,
    pub cells: Vec<PredictedCell>,
}

/// The columns that must agree for two rows to be the same experiment up to (privacy, α, C, seed).
fn group_key(r: &ResultRow) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{}\u{1f}{:?}\u{1f}{}\u{1f}{:?}\u{1f}{:?}\u{1f}{}\u{1f}{}",
        r.dataset,
        r.model,
        r.collective_name,
        r.collective,
        r.epochs,
        r.batch_size,
        r.lr,
        r.optimizer,
        r.momentum,
        r.clipping,
        r.train_subset,
        r.test_subset,
        r.lr_schedule,
        r.input_norm
    )
}

fn cell_key(r: &ResultRow, alpha: f64) -> String {
    format!("{}\u{1e}{:?}\u{1e}{:?}\u{1e}{}", group_key(r), alpha, r.clip, r.seed)
}

fn is_dp(r: &ResultRow) -> bool {
    r.is_ok() && r.success.is_some() && r.sigma.is_some_and(|s| s > 0.0)
}

fn is_clip_only(r: &ResultRow) -> bool {
    r.is_ok() && r.success.is_some() && r.sigma == Some(0.0) && r.clip.is_some()
}

struct Scored {
    cell: usize,
    obs: Observation,
}

/// Pairs, calibrates and evaluates (see the module docs).
pub fn analyse(rows: &[ResultRow]) -> PredictionReport {
    let clip_only: HashMap<String, f64> = rows
        .iter()
        .filter(|r| is_clip_only(r))
        .map(|r| (cell_key(r, r.alpha), r.success.unwrap_or(f64::NAN)))
        .collect();
    // α = 0 success per (arm, cell) — the fallback baseline.
    let alpha0: HashMap<(String, String), f64> = rows
        .iter()
        .filter(|r| is_dp(r) && r.alpha == 0.0)
        .map(|r| ((r.privacy.clone(), cell_key(r, 0.0)), r.success.unwrap_or(f64::NAN)))
        .collect();

    let mut report = PredictionReport::default();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    // Per group: (cell index, observation) of every cell with a prediction input.
    let mut inputs: Vec<Vec<Scored>> = Vec::new();
    for r in rows.iter().filter(|r| is_dp(r)) {
        let gk = group_key(r);
        let g = *group_index.entry(gk).or_insert_with(|| {
            report.groups.push(GroupPrediction {
                title: format!("{} / {} / {}", r.dataset, r.model, r.collective_name),
                settings: format!(
                    "{} epochs, L = {}, lr = {}, {} (momentum {}), {} clipping",
                    r.epochs, r.batch_size, r.lr, r.optimizer, r.momentum, r.clipping
                ),
                calibration_arm: None,
                calibration: None,
                note: None,
                arms: Vec::new(),
            });
            inputs.push(Vec::new());
            report.groups.len() - 1
        });
        let sigma = r.sigma.unwrap_or(f64::NAN);
        let success = r.success.unwrap_or(f64::NAN);
        let clip_success = clip_only.get(&cell_key(r, r.alpha)).copied();
        let baseline =
            r.baseline_success.or_else(|| alpha0.get(&(r.privacy.clone(), cell_key(r, 0.0))).copied());
        let noise = match (r.clip, r.steps) {
            (Some(clip), Some(steps)) => Some(NoiseSchedule {
                lr: r.lr,
                momentum: r.momentum,
                sigma,
                clip,
                expected_batch: r.batch_size as f64,
                steps,
                lambda_eff: 0.0,
            }),
            _ => None,
        };
        let noise_sd = noise.and_then(|n| noise_variance(&n).ok()).map(f64::sqrt);
        let idx = report.cells.len();
        report.cells.push(PredictedCell {
            config_hash: r.config_hash.clone(),
            group: g,
            privacy: r.privacy.clone(),
            sigma,
            alpha: r.alpha,
            clip: r.clip,
            seed: r.seed,
            success,
            clip_only_success: clip_success,
            baseline,
            noise_sd,
            predicted: None,
            role: Role::NoReference,
        });
        if let (Some(noise), Some(cs), Some(s0), Some(_)) = (noise, clip_success, baseline, noise_sd) {
            let obs =
                Observation { input: CellInput { noise, clip_only_success: cs, baseline: s0 }, success };
            // Keep only cells the model accepts (rates in [0, 1]).
            if DeepNoiseModel::new(0.0).and_then(|m| m.predict(&obs.input)).is_ok()
                && (0.0..=1.0).contains(&success)
            {
                inputs[g].push(Scored { cell: idx, obs });
            }
        }
    }

    let naive = DeepNoiseModel::new(0.0).expect("k = 0 is valid");
    for (g, scored) in inputs.iter().enumerate() {
        let group = &mut report.groups[g];
        // Arms with scoreable (α > 0) cells, by mean σ.
        let mut arms: Vec<(String, f64, Vec<&Scored>)> = Vec::new();
        for s in scored {
            let c = &report.cells[s.cell];
            if c.alpha == 0.0 {
                continue;
            }
            match arms.iter_mut().find(|(p, _, _)| *p == c.privacy) {
                Some(a) => a.2.push(s),
                None => arms.push((c.privacy.clone(), 0.0, vec![s])),
            }
        }
        for a in &mut arms {
            a.1 = a.2.iter().map(|s| s.obs.input.noise.sigma).sum::<f64>() / a.2.len() as f64;
        }
        arms.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let Some((cal_arm, _, cal_cells)) = arms.first() else {
            group.note = Some("no DP cell with α > 0 has a clip-only partner and a baseline".into());
            continue;
        };
        let cal_obs: Vec<Observation> = cal_cells.iter().map(|s| s.obs).collect();
        let cal = match calibrate(&cal_obs, Loss::Absolute) {
            Ok(c) => c,
            Err(e) => {
                group.note = Some(format!("calibration on `{cal_arm}` failed: {e}"));
                continue;
            }
        };
        group.calibration_arm = Some(cal_arm.clone());
        group.calibration = Some(cal);
        for (i, (privacy, sigma, cells)) in arms.iter().enumerate() {
            let obs: Vec<Observation> = cells.iter().map(|s| s.obs).collect();
            let (Ok(e), Ok(e0)) = (evaluate(&cal.model, &obs), evaluate(&naive, &obs)) else {
                continue;
            };
            let role = if i == 0 { Role::Calibration } else { Role::HeldOut };
            for (s, p) in cells.iter().zip(&e.predictions) {
                report.cells[s.cell].predicted = Some(*p);
                report.cells[s.cell].role = role;
            }
            let pc: Vec<&PredictedCell> = cells.iter().map(|s| &report.cells[s.cell]).collect();
            let (points, model_mean) = seed_mean_mae(&pc, &e.predictions);
            let (_, naive_mean) = seed_mean_mae(&pc, &e0.predictions);
            let above_clip =
                cells.iter().filter(|s| s.obs.success > s.obs.input.clip_only_success + 0.1).count();
            group.arms.push(ArmError {
                privacy: privacy.clone(),
                sigma: *sigma,
                role,
                n: obs.len(),
                mae: e.mae,
                naive_mae: e0.mae,
                seed_mean_mae: (points, model_mean, naive_mean),
                above_clip,
            });
        }
        // α = 0 cells: predicted (= about the floor) but not scored.
        for s in scored {
            if report.cells[s.cell].alpha == 0.0 {
                if let Ok(b) = cal.model.predict(&s.obs.input) {
                    report.cells[s.cell].predicted = Some(b.value);
                    report.cells[s.cell].role = Role::NoCollective;
                }
            }
        }
    }
    report
}

/// config_hash → predicted success, for every DP cell with a prediction (calibration-arm values
/// are in-sample fits; see [`analyse`] for the roles).
pub fn predictions(rows: &[ResultRow]) -> HashMap<String, f64> {
    analyse(rows).cells.into_iter().filter_map(|c| c.predicted.map(|p| (c.config_hash, p))).collect()
}

/// A lookup of the predicted success of a DP row (by `config_hash`), `None` for rows without one
/// (non-private, clip-only, no clip-only partner). For drawing the prediction beside measurements.
pub fn predictor(rows: &[ResultRow]) -> impl Fn(&ResultRow) -> Option<f64> {
    let map = predictions(rows);
    move |r: &ResultRow| map.get(&r.config_hash).copied()
}

fn num(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.6}")).unwrap_or_default()
}

fn short(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.3}")
    }
}

/// `prediction.csv`: one row per DP cell.
pub fn csv_text(rep: &PredictionReport) -> String {
    let mut s = String::from(
        "config_hash,dataset_model_collective,privacy,sigma,alpha,clip,seed,success,clip_only_success,baseline,noise_sd,predicted,role\n",
    );
    for c in &rep.cells {
        let g = &rep.groups[c.group];
        let title = g.title.replace('"', "\"\"");
        let _ = writeln!(
            s,
            "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{}",
            c.config_hash,
            title,
            c.privacy,
            c.sigma,
            c.alpha,
            c.clip.map(|x| x.to_string()).unwrap_or_default(),
            c.seed,
            c.success,
            num(c.clip_only_success),
            num(c.baseline),
            c.noise_sd.map(|x| format!("{x:.6e}")).unwrap_or_default(),
            num(c.predicted),
            c.role.as_str()
        );
    }
    s
}

/// `prediction.md`: the model, the constants and the error per arm.
pub fn markdown(rep: &PredictionReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Calibrated prediction of DP success (deep models) — a prediction, never a guarantee\n"
    );
    let _ = writeln!(
        md,
        "Model (`crowdout::bounds::prediction`, docs/bounds.md §2.8): for a DP cell with clip-only partner success \
         S_clip (same dataset, model, collective, α, C, seed, σ = 0) and baseline S₀ (same arm, no collective),\n\n\
         `S_pred = S₀ + (1 − S₀)·Φ(Φ⁻¹(p_c) − k·√v)`, `p_c = clamp((S_clip − S₀)/(1 − S₀), 0.001, 0.999)`, \
         `v = T·(η/(1−μ)·σC/L)²` (λ_eff = 0: the sweeps use no weight decay).\n\n\
         One constant k ≥ 0 per group, fitted by least absolute error on the DP arm with the smallest σ (the \
         largest finite ε) and evaluated on the other DP arms (held out). *naive* = the same with k = 0, i.e. \
         max(S_clip, S₀). α = 0 cells are not scored. Measured success is one training run per seed: near the \
         critical mass it is bimodal over seeds, which no function of the clip-only run can predict; the model \
         describes the expectation over training randomness, so the MAE of the seed means per (α, C) is given \
         too. The last column counts cells whose DP success exceeds the clip-only success by more than 0.1, \
         which no prediction non-increasing in σ can follow.\n"
    );
    if rep.groups.is_empty() {
        let _ = writeln!(md, "No DP cells (σ > 0) in the inputs.");
        return md;
    }
    for g in &rep.groups {
        let _ = writeln!(md, "## {}\n\n{}\n", g.title, g.settings);
        if let Some(note) = &g.note {
            let _ = writeln!(md, "No prediction: {note}.\n");
            continue;
        }
        if let (Some(arm), Some(c)) = (&g.calibration_arm, &g.calibration) {
            let _ = writeln!(
                md,
                "Calibrated on `{arm}` ({} cells): **k = {:.4}** (in-sample MAE {}).\n",
                c.n,
                c.model.k,
                short(c.mae)
            );
        }
        let _ = writeln!(
            md,
            "| arm | σ | role | cells | MAE | naive MAE (k = 0) | (α, C) points | MAE of seed means | naive | cells > S_clip + 0.1 |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for a in &g.arms {
            let _ = writeln!(
                md,
                "| {} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} |",
                a.privacy,
                a.sigma,
                a.role.as_str(),
                a.n,
                short(a.mae),
                short(a.naive_mae),
                a.seed_mean_mae.0,
                short(a.seed_mean_mae.1),
                short(a.seed_mean_mae.2),
                a.above_clip
            );
        }
        let (n, mae) = g.held_out_mae();
        if n == 0 {
            let _ =
                writeln!(md, "\nNo held-out arm (only one DP level): nothing is evaluated out of sample.\n");
        } else {
            let _ = writeln!(md, "\n**Held-out MAE: {} over {n} cells.**\n", short(mae));
        }
    }
    let unpaired = rep.cells.iter().filter(|c| c.role == Role::NoReference).count();
    if unpaired > 0 {
        let _ = writeln!(
            md,
            "{unpaired} DP cell(s) have no prediction (no clip-only partner, step count or baseline)."
        );
    }
    md
}

/// Writes `prediction.csv` and `prediction.md` into `out` when `rows` hold at least one DP cell;
/// returns their paths.
pub fn write(out: &Path, rows: &[ResultRow]) -> Result<Option<(PathBuf, PathBuf)>, ReportError> {
    let rep = analyse(rows);
    if rep.cells.is_empty() {
        return Ok(None);
    }
    let csv = out.join("prediction.csv");
    let md = out.join("prediction.md");
    for (p, text) in [(&csv, csv_text(&rep)), (&md, markdown(&rep))] {
        std::fs::write(p, text).map_err(|source| ReportError::Io { path: p.clone(), source })?;
    }
    Ok(Some((csv, md)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        privacy: &str,
        sigma: Option<f64>,
        alpha: f64,
        clip: f64,
        seed: u64,
        success: f64,
        baseline: f64,
    ) -> ResultRow {
        let mut r: ResultRow = csv::ReaderBuilder::new()
            .from_reader(template().as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        r.privacy = privacy.into();
        r.sigma = sigma;
        r.alpha = alpha;
        r.clip = Some(clip);
        r.seed = seed;
        r.success = Some(success);
        r.baseline_success = Some(baseline);
        r.config_hash = format!("{privacy}-{alpha}-{clip}-{seed}");
        r
    }

    fn template() -> String {
        let h = ResultRow::header();
        let vals: Vec<String> = h
            .iter()
            .map(|c| {
                match c.as_str() {
                    "sweep" => "t",
                    "dataset" => "d",
                    "model" => "cnn",
                    "collective_name" => "patch",
                    "collective" => "x",
                    "alpha" | "momentum" | "delta" | "weight_decay" => "0",
                    "seed" | "schema_version" => "2",
                    "epochs" => "4",
                    "batch_size" => "256",
                    "lr" => "0.5",
                    "optimizer" => "sgd",
                    "steps" => "125",
                    "lr_schedule" => "constant",
                    "input_norm" => "none",
                    _ => "",
                }
                .to_string()
            })
            .collect();
        format!("{}\n{}\n", h.join(","), vals.join(","))
    }

    #[test]
    fn pairs_calibrates_and_holds_out() {
        let k = 3.0;
        let m = DeepNoiseModel::new(k).unwrap();
        let mut rows = Vec::new();
        for &clip in &[1.0, 10.0] {
            for &alpha in &[0.0, 0.1, 0.3] {
                let sc = if alpha == 0.0 { 0.02 } else { 0.2 + 2.0 * alpha };
                rows.push(row("sigma=0", Some(0.0), alpha, clip, 0, sc, 0.02));
                for (p, sigma) in [("eps=8", 0.6), ("eps=2", 1.2)] {
                    let input = CellInput {
                        noise: NoiseSchedule {
                            lr: 0.5,
                            momentum: 0.0,
                            sigma,
                            clip,
                            expected_batch: 256.0,
                            steps: 125,
                            lambda_eff: 0.0,
                        },
                        clip_only_success: sc,
                        baseline: 0.02,
                    };
                    let s = if alpha == 0.0 { 0.02 } else { m.predict(&input).unwrap().value };
                    rows.push(row(p, Some(sigma), alpha, clip, 0, s, 0.02));
                }
            }
        }
        rows.push(row("none", None, 0.1, 1.0, 0, 0.9, 0.02));
        let rep = analyse(&rows);
        assert_eq!(rep.groups.len(), 1);
        let g = &rep.groups[0];
        assert_eq!(g.calibration_arm.as_deref(), Some("eps=8"));
        assert!((g.calibration.unwrap().model.k - k).abs() < 1e-6);
        assert_eq!(g.arms.len(), 2);
        assert_eq!(g.arms[1].role, Role::HeldOut);
        assert_eq!(g.arms[1].n, 4);
        assert!(g.held_out_mae().1 < 1e-8);
        assert!(g.arms[1].naive_mae > 0.01);
        assert_eq!(rep.cells.len(), 12);
        assert_eq!(rep.cells.iter().filter(|c| c.role == Role::NoCollective).count(), 4);
        let f = predictor(&rows);
        assert!(f(&rows[rows.len() - 1]).is_none());
        let dp = rows.iter().find(|r| r.privacy == "eps=2" && r.alpha == 0.3).unwrap();
        assert!((f(dp).unwrap() - dp.success.unwrap()).abs() < 1e-8);
        let csv = csv_text(&rep);
        assert_eq!(csv.lines().count(), 13);
        assert!(csv.contains(",held-out\n") && csv.contains(",calibration\n"));
        let md = markdown(&rep);
        assert!(md.contains("**k = 3.0000**"), "{md}");
        assert!(md.contains("Held-out MAE: 0.000 over 4 cells"), "{md}");
    }

    #[test]
    fn unpaired_and_single_level() {
        let rows = vec![
            row("eps=8", Some(0.6), 0.1, 1.0, 0, 0.5, 0.02),
            row("sigma=0", Some(0.0), 0.1, 1.0, 1, 0.5, 0.02), // other seed: no partner
        ];
        let rep = analyse(&rows);
        assert_eq!(rep.cells.len(), 1);
        assert_eq!(rep.cells[0].role, Role::NoReference);
        assert!(rep.groups[0].note.is_some());
        assert!(markdown(&rep).contains("No prediction"));
        let rows = vec![
            row("eps=8", Some(0.6), 0.1, 1.0, 0, 0.3, 0.02),
            row("sigma=0", Some(0.0), 0.1, 1.0, 0, 0.5, 0.02),
        ];
        let rep = analyse(&rows);
        assert_eq!(rep.cells[0].role, Role::Calibration);
        assert!(markdown(&rep).contains("No held-out arm"));
        assert!(analyse(&[]).groups.is_empty());
    }
}

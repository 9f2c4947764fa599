//! From results rows to per-arm critical masses: which runs were steered, the two fits of
//! [`super::fit`] and the `critical_mass.csv` table.
//!
//! An arm is the rows' (dataset, model, collective label, privacy, clip). Only successful rows with
//! α > 0 enter the fits (α = 0 is the no-collective baseline, at ln α = −∞).
//! - **Steered**: a run is steered when its success exceeds the threshold τ: a number, or
//!   `midway` = (S̄₀ + 1)/2 with S̄₀ the mean of the arm's `baseline_success` column (the same
//!   success measure on models trained without the collective, one per seed line).
//! - **α₅₀**: the α at which half the trainings are steered (steered-fraction model, level ½).
//! - **α\*(S\*)**: the α at which the mean success E[S] reaches S* (mean-success model, level S*,
//!   a curve rising from S̄₀ — the success without any collective — to 1; from 0 when the rows
//!   carry no baseline).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fit::{fit_crossing, fit_crossing_above, Crossing, Point};
use crate::sweep::store::ResultRow;

/// How a run counts as steered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// Success above this value.
    Fixed(f64),
    /// `"midway"`: above (S̄₀ + 1)/2, S̄₀ the arm's mean baseline success.
    Named(ThresholdName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdName {
    Midway,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Named(ThresholdName::Midway)
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Fixed(x) => write!(f, "{x}"),
            Threshold::Named(ThresholdName::Midway) => write!(f, "midway"),
        }
    }
}

/// The identity of an arm in results rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArmKey {
    pub dataset: String,
    pub model: String,
    pub collective: String,
    pub privacy: String,
    /// The clip as written in the row (empty for non-private arms).
    pub clip: String,
}

impl ArmKey {
    pub fn of(r: &ResultRow) -> ArmKey {
        ArmKey {
            dataset: r.dataset.clone(),
            model: r.model.clone(),
            collective: r.collective_name.clone(),
            privacy: r.privacy.clone(),
            clip: r.clip.map(|c| c.to_string()).unwrap_or_default(),
        }
    }

    /// `fashion-mnist/cnn/patch/eps=8/C=1`.
    pub fn label(&self) -> String {
        let mut s = format!("{}/{}/{}/{}", self.dataset, self.model, self.collective, self.privacy);
        if !self.clip.is_empty() {
            s.push_str(&format!("/C={}", self.clip));
        }
        s
    }
}

/// The estimates of one arm.
#[derive(Debug, Clone)]
pub struct ArmEstimate {
    pub key: ArmKey,
    /// ε of the arm (the rows' mean `eps_rdp`; ∞ for non-private and clip-only arms).
    pub epsilon: f64,
    /// The steered threshold τ used, or why there is none.
    pub threshold: Result<f64, String>,
    /// Mean `baseline_success` of the arm's rows, if any row has it.
    pub baseline: Option<f64>,
    /// α₅₀ (steered-fraction model).
    pub alpha50: Result<Crossing, String>,
    /// α*(S*) per target S* (mean-success model), in the order given.
    pub alpha_star: Vec<(f64, Result<Crossing, String>)>,
    /// Runs with α > 0 used in the fits.
    pub cells: usize,
    /// How many of them were steered.
    pub steered: usize,
    /// The smallest and largest α among those runs (NaN when there are none): an estimate
    /// outside this range is an extrapolation of the fitted curve, and `critical_mass.csv` says so.
    pub alpha_range: (f64, f64),
}

/// Why an estimate is an extrapolation, if it lies outside the α's that ran: with no run on its
/// far side the fit only says "beyond", and under separation (every run on one side of the
/// level) the point sits at the edge of the search window, not at a measured crossing.
fn extrapolation(name: &str, c: &Crossing, (lo, hi): (f64, f64)) -> Option<String> {
    let at = |x: f64| format!("{x:.4}");
    if c.alpha > hi {
        Some(format!("{name} = {} lies above the largest α run ({}): extrapolated", at(c.alpha), at(hi)))
    } else if c.alpha < lo {
        Some(format!("{name} = {} lies below the smallest α run ({}): extrapolated", at(c.alpha), at(lo)))
    } else {
        None
    }
}

impl ArmEstimate {
    /// The crossings that fitted (α₅₀ first), for the design.
    pub fn fits(&self) -> Vec<Crossing> {
        let mut v: Vec<Crossing> = self.alpha50.iter().copied().collect();
        v.extend(self.alpha_star.iter().filter_map(|(_, c)| c.as_ref().ok().copied()));
        v
    }
}

/// Estimates one arm from its rows (rows of other arms must be filtered out by the caller).
pub fn estimate_arm(key: ArmKey, rows: &[&ResultRow], targets: &[f64], threshold: Threshold) -> ArmEstimate {
    let used: Vec<(&ResultRow, f64)> = rows
        .iter()
        .filter(|r| r.is_ok() && r.alpha > 0.0)
        .filter_map(|r| r.success.filter(|s| s.is_finite()).map(|s| (*r, s)))
        .collect();
    let base: Vec<f64> = rows
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(|r| if r.alpha == 0.0 { r.success } else { r.baseline_success })
        .filter(|s| s.is_finite())
        .collect();
    let baseline = (!base.is_empty()).then(|| base.iter().sum::<f64>() / base.len() as f64);
    let eps: Vec<f64> = rows.iter().filter(|r| r.is_ok()).filter_map(|r| r.eps_rdp).collect();
    let epsilon = if key.privacy == "none" || eps.is_empty() {
        f64::INFINITY
    } else {
        eps.iter().sum::<f64>() / eps.len() as f64
    };
    let tau = match threshold {
        Threshold::Fixed(t) => Ok(t),
        Threshold::Named(ThresholdName::Midway) => baseline
            .map(|b| 0.5 * (b + 1.0))
            .ok_or_else(|| "no baseline_success in the rows: set a numeric threshold".to_string()),
    };
    let steered = match &tau {
        Ok(t) => used.iter().filter(|(_, s)| s > t).count(),
        Err(_) => 0,
    };
    let none = || -> Result<Crossing, String> { Err("no runs with α > 0".into()) };
    let alpha50 = if used.is_empty() {
        none()
    } else {
        tau.clone().and_then(|t| {
            let pts: Vec<Point> =
                used.iter().map(|(r, s)| Point { x: r.alpha.ln(), y: f64::from(u8::from(*s > t)) }).collect();
            fit_crossing(&pts, 0.5).map_err(|e| e.to_string())
        })
    };
    let pts: Vec<Point> = used.iter().map(|(r, s)| Point { x: r.alpha.ln(), y: s.clamp(0.0, 1.0) }).collect();
    // The mean curve rises from the no-collective success S̄₀ (0 when the rows carry none).
    let floor = baseline.unwrap_or(0.0).clamp(0.0, 0.999);
    let alpha_star = targets
        .iter()
        .map(|&t| {
            let fit = || fit_crossing_above(&pts, t, floor).map_err(|e| e.to_string());
            (t, if used.is_empty() { none() } else { fit() })
        })
        .collect();
    let alpha_range =
        used.iter().fold((f64::NAN, f64::NAN), |(lo, hi), (r, _)| (r.alpha.min(lo), r.alpha.max(hi)));
    ArmEstimate {
        key,
        epsilon,
        threshold: tau,
        baseline,
        alpha50,
        alpha_star,
        cells: used.len(),
        steered,
        alpha_range,
    }
}

/// Estimates every arm found in `rows` (sorted by arm).
pub fn estimate_all(rows: &[ResultRow], targets: &[f64], threshold: Threshold) -> Vec<ArmEstimate> {
    let mut arms: BTreeMap<ArmKey, Vec<&ResultRow>> = BTreeMap::new();
    for r in rows {
        arms.entry(ArmKey::of(r)).or_default().push(r);
    }
    arms.into_iter().map(|(k, rs)| estimate_arm(k, &rs, targets, threshold)).collect()
}

/// `critical_mass.csv`: one line per arm and target S*. Columns: the arm, `epsilon` (`inf` when
/// non-private or σ = 0), `target_success` S*, `alpha_star` with its 95 % profile-likelihood
/// interval `alpha_star_lo`, `alpha_star_hi` (0 / `inf`: open end), the same for `alpha50`, the
/// threshold τ, runs `cells_used` and how many were `steered`. Empty: the fit failed (`note` says why).
/// `note` also names every estimate that lies outside the α's that ran (an extrapolation, e.g. a
/// target no run reached: the number is then the edge of the search window, not a crossing).
pub fn critical_mass_csv(arms: &[ArmEstimate]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "dataset",
        "model",
        "collective",
        "privacy",
        "clip",
        "epsilon",
        "target_success",
        "alpha_star",
        "alpha_star_lo",
        "alpha_star_hi",
        "alpha50",
        "alpha50_lo",
        "alpha50_hi",
        "threshold",
        "baseline_success",
        "cells_used",
        "steered",
        "note",
    ])?;
    let num = |x: f64| if x.is_infinite() { "inf".to_string() } else { format!("{x:.6}") };
    let cross = |c: &Result<Crossing, String>| -> [String; 3] {
        match c {
            Ok(c) => [num(c.alpha), num(c.lo), num(c.hi)],
            Err(_) => [String::new(), String::new(), String::new()],
        }
    };
    for a in arms {
        for (t, c) in &a.alpha_star {
            let [s, slo, shi] = cross(c);
            let [m, mlo, mhi] = cross(&a.alpha50);
            let mut note: Vec<String> =
                [c.as_ref().err(), a.alpha50.as_ref().err(), a.threshold.as_ref().err()]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
            let star = format!("alpha_star (S* = {t})");
            for (name, fit) in [(star.as_str(), c), ("alpha50", &a.alpha50)] {
                if let Ok(fit) = fit {
                    note.extend(extrapolation(name, fit, a.alpha_range));
                }
            }
            w.write_record([
                a.key.dataset.clone(),
                a.key.model.clone(),
                a.key.collective.clone(),
                a.key.privacy.clone(),
                a.key.clip.clone(),
                num(a.epsilon),
                t.to_string(),
                s,
                slo,
                shi,
                m,
                mlo,
                mhi,
                a.threshold.as_ref().map(|x| format!("{x:.4}")).unwrap_or_default(),
                a.baseline.map(|x| format!("{x:.4}")).unwrap_or_default(),
                a.cells.to_string(),
                a.steered.to_string(),
                note.join("; "),
            ])?;
        }
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(privacy: &str, alpha: f64, seed: u64, success: f64, base: f64) -> ResultRow {
        ResultRow {
            dataset: "d".into(),
            model: "m".into(),
            collective_name: "c".into(),
            privacy: privacy.into(),
            alpha,
            seed,
            success: Some(success),
            baseline_success: Some(base),
            ..Default::default()
        }
    }

    #[test]
    fn midway_threshold_and_steered_counts() {
        // Baseline 0.1 → τ = 0.55; at α = 0.01 nobody is steered, at 0.04 everyone.
        let mut rows = Vec::new();
        for s in 0..4 {
            rows.push(row("none", 0.01, s, 0.12, 0.1));
            rows.push(row("none", 0.04, s, 0.95, 0.1));
        }
        rows.push(row("none", 0.0, 9, 0.1, 0.1));
        let arms = estimate_all(&rows, &[0.5, 0.9], Threshold::default());
        assert_eq!(arms.len(), 1);
        let a = &arms[0];
        assert_eq!(a.cells, 8);
        assert_eq!(a.steered, 4);
        assert!((a.threshold.clone().unwrap() - 0.55).abs() < 1e-12);
        let c = a.alpha50.as_ref().unwrap();
        assert!(c.alpha > 0.01 && c.alpha < 0.04, "{c:?}");
        assert!(a.epsilon.is_infinite());
        let csv = String::from_utf8(critical_mass_csv(&arms).unwrap()).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.lines().nth(1).unwrap().starts_with("d,m,c,none,,inf,0.5,"), "{csv}");
    }

    #[test]
    fn arms_are_kept_apart_and_a_missing_baseline_is_explained() {
        let mut rows = vec![row("none", 0.02, 0, 0.9, 0.1), row("eps=8", 0.02, 0, 0.1, 0.1)];
        rows[1].eps_rdp = Some(7.99);
        rows[1].clip = Some(1.0);
        let arms = estimate_all(&rows, &[0.5], Threshold::default());
        assert_eq!(arms.len(), 2);
        assert!((arms[0].epsilon - 7.99).abs() < 1e-12 && arms[0].key.label().ends_with("eps=8/C=1"));
        let mut r = row("none", 0.02, 0, 0.9, 0.1);
        r.baseline_success = None;
        let a = estimate_all(&[r], &[0.5], Threshold::default());
        assert!(a[0].threshold.as_ref().unwrap_err().contains("numeric threshold"));
        assert!(a[0].alpha50.is_err());
    }

    #[test]
    fn an_estimate_outside_the_runs_alphas_is_noted_as_extrapolated() {
        // No run is steered up to α = 0.1: the fit can only say "above", and its point sits at
        // the search window's edge; the CSV must say so rather than let it pass as a crossing.
        let rows: Vec<ResultRow> = [0.01, 0.05, 0.1]
            .iter()
            .flat_map(|&a| (0..3).map(move |s| row("none", a, s, 0.12, 0.1)))
            .collect();
        let arms = estimate_all(&rows, &[0.9], Threshold::default());
        let a = &arms[0];
        assert_eq!((a.steered, a.alpha_range), (0, (0.01, 0.1)));
        assert!(a.alpha50.as_ref().unwrap().alpha > 0.1);
        let csv = String::from_utf8(critical_mass_csv(&arms).unwrap()).unwrap();
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.contains("alpha50 = ") && line.contains("lies above the largest α run (0.1000)"),
            "{line}"
        );
        assert!(line.contains("alpha_star (S* = 0.9)"), "{line}");
        // Inside the range: no note (the first test's data).
        let mut ok = Vec::new();
        for s in 0..4 {
            ok.push(row("none", 0.01, s, 0.12, 0.1));
            ok.push(row("none", 0.04, s, 0.95, 0.1));
        }
        let arms = estimate_all(&ok, &[0.5], Threshold::default());
        let csv = String::from_utf8(critical_mass_csv(&arms).unwrap()).unwrap();
        assert!(csv.lines().nth(1).unwrap().ends_with(','), "{csv}");
    }
}

//! From result rows to what a report shows: panels (one per dataset / model / collective / clip),
//! privacy arms inside a panel, per-α aggregates over seeds, critical masses and bound checks.
//!
//! Aggregation over seeds: `success` is the mean over seeds; its band is the envelope of the
//! per-seed Clopper–Pearson intervals, `[min success_lo, max success_hi]`.
//! Critical mass α*(S*): the smallest grid α > 0 whose mean success ≥ S* (`grid`), and a
//! log-linear interpolation between that α and the grid α before it (`interp`):
//! `α* = exp(ln a₁ + (S* − s₁)/(s₂ − s₁)·(ln a₂ − ln a₁))`. When the first α > 0 already reaches
//! S* there is nothing to interpolate: `interp` = that α, reported as an upper bound (`≤`).
//!
//! This file: panels, arms and per-α aggregates over seeds, and the critical mass.

use std::collections::BTreeMap;

use crate::sweep::store::ResultRow;

/// Panels group rows by everything but privacy, α and seed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PanelKey {
    pub sweep: String,
    pub dataset: String,
    pub model: String,
    pub collective: String,
    /// `C=<clip>` for private arms; non-private rows are shown in every clip panel.
    pub clip: String,
}

impl PanelKey {
    pub fn title(&self) -> String {
        let mut t = format!("{} / {} / {}", self.dataset, self.model, self.collective);
        if !self.clip.is_empty() {
            t.push_str(&format!(" / {}", self.clip));
        }
        t
    }

    /// A file-name-safe identifier.
    pub fn slug(&self) -> String {
        let raw = format!("{}_{}_{}_{}_{}", self.sweep, self.dataset, self.model, self.collective, self.clip);
        let mut s: String = raw
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        while s.contains("__") {
            s = s.replace("__", "_");
        }
        let s = s.trim_matches('_').to_string();
        if s.len() > 80 {
            // Long collective specs: keep it readable and unique.
            use sha2::{Digest, Sha256};
            let h = Sha256::digest(raw.as_bytes());
            let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("{}_{hex}", &s[..60])
        } else {
            s
        }
    }
}

/// Aggregate over seeds at one α of one arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub alpha: f64,
    /// Successful rows (seeds) aggregated.
    pub n: usize,
    pub success: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub clean_acc: Option<f64>,
    pub baseline: Option<f64>,
    pub hardt_lb: Option<f64>,
    pub dpsgd_lb: Option<f64>,
    pub dpsgd_lb_kind: String,
    pub ceiling_ub: Option<f64>,
    pub eps: Option<f64>,
    /// Distinct non-empty flags of the rows.
    pub flags: Vec<String>,
}

/// One privacy arm (e.g. `eps=1`) of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub privacy: String,
    /// ε used for ordering and x axes: the target for `eps=`, the measured ε (PLD, else RDP)
    /// for `sigma>0`, ∞ for `none` and `sigma=0`.
    pub eps: f64,
    pub points: Vec<Point>,
}

impl Arm {
    pub fn is_non_private(&self) -> bool {
        self.privacy == "none"
    }
    pub fn is_clip_only(&self) -> bool {
        self.privacy == "sigma=0"
    }
    /// A legend label.
    pub fn label(&self) -> String {
        if self.is_non_private() {
            "non-private".into()
        } else if self.is_clip_only() {
            "clip only (σ=0)".into()
        } else if let Some(s) = self.privacy.strip_prefix("eps=") {
            format!("ε = {s}")
        } else if let Some(s) = self.privacy.strip_prefix("sigma=") {
            if self.eps.is_finite() {
                format!("σ = {s} (ε≈{})", fmt_num(self.eps))
            } else {
                format!("σ = {s}")
            }
        } else {
            self.privacy.clone()
        }
    }

    /// Critical mass for target success `s_star`: (grid value, interpolated value, exact?).
    pub fn critical_mass(&self, s_star: f64) -> Option<CriticalMass> {
        let pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|p| p.alpha > 0.0)
            .filter_map(|p| p.success.map(|s| (p.alpha, s)))
            .collect();
        let k = pts.iter().position(|&(_, s)| s >= s_star)?;
        let (a2, s2) = pts[k];
        if k == 0 {
            return Some(CriticalMass { grid: a2, interp: a2, upper_bound_only: true });
        }
        let (a1, s1) = pts[k - 1];
        let t = if s2 > s1 { (s_star - s1) / (s2 - s1) } else { 1.0 };
        let interp = (a1.ln() + t.clamp(0.0, 1.0) * (a2.ln() - a1.ln())).exp();
        Some(CriticalMass { grid: a2, interp, upper_bound_only: false })
    }

    /// Mean clean accuracy over all α and seeds, with its min and max over the α points.
    pub fn clean_acc(&self) -> Option<(f64, f64, f64)> {
        let v: Vec<f64> = self.points.iter().filter_map(|p| p.clean_acc).collect();
        if v.is_empty() {
            return None;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        Some((mean, lo, hi))
    }

    /// Success at α = 0 (the no-collective baseline), else the mean `baseline_success` column.
    pub fn baseline(&self) -> Option<f64> {
        if let Some(p) = self.points.iter().find(|p| p.alpha == 0.0) {
            if p.success.is_some() {
                return p.success;
            }
        }
        mean(self.points.iter().filter_map(|p| p.baseline))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CriticalMass {
    pub grid: f64,
    pub interp: f64,
    /// The first α > 0 already reached S*: α* ≤ grid.
    pub upper_bound_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub key: PanelKey,
    /// Arms ordered: non-private, clip-only, then by ε descending (weaker privacy first).
    pub arms: Vec<Arm>,
}

pub fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// A short decimal: 0.001, 0.25, 8, 1e-5.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return "∞".into();
    }
    let a = x.abs();
    if !(1e-4..1e5).contains(&a) {
        return format!("{x:.1e}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// ε of a row for ordering (see [`Arm::eps`]).
fn row_eps(r: &ResultRow) -> Option<f64> {
    if r.privacy == "none" || r.privacy == "sigma=0" {
        return Some(f64::INFINITY);
    }
    if let Some(e) = r.privacy.strip_prefix("eps=").and_then(|e| e.parse().ok()) {
        return Some(e);
    }
    r.eps_pld.or(r.eps_rdp)
}

/// Groups successful rows into panels. Failed rows are left out (the summary lists them).
pub fn panels(rows: &[ResultRow]) -> Vec<Panel> {
    let ok: Vec<&ResultRow> = rows.iter().filter(|r| r.is_ok()).collect();
    // Clip panels per (sweep, dataset, model, collective).
    let base =
        |r: &ResultRow| (r.sweep.clone(), r.dataset.clone(), r.model.clone(), r.collective_name.clone());
    let mut clips: BTreeMap<(String, String, String, String), Vec<String>> = BTreeMap::new();
    for r in &ok {
        let e = clips.entry(base(r)).or_default();
        if let Some(c) = r.clip {
            let l = format!("C={}", fmt_num(c));
            if !e.contains(&l) {
                e.push(l);
            }
        }
    }
    // rows per panel per arm per alpha
    type ArmMap<'a> = BTreeMap<String, BTreeMap<u64, Vec<&'a ResultRow>>>;
    let mut grouped: BTreeMap<PanelKey, ArmMap> = BTreeMap::new();
    for r in &ok {
        let b = base(r);
        let clip_labels = match r.clip {
            Some(c) => vec![format!("C={}", fmt_num(c))],
            None => {
                let cl = clips.get(&b).cloned().unwrap_or_default();
                if cl.is_empty() {
                    vec![String::new()]
                } else {
                    cl
                }
            }
        };
        for clip in clip_labels {
            let key = PanelKey {
                sweep: b.0.clone(),
                dataset: b.1.clone(),
                model: b.2.clone(),
                collective: b.3.clone(),
                clip,
            };
            grouped
                .entry(key)
                .or_default()
                .entry(r.privacy.clone())
                .or_default()
                .entry(r.alpha.to_bits())
                .or_default()
                .push(r);
        }
    }
    let mut out = Vec::new();
    for (key, arms) in grouped {
        let mut arm_list: Vec<Arm> = arms
            .into_iter()
            .map(|(privacy, by_alpha)| {
                let mut points: Vec<Point> = by_alpha.into_values().map(|rs| aggregate(&rs)).collect();
                points.sort_by(|a, b| a.alpha.total_cmp(&b.alpha));
                let eps = mean(points.iter().filter_map(|p| p.eps)).unwrap_or(f64::NAN);
                Arm { privacy, eps, points }
            })
            .collect();
        arm_list.sort_by(|a, b| {
            let rank = |x: &Arm| {
                if x.is_non_private() {
                    0
                } else if x.is_clip_only() {
                    1
                } else {
                    2
                }
            };
            rank(a).cmp(&rank(b)).then(b.eps.total_cmp(&a.eps)).then(a.privacy.cmp(&b.privacy))
        });
        out.push(Panel { key, arms: arm_list });
    }
    out
}

fn aggregate(rs: &[&ResultRow]) -> Point {
    let m = |f: fn(&ResultRow) -> Option<f64>| mean(rs.iter().filter_map(|r| f(r)));
    let mut flags: Vec<String> = Vec::new();
    for r in rs {
        for f in r.flag.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            if !flags.iter().any(|x| x == f) {
                flags.push(f.to_string());
            }
        }
    }
    let kinds: Vec<&str> = rs.iter().map(|r| r.dpsgd_lb_kind.as_str()).filter(|k| !k.is_empty()).collect();
    Point {
        alpha: rs.first().map(|r| r.alpha).unwrap_or(0.0),
        n: rs.len(),
        success: m(|r| r.success),
        lo: rs.iter().filter_map(|r| r.success_lo).reduce(f64::min),
        hi: rs.iter().filter_map(|r| r.success_hi).reduce(f64::max),
        clean_acc: m(|r| r.clean_acc),
        baseline: m(|r| r.baseline_success),
        hardt_lb: m(|r| r.hardt_lb),
        dpsgd_lb: m(|r| r.dpsgd_lb),
        dpsgd_lb_kind: if kinds.iter().all(|k| *k == "guarantee") && !kinds.is_empty() {
            "guarantee".into()
        } else {
            kinds.first().map(|k| k.to_string()).unwrap_or_default()
        },
        ceiling_ub: m(|r| r.ceiling_ub),
        eps: mean(rs.iter().filter_map(|r| row_eps(r))),
        flags,
    }
}

// ------------------------------------------------------------------------------------------------
// Per-configuration statistics over seeds and the bound checks that need them.
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(points: &[(f64, f64)]) -> Arm {
        Arm {
            privacy: "eps=1".into(),
            eps: 1.0,
            points: points
                .iter()
                .map(|&(alpha, s)| Point {
                    alpha,
                    n: 1,
                    success: Some(s),
                    lo: None,
                    hi: None,
                    clean_acc: None,
                    baseline: None,
                    hardt_lb: None,
                    dpsgd_lb: None,
                    dpsgd_lb_kind: String::new(),
                    ceiling_ub: None,
                    eps: Some(1.0),
                    flags: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn critical_mass_interpolates_in_log_alpha() {
        // success 0.5 at α=0.01, 1.0 at α=0.1: S*=0.75 is halfway → α* = sqrt(0.01·0.1)
        let a = arm(&[(0.0, 0.02), (0.01, 0.5), (0.1, 1.0)]);
        let cm = a.critical_mass(0.75).unwrap();
        assert_eq!(cm.grid, 0.1);
        assert!((cm.interp - (0.001f64).sqrt()).abs() < 1e-12);
        assert!(!cm.upper_bound_only);
        let cm = a.critical_mass(0.4).unwrap();
        assert!(cm.upper_bound_only && cm.interp == 0.01);
        assert!(a.critical_mass(1.01).is_none());
        assert_eq!(a.baseline(), Some(0.02));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(0.001), "0.001");
        assert_eq!(fmt_num(8.0), "8");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(1e-5), "1.0e-5");
        assert_eq!(fmt_num(f64::INFINITY), "∞");
    }
}

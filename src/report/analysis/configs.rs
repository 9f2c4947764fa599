//! Per-configuration statistics over seeds and the verdicts of each bound on them (the ceiling at
//! UCB(E[S₀]), the DP-SGD guarantee on E[S], the per-run guarantee by a binomial test), and the
//! per-row bound checks. Intervals are distribution-free ([`crate::report::stats`]).

use std::collections::{BTreeMap, HashMap};

use super::panels::fmt_num;
use crate::sweep::store::ResultRow;

/// Share of rows satisfying a bound check among the rows where the bound says something, and how
/// many rows had only a vacuous bound (a lower bound ≤ max(0, the row's baseline S₀), a ceiling
/// ≥ 1): those are counted apart, never as "holding".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Share {
    pub ok: usize,
    pub of: usize,
    pub vacuous: usize,
}

impl Share {
    pub fn fmt(&self) -> String {
        if self.of == 0 && self.vacuous == 0 {
            "n/a (no rows with this bound)".into()
        } else if self.of == 0 {
            format!("no informative row; {} vacuous", self.vacuous)
        } else {
            format!(
                "{}/{} informative rows ({:.1}%); {} vacuous",
                self.ok,
                self.of,
                100.0 * self.ok as f64 / self.of as f64,
                self.vacuous
            )
        }
    }
}

/// Per-row bound checks over successful rows (one run each: the per-configuration verdicts over
/// seeds in [`config_stats`] are the ones that decide).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BoundChecks {
    pub above_hardt: Share,
    pub above_dpsgd_guarantee: Share,
    pub above_dpsgd_prediction: Share,
    pub below_ceiling: Share,
}

pub fn bound_checks(rows: &[&ResultRow]) -> BoundChecks {
    let mut b = BoundChecks::default();
    for r in rows.iter().filter(|r| r.is_ok()) {
        let Some(s) = r.success else { continue };
        let floor = r.baseline_success.unwrap_or(0.0).max(0.0);
        let lower = |share: &mut Share, lb: f64| {
            if lb <= floor {
                share.vacuous += 1;
            } else {
                share.of += 1;
                share.ok += (s >= lb) as usize;
            }
        };
        if let Some(lb) = r.hardt_lb {
            // Hardt's bound is 1 when ξ̂ = 0: it says something (every point steered), not vacuous.
            b.above_hardt.of += 1;
            b.above_hardt.ok += (s >= lb) as usize;
        }
        if let Some(lb) = r.dpsgd_lb {
            if r.dpsgd_lb_kind == "guarantee" {
                lower(&mut b.above_dpsgd_guarantee, lb);
            } else {
                lower(&mut b.above_dpsgd_prediction, lb);
            }
        }
        if let Some(ub) = r.ceiling_ub {
            if ub >= 1.0 {
                b.below_ceiling.vacuous += 1;
            } else {
                b.below_ceiling.of += 1;
                b.below_ceiling.ok += (s <= ub) as usize;
            }
        }
    }
    b
}

/// Two-sided level of every interval over seeds (95 %).
pub const CI_ALPHA: f64 = 0.05;
/// Seeds the no-collective baseline E[S₀] needs before it is used for the ceiling.
pub const MIN_BASELINE_SEEDS: usize = 10;
/// p-value below which the per-run (probability ≥ 1 − β) DP-SGD guarantee is called violated.
pub const HP_P_FAIL: f64 = 0.01;
/// Largest collective for which the tight (PLD) group profile is used (as `sweep::cell`).
pub const TIGHT_MAX_K: u64 = 16;

/// A configuration: every config column of a row except the seed (and provenance). Rows of one
/// configuration differ only in the training seed, so their successes are i.i.d. draws of S.
pub type ConfigKey = Vec<(&'static str, String)>;

/// The config columns of `r` (all but `seed`; provenance, measurements and bounds left out).
/// Floats are written with `{:?}` (shortest round-trip), so equal values group together.
pub fn config_key(r: &ResultRow) -> ConfigKey {
    let o = |x: Option<f64>| x.map(|v| format!("{v:?}")).unwrap_or_default();
    let ou = |x: Option<usize>| x.map(|v| v.to_string()).unwrap_or_default();
    vec![
        ("sweep", r.sweep.clone()),
        ("dataset", r.dataset.clone()),
        ("model", r.model.clone()),
        ("collective_name", r.collective_name.clone()),
        ("collective", r.collective.clone()),
        ("alpha", format!("{:?}", r.alpha)),
        ("privacy", r.privacy.clone()),
        ("clip", o(r.clip)),
        ("epochs", r.epochs.to_string()),
        ("batch_size", r.batch_size.to_string()),
        ("lr", format!("{:?}", r.lr)),
        ("optimizer", r.optimizer.clone()),
        ("momentum", format!("{:?}", r.momentum)),
        ("clipping", r.clipping.clone()),
        ("grad_mode", r.grad_mode.clone()),
        ("accountant", r.accountant.clone()),
        ("delta", format!("{:?}", r.delta)),
        ("max_physical_batch", ou(r.max_physical_batch)),
        ("train_subset", ou(r.train_subset)),
        ("test_subset", ou(r.test_subset)),
        ("lr_schedule", r.lr_schedule.clone()),
        ("input_norm", r.input_norm.clone()),
        ("weight_decay", format!("{:?}", r.weight_decay)),
        ("one_vs_rest", r.one_vs_rest.map(|v| v.to_string()).unwrap_or_default()),
    ]
}

/// The key of the no-collective (α = 0) configuration that is `key`'s baseline.
fn baseline_key(key: &ConfigKey) -> ConfigKey {
    key.iter().map(|(n, v)| (*n, if *n == "alpha" { format!("{:?}", 0.0f64) } else { v.clone() })).collect()
}

/// Outcome of one bound check on one configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Informative and not contradicted by the distribution-free interval.
    Consistent,
    /// Contradicted by the distribution-free interval (or, for the per-run bound, the binomial
    /// test): a bug in the bound, the trainer or the measurement.
    Violated,
    /// The bound is 0 / ≤ the baseline (lower bounds) or 1 (ceiling): says nothing.
    Vacuous,
    /// The no-collective baseline has fewer than [`MIN_BASELINE_SEEDS`] seeds.
    InsufficientSeeds(usize),
    /// Not applicable here (reason): non-private, clip-only σ = 0, α = 0, a prediction, or the
    /// columns it needs are empty (older CSVs).
    NotApplicable(String),
}

impl Verdict {
    pub fn label(&self) -> String {
        match self {
            Verdict::Consistent => "consistent".into(),
            Verdict::Violated => "**VIOLATED**".into(),
            Verdict::Vacuous => "vacuous".into(),
            Verdict::InsufficientSeeds(n) => {
                format!("insufficient seeds (baseline n={n} < {MIN_BASELINE_SEEDS})")
            }
            Verdict::NotApplicable(why) => format!("n/a ({why})"),
        }
    }
    /// The label without markdown, for the CSV.
    pub fn plain(&self) -> String {
        self.label().replace("**", "")
    }
}

/// The group-privacy ceiling evaluated at the upper confidence bound of E[S₀].
#[derive(Debug, Clone, PartialEq)]
pub struct CeilingCheck {
    /// Ceiling at the distribution-free UCB of E[S₀] (the sound comparison).
    pub at_ucb: Option<f64>,
    /// Ceiling at the Student-t UCB of E[S₀] (approximate; for the t-only tension flag).
    pub at_t_ucb: Option<f64>,
    /// `tight PLD (k ≤ 16)` or `generic (ε_PLD, δ)`.
    pub method: String,
    pub verdict: Verdict,
    /// The Student-t LCB of E[S] exceeds the ceiling at the t-UCB of E[S₀] (tension, not a
    /// violation: the t interval has no coverage guarantee for bounded, bimodal data).
    pub t_crossing: bool,
}

/// A lower bound compared with E[S] (`dpsgd_lb`, a guarantee on the expectation).
#[derive(Debug, Clone, PartialEq)]
pub struct MeanLbCheck {
    /// Mean over seeds of the row's bound.
    pub bound: Option<f64>,
    pub kind: String,
    pub verdict: Verdict,
    /// The Student-t UCB of E[S] is below the bound (tension only).
    pub t_below: bool,
}

/// A per-run bound (`dpsgd_lb_hp`, holds for one run with probability ≥ 1 − β).
#[derive(Debug, Clone, PartialEq)]
pub struct PerRunLbCheck {
    pub bound: Option<f64>,
    pub beta: Option<f64>,
    /// Seeds with both a success and a bound.
    pub n: usize,
    /// Seeds whose success is below their bound.
    pub below: usize,
    /// P(Binomial(n, β) ≥ below).
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

/// Everything the report says about one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigStats {
    pub key: ConfigKey,
    pub dataset: String,
    pub model: String,
    pub collective: String,
    pub alpha: f64,
    pub privacy: String,
    pub clip: Option<f64>,
    /// (seed, success) of the finished rows, by seed.
    pub seeds: Vec<(u64, f64)>,
    /// Mean and both intervals of the success over seeds (`None` without successes).
    pub success: Option<crate::report::stats::SeedSummary>,
    /// The α = 0 configuration's summary (its successes are S₀); `None` if it has no rows.
    pub baseline: Option<crate::report::stats::SeedSummary>,
    pub k: Option<u64>,
    pub n_train: Option<u64>,
    pub q: Option<f64>,
    pub sigma: Option<f64>,
    pub steps: Option<u64>,
    pub clip_ref_success: Option<f64>,
    pub ceiling: CeilingCheck,
    pub dpsgd: MeanLbCheck,
    pub dpsgd_hp: PerRunLbCheck,
}

/// Counts of one bound's verdicts over configurations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VerdictCounts {
    pub consistent: usize,
    pub violated: usize,
    pub vacuous: usize,
    pub insufficient: usize,
    pub not_applicable: usize,
    /// t-only crossings (tension), counted whatever the verdict.
    pub tension: usize,
}

impl VerdictCounts {
    fn add(&mut self, v: &Verdict, tension: bool) {
        match v {
            Verdict::Consistent => self.consistent += 1,
            Verdict::Violated => self.violated += 1,
            Verdict::Vacuous => self.vacuous += 1,
            Verdict::InsufficientSeeds(_) => self.insufficient += 1,
            Verdict::NotApplicable(_) => self.not_applicable += 1,
        }
        self.tension += tension as usize;
    }
    /// Informative comparisons: consistent + violated.
    pub fn informative(&self) -> usize {
        self.consistent + self.violated
    }
    pub fn line(&self) -> String {
        format!(
            "{} informative ({} consistent, {} violated), {} vacuous, {} insufficient seeds, {} not applicable; {} t-only tension",
            self.informative(),
            self.consistent,
            self.violated,
            self.vacuous,
            self.insufficient,
            self.not_applicable,
            self.tension
        )
    }
}

/// Verdict counts per bound.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsCounts {
    pub ceiling: VerdictCounts,
    pub dpsgd: VerdictCounts,
    pub dpsgd_hp: VerdictCounts,
    /// Clip-only (σ = 0) configurations with α > 0: out of the ceiling's scope, counted apart.
    pub clip_only: usize,
}

pub fn count_verdicts(stats: &[ConfigStats]) -> StatsCounts {
    let mut c = StatsCounts::default();
    for s in stats.iter().filter(|s| s.alpha > 0.0) {
        c.ceiling.add(&s.ceiling.verdict, s.ceiling.t_crossing);
        c.dpsgd.add(&s.dpsgd.verdict, s.dpsgd.t_below);
        c.dpsgd_hp.add(&s.dpsgd_hp.verdict, false);
        c.clip_only += (s.sigma == Some(0.0)) as usize;
    }
    c
}

/// Errors of the per-configuration statistics (bad values in the CSV).
#[derive(Debug, thiserror::Error)]
pub enum ConfigStatsError {
    #[error("configuration {config}: {source}")]
    Stats {
        config: String,
        #[source]
        source: crate::report::stats::StatsError,
    },
    #[error("configuration {config}: ceiling: {message}")]
    Ceiling { config: String, message: String },
}

/// Short human label of a configuration (what differs in a typical sweep).
pub fn config_label(s: &ConfigStats) -> String {
    let mut t =
        format!("{} / {} / {} / α={} / {}", s.dataset, s.model, s.collective, fmt_num(s.alpha), s.privacy);
    if let Some(c) = s.clip {
        t.push_str(&format!(" / C={}", fmt_num(c)));
    }
    t
}

/// Ceiling E[S] ≤ c(s0) for a collective of k records, add/remove adjacency (remove k, add k):
/// the tight group profile (PLD of the Binomial mixture, Ganesh 2024) chained twice for
/// k ≤ [`TIGHT_MAX_K`], else the generic group conversion of (ε_PLD, δ). Non-decreasing in s0.
/// Group profiles already computed, by (k, q bits, σ bits, T).
type ProfileCache = HashMap<(u64, u64, u64, u64), Vec<(f64, f64)>>;

/// `cache` keeps one profile per (k, q, σ, T).
pub fn ceiling_at(
    s0: f64,
    k: u64,
    q: f64,
    sigma: f64,
    steps: u64,
    eps_delta: Option<(f64, f64)>,
    cache: &mut ProfileCache,
) -> Result<(f64, String), String> {
    use crate::bounds::ceiling;
    if k <= TIGHT_MAX_K {
        let key = (k, q.to_bits(), sigma.to_bits(), steps);
        let prof = match cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                crate::accountant::group::group_profile(k, q, sigma, steps, &ceiling::default_eps_grid())
                    .map_err(|e| e.to_string())?,
            ),
        };
        let b = ceiling::ceiling_two_stage(s0, prof).map_err(|e| e.to_string())?;
        Ok((b.value, format!("tight PLD, k={k}")))
    } else {
        let (e, d) = eps_delta.ok_or("k > 16 needs eps_pld and delta (empty)")?;
        let b = ceiling::ceiling_generic(s0, e, d, k, ceiling::Adjacency::AddRemove)
            .map_err(|e| e.to_string())?;
        Ok((b.value, format!("generic (ε={}, δ={}), k={k}", fmt_num(e), fmt_num(d))))
    }
}

/// Per-configuration statistics over seeds and the bound checks on them (methods: module docs of
/// [`super::stats`] and `summary.md`'s "Per-configuration statistics" section).
///
/// * E[S]: mean over seeds, the distribution-free (Anderson) 95 % interval [LCB, UCB] (each end
///   one-sided at 2.5 %) and the Student-t interval beside it.
/// * Baseline E[S₀]: the α = 0 configuration with otherwise equal columns; used only with
///   ≥ [`MIN_BASELINE_SEEDS`] seeds.
/// * Ceiling (σ > 0, α > 0): c(UCB(E[S₀])) with k = `members`, q, σ, T from the rows (the
///   largest k, q, T and smallest σ over seeds, which can only raise the ceiling). By Bonferroni
///   the statement "E[S₀] ≤ UCB and E[S] ≥ LCB" holds with probability ≥ 95 %, and the ceiling is
///   monotone in S₀, so LCB(E[S]) > c(UCB(E[S₀])) contradicts the ceiling at level 5 %: Violated.
///   c = 1 is Vacuous. σ = 0 and non-private configurations are out of scope.
/// * `dpsgd_lb` (a guarantee on E[S], conditional on the seed's initialisation; its mean over
///   seeds estimates E over initialisations): Violated when UCB(E[S]) < mean bound. A bound
///   ≤ max(0, mean S₀) is Vacuous. Predictions are not checked.
/// * `dpsgd_lb_hp` (per run, probability ≥ 1 − β): the count of seeds below their bound is at
///   most Binomial(n, β) in distribution; Violated when P(Bin(n, β) ≥ count) < [`HP_P_FAIL`].
pub fn config_stats(rows: &[ResultRow]) -> Result<Vec<ConfigStats>, ConfigStatsError> {
    use crate::report::stats::{binomial_tail_ge, summarize};
    let mut groups: BTreeMap<ConfigKey, Vec<&ResultRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_ok()) {
        groups.entry(config_key(r)).or_default().push(r);
    }
    let label = |k: &ConfigKey| {
        k.iter()
            .filter(|(n, v)| {
                !v.is_empty()
                    && matches!(*n, "dataset" | "model" | "collective_name" | "alpha" | "privacy" | "clip")
            })
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let succ = |rs: &[&ResultRow]| -> Vec<(u64, f64)> {
        let mut v: Vec<(u64, f64)> = rs.iter().filter_map(|r| r.success.map(|s| (r.seed, s))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        v
    };
    let summary = |key: &ConfigKey,
                   xs: &[f64]|
     -> Result<Option<crate::report::stats::SeedSummary>, ConfigStatsError> {
        if xs.is_empty() {
            return Ok(None);
        }
        summarize(xs, CI_ALPHA)
            .map(Some)
            .map_err(|source| ConfigStatsError::Stats { config: label(key), source })
    };
    let mut cache = HashMap::new();
    let mut out = Vec::new();
    for (key, rs) in &groups {
        let first = rs[0];
        let seeds = succ(rs);
        let xs: Vec<f64> = seeds.iter().map(|s| s.1).collect();
        let success = summary(key, &xs)?;
        let base_rows = groups.get(&baseline_key(key));
        let base_xs: Vec<f64> = base_rows.map(|b| succ(b).iter().map(|s| s.1).collect()).unwrap_or_default();
        let baseline = summary(key, &base_xs)?;
        let max_u = |f: fn(&ResultRow) -> Option<u64>| rs.iter().filter_map(|r| f(r)).max();
        let max_f = |f: fn(&ResultRow) -> Option<f64>| rs.iter().filter_map(|r| f(r)).reduce(f64::max);
        let k = max_u(|r| r.members);
        let q = max_f(|r| r.q);
        let steps = max_u(|r| r.steps);
        let sigma = rs.iter().filter_map(|r| r.sigma).reduce(f64::min);
        let eps_delta = max_f(|r| r.eps_pld).map(|e| (e, rs.iter().map(|r| r.delta).fold(0.0, f64::max)));
        let s0_mean = baseline.map(|b| b.mean);
        let floor = s0_mean.unwrap_or(0.0).max(0.0);

        // --- ceiling ---
        let na = |w: &str| Verdict::NotApplicable(w.to_string());
        let mut ceiling = CeilingCheck {
            at_ucb: None,
            at_t_ucb: None,
            method: String::new(),
            verdict: na("α = 0"),
            t_crossing: false,
        };
        if first.alpha > 0.0 {
            ceiling.verdict = match (sigma, q, steps, k) {
                _ if first.privacy == "none" => na("non-private"),
                (Some(0.0), _, _, _) => na("clip-only σ = 0: ceiling is 1"),
                (None, _, _, _) => na("no σ recorded"),
                (_, _, _, None) => na("members column empty"),
                (Some(_), None, _, _) | (Some(_), _, None, _) => na("q or steps empty"),
                (Some(sig), Some(qq), Some(t), Some(kk)) => match (&baseline, &success) {
                    (None, _) => Verdict::InsufficientSeeds(0),
                    (Some(b), _) if b.n < MIN_BASELINE_SEEDS => Verdict::InsufficientSeeds(b.n),
                    (_, None) => na("no successes"),
                    (Some(b), Some(s)) => {
                        let err = |message: String| ConfigStatsError::Ceiling { config: label(key), message };
                        let (c, m) = ceiling_at(b.hi, kk, qq, sig, t, eps_delta, &mut cache).map_err(err)?;
                        ceiling.at_ucb = Some(c);
                        ceiling.method = m;
                        if let (Some(tu), Some(tl)) = (b.t_hi, s.t_lo) {
                            let (ct, _) =
                                ceiling_at(tu, kk, qq, sig, t, eps_delta, &mut cache).map_err(err)?;
                            ceiling.at_t_ucb = Some(ct);
                            ceiling.t_crossing = tl > ct;
                        }
                        if s.lo > c {
                            Verdict::Violated
                        } else if c >= 1.0 {
                            Verdict::Vacuous
                        } else {
                            Verdict::Consistent
                        }
                    }
                },
            };
        }

        // --- dpsgd_lb on E[S] ---
        let lbs: Vec<f64> = rs.iter().filter_map(|r| r.dpsgd_lb).collect();
        let lb = crate::report::stats::mean(&lbs);
        let kinds: Vec<&str> =
            rs.iter().filter(|r| r.dpsgd_lb.is_some()).map(|r| r.dpsgd_lb_kind.as_str()).collect();
        let kind = if !kinds.is_empty() && kinds.iter().all(|k| *k == "guarantee") {
            "guarantee".to_string()
        } else {
            kinds.iter().find(|k| **k != "guarantee").map(|k| k.to_string()).unwrap_or_default()
        };
        let mut dpsgd =
            MeanLbCheck { bound: lb, kind: kind.clone(), verdict: na("no bound"), t_below: false };
        if first.alpha > 0.0 {
            if let (Some(b), Some(s)) = (lb, &success) {
                dpsgd.verdict = if kind != "guarantee" {
                    na("prediction, not checked")
                } else if s.hi < b {
                    // A bound that claims to hold is violated even where it is also uninformative.
                    Verdict::Violated
                } else if b <= floor {
                    Verdict::Vacuous
                } else {
                    Verdict::Consistent
                };
                dpsgd.t_below = kind == "guarantee" && s.t_hi.is_some_and(|h| h < b);
            }
        } else {
            dpsgd.verdict = na("α = 0");
        }

        // --- dpsgd_lb_hp per run ---
        let pairs: Vec<(f64, f64)> = rs.iter().filter_map(|r| Some((r.success?, r.dpsgd_lb_hp?))).collect();
        let beta = max_f(|r| r.bound_beta);
        let hp_bound = crate::report::stats::mean(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        let below = pairs.iter().filter(|(s, b)| s < b).count();
        let mut hp = PerRunLbCheck {
            bound: hp_bound,
            beta,
            n: pairs.len(),
            below,
            p_value: None,
            verdict: na("no per-run bound"),
        };
        if first.alpha == 0.0 {
            hp.verdict = na("α = 0");
        } else if let (Some(b), false) = (hp_bound, pairs.is_empty()) {
            match beta {
                None => hp.verdict = na("bound_beta empty"),
                Some(bt) => {
                    let p = binomial_tail_ge(pairs.len() as u64, bt.clamp(0.0, 1.0), below as u64)
                        .map_err(|source| ConfigStatsError::Stats { config: label(key), source })?;
                    hp.p_value = Some(p);
                    hp.verdict = if p < HP_P_FAIL {
                        Verdict::Violated
                    } else if b <= floor {
                        Verdict::Vacuous
                    } else {
                        Verdict::Consistent
                    };
                }
            }
        }

        out.push(ConfigStats {
            key: key.clone(),
            dataset: first.dataset.clone(),
            model: first.model.clone(),
            collective: first.collective_name.clone(),
            alpha: first.alpha,
            privacy: first.privacy.clone(),
            clip: first.clip,
            seeds,
            success,
            baseline,
            k,
            n_train: max_u(|r| r.n_train),
            q,
            sigma,
            steps,
            clip_ref_success: crate::report::stats::mean(
                &rs.iter().filter_map(|r| r.clip_ref_success).collect::<Vec<_>>(),
            ),
            ceiling,
            dpsgd,
            dpsgd_hp: hp,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_rows(privacy: &str, s0: &[f64], s: &[f64]) -> Vec<ResultRow> {
        use crate::sweep::spec::SweepSpec;
        let text = format!(
            "name = \"t\"\n[grid]\ndataset = [\"d\"]\nmodel = [\"m\"]\ncollectives = [\"c\"]\nalpha = [0.0, 0.05]\nprivacy = [\"{privacy}\"]\nclip = [1.0]\nseed = [{}]\n[train]\nepochs = 1\nbatch_size = 8\nlr = 0.1\n",
            (0..s0.len().max(s.len())).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        );
        let cells = SweepSpec::from_toml_str(&text, std::path::Path::new("t.toml")).unwrap().cells();
        let mut out = Vec::new();
        for c in cells {
            let xs = if c.alpha == 0.0 { s0 } else { s };
            let Some(&v) = xs.get(c.seed as usize) else { continue };
            let mut r = ResultRow::from_cell(&c);
            r.success = Some(v);
            r.sigma = Some(if privacy == "sigma=0" { 0.0 } else { 1.0 });
            r.q = Some(0.01);
            r.steps = Some(100);
            r.eps_pld = Some(1.0);
            if c.alpha > 0.0 {
                r.members = Some(2);
            }
            out.push(r);
        }
        out
    }

    fn only_alpha(stats: &[ConfigStats], a: f64) -> &ConfigStats {
        stats.iter().find(|s| s.alpha == a).unwrap()
    }

    #[test]
    fn ceiling_is_monotone_in_s0() {
        let mut cache = HashMap::new();
        let mut last = 0.0;
        for s0 in [0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 0.9] {
            let (c, _) = ceiling_at(s0, 2, 0.01, 1.0, 100, None, &mut cache).unwrap();
            assert!(c >= last - 1e-15 && c >= s0, "ceiling {c} at s0 {s0} (previous {last})");
            last = c;
        }
        // Generic branch (k > 16) too.
        let mut last = 0.0;
        for s0 in [0.0, 0.02, 0.2, 0.5] {
            let (c, m) = ceiling_at(s0, 40, 0.01, 1.0, 100, Some((0.05, 1e-6)), &mut cache).unwrap();
            assert!(c >= last && m.starts_with("generic"), "{c} {m}");
            last = c;
        }
        assert!(ceiling_at(0.1, 40, 0.01, 1.0, 100, None, &mut cache).is_err());
    }

    #[test]
    fn ceiling_crossing_logic() {
        // Baseline near 0.02 over 10 seeds; success 1.0 over 10 seeds. k = 2, q = 0.01, σ = 1, T = 100.
        let s0 = [0.02; 10];
        let st = config_stats(&seed_rows("sigma=1", &s0, &[1.0; 10])).unwrap();
        let c = only_alpha(&st, 0.05);
        let b = c.baseline.unwrap();
        let mut cache = HashMap::new();
        let expect = ceiling_at(b.hi, 2, 0.01, 1.0, 100, None, &mut cache).unwrap().0;
        assert_eq!(c.ceiling.at_ucb, Some(expect));
        // The verdict follows LCB(E[S]) vs the ceiling at UCB(E[S₀]) exactly.
        let lcb = c.success.unwrap().lo;
        let want = if lcb > expect {
            Verdict::Violated
        } else if expect >= 1.0 {
            Verdict::Vacuous
        } else {
            Verdict::Consistent
        };
        assert_eq!(c.ceiling.verdict, want, "lcb {lcb}, ceiling {expect}");
        assert!(expect < 1.0, "the tight ceiling at k = 2 should be informative: {expect}");
        // All ten seeds at 1: the distribution-free LCB is the better of Anderson (1 − √(ln 80/20) ≈ 0.53)
        // and Chernoff–Hoeffding ((α/4)^(1/n) = 0.0125^(1/10) ≈ 0.645), each at α/4.
        assert!((lcb - 0.0125f64.powf(0.1)).abs() < 1e-9, "{lcb}");
        // Success at the baseline: never a crossing.
        let st = config_stats(&seed_rows("sigma=1", &s0, &[0.02; 10])).unwrap();
        assert_eq!(only_alpha(&st, 0.05).ceiling.verdict, Verdict::Consistent);
        // Fewer than 10 baseline seeds: insufficient, not counted.
        let st = config_stats(&seed_rows("sigma=1", &[0.02; 9], &[1.0; 9])).unwrap();
        assert_eq!(only_alpha(&st, 0.05).ceiling.verdict, Verdict::InsufficientSeeds(9));
        // σ = 0: out of scope, counted apart.
        let st = config_stats(&seed_rows("sigma=0", &s0, &[1.0; 10])).unwrap();
        assert!(matches!(only_alpha(&st, 0.05).ceiling.verdict, Verdict::NotApplicable(_)));
        assert_eq!(count_verdicts(&st).clip_only, 1);
    }

    #[test]
    fn ceiling_crossing_is_flagged_when_lcb_exceeds_it() {
        // A huge noise multiplier makes the ceiling ≈ UCB(E[S₀]) ≈ 0.36; ten seeds at 1 have
        // LCB ≈ 0.645 > 0.36: a crossing (which would mean a bug), flagged as Violated.
        let mut rows = seed_rows("sigma=1", &[0.0; 10], &[1.0; 10]);
        for r in &mut rows {
            r.sigma = Some(50.0);
        }
        let st = config_stats(&rows).unwrap();
        let c = only_alpha(&st, 0.05);
        assert!(c.ceiling.at_ucb.unwrap() < c.success.unwrap().lo, "{:?}", c.ceiling);
        assert_eq!(c.ceiling.verdict, Verdict::Violated);
        assert_eq!(count_verdicts(&st).ceiling.violated, 1);
    }

    #[test]
    fn dpsgd_checks() {
        let s = [0.6, 0.62, 0.58, 0.61, 0.6, 0.59, 0.63, 0.6, 0.57, 0.6];
        let mk = |lb: f64, hp: f64, kind: &str| {
            let mut rows = seed_rows("sigma=1", &[0.02; 10], &s);
            for r in rows.iter_mut().filter(|r| r.alpha > 0.0) {
                r.dpsgd_lb = Some(lb);
                r.dpsgd_lb_kind = kind.into();
                r.dpsgd_lb_hp = Some(hp);
                r.bound_beta = Some(0.05);
            }
            config_stats(&rows).unwrap().into_iter().find(|c| c.alpha > 0.0).unwrap()
        };
        // Informative and below every seed: consistent; no seed below the per-run bound, p = 1.
        let c = mk(0.3, 0.3, "guarantee");
        assert_eq!(
            (c.dpsgd.verdict.clone(), c.dpsgd_hp.verdict.clone()),
            (Verdict::Consistent, Verdict::Consistent)
        );
        assert_eq!((c.dpsgd_hp.below, c.dpsgd_hp.p_value), (0, Some(1.0)));
        // Below the baseline mean (0.02): vacuous.
        let c = mk(0.01, 0.0, "guarantee");
        assert_eq!(
            (c.dpsgd.verdict.clone(), c.dpsgd_hp.verdict.clone()),
            (Verdict::Vacuous, Verdict::Vacuous)
        );
        // Above the distribution-free UCB of E[S]: violated; all ten seeds below the per-run bound:
        // p = 0.05^10 < 0.01: violated.
        let c = mk(0.999, 0.999, "guarantee");
        assert!(c.success.unwrap().hi < 0.999);
        assert_eq!(
            (c.dpsgd.verdict.clone(), c.dpsgd_hp.verdict.clone()),
            (Verdict::Violated, Verdict::Violated)
        );
        assert!((c.dpsgd_hp.p_value.unwrap() - 0.05f64.powi(10)).abs() < 1e-20);
        // Above the mean but inside the distribution-free interval: only t-tension.
        let c = mk(0.65, 0.3, "guarantee");
        assert_eq!(c.dpsgd.verdict, Verdict::Consistent);
        assert!(c.dpsgd.t_below);
        // Three seeds of ten below a per-run bound at β = 0.05: p = P(Bin(10, .05) ≥ 3) ≈ 0.0115 ≥ 0.01.
        let c = mk(0.3, 0.595, "guarantee");
        assert_eq!(c.dpsgd_hp.below, 3);
        assert!(c.dpsgd_hp.p_value.unwrap() > 0.01 && c.dpsgd_hp.verdict == Verdict::Consistent);
        // Predictions are never checked.
        let c = mk(0.999, 0.3, "prediction");
        assert!(matches!(c.dpsgd.verdict, Verdict::NotApplicable(_)));
    }
}

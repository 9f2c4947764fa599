//! The markdown summary (`summary.md`).

use std::fmt::Write;

use super::analysis::{
    bound_checks, config_label, count_verdicts, fmt_num, ConfigStats, Panel, CI_ALPHA, HP_P_FAIL,
    MIN_BASELINE_SEEDS,
};
use crate::sweep::store::ResultRow;

fn opt(x: Option<f64>) -> String {
    x.map(fmt_num).unwrap_or_else(|| "–".into())
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}", 100.0 * v)).unwrap_or_else(|| "–".into())
}

/// Writes the summary of `rows` (already deduplicated) grouped into `panels`.
/// `plots` maps a panel slug to the plot file stems written for it.
pub fn markdown(
    inputs: &[String],
    rows: &[ResultRow],
    panels: &[Panel],
    stats: &[ConfigStats],
    s_star: f64,
    plots: &dyn Fn(&Panel) -> Vec<(String, String)>,
) -> String {
    let mut md = String::new();
    let failed: Vec<&ResultRow> = rows.iter().filter(|r| !r.is_ok()).collect();
    let ok: Vec<&ResultRow> = rows.iter().filter(|r| r.is_ok()).collect();
    let _ = writeln!(md, "# crowdout sweep report\n");
    let _ = writeln!(md, "Inputs: {}  ", inputs.join(", "));
    let _ = writeln!(
        md,
        "{} cells: {} finished, {} failed. Target success S* = {}.\n",
        rows.len(),
        ok.len(),
        failed.len(),
        fmt_num(s_star)
    );
    if ok.iter().any(|r| r.flag.split(';').any(|f| f.trim() == "FAKE")) {
        let _ = writeln!(
            md,
            "> **FAKE DATA**: rows flagged `FAKE` come from the test runner (`CROWDOUT_FAKE_RUNNER`), \
             not from training. Their numbers mean nothing.\n"
        );
    }
    let _ = writeln!(
        md,
        "How to read: success is in percent, the mean over seeds, with `[lo, hi]` = the lowest \
         Clopper–Pearson 95% lower end and the highest upper end over the seeds (n = seeds). \
         α = 0 is the no-collective baseline. Critical mass α* = the smallest grid α whose mean \
         success ≥ S* (*grid*), and a log-linear interpolation in α between it and the grid α \
         before it (*interp.*); `≤` when the smallest α > 0 already reaches S*, `> max α` when \
         none does.\n"
    );

    let checks = bound_checks(&ok);
    let _ = writeln!(md, "## Per-row bound checks (one run each)\n");
    let _ = writeln!(
        md,
        "Each row against its own bounds, counting only rows where the bound says something (a lower bound above \
         max(0, the row's S₀), a ceiling below 1); vacuous ones are counted apart. The DP-SGD guarantee and the \
         ceiling bound the *expected* success, so one run may fall on the wrong side of them: the per-configuration \
         verdicts over seeds in the next section are the ones that decide.\n"
    );
    let _ = writeln!(md, "| check | rows satisfying it |");
    let _ = writeln!(md, "|---|---|");
    let _ = writeln!(md, "| success ≥ Hardt bound (holds for a Bayes-optimal learner only: a prediction for trained networks) | {} |", checks.above_hardt.fmt());
    let _ = writeln!(
        md,
        "| success ≥ DP-SGD lower bound on E[S] (guarantee; one run) | {} |",
        checks.above_dpsgd_guarantee.fmt()
    );
    let _ = writeln!(
        md,
        "| success ≥ DP-SGD lower bound (prediction) | {} |",
        checks.above_dpsgd_prediction.fmt()
    );
    let _ = writeln!(
        md,
        "| success ≤ group-privacy ceiling on E[S] at this row's single-run S₀ (one run) | {} |\n",
        checks.below_ceiling.fmt()
    );
    seed_statistics(&mut md, stats);
    let loud: Vec<&&ResultRow> =
        ok.iter().filter(|r| r.flag.split(';').any(|f| !f.trim().is_empty() && f.trim() != "FAKE")).collect();
    if !loud.is_empty() {
        let _ = writeln!(md, "### ⚠ Flagged cells ({})\n", loud.len());
        let _ = writeln!(md, "| flag | dataset | model | collective | α | privacy | clip | seed | success | hardt_lb | dpsgd_lb | ceiling_ub | config_hash |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &loud {
            let _ = writeln!(
                md,
                "| **{}** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | `{}` |",
                r.flag,
                r.dataset,
                r.model,
                r.collective_name,
                fmt_num(r.alpha),
                r.privacy,
                opt(r.clip),
                r.seed,
                opt(r.success),
                opt(r.hardt_lb),
                opt(r.dpsgd_lb),
                opt(r.ceiling_ub),
                r.config_hash
            );
        }
        md.push('\n');
    }

    for p in panels {
        let _ = writeln!(md, "## {}\n", p.key.title());
        if !p.key.sweep.is_empty() {
            let _ = writeln!(md, "Sweep `{}`.\n", p.key.sweep);
        }
        let plots = plots(p);
        if !plots.is_empty() {
            for (title, file) in &plots {
                let _ = writeln!(md, "![{title}]({file})");
            }
            md.push('\n');
        }
        // success table: α rows × arm columns
        let mut alphas: Vec<f64> = p.arms.iter().flat_map(|a| a.points.iter().map(|pt| pt.alpha)).collect();
        alphas.sort_by(|a, b| a.total_cmp(b));
        alphas.dedup();
        let _ = writeln!(md, "### Success (%) by α × privacy\n");
        let _ = write!(md, "| α |");
        for a in &p.arms {
            let _ = write!(md, " {} |", a.label());
        }
        let _ = write!(md, "\n|---|");
        for _ in &p.arms {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        for &alpha in &alphas {
            let lab = if alpha == 0.0 { "0 (baseline)".to_string() } else { fmt_num(alpha) };
            let _ = write!(md, "| {lab} |");
            for a in &p.arms {
                match a.points.iter().find(|pt| pt.alpha == alpha) {
                    Some(pt) => {
                        let flag = if pt.flags.iter().any(|f| f != "FAKE") { " ⚠" } else { "" };
                        let _ = write!(
                            md,
                            " {} [{}, {}] n={}{flag} |",
                            pct(pt.success),
                            pct(pt.lo),
                            pct(pt.hi),
                            pt.n
                        );
                    }
                    None => md.push_str(" |"),
                }
            }
            md.push('\n');
        }
        md.push('\n');

        let _ = writeln!(md, "### Per privacy arm\n");
        let _ = writeln!(
            md,
            "| privacy | ε | clean acc. (%) mean [min, max over α] | baseline success (%) | α* grid | α* interp. |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        let max_alpha = alphas.iter().cloned().fold(0.0, f64::max);
        for a in &p.arms {
            let acc = a
                .clean_acc()
                .map(|(m, lo, hi)| format!("{:.1} [{:.1}, {:.1}]", 100.0 * m, 100.0 * lo, 100.0 * hi))
                .unwrap_or_else(|| "–".into());
            let (g, i) = match a.critical_mass(s_star) {
                Some(cm) if cm.upper_bound_only => {
                    (format!("≤ {}", fmt_num(cm.grid)), format!("≤ {}", fmt_num(cm.interp)))
                }
                Some(cm) => (fmt_num(cm.grid), fmt_num(cm.interp)),
                None => {
                    let s = format!("> {}", fmt_num(max_alpha));
                    (s.clone(), s)
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                a.privacy,
                if a.eps.is_nan() { "?".into() } else { fmt_num(a.eps) },
                acc,
                pct(a.baseline()),
                g,
                i
            );
        }
        md.push('\n');

        let has_bounds = p.arms.iter().any(|a| {
            a.points
                .iter()
                .any(|pt| pt.hardt_lb.is_some() || pt.dpsgd_lb.is_some() || pt.ceiling_ub.is_some())
        });
        if has_bounds {
            let _ = writeln!(md, "### Bounds (mean over seeds) beside the measured success\n");
            let _ =
                writeln!(md, "| privacy | α | success | Hardt LB | DP-SGD LB | kind | ceiling UB | flags |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
            for a in &p.arms {
                for pt in a.points.iter().filter(|pt| pt.alpha > 0.0) {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        a.privacy,
                        fmt_num(pt.alpha),
                        opt(pt.success),
                        opt(pt.hardt_lb),
                        opt(pt.dpsgd_lb),
                        pt.dpsgd_lb_kind,
                        opt(pt.ceiling_ub),
                        pt.flags.join("; ")
                    );
                }
            }
            md.push('\n');
        }
    }

    if !failed.is_empty() {
        let _ = writeln!(md, "## Failed cells ({})\n", failed.len());
        let _ = writeln!(md, "Rerun the sweep to retry them.\n");
        let _ = writeln!(md, "| dataset | model | collective | α | privacy | clip | seed | error |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for r in failed {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.dataset,
                r.model,
                r.collective_name,
                fmt_num(r.alpha),
                r.privacy,
                opt(r.clip),
                r.seed,
                r.error.replace('|', "\\|")
            );
        }
    }
    md
}

/// `x` as a 3-decimal number, `n/a` when absent.
fn f3(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into())
}

/// The per-configuration section: method, one count line per bound, violations first, then
/// one table row per configuration with α > 0.
fn seed_statistics(md: &mut String, stats: &[ConfigStats]) {
    let level = 100.0 * (1.0 - CI_ALPHA);
    let _ = writeln!(md, "## Per-configuration statistics over seeds\n");
    let _ = writeln!(
        md,
        "A configuration is a row's config columns without the seed. Per configuration: n seeds, the mean \
         success, and a {level:.0}% confidence interval of E[S] (expectation over the training randomness). \
         **Method:** the interval that decides verdicts is **distribution-free**, each end one-sided at {:.1}%: \
         the better of Anderson's bound with the one-sided DKW–Massart band (for i.i.d. values in [0, 1], \
         E[X] ≤ 1 − Σᵢ max(0, i/n − ε)(x₍ᵢ₊₁₎ − x₍ᵢ₎), ε = √(ln(1/a)/(2n)), x₍ₙ₊₁₎ = 1) and the Chernoff–Hoeffding \
         bound E[X] ≤ max{{μ : n·kl(x̄‖μ) ≤ ln(1/a)}} (Hoeffding 1963), each at half that level (Bonferroni); the \
         lower end by symmetry. It is valid for every law on [0, 1] and every n, including success that is bimodal over seeds; no valid \
         bound can be much tighter with ~10 seeds (all-zero data admit a mean of 1 − a^(1/n)). The Student-t \
         interval is shown beside it (`t:`), and a crossing that only the t interval shows is reported as \
         *tension*, never as a violation.\n",
        100.0 * CI_ALPHA / 2.0
    );
    let _ = writeln!(
        md,
        "Baseline E[S₀]: the α = 0 configuration with otherwise equal columns (≥ {MIN_BASELINE_SEEDS} seeds, else \
         *insufficient seeds*, not counted). **Ceiling** (σ > 0): the group-privacy ceiling (docs/bounds.md §3; \
         tight PLD profile for k ≤ 16, generic conversion above) evaluated at the UPPER bound of E[S₀] (it is \
         monotone in S₀), compared with the LOWER bound of E[S]; with both ends at {:.1}% the comparison has level \
         {:.0}% (Bonferroni). A ceiling of 1 is *vacuous*. σ = 0 (clip-only) and non-private cells are out of \
         scope (ceiling 1). **DP-SGD guarantee** `dpsgd_lb` (on E[S]): violated when the UPPER bound of E[S] is \
         below the mean bound over seeds. **Per-run guarantee** `dpsgd_lb_hp` (probability ≥ 1 − β per run): the \
         number of seeds below it is at most Binomial(n, β); violated when P(Bin(n, β) ≥ count) < {HP_P_FAIL}. \
         A lower bound ≤ max(0, mean S₀) is *vacuous*. Predictions are shown, not checked.\n",
        100.0 * CI_ALPHA / 2.0,
        100.0 * CI_ALPHA
    );
    let c = count_verdicts(stats);
    let _ = writeln!(md, "| bound | verdicts over configurations with α > 0 |");
    let _ = writeln!(md, "|---|---|");
    let _ = writeln!(md, "| group-privacy ceiling at UCB(E[S₀]) | {} |", c.ceiling.line());
    let _ = writeln!(md, "| DP-SGD guarantee on E[S] (`dpsgd_lb`) | {} |", c.dpsgd.line());
    let _ = writeln!(md, "| DP-SGD per-run guarantee (`dpsgd_lb_hp`) | {} |", c.dpsgd_hp.line());
    let _ = writeln!(
        md,
        "\nClip-only (σ = 0) configurations with α > 0, out of the ceiling's scope: {}.\n",
        c.clip_only
    );
    let bad: Vec<&ConfigStats> = stats
        .iter()
        .filter(|s| {
            use super::analysis::Verdict::Violated;
            s.ceiling.verdict == Violated || s.dpsgd.verdict == Violated || s.dpsgd_hp.verdict == Violated
        })
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(md, "### ⚠ BOUND VIOLATIONS over seeds ({} configurations)\n", bad.len());
        let _ = writeln!(md, "Each means a bug in the bound, the trainer or the measurement.\n");
        for s in &bad {
            let _ = writeln!(
                md,
                "* **{}**: ceiling {}; dpsgd_lb {}; dpsgd_lb_hp {}",
                config_label(s),
                s.ceiling.verdict.label(),
                s.dpsgd.verdict.label(),
                s.dpsgd_hp.verdict.label()
            );
        }
        md.push('\n');
    }
    let rows: Vec<&ConfigStats> = stats.iter().filter(|s| s.alpha > 0.0).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "| configuration | n | mean | {level:.0}% CI (distribution-free) | t: CI | n₀ | E[S₀] mean | UCB(E[S₀]) | ceiling at UCB(S₀) | ceiling verdict | dpsgd_lb (kind) | verdict | dpsgd_lb_hp (β): below/n, p | verdict | clip ref. |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in rows {
        let (mean, ci, tci) = match &s.success {
            Some(x) => (
                format!("{:.3}", x.mean),
                format!("[{:.3}, {:.3}]", x.lo, x.hi),
                match (x.t_lo, x.t_hi) {
                    (Some(a), Some(b)) => format!("[{a:.3}, {b:.3}]"),
                    _ => "n/a".into(),
                },
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        let (n0, s0m, s0u) = match &s.baseline {
            Some(b) => (b.n.to_string(), format!("{:.3}", b.mean), format!("{:.3}", b.hi)),
            None => ("0".into(), "n/a".into(), "n/a".into()),
        };
        let ceil = match (s.ceiling.at_ucb, s.ceiling.at_t_ucb) {
            (Some(c), Some(t)) => format!("{c:.3} (t: {t:.3}; {})", s.ceiling.method),
            (Some(c), None) => format!("{c:.3} ({})", s.ceiling.method),
            _ => "n/a".into(),
        };
        let tension = |t: bool| if t { " · t-tension" } else { "" };
        let hp = match (s.dpsgd_hp.bound, s.dpsgd_hp.beta) {
            (Some(b), beta) => format!(
                "{b:.3} ({}): {}/{}, p={}",
                beta.map(fmt_num).unwrap_or_else(|| "β n/a".into()),
                s.dpsgd_hp.below,
                s.dpsgd_hp.n,
                s.dpsgd_hp.p_value.map(|p| format!("{p:.3}")).unwrap_or_else(|| "n/a".into())
            ),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {}{} | {} | {} | {} |",
            config_label(s),
            s.seeds.len(),
            mean,
            ci,
            tci,
            n0,
            s0m,
            s0u,
            ceil,
            s.ceiling.verdict.label(),
            tension(s.ceiling.t_crossing),
            match &s.dpsgd.bound {
                Some(b) => format!("{b:.3} ({})", if s.dpsgd.kind.is_empty() { "?" } else { &s.dpsgd.kind }),
                None => "n/a".into(),
            },
            s.dpsgd.verdict.label(),
            tension(s.dpsgd.t_below),
            hp,
            s.dpsgd_hp.verdict.label(),
            f3(s.clip_ref_success)
        );
    }
    md.push('\n');
}

/// `config_stats.csv`: one line per configuration (α = 0 included), the config columns first.
pub fn config_stats_csv(stats: &[ConfigStats]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let Some(first) = stats.first() else {
        w.write_record(["n_seeds"])?;
        return w.into_inner().map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())));
    };
    let mut head: Vec<String> = first.key.iter().map(|(n, _)| n.to_string()).collect();
    for h in [
        "n_seeds",
        "mean",
        "sd",
        "ci_lo",
        "ci_hi",
        "t_ci_lo",
        "t_ci_hi",
        "baseline_n",
        "baseline_mean",
        "baseline_ucb",
        "baseline_t_ucb",
        "members",
        "n_train",
        "q",
        "sigma",
        "steps",
        "ceiling_at_ucb",
        "ceiling_at_t_ucb",
        "ceiling_method",
        "ceiling_verdict",
        "ceiling_t_tension",
        "dpsgd_lb_mean",
        "dpsgd_lb_kind",
        "dpsgd_verdict",
        "dpsgd_t_tension",
        "dpsgd_lb_hp_mean",
        "bound_beta",
        "hp_below",
        "hp_n",
        "hp_p_value",
        "hp_verdict",
        "clip_ref_success",
    ] {
        head.push(h.into());
    }
    w.write_record(&head)?;
    let o = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let ou = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_default();
    for s in stats {
        let mut rec: Vec<String> = s.key.iter().map(|(_, v)| v.clone()).collect();
        let su = s.success.as_ref();
        let b = s.baseline.as_ref();
        rec.extend([
            s.seeds.len().to_string(),
            o(su.map(|x| x.mean)),
            o(su.and_then(|x| x.sd)),
            o(su.map(|x| x.lo)),
            o(su.map(|x| x.hi)),
            o(su.and_then(|x| x.t_lo)),
            o(su.and_then(|x| x.t_hi)),
            b.map(|x| x.n.to_string()).unwrap_or_else(|| "0".into()),
            o(b.map(|x| x.mean)),
            o(b.map(|x| x.hi)),
            o(b.and_then(|x| x.t_hi)),
            ou(s.k),
            ou(s.n_train),
            o(s.q),
            o(s.sigma),
            ou(s.steps),
            o(s.ceiling.at_ucb),
            o(s.ceiling.at_t_ucb),
            s.ceiling.method.clone(),
            s.ceiling.verdict.plain(),
            s.ceiling.t_crossing.to_string(),
            o(s.dpsgd.bound),
            s.dpsgd.kind.clone(),
            s.dpsgd.verdict.plain(),
            s.dpsgd.t_below.to_string(),
            o(s.dpsgd_hp.bound),
            o(s.dpsgd_hp.beta),
            s.dpsgd_hp.below.to_string(),
            s.dpsgd_hp.n.to_string(),
            o(s.dpsgd_hp.p_value),
            s.dpsgd_hp.verdict.plain(),
            o(s.clip_ref_success),
        ]);
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
}

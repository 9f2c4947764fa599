//! The markdown summary (`summary.md`).

use std::fmt::Write;

use super::analysis::{bound_checks, fmt_num, Panel};
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
    let _ = writeln!(md, "## Bound checks (all finished cells)\n");
    let _ = writeln!(md, "| check | cells satisfying it |");
    let _ = writeln!(md, "|---|---|");
    let _ = writeln!(md, "| success ≥ Hardt bound (holds for a Bayes-optimal learner only: a prediction for trained networks) | {} |", checks.above_hardt.fmt());
    let _ = writeln!(
        md,
        "| success ≥ DP-SGD lower bound (guarantee) | {} |",
        checks.above_dpsgd_guarantee.fmt()
    );
    let _ = writeln!(
        md,
        "| success ≥ DP-SGD lower bound (prediction) | {} |",
        checks.above_dpsgd_prediction.fmt()
    );
    let _ = writeln!(md, "| success ≤ group-privacy ceiling | {} |\n", checks.below_ceiling.fmt());
    let loud: Vec<&&ResultRow> = ok
        .iter()
        .filter(|r| {
            r.flag
                .split(';')
                .any(|f| !f.trim().is_empty() && f.trim() != "FAKE")
        })
        .collect();
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
        let mut alphas: Vec<f64> = p
            .arms
            .iter()
            .flat_map(|a| a.points.iter().map(|pt| pt.alpha))
            .collect();
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
            let lab = if alpha == 0.0 {
                "0 (baseline)".to_string()
            } else {
                fmt_num(alpha)
            };
            let _ = write!(md, "| {lab} |");
            for a in &p.arms {
                match a.points.iter().find(|pt| pt.alpha == alpha) {
                    Some(pt) => {
                        let flag = if pt.flags.iter().any(|f| f != "FAKE") {
                            " ⚠"
                        } else {
                            ""
                        };
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
            let _ = writeln!(md, "| privacy | α | success | Hardt LB | DP-SGD LB | kind | ceiling UB | flags |");
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

//! The steerability audit's report: `critical_mass.csv` (see
//! [`crate::audit::steer::analysis::critical_mass_csv`]) and `critical_mass_intervals.{png,svg}`,
//! the critical mass per privacy arm with its 95 % profile-likelihood intervals.
//!
//! Written by `crowdout audit steerability`, and by `crowdout report` when a `steer.json` (the
//! audit's settings, written by the audit) sits beside an input, or with `--critical-mass` (for a
//! grid sweep, with the default targets and threshold).
//!
//! The plot: one column per arm, ordered by ε (∞ first: non-private, then clip-only), log α
//! vertically; black = α₅₀ (half the trainings steered), colours = α*(S*) per target (mean
//! success reaches S*); bars = 95 % intervals, drawn to the plot's edge where open.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::ensure_font;
use super::ReportError;
use crate::audit::steer::analysis::{critical_mass_csv, estimate_all, ArmEstimate, Threshold};
use crate::audit::steer::fit::Crossing;
use crate::audit::steer::spec::SteerSettings;
use crate::sweep::store::ResultRow;

/// The settings file the audit writes beside its results.
pub const STEER_SETTINGS_FILE: &str = "steer.json";

/// The `[steer]` settings found beside any of `inputs`, if any.
pub fn settings_beside(inputs: &[PathBuf]) -> Option<SteerSettings> {
    inputs.iter().find_map(|p| {
        let f = p.parent().unwrap_or(Path::new(".")).join(STEER_SETTINGS_FILE);
        std::fs::read(&f).ok().and_then(|b| serde_json::from_slice(&b).ok())
    })
}

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct CriticalFiles {
    pub csv: PathBuf,
    /// The PNG (with an SVG twin), unless no arm had a fit or plots were off.
    pub plot: Option<PathBuf>,
    pub arms: Vec<ArmEstimate>,
}

/// Estimates every arm of `rows` and writes `critical_mass.csv` (and the plot) into `out`.
pub fn write(
    out: &Path,
    rows: &[ResultRow],
    targets: &[f64],
    threshold: Threshold,
    with_plot: bool,
) -> Result<CriticalFiles, ReportError> {
    let ok: Vec<ResultRow> = rows.iter().filter(|r| r.is_ok()).cloned().collect();
    let mut arms = estimate_all(&ok, targets, threshold);
    arms.sort_by(|a, b| b.epsilon.total_cmp(&a.epsilon).then_with(|| a.key.cmp(&b.key)));
    let csv = out.join("critical_mass.csv");
    let bytes = critical_mass_csv(&arms)
        .map_err(|e| ReportError::Csv { path: csv.clone(), message: e.to_string() })?;
    std::fs::write(&csv, bytes).map_err(|source| ReportError::Io { path: csv.clone(), source })?;
    let has_fit = arms.iter().any(|a| a.alpha50.is_ok() || a.alpha_star.iter().any(|(_, c)| c.is_ok()));
    let plot = if with_plot && has_fit {
        ensure_font().map_err(ReportError::Plot)?;
        let stem = out.join("critical_mass_intervals");
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        {
            let root = BitMapBackend::new(&png, (1100, 700)).into_drawing_area();
            draw(&root, &arms).map_err(ReportError::Plot)?;
            root.present().map_err(|e| ReportError::Plot(format!("{}: {e}", png.display())))?;
        }
        {
            let root = SVGBackend::new(&svg, (1100, 700)).into_drawing_area();
            draw(&root, &arms).map_err(ReportError::Plot)?;
            root.present().map_err(|e| ReportError::Plot(format!("{}: {e}", svg.display())))?;
        }
        Some(png)
    } else {
        None
    };
    Ok(CriticalFiles { csv, plot, arms })
}

fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 5] =
        [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// `none`, `σ=0, C=1`, `ε=7.99, C=1`.
fn arm_label(a: &ArmEstimate) -> String {
    let clip = if a.key.clip.is_empty() { String::new() } else { format!(", C={}", a.key.clip) };
    match a.key.privacy.as_str() {
        "none" => "non-private".into(),
        p if a.epsilon.is_finite() => format!("ε={:.2}{clip} ({p})", a.epsilon),
        p => format!("{p}{clip}"),
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, arms: &[ArmEstimate]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all: Vec<&Crossing> = arms
        .iter()
        .flat_map(|a| a.alpha50.iter().chain(a.alpha_star.iter().filter_map(|(_, c)| c.as_ref().ok())))
        .collect();
    let vals = all.iter().flat_map(|c| [c.alpha, c.lo, c.hi]).filter(|x| x.is_finite() && *x > 0.0);
    let (mut y0, mut y1) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !y0.is_finite() {
        return Err("no finite estimate to plot".into());
    }
    (y0, y1) = (y0 / 1.5, (y1 * 1.5).min(1.0));
    let n = arms.len();
    let labels: Vec<String> = arms.iter().map(arm_label).collect();
    let title = arms.first().map(|a| format!("{}/{}/{}", a.key.dataset, a.key.model, a.key.collective));
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Critical mass per privacy arm, 95% profile-likelihood intervals — {}",
                title.unwrap_or_default()
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), (y0..y1).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y: &f64| format!("{}", crate::audit::steer::design::round_alpha(*y)))
        .light_line_style(WHITE.mix(0.0))
        .y_desc("collective fraction α (log)")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(e)?;
    let targets: Vec<f64> =
        arms.first().map(|a| a.alpha_star.iter().map(|(t, _)| *t).collect()).unwrap_or_default();
    let series: Vec<(String, RGBColor)> =
        std::iter::once(("α₅₀ (half the trainings steered)".to_string(), BLACK))
            .chain(targets.iter().enumerate().map(|(i, t)| (format!("α*: E[S] ≥ {t}"), colour(i))))
            .collect();
    let k = series.len() as f64;
    for (si, (name, col)) in series.iter().enumerate() {
        let off = (si as f64 - (k - 1.0) / 2.0) * 0.12;
        let pts: Vec<(f64, Crossing)> = arms
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let c = if si == 0 {
                    a.alpha50.as_ref().ok()
                } else {
                    a.alpha_star.get(si - 1).and_then(|(_, c)| c.as_ref().ok())
                };
                c.map(|c| (i as f64 + off, *c))
            })
            .collect();
        let col = *col;
        chart
            .draw_series(pts.iter().map(|(x, c)| {
                let (lo, hi) = (c.lo.max(y0), c.hi.min(y1));
                PathElement::new(vec![(*x, lo), (*x, hi)], col.stroke_width(2))
            }))
            .map_err(e)?;
        chart
            .draw_series(pts.iter().map(|(x, c)| Circle::new((*x, c.alpha.clamp(y0, y1)), 5, col.filled())))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, col.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    Ok(())
}

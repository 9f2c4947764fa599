//! Plots (PNG and SVG) with plotters, text in the embedded DejaVu Sans (no system fonts needed).
//!
//! - success vs α (log α): one colour per privacy arm; solid = mean success over seeds, shaded
//!   band = envelope of the per-seed Clopper–Pearson 95% intervals, dashed = DP-SGD lower bound,
//!   dotted = group-privacy ceiling, black dashed = Hardt lower bound, grey = the no-collective
//!   baseline (success at α = 0, mean over arms), light line = the target S*.
//! - critical mass α*(S*) vs ε (log–log), interpolated value (see `analysis`); non-private and
//!   clip-only as horizontal lines.
//! - clean accuracy vs ε: mean over α and seeds, bar = min..max over α.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::analysis::{self, fmt_num, ConfigStats, Panel};
use super::{stats, Prediction};
use crate::sweep::store::ResultRow;

/// Tick positions of an ε axis: exactly the swept ε values (a log axis would otherwise label only
/// powers of ten, leaving e.g. ε = 2 and 8 unlabelled).
fn eps_ticks(eps: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = eps.filter(|e| e.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// DejaVu Sans (Bitstream Vera licence, see `fonts/LICENSE-DejaVu.txt`), from Debian's
/// fonts-dejavu-core 2.37.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (1100, 700);

/// Registers the embedded font with plotters (once per process).
pub fn ensure_font() -> Result<(), String> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font(FAMILY, FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded font could not be loaded".into())
    }
}

/// Tableau-10 colours.
fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

type R = Result<(), String>;

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `<stem>.png` and `<stem>.svg` with `draw`; returns the PNG path.
macro_rules! both {
    ($stem:expr, $draw:ident ( $($arg:expr),* )) => {{
        let stem: &Path = $stem;
        let with_ext = |e: &str| {
            let mut s = stem.as_os_str().to_owned();
            s.push(e);
            PathBuf::from(s)
        };
        let png = with_ext(".png");
        let svg = with_ext(".svg");
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            $draw(&root, $($arg),*)?;
            root.present().map_err(|e| format!("{}: {e}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            $draw(&root, $($arg),*)?;
            root.present().map_err(|e| format!("{}: {e}", svg.display()))?;
        }
        Ok::<PathBuf, String>(png)
    }};
}

fn log_range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let v: Vec<f64> = vals.filter(|x| x.is_finite() && *x > 0.0).collect();
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return None;
    }
    if hi / lo < 1.5 {
        return Some((lo / 2.0, hi * 2.0));
    }
    Some((lo / 1.4, hi * 1.4))
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
}

fn draw_success<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel, s_star: f64) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e2s)?;
    let (x0, x1) =
        log_range(p.arms.iter().flat_map(|a| a.points.iter().map(|pt| pt.alpha))).ok_or("no α > 0")?;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Collective success vs α — {}", p.key.title()), (FAMILY, 24))
        .margin(16)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..1.02f64)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("α (fraction of training data in the collective, log scale)")
        .y_desc("success rate on triggered test points")
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| format!("{:.1}", y))
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .light_line_style(WHITE)
        .draw()
        .map_err(e2s)?;
    // target and baseline
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, s_star), (x1, s_star)],
            2,
            6,
            RGBColor(200, 200, 200).stroke_width(1),
        ))
        .map_err(e2s)?
        .label(format!("target S* = {}", fmt_num(s_star)))
        .legend(legend_line(RGBColor(200, 200, 200)));
    let baselines: Vec<f64> = p.arms.iter().filter_map(|a| a.baseline()).collect();
    if !baselines.is_empty() {
        let b = baselines.iter().sum::<f64>() / baselines.len() as f64;
        chart
            .draw_series(LineSeries::new(vec![(x0, b), (x1, b)], grey.stroke_width(2)))
            .map_err(e2s)?
            .label("no-collective baseline (α = 0)")
            .legend(legend_line(grey));
    }
    for (i, a) in p.arms.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<_> = a.points.iter().filter(|pt| pt.alpha > 0.0).collect();
        let band: Vec<(f64, f64)> = pts
            .iter()
            .filter_map(|pt| pt.hi.map(|h| (pt.alpha, h)))
            .chain(pts.iter().rev().filter_map(|pt| pt.lo.map(|l| (pt.alpha, l))))
            .collect();
        if band.len() >= 3 {
            chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.13).filled()))).map_err(e2s)?;
        }
        let line: Vec<(f64, f64)> = pts.iter().filter_map(|pt| pt.success.map(|s| (pt.alpha, s))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(3)))
            .map_err(e2s)?
            .label(a.label())
            .legend(legend_line(c));
        chart.draw_series(line.iter().map(|&xy| Circle::new(xy, 4, c.filled()))).map_err(e2s)?;
        let dp: Vec<(f64, f64)> = pts.iter().filter_map(|pt| pt.dpsgd_lb.map(|v| (pt.alpha, v))).collect();
        if dp.len() >= 2 {
            chart.draw_series(DashedLineSeries::new(dp, 10, 6, c.stroke_width(2))).map_err(e2s)?;
        }
        let ceil: Vec<(f64, f64)> =
            pts.iter().filter_map(|pt| pt.ceiling_ub.map(|v| (pt.alpha, v.min(1.02)))).collect();
        if ceil.len() >= 2 {
            chart.draw_series(DashedLineSeries::new(ceil, 2, 5, c.stroke_width(2))).map_err(e2s)?;
        }
    }
    // Hardt bound: from the first arm that has it (it does not depend on privacy).
    if let Some(a) = p.arms.iter().find(|a| a.points.iter().filter(|pt| pt.hardt_lb.is_some()).count() >= 2) {
        let h: Vec<(f64, f64)> = a
            .points
            .iter()
            .filter(|pt| pt.alpha > 0.0)
            .filter_map(|pt| pt.hardt_lb.map(|v| (pt.alpha, v)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(h, 10, 6, BLACK.stroke_width(2)))
            .map_err(e2s)?
            .label("Hardt et al. bound, Bayes-optimal learner (black dashed)")
            .legend(legend_line(BLACK));
    }
    let has = |f: fn(&super::analysis::Point) -> bool| p.arms.iter().any(|a| a.points.iter().any(f));
    if has(|pt| pt.dpsgd_lb.is_some()) {
        chart
            .draw_series(LineSeries::new(Vec::<(f64, f64)>::new(), WHITE))
            .map_err(e2s)?
            .label("dashed, arm colour: DP-SGD lower bound")
            .legend(|(x, y)| PathElement::new(vec![(x, y)], WHITE));
    }
    if has(|pt| pt.ceiling_ub.is_some()) {
        chart
            .draw_series(LineSeries::new(Vec::<(f64, f64)>::new(), WHITE))
            .map_err(e2s)?
            .label("dotted, arm colour: group-privacy ceiling")
            .legend(|(x, y)| PathElement::new(vec![(x, y)], WHITE));
    }
    chart
        .draw_series(LineSeries::new(Vec::<(f64, f64)>::new(), WHITE))
        .map_err(e2s)?
        .label("band: Clopper–Pearson 95% envelope over seeds")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 24, y + 5)], colour(0).mix(0.2).filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(e2s)?;
    Ok(())
}

fn draw_critical<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel, s_star: f64) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e2s)?;
    let max_alpha = p.arms.iter().flat_map(|a| a.points.iter().map(|pt| pt.alpha)).fold(0.0, f64::max);
    let finite: Vec<(f64, Option<f64>)> = p
        .arms
        .iter()
        .filter(|a| a.eps.is_finite())
        .map(|a| (a.eps, a.critical_mass(s_star).map(|c| c.interp)))
        .collect();
    let refs: Vec<(String, f64, RGBColor)> = p
        .arms
        .iter()
        .filter(|a| !a.eps.is_finite() && !a.eps.is_nan())
        .filter_map(|a| {
            let c = if a.is_non_private() { BLACK } else { RGBColor(130, 130, 130) };
            a.critical_mass(s_star).map(|cm| (a.label(), cm.interp, c))
        })
        .collect();
    let (x0, x1) = log_range(finite.iter().map(|f| f.0)).unwrap_or((0.1, 10.0));
    let (y0, y1) = log_range(
        finite.iter().filter_map(|f| f.1).chain(refs.iter().map(|r| r.1)).chain(std::iter::once(max_alpha)),
    )
    .ok_or("no α")?;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Critical mass α*(S* = {}) vs ε — {}", fmt_num(s_star), p.key.title()), (FAMILY, 24))
        .margin(16)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(eps_ticks(finite.iter().map(|f| f.0))),
            (y0..y1).log_scale(),
        )
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("privacy budget ε (log scale)")
        .y_desc("critical mass α* (log scale)")
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| fmt_num(*y))
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .light_line_style(WHITE)
        .draw()
        .map_err(e2s)?;
    let reached: Vec<(f64, f64)> = finite.iter().filter_map(|&(e, a)| a.map(|a| (e, a))).collect();
    let c = colour(0);
    if !reached.is_empty() {
        chart
            .draw_series(LineSeries::new(reached.clone(), c.stroke_width(3)))
            .map_err(e2s)?
            .label("DP-SGD (log-interpolated α*)")
            .legend(legend_line(c));
        chart.draw_series(reached.iter().map(|&xy| Circle::new(xy, 5, c.filled()))).map_err(e2s)?;
    }
    let missing: Vec<f64> = finite.iter().filter(|f| f.1.is_none()).map(|f| f.0).collect();
    if !missing.is_empty() {
        chart
            .draw_series(missing.iter().map(|&e| TriangleMarker::new((e, max_alpha), 7, colour(3).filled())))
            .map_err(e2s)?
            .label(format!("S* not reached (α* > {})", fmt_num(max_alpha)))
            .legend(|(x, y)| TriangleMarker::new((x + 12, y), 7, colour(3).filled()));
    }
    for (label, a, col) in refs {
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, a), (x1, a)], 10, 6, col.stroke_width(2)))
            .map_err(e2s)?
            .label(format!("{label}: α* = {}", fmt_num(a)))
            .legend(legend_line(col));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(e2s)?;
    Ok(())
}

fn draw_clean<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e2s)?;
    let finite: Vec<(f64, (f64, f64, f64))> = p
        .arms
        .iter()
        .filter(|a| a.eps.is_finite())
        .filter_map(|a| a.clean_acc().map(|c| (a.eps, c)))
        .collect();
    let refs: Vec<(String, f64, RGBColor)> = p
        .arms
        .iter()
        .filter(|a| !a.eps.is_finite() && !a.eps.is_nan())
        .filter_map(|a| {
            let c = if a.is_non_private() { BLACK } else { RGBColor(130, 130, 130) };
            a.clean_acc().map(|(m, _, _)| (a.label(), m, c))
        })
        .collect();
    let (x0, x1) = log_range(finite.iter().map(|f| f.0)).unwrap_or((0.1, 10.0));
    let lo = finite.iter().map(|f| f.1 .1).chain(refs.iter().map(|r| r.1)).fold(1.0, f64::min);
    let hi = finite.iter().map(|f| f.1 .2).chain(refs.iter().map(|r| r.1)).fold(0.0, f64::max);
    if hi < lo {
        return Err("no clean accuracy".into());
    }
    let y0 = (lo - 0.05).max(0.0);
    let y1 = (hi + 0.05).min(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Clean accuracy vs ε — {}", p.key.title()), (FAMILY, 24))
        .margin(16)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(eps_ticks(finite.iter().map(|f| f.0))),
            y0..y1,
        )
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("privacy budget ε (log scale)")
        .y_desc("clean test accuracy")
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| format!("{:.2}", y))
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .light_line_style(WHITE)
        .draw()
        .map_err(e2s)?;
    let c = colour(0);
    if !finite.is_empty() {
        chart
            .draw_series(LineSeries::new(finite.iter().map(|&(e, (m, _, _))| (e, m)), c.stroke_width(3)))
            .map_err(e2s)?
            .label("DP-SGD: mean over α and seeds (bar: min–max over α)")
            .legend(legend_line(c));
        chart
            .draw_series(finite.iter().map(|&(e, (m, _, _))| Circle::new((e, m), 5, c.filled())))
            .map_err(e2s)?;
        chart
            .draw_series(
                finite
                    .iter()
                    .map(|&(e, (_, l, h))| PathElement::new(vec![(e, l), (e, h)], c.stroke_width(2))),
            )
            .map_err(e2s)?;
    }
    for (label, a, col) in refs {
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, a), (x1, a)], 10, 6, col.stroke_width(2)))
            .map_err(e2s)?
            .label(format!("{label}: {:.3}", a))
            .legend(legend_line(col));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(e2s)?;
    Ok(())
}

/// Which plots a panel can have: (title, file stem suffix).
pub fn plot_names(p: &Panel) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    let any_alpha = p.arms.iter().any(|a| a.points.iter().any(|pt| pt.alpha > 0.0 && pt.success.is_some()));
    if any_alpha {
        v.push(("success vs α", "success_vs_alpha"));
        v.push(("critical mass vs ε", "critical_mass_vs_eps"));
    }
    if p.arms.iter().any(|a| a.clean_acc().is_some()) {
        v.push(("clean accuracy vs ε", "clean_acc_vs_eps"));
    }
    v
}

/// Writes every plot of panel `p` into `dir` as `<slug>.<kind>.{png,svg}`; returns the PNG
/// file names (relative to `dir`) with their titles.
pub fn write_panel(dir: &Path, p: &Panel, s_star: f64) -> Result<Vec<(String, String)>, String> {
    ensure_font()?;
    let slug = p.key.slug();
    let mut out = Vec::new();
    for (title, kind) in plot_names(p) {
        let stem = dir.join(format!("{slug}.{kind}"));
        let png = match kind {
            "success_vs_alpha" => both!(&stem, draw_success(p, s_star)),
            "critical_mass_vs_eps" => both!(&stem, draw_critical(p, s_star)),
            _ => both!(&stem, draw_clean(p)),
        }
        .map_err(|e| format!("{}: {e}", stem.display()))?;
        let name = png.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        out.push((title.to_string(), name));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Sandwich plots: measurement between the guarantee (below) and the ceiling (above), per arm.
// ------------------------------------------------------------------------------------------------

/// What one sandwich plot shows at one α (> 0).
#[derive(Debug, Clone, Default)]
struct SandwichPoint {
    alpha: f64,
    seeds: Vec<f64>,
    mean: Option<f64>,
    ci: Option<(f64, f64)>,
    t_ci: Option<(f64, f64)>,
    guarantee: Option<f64>,
    guarantee_kind: String,
    per_run: Option<f64>,
    prediction: Option<f64>,
    ceiling: Option<f64>,
    ceiling_t: Option<f64>,
}

/// The data of one arm's sandwich: points by α and the baseline E[S₀] (mean, distribution-free UCB).
struct Sandwich {
    title: String,
    points: Vec<SandwichPoint>,
    baseline: Option<(f64, f64)>,
}

fn in_panel(p: &Panel, sweep: &str, dataset: &str, model: &str, collective: &str, clip: Option<f64>) -> bool {
    sweep == p.key.sweep
        && dataset == p.key.dataset
        && model == p.key.model
        && collective == p.key.collective
        && match clip {
            Some(c) => format!("C={}", fmt_num(c)) == p.key.clip,
            None => true,
        }
}

fn sandwich_data(
    p: &Panel,
    privacy: &str,
    label: String,
    rows: &[ResultRow],
    stats: &[ConfigStats],
    prediction: Option<Prediction<'_>>,
) -> Sandwich {
    let key_val = |s: &ConfigStats, name: &str| {
        s.key.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let mine: Vec<&ConfigStats> = stats
        .iter()
        .filter(|s| {
            s.privacy == privacy
                && in_panel(p, &key_val(s, "sweep"), &s.dataset, &s.model, &s.collective, s.clip)
        })
        .collect();
    let baseline = mine.iter().find_map(|s| s.baseline.map(|b| (b.mean, b.hi)));
    let mut points: Vec<SandwichPoint> = mine
        .iter()
        .filter(|s| s.alpha > 0.0)
        .map(|s| {
            let rs: Vec<&ResultRow> =
                rows.iter().filter(|r| r.is_ok() && analysis::config_key(r) == s.key).collect();
            let pred: Vec<f64> = match prediction {
                Some(f) => rs.iter().filter_map(|r| f(r)).collect(),
                None => vec![],
            };
            SandwichPoint {
                alpha: s.alpha,
                seeds: s.seeds.iter().map(|x| x.1).collect(),
                mean: s.success.map(|x| x.mean),
                ci: s.success.map(|x| (x.lo, x.hi)),
                t_ci: s.success.and_then(|x| Some((x.t_lo?, x.t_hi?))),
                guarantee: s.dpsgd.bound,
                guarantee_kind: s.dpsgd.kind.clone(),
                per_run: s.dpsgd_hp.bound,
                prediction: stats::mean(&pred),
                ceiling: s.ceiling.at_ucb,
                ceiling_t: s.ceiling.at_t_ucb,
            }
        })
        .collect();
    points.sort_by(|a, b| a.alpha.total_cmp(&b.alpha));
    Sandwich { title: format!("{} — {label}", p.key.title()), points, baseline }
}

/// Legend entry: a sample drawn at (x, y) of the legend area, and its text.
type LegendItem = (String, Box<dyn Fn(&mut Vec<DynElement>, (i32, i32))>);
enum DynElement {
    Line(Vec<(i32, i32)>, ShapeStyle),
    Dashed(Vec<(i32, i32)>, ShapeStyle),
    Dot((i32, i32), i32, ShapeStyle),
}

fn draw_sandwich<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Sandwich) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e2s)?;
    let (left, right) = root.split_horizontally(800);
    let (x0, x1) = log_range(s.points.iter().map(|p| p.alpha)).ok_or("no α > 0")?;
    let mut chart = ChartBuilder::on(&left)
        .caption(s.title.clone(), (FAMILY, 19))
        .margin(14)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(s.points.iter().map(|p| p.alpha).collect::<Vec<_>>()),
            0.0..1.02f64,
        )
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("α (collective fraction, log scale)")
        .y_desc("success on triggered test points")
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| format!("{:.1}", y))
        .axis_desc_style((FAMILY, 17))
        .label_style((FAMILY, 14))
        .light_line_style(WHITE)
        .draw()
        .map_err(e2s)?;
    let grey = RGBColor(120, 120, 120);
    let blue = colour(0);
    let green = colour(2);
    let red = colour(3);
    let purple = colour(4);
    let orange = colour(1);
    let mut legend: Vec<LegendItem> = Vec::new();
    if let Some((m, u)) = s.baseline {
        chart.draw_series(LineSeries::new(vec![(x0, m), (x1, m)], grey.stroke_width(2))).map_err(e2s)?;
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, u), (x1, u)], 4, 4, grey.stroke_width(1)))
            .map_err(e2s)?;
        legend.push((
            format!("baseline E[S₀] = {m:.3} (α = 0)"),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Line(vec![(x, y), (x + 26, y)], grey.stroke_width(2)))
            }),
        ));
        legend.push((
            format!("UCB(E[S₀]) = {u:.3} (distribution-free)"),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Dashed(vec![(x, y), (x + 26, y)], grey.stroke_width(1)))
            }),
        ));
    }
    // Ceiling (above), guarantee and per-run bound (below), prediction.
    let line = |f: &dyn Fn(&SandwichPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        s.points.iter().filter_map(|p| f(p).map(|v| (p.alpha, v.min(1.02)))).collect()
    };
    let ceil = line(&|p| p.ceiling);
    if !ceil.is_empty() {
        chart.draw_series(LineSeries::new(ceil.clone(), red.stroke_width(3))).map_err(e2s)?;
        chart.draw_series(ceil.iter().map(|&xy| TriangleMarker::new(xy, 6, red.filled()))).map_err(e2s)?;
        legend.push((
            "ceiling at UCB(E[S₀]) (guarantee on E[S])".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Line(vec![(x, y), (x + 26, y)], red.stroke_width(3)))
            }),
        ));
    }
    let ceil_t = line(&|p| p.ceiling_t);
    if !ceil_t.is_empty() {
        chart.draw_series(DashedLineSeries::new(ceil_t, 6, 5, red.mix(0.6).stroke_width(2))).map_err(e2s)?;
        legend.push((
            "ceiling at t-UCB(E[S₀]) (approximate)".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Dashed(vec![(x, y), (x + 26, y)], red.mix(0.6).stroke_width(2)))
            }),
        ));
    }
    let g = line(&|p| p.guarantee);
    if !g.is_empty() {
        let kind = s
            .points
            .iter()
            .find(|p| p.guarantee.is_some())
            .map(|p| p.guarantee_kind.clone())
            .unwrap_or_default();
        chart.draw_series(LineSeries::new(g.clone(), green.stroke_width(3))).map_err(e2s)?;
        chart.draw_series(g.iter().map(|&xy| TriangleMarker::new(xy, 6, green.filled()))).map_err(e2s)?;
        legend.push((
            format!("DP-SGD bound on E[S] ({}; mean over seeds)", if kind.is_empty() { "?" } else { &kind }),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Line(vec![(x, y), (x + 26, y)], green.stroke_width(3)))
            }),
        ));
    }
    let hp = line(&|p| p.per_run);
    if !hp.is_empty() {
        chart.draw_series(DashedLineSeries::new(hp, 3, 4, orange.stroke_width(2))).map_err(e2s)?;
        legend.push((
            "DP-SGD per-run bound (prob. ≥ 1 − β)".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Dashed(vec![(x, y), (x + 26, y)], orange.stroke_width(2)))
            }),
        ));
    }
    let pr = line(&|p| p.prediction);
    if !pr.is_empty() {
        chart.draw_series(DashedLineSeries::new(pr, 10, 6, purple.stroke_width(3))).map_err(e2s)?;
        legend.push((
            "prediction (not a guarantee)".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Dashed(vec![(x, y), (x + 26, y)], purple.stroke_width(3)))
            }),
        ));
    }
    // Measurements: per-seed points (spread a little in log α so ties stay visible), then CIs and mean.
    for p in &s.points {
        let n = p.seeds.len().max(2) as f64;
        chart
            .draw_series(p.seeds.iter().enumerate().map(|(i, &v)| {
                let x = p.alpha * (0.05 * (i as f64 / (n - 1.0) - 0.5)).exp() * 0.93;
                Circle::new((x, v), 3, grey.mix(0.7).filled())
            }))
            .map_err(e2s)?;
        let bar = |lo: f64, hi: f64, x: f64, style: ShapeStyle, cap: f64| {
            vec![
                PathElement::new(vec![(x, lo), (x, hi)], style),
                PathElement::new(vec![(x / cap, lo), (x * cap, lo)], style),
                PathElement::new(vec![(x / cap, hi), (x * cap, hi)], style),
            ]
        };
        let xc = p.alpha * 1.06;
        if let Some((lo, hi)) = p.ci {
            chart.draw_series(bar(lo, hi, xc, blue.stroke_width(2), 1.025)).map_err(e2s)?;
        }
        if let Some((lo, hi)) = p.t_ci {
            chart.draw_series(bar(lo, hi, xc * 1.035, colour(9).stroke_width(2), 1.015)).map_err(e2s)?;
        }
        if let Some(m) = p.mean {
            chart.draw_series(std::iter::once(Circle::new((xc, m), 6, blue.filled()))).map_err(e2s)?;
        }
    }
    legend.insert(
        0,
        (
            "per-seed success".into(),
            Box::new(move |v, (x, y)| v.push(DynElement::Dot((x + 13, y), 3, grey.mix(0.7).filled()))),
        ),
    );
    legend.insert(
        1,
        (
            "mean, 95% CI of E[S] (distribution-free)".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Line(vec![(x + 13, y - 9), (x + 13, y + 9)], blue.stroke_width(2)));
                v.push(DynElement::Dot((x + 13, y), 6, blue.filled()));
            }),
        ),
    );
    legend.insert(
        2,
        (
            "Student-t 95% CI (approximate)".into(),
            Box::new(move |v, (x, y)| {
                v.push(DynElement::Line(vec![(x + 13, y - 9), (x + 13, y + 9)], colour(9).stroke_width(2)))
            }),
        ),
    );
    // Legend on the right.
    right.fill(&WHITE).map_err(e2s)?;
    let mut y = 70;
    right
        .draw(&Text::new("legend", (10, 40), (FAMILY, 17).into_font().style(FontStyle::Bold)))
        .map_err(e2s)?;
    for (text, sample) in &legend {
        let mut els = Vec::new();
        sample(&mut els, (10, y));
        for e in els {
            match e {
                DynElement::Line(pts, st) => right.draw(&PathElement::new(pts, st)).map_err(e2s)?,
                DynElement::Dashed(pts, st) => {
                    let (a, b) = (pts[0], pts[pts.len() - 1]);
                    let mut x = a.0;
                    while x < b.0 {
                        right
                            .draw(&PathElement::new(vec![(x, a.1), ((x + 5).min(b.0), a.1)], st))
                            .map_err(e2s)?;
                        x += 9;
                    }
                }
                DynElement::Dot(c, r, st) => right.draw(&Circle::new(c, r, st)).map_err(e2s)?,
            }
        }
        // Wrap long labels at ~30 characters.
        let mut lines = vec![String::new()];
        for w in text.split(' ') {
            if lines.last().is_some_and(|l| l.chars().count() + w.chars().count() > 30) {
                lines.push(String::new());
            }
            let l = lines.last_mut().expect("non-empty");
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(w);
        }
        for (i, l) in lines.iter().enumerate() {
            right.draw(&Text::new(l.clone(), (44, y - 8 + 18 * i as i32), (FAMILY, 14))).map_err(e2s)?;
        }
        y += 18 * lines.len() as i32 + 14;
    }
    Ok(())
}

/// Writes one sandwich plot per privacy arm of panel `p` (arms with α > 0 points), as
/// `<slug>.sandwich_<arm>.{png,svg}`; returns (title, PNG file name) pairs.
pub fn write_sandwiches(
    dir: &Path,
    p: &Panel,
    rows: &[ResultRow],
    stats: &[ConfigStats],
    prediction: Option<Prediction<'_>>,
) -> Result<Vec<(String, String)>, String> {
    ensure_font()?;
    let slug = p.key.slug();
    let mut out = Vec::new();
    for a in &p.arms {
        let s = sandwich_data(p, &a.privacy, a.label(), rows, stats, prediction);
        if s.points.iter().all(|pt| pt.seeds.is_empty()) {
            continue;
        }
        let arm: String = a
            .privacy
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        let stem = dir.join(format!("{slug}.sandwich_{arm}"));
        let png = both!(&stem, draw_sandwich(&s)).map_err(|e| format!("{}: {e}", stem.display()))?;
        let name = png.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        out.push((format!("sandwich: {}", a.label()), name));
    }
    Ok(out)
}

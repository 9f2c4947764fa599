//! Amplification vs budget, one panel per privacy level, one line per strategy with its 95 %
//! t-interval over seeds as error bars, and the A = 1 line (recommended exactly in proportion to
//! the training share). PNG with plotters and the report's embedded font.

use std::path::Path;

use plotters::prelude::*;

use super::experiment::SummaryRow;

const FAMILY: &str = "sans-serif";

fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 6] =
        [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Draw `rows` (first collective only; the `none` reference rows are skipped) into `png`.
pub fn amplification_vs_budget(png: &Path, rows: &[SummaryRow]) -> Result<(), String> {
    crate::report::plot::ensure_font()?;
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.strategy != "none" && r.collective == 0).collect();
    let mut privacy: Vec<&str> = Vec::new();
    let mut strategies: Vec<&str> = Vec::new();
    for r in &rows {
        if !privacy.contains(&r.privacy.as_str()) {
            privacy.push(&r.privacy);
        }
        if !strategies.contains(&r.strategy.as_str()) {
            strategies.push(&r.strategy);
        }
    }
    if rows.is_empty() {
        return Err("no collective rows to plot".into());
    }
    let bmax = rows.iter().map(|r| r.budget).max().unwrap_or(1) as f64;
    let ymax = rows
        .iter()
        .map(|r| r.amplification_hi.max(r.amplification))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;
    let root = BitMapBackend::new(png, (520 * privacy.len() as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (panel, p) in root.split_evenly((1, privacy.len())).iter().zip(&privacy) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("amplification vs budget — {p}"), (FAMILY, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..bmax * 1.1, 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("budget (collective playlists)")
            .y_desc("amplification (mean, 95% t over seeds)")
            .axis_desc_style((FAMILY, 15))
            .label_style((FAMILY, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 1.0), (bmax * 1.1, 1.0)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label("A = 1")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for (i, s) in strategies.iter().enumerate() {
            let c = colour(i);
            let mut pts: Vec<&&SummaryRow> =
                rows.iter().filter(|r| r.privacy == **p && r.strategy == **s).collect();
            pts.sort_by_key(|r| r.budget);
            // Strategies side by side around each budget, so that their bars do not overlap.
            let shift =
                |b: usize| b as f64 * (1.0 + 0.025 * (i as f64 - (strategies.len() as f64 - 1.0) / 2.0));
            let line: Vec<(f64, f64)> = pts.iter().map(|r| (shift(r.budget), r.amplification)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*s)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|r| {
                    let x = shift(r.budget);
                    PathElement::new(
                        vec![(x, r.amplification_lo.max(0.0)), (x, r.amplification_hi)],
                        c.stroke_width(2),
                    )
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(line.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| format!("{}: {e}", png.display()))
}
